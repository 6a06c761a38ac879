# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filters of status.yml: the course table and the JSON document (operations/diagnosis.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from ansible_collections.haw.icc.plugins.module_utils.operations.diagnosis import (
    status_document as _document,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.diagnosis import (
    status_table as _table,
)


def _statuses(hosts):
    """The deployment_status results of hosts (hostvars entries); a host without one (its play
    failed) still gets a row."""
    statuses = []
    for host in hosts:
        status = dict(host.get("__icc_status") or {})
        status.setdefault("namespace", host.get("inventory_hostname"))
        statuses.append(status)
    return statuses


def status_table(hosts):
    return _table(_statuses(hosts))


def status_document(hosts):
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017
    return _document(_statuses(hosts), generated)


class FilterModule:
    def filters(self):
        return {"status_table": status_table, "status_document": status_document}

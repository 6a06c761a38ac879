# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filters of status.yml: the course table and the JSON document (operations/course_status.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from ansible_collections.haw.icc.plugins.module_utils.operations.course_status import (
    status_document as _document,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.course_status import (
    status_table as _table,
)


def _statuses(by_namespace):
    """The deployment_status results, one per namespace of the play (status.yml hands them over
    as {namespace: result}); a namespace without one (its play failed) still gets a row."""
    statuses = []
    for namespace, result in by_namespace.items():
        status = dict(result or {})
        status.setdefault("namespace", namespace)
        statuses.append(status)
    return statuses


def status_table(by_namespace):
    return _table(_statuses(by_namespace))


def status_document(by_namespace):
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017
    return _document(_statuses(by_namespace), generated)


class FilterModule:
    def filters(self):
        return {"status_table": status_table, "status_document": status_document}

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filters of status.yml: the course table, the JSON document and the HTML page
(operations/course_status.py)."""

from __future__ import annotations

from datetime import datetime, timezone

from ansible_collections.haw.icc.plugins.module_utils.operations.course_status import (
    course_page as _page,
)
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


def _now():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


def status_document(by_namespace):
    return _document(_statuses(by_namespace), _now())


def status_page(by_namespace):
    return _page(_statuses(by_namespace), _now())


class FilterModule:
    def filters(self):
        return {
            "status_table": status_table,
            "status_document": status_document,
            "status_page": status_page,
        }

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Which of the rights a playbook needs the RBAC rules of a SelfSubjectRulesReview grant.

One rules review lists what the user may do in a namespace; matching the needed rights against
it locally replaces a SelfSubjectAccessReview per right (25 requests per namespace before).
Matching follows Kubernetes' RBAC: `*` matches any group, resource or verb, `*/<sub>` any
resource's subresource <sub>; a rule limited to resourceNames grants no right that this check
needs (create and list have no name). No Ansible, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _matches(granted: Iterable[str], wanted: str) -> bool:
    granted = list(granted or [])
    return "*" in granted or wanted in granted


def _resource_matches(granted: Iterable[str], resource: str) -> bool:
    granted = list(granted or [])
    if "*" in granted or resource in granted:
        return True
    _, slash, sub = resource.partition("/")
    return bool(slash) and f"*/{sub}" in granted


def allows(rules: Iterable[Mapping[str, Any]], group: str, resource: str, verb: str) -> bool:
    """Whether any rule grants `verb` on every object of `group`/`resource`."""
    return any(
        not rule.get("resourceNames")
        and _matches(rule.get("apiGroups"), group)
        and _resource_matches(rule.get("resources"), resource)
        and _matches(rule.get("verbs"), verb)
        for rule in rules
    )


def needed(permissions: Iterable[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    """(group, resource, verb) for every verb of the permissions list, in its order."""
    return [
        (permission.get("group") or "", permission["resource"], verb)
        for permission in permissions
        for verb in permission.get("verbs", [])
    ]


def label(group: str, resource: str, verb: str) -> str:
    """`delete apps/deployments`, `get secrets`: how the check names a right."""
    return f"{verb} {group + '/' if group else ''}{resource}"

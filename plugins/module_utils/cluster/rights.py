# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Which of the rights a playbook needs the RBAC rules of a SelfSubjectRulesReview grant.

One rules review lists what the user may do in a namespace; matching the needed rights against
it locally replaces a SelfSubjectAccessReview per right (25 requests per namespace before).
Matching follows Kubernetes' RBAC: `*` matches any group, resource or verb, `*/<sub>` any
resource's subresource <sub>; a rule limited to resourceNames grants no right that this check
needs (create and list have no name). No Ansible; `denied` asks the API server through the
ClusterApi it is given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

AUTHORIZATION = "/apis/authorization.k8s.io/v1"


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


def denied(api: Any, namespace: str, permissions: Iterable[Mapping[str, Any]]) -> list[str]:
    """The rights of `permissions` the user lacks in the namespace (their labels), asked of the
    API server `api` (a ClusterApi): one SelfSubjectRulesReview, and a SelfSubjectAccessReview
    only for a right it does not show when the server says its list is incomplete (an
    authorizer that cannot list its rules)."""
    review = api.create(
        f"{AUTHORIZATION}/selfsubjectrulesreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        },
    )
    status = review.get("status") or {}
    rules = status.get("resourceRules") or []
    lacking = []
    for group, resource, verb in needed(permissions):
        if allows(rules, group, resource, verb):
            continue
        if status.get("incomplete") and may(api, namespace, group, resource, verb):
            continue
        lacking.append(label(group, resource, verb))
    return lacking


def may(api: Any, namespace: str, group: str, resource: str, verb: str) -> bool:
    """Whether the user may `verb` `group`/`resource` (`pods/exec`: a subresource) in the
    namespace: one SelfSubjectAccessReview."""
    name, _, subresource = resource.partition("/")
    attributes = {"namespace": namespace, "group": group, "resource": name, "verb": verb}
    if subresource:
        attributes["subresource"] = subresource
    answer = api.create(
        f"{AUTHORIZATION}/selfsubjectaccessreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attributes},
        },
    )
    return bool((answer.get("status") or {}).get("allowed"))

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The preflight's reading of a SelfSubjectRulesReview (module_utils/cluster/rights.py)."""

from __future__ import annotations

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster import rights as access_rules

# Shaped like the rules a 1.20 API server returns for the ClusterRole `admin` and a narrow Role.
RULES = [
    {"apiGroups": ["apps"], "resources": ["deployments", "replicasets"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"], "resourceNames": ["one"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["*"], "verbs": ["*"]},
]


@pytest.mark.parametrize(
    ("group", "resource", "verb", "allowed"),
    [
        ("apps", "deployments", "get", True),
        ("apps", "deployments", "patch", False),  # verb not granted
        ("", "deployments", "get", False),  # the core group is not apps
        ("", "secrets", "create", True),
        ("", "secrets", "list", False),
        ("", "pods/log", "get", True),
        ("", "pods", "get", False),  # a subresource grants nothing on its parent
        ("", "pods/exec", "create", False),
        ("apps", "deployments/scale", "patch", True),  # */scale
        ("", "configmaps", "get", False),  # limited to resourceNames
        ("networking.k8s.io", "ingresses", "delete", True),  # * resources, * verbs
        ("networking.k8s.io", "networkpolicies", "create", True),
    ],
)
def test_allows_follows_rbac_matching(group, resource, verb, allowed):
    assert access_rules.allows(RULES, group, resource, verb) is allowed


def test_a_rule_with_empty_fields_grants_nothing():
    assert not access_rules.allows([{"apiGroups": [""], "verbs": ["get"]}], "", "pods", "get")
    assert not access_rules.allows([], "", "pods", "get")


def test_needed_lists_each_verb_in_order_and_label_names_the_group():
    permissions = [
        {"group": "", "resource": "secrets", "verbs": ["get", "create"]},
        {"group": "apps", "resource": "deployments", "verbs": ["patch"]},
    ]
    wanted = access_rules.needed(permissions)
    assert wanted == [
        ("", "secrets", "get"),
        ("", "secrets", "create"),
        ("apps", "deployments", "patch"),
    ]
    assert [access_rules.label(*right) for right in wanted] == [
        "get secrets",
        "create secrets",
        "patch apps/deployments",
    ]

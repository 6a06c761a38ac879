"""The namespace's check before a deploy (cluster_preflight), on a fake request layer.

The fake answers like the API server: objects by path (a missing one is None with missing_ok,
a forbidden one raises the layer's 403), a SelfSubjectRulesReview with the rules it was given,
and a SelfSubjectAccessReview allowed for the rights it was given. Every create is recorded.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.operations.preflight import check

NAMESPACE = "wabc123-default"
WHO = "KUBECONFIG /home/s/.kube/config"
FORBIDDEN = object()
ALL_RIGHTS = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]
PERMISSIONS = [
    {"group": "apps", "resource": "deployments", "verbs": ["get", "patch"]},
    {"group": "", "resource": "pods/exec", "verbs": ["create"]},
]


class FakeApi:
    def __init__(
        self,
        objects: dict[str, Any],
        rules: list[dict[str, Any]],
        incomplete: bool = False,
        allowed: tuple[str, ...] = (),
    ) -> None:
        self.objects, self.rules, self.incomplete, self.allowed = (
            objects,
            rules,
            incomplete,
            allowed,
        )
        self.created: list[str] = []

    def get(self, path: str, missing_ok: bool = False) -> Any:
        found = self.objects.get(path)
        if found is FORBIDDEN:
            raise ApiError("forbidden", 403)
        return found

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body["kind"])
        if body["kind"] == "SelfSubjectRulesReview":
            return {"status": {"resourceRules": self.rules, "incomplete": self.incomplete}}
        if body["kind"] == "SelfSubjectAccessReview":
            asked = body["spec"]["resourceAttributes"]
            resource = asked["resource"] + (
                f"/{asked['subresource']}" if "subresource" in asked else ""
            )
            return {"status": {"allowed": f"{asked['verb']} {resource}" in self.allowed}}
        return body


def run(api: FakeApi, check_mode: bool = False, **args: Any) -> tuple[str | None, dict, list]:
    options = {"namespace": NAMESPACE, "create_namespace": False, "permissions": PERMISSIONS}
    options.update({"volumes": [], **args})
    result: dict[str, Any] = {}
    warnings: list[str] = []
    stop = check(api, WHO, options, check_mode, result, warnings.append)
    return stop, result, warnings


def namespace(name: str = NAMESPACE) -> dict[str, str]:
    return {f"/api/v1/namespaces/{name}": {"metadata": {"name": name}}}


def test_a_namespace_of_the_user_with_every_right_passes():
    stop, result, warnings = run(FakeApi(namespace(), ALL_RIGHTS))
    assert stop is None and warnings == []
    assert result == {
        "namespace_exists": True,
        "denied": [],
        "volume_problems": [],
    }


def test_a_missing_namespace_stops_the_run_unless_it_may_be_created():
    api = FakeApi({}, ALL_RIGHTS)
    stop, result, _ = run(api)
    assert stop == (
        f"Namespace {NAMESPACE} does not exist. Ask for it, or set icc_create_namespace=true if "
        "you may create namespaces."
    )
    assert result["namespace_exists"] is False and api.created == []

    stop, result, _ = run(api, create_namespace=True)
    assert stop is None and result["namespace_created"] and result["changed"]
    assert api.created == ["Namespace", "SelfSubjectRulesReview"]


def test_check_mode_says_the_namespace_would_be_created_and_creates_nothing():
    api = FakeApi({}, ALL_RIGHTS)
    stop, result, _ = run(api, check_mode=True, create_namespace=True)
    assert stop is None and result["namespace_created"] is True
    assert "Namespace" not in api.created


def test_an_unreadable_namespace_is_assumed_to_exist_with_a_warning():
    api = FakeApi({f"/api/v1/namespaces/{NAMESPACE}": FORBIDDEN}, ALL_RIGHTS)
    stop, result, warnings = run(api)
    assert stop is None and result["namespace_exists"] is None
    assert warnings == [
        f"Cannot read namespace {NAMESPACE} (reading namespaces is cluster-scoped and not "
        "allowed for this user); assuming it exists."
    ]


def test_rights_the_rules_do_not_grant_are_named():
    rules = [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]
    stop, result, _ = run(FakeApi(namespace(), rules))
    assert result["denied"] == ["patch apps/deployments", "create pods/exec"]
    assert stop == (
        f"Not allowed in namespace {NAMESPACE}: patch apps/deployments, create pods/exec. "
        "Deploying needs these rights (on the ICC a student has them in their own namespace)."
    )


def test_rights_only_a_setting_needs_name_the_setting_and_say_the_rest_deploys():
    idle = {"group": "rbac.authorization.k8s.io", "resource": "roles", "verbs": ["create"]}
    needed = [*PERMISSIONS, idle | {"needed_for": "icc_idle_minutes"}]
    rules = [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
    ]
    stop, result, _ = run(FakeApi(namespace(), rules), permissions=needed)
    assert result["denied"] == ["create rbac.authorization.k8s.io/roles"]
    assert stop == (
        f"Not allowed in namespace {NAMESPACE}: create rbac.authorization.k8s.io/roles. "
        "icc_idle_minutes needs them (rbac/haw-icc-deployer.yml grants them); without "
        "icc_idle_minutes the rest deploys."
    )
    # One right that deploying itself needs missing too: then it is about deploying.
    stop, _, _ = run(FakeApi(namespace(), rules[:1]), permissions=needed)
    assert stop.endswith(
        "Deploying needs these rights (on the ICC a student has them in their own namespace)."
    )


def test_nothing_allowed_in_a_namespace_it_cannot_see_is_not_the_users_namespace():
    api = FakeApi({f"/api/v1/namespaces/{NAMESPACE}": FORBIDDEN}, [])
    stop, _, _ = run(api)
    assert stop.startswith(
        f"Namespace {NAMESPACE} does not exist or is not yours: {WHO} may do nothing there."
    )


def test_an_incomplete_rules_review_asks_for_each_missing_right_alone():
    api = FakeApi(namespace(), [], incomplete=True, allowed=("get deployments", "create pods/exec"))
    _, result, _ = run(api)
    assert result["denied"] == ["patch apps/deployments"]
    assert api.created.count("SelfSubjectAccessReview") == 3


def claim(size: str, storage_class: str = "standard") -> dict[str, Any]:
    return {
        f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/tgi-cache": {
            "spec": {
                "resources": {"requests": {"storage": size}},
                "storageClassName": storage_class,
            }
        }
    }


VOLUME = {"name": "tgi-cache", "size": "50Gi", "variable": "tgi_cache_size"}


@pytest.mark.parametrize(
    ("live", "storage_class", "problem", "warning"),
    [
        ("50Gi", None, None, None),  # the same size
        ("51200Mi", None, None, None),  # the same amount, written otherwise
        (
            "100Gi",
            None,
            "tgi_cache_size: 50Gi for volume tgi-cache, which has 100Gi: a volume cannot shrink. "
            "Keep 100Gi, or remove the volume with its data first (cleanup.yml -e purge=true)",
            None,
        ),
        (
            "20Gi",
            {"allowVolumeExpansion": False},
            "tgi_cache_size: 50Gi for volume tgi-cache, which has 20Gi: its StorageClass standard "
            "does not allow expansion. Keep 20Gi, or remove the volume with its data first "
            "(cleanup.yml -e purge=true)",
            None,
        ),
        ("20Gi", {"allowVolumeExpansion": True}, None, None),
        (
            "20Gi",
            FORBIDDEN,
            None,
            "tgi_cache_size: 50Gi for volume tgi-cache, which has 20Gi: whether its StorageClass "
            "may grow volumes cannot be read with these rights; the apply will tell",
        ),
    ],
)
def test_volume_sizes_the_api_server_would_refuse(live, storage_class, problem, warning):
    objects = {**namespace(), **claim(live)}
    if storage_class is not None:
        objects["/apis/storage.k8s.io/v1/storageclasses/standard"] = storage_class
    stop, result, warnings = run(FakeApi(objects, ALL_RIGHTS), volumes=[VOLUME])
    assert result["volume_problems"] == ([problem] if problem else [])
    assert warnings == ([warning] if warning else [])
    if problem:
        assert stop == f"The API server would refuse these volume sizes:\n- {problem}"


def test_a_new_volume_or_one_that_may_not_be_read_is_not_judged():
    objects = {**namespace(), **claim("100Gi")}
    path = next(iter(claim("100Gi")))
    for value in (None, FORBIDDEN):
        objects[path] = value
        stop, result, _ = run(FakeApi(objects, ALL_RIGHTS), volumes=[VOLUME])
        assert stop is None and result["volume_problems"] == []

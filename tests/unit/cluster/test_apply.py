# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Server-side apply of a namespace's objects (module_utils/cluster/apply.py), with a fake of
the request layer (ClusterApi; the requests it sends are tested in test_api.py).

The fake keeps objects by path and answers as the API server does: a dry run returns the
outcome without storing it, a real apply stores it with a new resourceVersion only when it
changes something. Real requests against the sandbox are in the integration tests."""

from __future__ import annotations

import base64
import copy

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster import apply as object_apply

NAMESPACE = "wabc123-default"
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "tgi", "labels": {"app": "tgi"}},
    "spec": {"ports": [{"port": 3333}]},
}


class FakeCluster:
    """get/apply/delete as ClusterApi offers them, over a dict of objects; counts real writes."""

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.version = 100
        self.writes: list[tuple[str, str]] = []

    def get(self, path, query=None, missing_ok=False):
        assert missing_ok  # apply_object asks for an object that may not exist
        return copy.deepcopy(self.objects.get(path))

    def apply(self, path, definition, manager, dry_run):
        live = self.objects.get(path)
        merged = copy.deepcopy(definition)
        metadata = merged["metadata"]
        metadata["managedFields"] = [{"manager": manager, "time": "now" if dry_run else "then"}]
        if live is not None and object_apply.comparable(live) == object_apply.comparable(merged):
            return copy.deepcopy(live)
        metadata["resourceVersion"] = str(self.version + (0 if dry_run else 1))
        merged["status"] = {"loadBalancer": {}}
        if not dry_run:
            self.version += 1
            self.objects[path] = merged
            self.writes.append(("apply", path))
        return copy.deepcopy(merged)

    def delete(self, path, body=None, query=None):
        assert body == {"propagationPolicy": "Foreground"}
        if (query or {}).get("dryRun") != "All":
            self.objects.pop(path)
            self.writes.append(("delete", path))
        return {}


def test_object_path_names_the_collections_kinds_and_refuses_others():
    assert (
        object_apply.object_path(SERVICE, NAMESPACE)
        == "/api/v1/namespaces/wabc123-default/services/tgi"
    )
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "tgi"}}
    assert object_apply.object_path(deployment, NAMESPACE).startswith("/apis/apps/v1/namespaces/")
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r"}}
    assert object_apply.object_path(role, NAMESPACE) == (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/wabc123-default/roles/r"
    )
    with pytest.raises(object_apply.ObjectProblem, match=r"cannot apply Job \(batch/v1\)"):
        object_apply.object_path({"apiVersion": "batch/v1", "kind": "Job"}, NAMESPACE)
    with pytest.raises(object_apply.ObjectProblem, match=r"without metadata\.name"):
        object_apply.object_path({"apiVersion": "v1", "kind": "Service"}, NAMESPACE)


def test_a_new_object_is_written_once_and_a_second_apply_writes_nothing():
    cluster = FakeCluster()
    first = object_apply.apply_object(cluster, NAMESPACE, SERVICE, "present", "haw.icc", False)
    assert first.changed and first.before is None
    assert first.after["metadata"]["namespace"] == NAMESPACE
    assert "status" not in first.after and "resourceVersion" not in first.after["metadata"]
    assert len(cluster.writes) == 1
    version = first.resource_version

    again = object_apply.apply_object(cluster, NAMESPACE, SERVICE, "present", "haw.icc", False)
    assert not again.changed
    assert again.resource_version == version
    assert len(cluster.writes) == 1  # the dry run only


def test_a_change_is_written_and_check_mode_only_reports_it():
    cluster = FakeCluster()
    object_apply.apply_object(cluster, NAMESPACE, SERVICE, "present", "haw.icc", False)
    changed = copy.deepcopy(SERVICE)
    changed["spec"]["ports"][0]["port"] = 8080

    checked = object_apply.apply_object(cluster, NAMESPACE, changed, "present", "haw.icc", True)
    assert checked.changed and checked.after["spec"]["ports"][0]["port"] == 8080
    assert len(cluster.writes) == 1

    applied = object_apply.apply_object(cluster, NAMESPACE, changed, "present", "haw.icc", False)
    assert applied.changed and applied.before["spec"]["ports"][0]["port"] == 3333
    assert len(cluster.writes) == 2


def test_absent_deletes_only_what_exists():
    cluster = FakeCluster()
    gone = object_apply.apply_object(cluster, NAMESPACE, SERVICE, "absent", "haw.icc", False)
    assert not gone.changed and cluster.writes == []
    object_apply.apply_object(cluster, NAMESPACE, SERVICE, "present", "haw.icc", False)
    checked = object_apply.apply_object(cluster, NAMESPACE, SERVICE, "absent", "haw.icc", True)
    assert checked.changed and len(cluster.writes) == 1
    deleted = object_apply.apply_object(cluster, NAMESPACE, SERVICE, "absent", "haw.icc", False)
    assert deleted.changed and cluster.writes[-1][0] == "delete"


def _data(definition):
    return base64.b64decode(definition["data"]["api-key"]).decode()


def test_secret_definition_prefers_given_then_live_then_generated():
    wanted = {"name": "tgi-api-key", "key": "api-key", "value": "", "generate": True, "length": 12}
    live = {"data": {"api-key": base64.b64encode(b"kept").decode()}}
    assert _data(object_apply.secret_definition({**wanted, "value": "given"}, live)) == "given"
    assert _data(object_apply.secret_definition(wanted, live)) == "kept"
    generated = _data(object_apply.secret_definition(wanted, None))
    assert len(generated) == 12 and generated.isalnum()
    assert generated != _data(object_apply.secret_definition(wanted, None))
    assert object_apply.secret_definition({**wanted, "generate": False}, None) is None


class RefusingCluster(FakeCluster):
    """Refuses every request for one path, as the API server refuses a forbidden object."""

    def __init__(self, refused_path):
        super().__init__()
        self.refused_path = refused_path
        self.asked: list[str] = []

    def get(self, path, query=None, missing_ok=False):
        self.asked.append(path)
        if path == self.refused_path:
            raise object_apply.ApiError("networkpolicies is forbidden", 403, "forbidden")
        return super().get(path, query, missing_ok)


def named(kind_path, name):
    api_version, kind = kind_path
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": name}, "spec": {}}


def test_plan_objects_reads_all_writes_none_and_keeps_the_order():
    wanted = [(named(("v1", "Service"), f"svc-{n}"), "present") for n in range(6)] + [
        (named(("networking.k8s.io/v1", "Ingress"), "old"), "absent")
    ]
    cluster = FakeCluster()
    plans = object_apply.plan_objects(cluster, NAMESPACE, wanted, "haw.icc")
    assert [(p.name, p.state, p.changed) for p in plans] == [
        *[(f"svc-{n}", "present", True) for n in range(6)],
        ("old", "absent", False),
    ]
    assert cluster.writes == []  # dry runs only
    for planned in plans:
        object_apply.carry_out(cluster, planned, "haw.icc", False)
    assert [path.rsplit("/", 1)[1] for _verb, path in cluster.writes] == [
        f"svc-{n}" for n in range(6)
    ]


def test_plan_objects_reports_a_refusal_in_its_place():
    wanted = [
        (named(("v1", "Service"), "tgi"), "present"),
        (named(("networking.k8s.io/v1", "NetworkPolicy"), "tgi"), "present"),
        (named(("v1", "PersistentVolumeClaim"), "cache"), "present"),
    ]
    refused = object_apply.object_path(wanted[1][0], NAMESPACE)
    plans = object_apply.plan_objects(RefusingCluster(refused), NAMESPACE, wanted, "haw.icc")
    assert isinstance(plans[0], object_apply.Outcome) and isinstance(plans[2], object_apply.Outcome)
    assert isinstance(plans[1], object_apply.ApiError) and plans[1].status == 403


def test_a_refused_first_object_is_not_followed_by_the_others():
    # The first request stands for the connection check: nothing else is asked after it failed.
    wanted = [
        (named(("v1", "Service"), "tgi"), "present"),
        (named(("v1", "PersistentVolumeClaim"), "cache"), "present"),
    ]
    cluster = RefusingCluster(object_apply.object_path(wanted[0][0], NAMESPACE))
    plans = object_apply.plan_objects(cluster, NAMESPACE, wanted, "haw.icc")
    assert len(plans) == 1 and isinstance(plans[0], object_apply.ApiError)
    assert cluster.asked == [object_apply.object_path(wanted[0][0], NAMESPACE)]


def test_an_object_read_by_the_caller_is_not_read_again():
    cluster = RefusingCluster(refused_path=None)
    object_apply.apply_object(cluster, NAMESPACE, SERVICE, "present", "haw.icc", False, None)
    assert cluster.asked == [] and len(cluster.writes) == 1


class RoleCheckingCluster(FakeCluster):
    """Answers a RoleBinding as the API server's escalation check does: its Role must exist,
    also in a dry run (the check reads the stored Role to compare its rights with the user's)."""

    def apply(self, path, definition, manager, dry_run):
        if definition["kind"] == "RoleBinding":
            role = path.rsplit("/rolebindings/", 1)[0] + "/roles/" + definition["roleRef"]["name"]
            if role not in self.objects:
                raise object_apply.ApiError(
                    f'roles "{definition["roleRef"]["name"]}" not found', 404
                )
        return super().apply(path, definition, manager, dry_run)


def test_a_new_role_and_its_binding_are_planned_together_and_written_in_order():
    rbac = "rbac.authorization.k8s.io/v1"
    role = named((rbac, "Role"), "tgi-idle-proxy")
    binding = named((rbac, "RoleBinding"), "tgi-idle-proxy")
    binding["roleRef"] = {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "tgi-idle-proxy",
    }
    cluster = RoleCheckingCluster()
    wanted = [(role, "present"), (binding, "present")]
    plans = object_apply.plan_objects(cluster, NAMESPACE, wanted, "haw.icc")
    assert [plan.changed for plan in plans] == [True, True] and cluster.writes == []
    for plan in plans:
        object_apply.carry_out(cluster, plan, "haw.icc", False)
    assert [kind for _, kind in cluster.writes] == [
        object_apply.object_path(role, NAMESPACE),
        object_apply.object_path(binding, NAMESPACE),
    ]
    # Another refusal of a binding is not taken for that one.
    orphan = named((rbac, "RoleBinding"), "other") | {"roleRef": {"name": "missing"}}
    cluster.objects[object_apply.object_path(orphan, NAMESPACE)] = {"kind": "RoleBinding"}
    with pytest.raises(object_apply.ApiError):
        object_apply.plan_object(cluster, NAMESPACE, orphan, "present", "haw.icc")

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Server-side apply of a namespace's objects (module_utils/cluster/apply.py), with a fake API.

The fake keeps objects by path and answers as the API server does: a dry run returns the
outcome without storing it, a real apply stores it with a new resourceVersion only when it
changes something. Real requests against the sandbox are in the integration tests."""

from __future__ import annotations

import base64
import copy
import json

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster import apply as object_apply
from urllib3.exceptions import MaxRetryError, NewConnectionError

NAMESPACE = "wabc123-default"
SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "tgi", "labels": {"app": "tgi"}},
    "spec": {"ports": [{"port": 3333}]},
}


class FakeCluster:
    """get/apply/delete as JsonApi offers them, over a dict of objects; counts real writes."""

    def __init__(self):
        self.objects: dict[str, dict] = {}
        self.version = 100
        self.writes: list[tuple[str, str]] = []

    def get(self, path):
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

    def delete(self, path, dry_run):
        if not dry_run:
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
    with pytest.raises(object_apply.ObjectProblem, match=r"cannot apply ConfigMap \(v1\)"):
        object_apply.object_path({"apiVersion": "v1", "kind": "ConfigMap"}, NAMESPACE)
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


class FakeResponse:
    def __init__(self, status, body):
        self.status, self.reason, self.data = status, "", json.dumps(body).encode()
        self.headers = {}

    def read(self):
        return self.data


class FakeApiClient:
    """param_serialize/call_api as kubernetes 37's ApiClient has them."""

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        self.configuration = type("Configuration", (), {"host": "https://127.0.0.1:6443"})()

    def param_serialize(self, method, resource_path, query_params, header_params, auth_settings):
        query = "&".join(f"{k}={v}" for k, v in query_params)
        return method, f"{self.configuration.host}{resource_path}?{query}", header_params, None, []

    def call_api(self, method, url, header_params, body, _request_timeout=None):
        self.requests.append((method, url, header_params.get("Content-Type"), body))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_json_api_sends_an_apply_patch_with_the_field_manager_and_dry_run():
    api_client = FakeApiClient(FakeResponse(200, {"kind": "Service"}))
    api = object_apply.JsonApi(api_client)
    assert api.apply("/api/v1/x", SERVICE, "haw.icc", dry_run=True) == {"kind": "Service"}
    method, url, content_type, body = api_client.requests[0]
    assert method == "PATCH" and content_type == "application/apply-patch+yaml"
    assert "fieldManager=haw.icc" in url and "force=true" in url and "dryRun=All" in url
    assert json.loads(body) == SERVICE  # sent as text: the library would not serialize it


def test_json_api_says_what_the_server_refused_and_none_is_a_missing_object():
    refused = FakeResponse(422, {"message": 'Service "tgi" is invalid: spec.ports: Required'})
    with pytest.raises(object_apply.RequestFailed, match=r"is invalid: spec\.ports") as failed:
        object_apply.JsonApi(FakeApiClient(refused)).apply("/x", SERVICE, "haw.icc", False)
    assert failed.value.status == 422
    assert object_apply.JsonApi(FakeApiClient(FakeResponse(404, {}))).get("/x") is None


def test_a_server_error_says_to_run_again_once_the_cluster_is_healthy():
    unavailable = FakeResponse(500, {"message": "rpc error: code = Unavailable"})
    with pytest.raises(object_apply.RequestFailed) as failed:
        object_apply.JsonApi(FakeApiClient(unavailable)).get("/x")
    assert str(failed.value) == (
        "the API server at https://127.0.0.1:6443 answered 500: rpc error: code = Unavailable. "
        "Run the playbook again once the cluster is healthy: what was applied stays, the re-run "
        "does the rest."
    )


def test_an_unreachable_server_is_one_line_without_the_connection_repr():
    refused = NewConnectionError(
        object(), "Failed to establish a new connection: [Errno 111] Connection refused"
    )
    error = MaxRetryError(None, "/api/v1/namespaces/x/services/tgi", refused)
    with pytest.raises(object_apply.RequestFailed) as failed:
        object_apply.JsonApi(FakeApiClient(error)).get("/x")
    message = str(failed.value)
    assert message.startswith("cannot reach the cluster at https://127.0.0.1:6443 (Connection")
    assert "Run the playbook again once it answers" in message
    assert "object at 0x" not in message and "MaxRetryError" not in message
    assert "\n" not in message

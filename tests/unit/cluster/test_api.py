# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The typed-client calls without the typed client (module_utils/cluster/api.py): each sends the
request the typed method sends, through a fake ApiClient that records it."""

from __future__ import annotations

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster import api as light_api
from kubernetes.client.exceptions import ApiException


class FakeResponse:
    def __init__(self, status=200, data=b"{}"):
        self.status, self.reason, self.data = status, "", data
        self.headers = {"Date": "Sun, 29 Nov 2026 12:00:00 GMT"}

    def read(self):
        return self.data


class FakeApiClient:
    def __init__(self, response=None):
        self.response = response or FakeResponse()
        self.sent = []

    def param_serialize(self, method, resource_path, query_params, header_params, auth_settings):
        query = "&".join(f"{k}={v}" for k, v in query_params)
        return method, resource_path + (f"?{query}" if query else ""), header_params, None, []

    def call_api(self, method, url, header_params, body, _request_timeout):
        self.sent.append((method, url, header_params.get("Content-Type"), body, _request_timeout))
        return self.response


def test_reads_use_the_paths_and_query_of_the_typed_methods():
    fake = FakeApiClient()
    core, apps = light_api.CoreApi(fake), light_api.AppsApi(fake)
    core.list_namespaced_pod(
        "ns",
        label_selector="app=tgi",
        field_selector="status.phase!=Failed",
        _preload_content=False,
    )
    core.list_node(_request_timeout=10)
    apps.read_namespaced_deployment("tgi", "ns")
    apps.list_namespaced_replica_set("ns", label_selector="a=b")
    assert [(m, u) for m, u, *_ in fake.sent] == [
        (
            "GET",
            "/api/v1/namespaces/ns/pods?labelSelector=app=tgi&fieldSelector=status.phase!=Failed",
        ),
        ("GET", "/api/v1/nodes"),
        ("GET", "/apis/apps/v1/namespaces/ns/deployments/tgi"),
        ("GET", "/apis/apps/v1/namespaces/ns/replicasets?labelSelector=a=b"),
    ]
    assert fake.sent[1][4] == 10


def test_a_list_body_is_a_json_patch_and_dry_run_is_a_query():
    fake = FakeApiClient()
    patch = [{"op": "replace", "path": "/spec/replicas", "value": 1}]
    light_api.AppsApi(fake).patch_namespaced_deployment(
        "tgi", "ns", patch, field_manager="haw.icc", dry_run="All"
    )
    method, url, content_type, body, _ = fake.sent[0]
    assert method == "PATCH" and content_type == "application/json-patch+json" and body == patch
    assert url.endswith("deployments/tgi?fieldManager=haw.icc&dryRun=All")


def test_lease_calls_and_an_error_is_the_librarys_api_exception():
    fake = FakeApiClient(FakeResponse(409, b'{"message": "conflict"}'))
    with pytest.raises(ApiException) as error:
        light_api.CoordinationApi(fake).create_namespaced_lease("ns", {"metadata": {"name": "x"}})
    assert error.value.status == 409 and "conflict" in error.value.body
    assert error.value.headers["Date"].startswith("Sun")
    assert fake.sent[0][:2] == ("POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases")

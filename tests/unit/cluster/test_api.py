# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The request layer (module_utils/cluster/api.py): the requests it sends through a fake
ApiClient that records them (param_serialize/call_api as kubernetes 37 has them), its one error
type and how it words the API server's answer, and the API server's clock."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster import errors as cluster_errors
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import (
    ApiError,
    ClusterApi,
    ExecResult,
    resource_path,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.errors import NoAnswer, api_error
from kubernetes.client.exceptions import ApiException

SERVER = "https://127.0.0.1:6443"
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "tgi"}}


class FakeResponse:
    def __init__(self, status=200, data=b"{}", date="Sun, 29 Nov 2026 12:00:00 GMT"):
        self.status, self.reason = status, ""
        self.data = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.headers = {"Date": date} if date else {}

    def read(self):
        return self.data


class FakeApiClient:
    """param_serialize/call_api as kubernetes 37's ApiClient has them; `answer` is the response,
    or an exception to raise."""

    def __init__(self, answer=None):
        self.answer = answer if answer is not None else FakeResponse()
        self.sent = []
        self.configuration = type("Configuration", (), {"host": SERVER})()

    def param_serialize(self, method, resource_path, query_params, header_params, auth_settings):
        assert auth_settings == ["BearerToken"]
        query = "&".join(f"{k}={v}" for k, v in query_params)
        url = f"{self.configuration.host}{resource_path}" + (f"?{query}" if query else "")
        return method, url, dict(header_params, authorization="Bearer t"), None, []

    def call_api(self, method, url, header_params, body, _request_timeout=None):
        self.sent.append((method, url, header_params.get("Content-Type"), body, _request_timeout))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def sent_paths(fake):
    return [(method, url.removeprefix(SERVER)) for method, url, *_ in fake.sent]


# --- the requests -------------------------------------------------------------------------------


def test_reads_send_the_paths_and_queries_the_api_names():
    fake = FakeApiClient(FakeResponse(data={"items": [{"a": 1}]}))
    api = ClusterApi(fake)
    pods = resource_path("v1", "pods", "ns")
    assert api.list(pods, {"labelSelector": "app=tgi", "fieldSelector": "status.phase!=Failed"})
    api.list(resource_path("v1", "nodes"))
    api.get(resource_path("apps/v1", "deployments", "ns", "tgi"))
    api.list(resource_path("apps/v1", "replicasets", "ns"), {"labelSelector": "a=b"})
    api.text(resource_path("v1", "pods", "ns", "tgi-1", "log"), {"tailLines": 5, "previous": True})
    assert sent_paths(fake) == [
        ("GET", "/api/v1/namespaces/ns/pods?labelSelector=app=tgi"
                "&fieldSelector=status.phase!=Failed"),
        ("GET", "/api/v1/nodes"),
        ("GET", "/apis/apps/v1/namespaces/ns/deployments/tgi"),
        ("GET", "/apis/apps/v1/namespaces/ns/replicasets?labelSelector=a=b"),
        ("GET", "/api/v1/namespaces/ns/pods/tgi-1/log?tailLines=5&previous=true"),
    ]  # fmt: skip
    # Every request waits at most 10 s for the connection and 30 s for the answer.
    assert {timeout for *_, timeout in fake.sent} == {(10, 30)}


def test_a_list_body_is_a_json_patch_and_dry_run_is_a_query():
    fake = FakeApiClient()
    patch = [{"op": "replace", "path": "/spec/replicas", "value": 1}]
    path = resource_path("apps/v1", "deployments", "ns", "tgi")
    ClusterApi(fake).patch(path, patch, "json", {"fieldManager": "haw.icc", "dryRun": "All"})
    method, url, content_type, body, _ = fake.sent[0]
    assert method == "PATCH" and content_type == "application/json-patch+json" and body == patch
    assert url.endswith("deployments/tgi?fieldManager=haw.icc&dryRun=All")


def test_apply_sends_an_apply_patch_with_the_field_manager_and_dry_run():
    fake = FakeApiClient(FakeResponse(200, {"kind": "Service"}))
    api = ClusterApi(fake)
    assert api.apply("/api/v1/x", SERVICE, "haw.icc", dry_run=True) == {"kind": "Service"}
    method, url, content_type, body, _ = fake.sent[0]
    assert method == "PATCH" and content_type == "application/apply-patch+yaml"
    assert "fieldManager=haw.icc" in url and "force=true" in url and "dryRun=All" in url
    assert json.loads(body) == SERVICE  # sent as text: the library would not serialize it
    api.apply("/api/v1/x", SERVICE, "haw.icc")
    assert "dryRun" not in fake.sent[1][1]


def test_the_service_proxy_path_and_its_answer_whatever_the_status():
    fake = FakeApiClient(FakeResponse(401, b"Unauthorized"))
    answer = ClusterApi(fake).proxy("POST", "ns", "tgi", 3333, "/v1/models", {"a": 1}, 60)
    assert (answer.status, answer.data, answer.ok) == (401, b"Unauthorized", False)
    assert sent_paths(fake) == [("POST", "/api/v1/namespaces/ns/services/tgi:3333/proxy/v1/models")]
    assert fake.sent[0][3:] == ({"a": 1}, 60)


# --- one error type, one wording ----------------------------------------------------------------


def test_lease_calls_and_an_error_is_the_layers_api_error():
    fake = FakeApiClient(FakeResponse(409, {"message": "conflict"}))
    with pytest.raises(ApiError) as error:
        ClusterApi(fake).create(resource_path("coordination.k8s.io/v1", "leases", "ns"), {})
    assert (error.value.status, error.value.said, str(error.value)) == (409, "conflict", "conflict")
    assert not error.value.lasting
    assert sent_paths(fake) == [("POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases")]


def test_a_refusal_says_what_the_server_refused_and_a_missing_object_may_be_none():
    refused = FakeResponse(422, {"message": 'Service "tgi" is invalid: spec.ports: Required'})
    with pytest.raises(ApiError, match=r"is invalid: spec\.ports") as failed:
        ClusterApi(FakeApiClient(refused)).apply("/x", SERVICE, "haw.icc", False)
    assert failed.value.status == 422
    missing = FakeApiClient(FakeResponse(404, {"message": "not found"}))
    assert ClusterApi(missing).get("/x", missing_ok=True) is None
    with pytest.raises(ApiError) as gone:
        ClusterApi(missing).get("/x")
    assert gone.value.lasting and str(gone.value) == "not found"


def test_a_server_error_says_to_run_again_once_the_cluster_is_healthy():
    unavailable = FakeResponse(500, {"message": "rpc error: code = Unavailable"})
    with pytest.raises(ApiError) as failed:
        ClusterApi(FakeApiClient(unavailable)).get("/x")
    assert str(failed.value) == (
        "the API server at https://127.0.0.1:6443 answered 500: rpc error: code = Unavailable. "
        "Run the playbook again once the cluster is healthy: what was applied stays, the re-run "
        "does the rest."
    )
    assert failed.value.said == "rpc error: code = Unavailable"


def pool_errors():
    """What the kubernetes client raises when the API server went away, as urllib3 builds it."""
    from http.client import RemoteDisconnected
    from ssl import SSLEOFError

    from urllib3.connection import HTTPSConnection
    from urllib3.connectionpool import HTTPSConnectionPool
    from urllib3.exceptions import (
        MaxRetryError,
        NewConnectionError,
        ProtocolError,
        ReadTimeoutError,
        SSLError,
    )

    pool = HTTPSConnectionPool("127.0.0.1", 6443)
    refused = NewConnectionError(
        HTTPSConnection("127.0.0.1", 6443),
        "Failed to establish a new connection: [Errno 111] Connection refused",
    )
    return {
        "refused": MaxRetryError(pool, "/apis/apps/v1", refused),
        "bare refused": refused,
        "read timeout": ReadTimeoutError(pool, "/api/v1", "Read timed out. (read timeout=30)"),
        "aborted": ProtocolError(
            "Connection aborted.", ConnectionResetError(104, "Connection reset by peer")
        ),
        # What the same API server going away looked like to another request of one run.
        "tls eof": MaxRetryError(
            pool,
            "/apis/coordination.k8s.io/v1",
            SSLError(
                SSLEOFError(
                    8, "[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol"
                )
            ),
        ),
        "remote disconnected": ProtocolError(
            "Connection aborted.",
            RemoteDisconnected("Remote end closed connection without response"),
        ),
    }


@pytest.mark.parametrize(
    ("case", "reason", "server"),
    [
        ("refused", "Connection refused", "https://127.0.0.1:6443"),
        ("bare refused", "Connection refused", "https://127.0.0.1:6443"),
        ("read timeout", "Read timed out. (read timeout=30)", "https://127.0.0.1:6443"),
        ("aborted", "the server closed the connection", None),
        ("tls eof", "the server closed the connection", "https://127.0.0.1:6443"),
        ("remote disconnected", "the server closed the connection", None),
    ],
)
def test_a_connection_error_is_said_in_words_with_the_address(case, reason, server):
    error = pool_errors()[case]
    assert cluster_errors.connection_reason(error) == reason
    assert cluster_errors.error_server(error) == server
    unreachable = api_error(error, "https://fallback:1")
    assert isinstance(unreachable, NoAnswer) and unreachable.status is None
    assert unreachable.said == reason
    assert str(unreachable) == (
        f"cannot reach the cluster at {server or 'https://fallback:1'} ({reason}). "
        + cluster_errors.RERUN_HINT
    )


def test_an_unreachable_server_is_one_line_without_the_connection_repr():
    with pytest.raises(NoAnswer) as failed:
        ClusterApi(FakeApiClient(pool_errors()["refused"])).get("/x")
    message = str(failed.value)
    assert message.startswith("cannot reach the cluster at https://127.0.0.1:6443 (Connection")
    assert "Run the playbook again once it answers" in message
    assert "object at 0x" not in message and "MaxRetryError" not in message
    assert "\n" not in message


def test_an_answer_is_worded_by_the_servers_message_else_status_and_reason():
    error = ApiException(status=500, reason="Internal Server Error")
    error.body = '{"message": "etcdserver: request timed out"}'
    assert api_error(error, SERVER).said == "etcdserver: request timed out"
    assert api_error(ApiException(status=503, reason="Unavailable")).said == "503 Unavailable"
    # A body that is not a Status is the answer itself (a proxy's text, say).
    text = ApiException(status=502, reason="Bad Gateway")
    text.body = "no healthy upstream"
    assert api_error(text).said == "no healthy upstream"


def handshake(status: str, body: str) -> ApiException:
    """A refused WebSocket upgrade, as the kubernetes library's stream reports it."""
    return ApiException(
        status=0, reason=f"Handshake status {status} -+-+- {{'a': 'b'}} -+-+- {body}"
    )


@pytest.mark.parametrize(
    ("error", "status", "said"),
    [
        (
            handshake("404 Not Found", "404 page not found"),
            404,
            "Handshake status 404 Not Found: 404 page not found",
        ),
        (
            handshake(
                "500 Internal Server Error",
                '{"kind":"Status","message":"error dialing backend: connection refused"}',
            ),
            500,
            "error dialing backend: connection refused",
        ),
        (handshake("404 Not Found", ""), 404, "Handshake status 404 Not Found"),
        (OSError("Connection refused"), None, "Connection refused"),
        (ApiException(status=0, reason="[Errno 111] Connection refused"), None,
         "Connection refused"),
        (ApiException(status=403, reason="Forbidden"), 403, "403 Forbidden"),
    ],
)  # fmt: skip
def test_stream_errors_in_the_api_servers_words(error, status, said):
    worded = api_error(error, SERVER)
    assert (worded.status, worded.said) == (status, said)
    assert isinstance(worded, NoAnswer) == (status is None)


def test_a_forbidden_exec_quotes_the_status():
    error = ApiException(status=403, reason="Forbidden")
    error.body = (
        '{"message": "pods \\"tgi-1\\" is forbidden: cannot create resource \\"pods/exec\\""}'
    )
    worded = api_error(error)
    assert worded.said == 'pods "tgi-1" is forbidden: cannot create resource "pods/exec"'
    assert worded.lasting


# --- the streams --------------------------------------------------------------------------------


class FakeStream:
    """kubernetes.stream's WSClient after the command ended."""

    def __init__(self, stdout, stderr, status):
        self.channels = {1: stdout, 2: stderr, 3: status}
        self.closed = False

    def run_forever(self, timeout):
        self.timeout = timeout

    def read_stdout(self):
        return self.channels[1]

    def read_stderr(self):
        return self.channels[2]

    def read_channel(self, channel):
        return self.channels[channel]

    def close(self):
        self.closed = True


def test_exec_opens_the_websocket_with_the_command_and_reads_its_status(monkeypatch):
    from kubernetes.stream import ws_client

    opened = []
    stream = FakeStream("GPU 0\n", "", '{"metadata":{},"status":"Success"}')

    def websocket_call(configuration, method, url, headers, _preload_content):
        opened.append((method, url, headers["authorization"], _preload_content))
        return stream

    monkeypatch.setattr(ws_client, "websocket_call", websocket_call)
    done = ClusterApi(FakeApiClient()).exec("ns", "tgi-1", ["nvidia-smi", "-L"], "tgi", 30)
    assert (done.stdout, done.code, done.failure) == ("GPU 0\n", 0, None)
    assert opened == [
        (
            "GET",
            f"{SERVER}/api/v1/namespaces/ns/pods/tgi-1/exec?command=nvidia-smi&command=-L"
            "&container=tgi&stdin=false&stdout=true&stderr=true&tty=false",
            "Bearer t",
            False,
        )
    ]
    assert stream.timeout == 30 and stream.closed


def test_a_refused_port_forward_is_an_api_error(monkeypatch):
    from kubernetes.stream import ws_client

    def portforward_call(configuration, method, url, headers):
        assert url == f"{SERVER}/api/v1/namespaces/ns/pods/tgi-1/portforward?ports=80"
        raise ApiException(
            status=0,
            reason="Handshake status 403 Forbidden -+-+- {} -+-+- "
            '{"kind":"Status","message":"pods \\"tgi-1\\" is forbidden"}',
        )

    monkeypatch.setattr(ws_client, "portforward_call", portforward_call)
    with pytest.raises(ApiError) as refused:
        ClusterApi(FakeApiClient()).port_forward("ns", "tgi-1", 80)
    assert (refused.value.status, refused.value.said) == (403, 'pods "tgi-1" is forbidden')


@pytest.mark.parametrize(
    ("status", "failure", "code"),
    [
        ("", None, -1),
        ('{"metadata":{},"status":"Success"}', None, 0),
        (
            '{"status":"Failure","message":"command terminated with non-zero exit code: 9",'
            '"reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"9"}]}}',
            "command terminated with non-zero exit code: 9",
            9,
        ),
        (
            '{"status":"Failure","message":"exec: \\"nvidia-smi\\": executable file not found"}',
            'exec: "nvidia-smi": executable file not found',
            -1,
        ),
        ("not json", "not json", -1),
    ],
)  # fmt: skip
def test_exec_status_channel(status, failure, code):
    done = ExecResult("", "", status)
    assert (done.failure, done.code) == (failure, code)


# --- the clock ----------------------------------------------------------------------------------


def test_the_api_servers_clock_is_read_from_every_answer_refusals_included():
    api = ClusterApi(FakeApiClient(FakeResponse(409, {"message": "conflict"})))
    assert abs(api.now() - datetime.now(timezone.utc)) < timedelta(seconds=5)  # noqa: UP017
    with pytest.raises(ApiError):
        api.get("/x")
    # The fake server's Date: Sun, 29 Nov 2026 12:00:00 GMT.
    server_time = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)  # noqa: UP017
    assert abs(api.now() - server_time) < timedelta(seconds=5)
    api.client.answer = FakeResponse(200, {}, date=None)  # an answer without Date changes nothing
    api.get("/x")
    assert abs(api.now() - server_time) < timedelta(seconds=5)

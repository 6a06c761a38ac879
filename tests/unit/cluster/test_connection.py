"""Where the credentials come from, said truthfully, and readable reasons when they do not work.

`credentials` must agree with kubernetes.core's own order (the integration tests connect for
real through it); here the table of cases and the messages.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster import connection as cluster_access
from ansible_collections.haw.icc.plugins.module_utils.cluster.connection import (
    ConnectionProblem,
    api_client,
    credentials,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.errors import ApiError

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts:
  - {name: student, context: {cluster: c, user: u}}
  - {name: lecturer, context: {cluster: c, user: u}}
current-context: student
"""


@pytest.fixture(autouse=True)
def not_in_a_pod(monkeypatch, tmp_path):
    monkeypatch.setattr(
        cluster_access.incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "no-token")
    )


@pytest.mark.parametrize(
    ("params", "environ", "described"),
    [
        ({}, {}, "the default kubeconfig ~/.kube/config"),
        ({}, {"KUBECONFIG": "/k/a:/k/b"}, "KUBECONFIG /k/a:/k/b"),
        (
            {"kubeconfig": "/inv/icc.yaml"},
            {"KUBECONFIG": "/k/a"},
            "icc_kubeconfig /inv/icc.yaml (KUBECONFIG is set but icc_kubeconfig wins)",
        ),
        (
            {},
            {"K8S_AUTH_KUBECONFIG": "/env/k", "KUBECONFIG": "/k/a"},
            "K8S_AUTH_KUBECONFIG /env/k (KUBECONFIG is set but K8S_AUTH_KUBECONFIG wins)",
        ),
        (
            {"kubeconfig": "/inv/icc.yaml"},
            {"K8S_AUTH_KUBECONFIG": "/env/k"},
            "icc_kubeconfig /inv/icc.yaml",
        ),
        ({"context": "lecturer"}, {}, "the default kubeconfig ~/.kube/config, context lecturer"),
        (
            {"kubeconfig": "/inv/icc.yaml"},
            {"K8S_AUTH_HOST": "https://api:6443", "K8S_AUTH_API_KEY": "t", "KUBECONFIG": "/k"},
            "K8S_AUTH_HOST and K8S_AUTH_API_KEY (icc_kubeconfig is set but ignored while they "
            "are; KUBECONFIG is set but ignored while they are)",
        ),
        (
            {"host": "https://api:6443", "username": "u", "password": "p"},
            {},
            "the host and username and password options",
        ),
        # A host alone is not enough for kubernetes.core: the kubeconfig is read, host laid over.
        ({}, {"K8S_AUTH_HOST": "https://api:6443"}, "the default kubeconfig ~/.kube/config"),
    ],
)
def test_the_credentials_in_use_and_those_ignored(params, environ, described):
    assert credentials(params, environ).describe() == described


def test_inside_a_pod_the_service_account_wins_over_kubeconfig(monkeypatch, tmp_path):
    token = tmp_path / "token"
    token.write_text("t")
    monkeypatch.setattr(cluster_access.incluster_config, "SERVICE_TOKEN_FILENAME", str(token))
    environ = {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    assert credentials({}, environ).describe() == "the pod's service account (in-cluster)"
    with_kubeconfig = credentials({}, {**environ, "KUBECONFIG": "/k"}).describe()
    assert with_kubeconfig.endswith("(KUBECONFIG is set but the pod's service account wins)")
    # An explicit kubeconfig or context still wins over the pod, as in kubernetes.core.
    assert credentials({"kubeconfig": "/k/x"}, environ).source == "icc_kubeconfig /k/x"


def problem(monkeypatch, params, environ=None) -> str:
    monkeypatch.setattr(cluster_access.os, "environ", environ or {})
    with pytest.raises(ConnectionProblem) as raised:
        api_client(auth=params)
    return str(raised.value)


def test_a_missing_kubeconfig_says_which_and_how_to_get_one(monkeypatch, tmp_path):
    missing = tmp_path / "icc.yaml"
    message = problem(monkeypatch, {"kubeconfig": str(missing)}, {"KUBECONFIG": "/k/a"})
    assert message.startswith(
        f"no kubeconfig: icc_kubeconfig {missing} (KUBECONFIG is set but icc_kubeconfig wins) "
        "does not exist."
    )
    assert "download your kubeconfig from the ICC login page" in message


def test_a_broken_kubeconfig_names_the_file_and_line(monkeypatch, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("apiVersion: v1\nclusters: [\n")
    message = problem(monkeypatch, {"kubeconfig": str(broken)})
    assert message.startswith(f"the kubeconfig {broken} cannot be read (line 3): ")
    assert "Traceback" not in message


def test_an_unknown_context_lists_the_existing_ones(monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.write_text(KUBECONFIG)
    message = problem(monkeypatch, {"kubeconfig": str(config), "context": "nope"})
    assert (
        message == f"the context 'nope' is not in the kubeconfig {config}; it has student, lecturer"
    )


def test_an_unreachable_cluster_names_address_and_credentials(monkeypatch, tmp_path):
    config = tmp_path / "config"
    config.write_text(KUBECONFIG)
    message = problem(monkeypatch, {"kubeconfig": str(config)})
    assert message.startswith(
        f"cannot reach the cluster at https://127.0.0.1:1 (icc_kubeconfig {config}): "
    )
    # One line, the cause in words, what to do; none of urllib3's connection objects.
    assert "\n" not in message
    assert "(icc_kubeconfig " in message and "): Connection refused. " in message
    assert "Run the playbook again once it answers" in message
    for internal in ("HTTPSConnection", "MaxRetryError", "object at 0x", "urllib3"):
        assert internal not in message


# --- the version probe, through the request layer ------------------------------------------------


class VersionAnswer:
    """kubernetes 37's ApiClient (param_serialize/call_api) answering GET /version."""

    def __init__(self, status, body):
        self.status, self.reason, self.data = status, "", json.dumps(body).encode()
        self.headers = {}
        self.configuration = SimpleNamespace(host="https://api.example:6443")
        self.asked = []

    def param_serialize(self, method, resource_path, query_params, header_params, auth_settings):
        return method, self.configuration.host + resource_path, header_params, None, []

    def call_api(self, method, url, header_params, body, _request_timeout):
        self.asked.append((method, url))
        return self

    def read(self):
        return self.data


def probe(monkeypatch, tmp_path, api):
    config = tmp_path / "config"
    config.write_text(KUBECONFIG)
    client = SimpleNamespace(client=SimpleNamespace(client=api))
    monkeypatch.setattr(cluster_access, "get_api_client", lambda **_: client)
    monkeypatch.setattr(cluster_access.os, "environ", {})
    return {"kubeconfig": str(config)}


def test_the_version_is_asked_through_the_request_layer(monkeypatch, tmp_path):
    api = VersionAnswer(200, {"gitVersion": "v1.20.2"})
    cluster, found = api_client(auth=probe(monkeypatch, tmp_path, api))
    assert api.asked == [("GET", "https://api.example:6443/version")]
    assert (found.server, found.version) == ("https://api.example:6443", "v1.20.2")
    assert cluster.client is api


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (401, "the cluster at https://api.example:6443 refused the credentials (icc_kubeconfig"),
        (500, "the cluster at https://api.example:6443 answered 500: etcd is away"),
    ],
)
def test_a_refusing_cluster_is_said_with_the_servers_words(monkeypatch, tmp_path, status, said):
    api = VersionAnswer(status, {"kind": "Status", "message": "etcd is away"})
    with pytest.raises(ConnectionProblem) as raised:
        api_client(auth=probe(monkeypatch, tmp_path, api))
    assert str(raised.value).startswith(said) and str(raised.value).endswith("etcd is away")


def test_a_kubernetes_library_without_param_serialize_is_named_too_old(monkeypatch, tmp_path):
    old = SimpleNamespace(configuration=SimpleNamespace(host="https://api.example:6443"))
    with pytest.raises(ConnectionProblem, match=r"too old for haw\.icc: it needs 37 or newer"):
        api_client(auth=probe(monkeypatch, tmp_path, old))


# --- without the probe: the first request stands for it ------------------------------------------


class Unreachable(VersionAnswer):
    """An ApiClient whose connections are refused, as urllib3 says it."""

    def call_api(self, method, url, header_params, body, _request_timeout):
        from urllib3.connection import HTTPSConnection
        from urllib3.connectionpool import HTTPSConnectionPool
        from urllib3.exceptions import MaxRetryError, NewConnectionError

        self.asked.append((method, url))
        refused = NewConnectionError(
            HTTPSConnection("api.example", 6443), "Failed to establish a new connection: refused"
        )
        raise MaxRetryError(HTTPSConnectionPool("api.example", 6443), url, refused)


def test_without_the_probe_nothing_is_asked_until_the_first_request(monkeypatch, tmp_path):
    api = VersionAnswer(200, {"kind": "Pod"})
    cluster, found = api_client(auth=probe(monkeypatch, tmp_path, api), probe=False)
    assert api.asked == [] and found.version is None
    assert cluster.get("/api/v1/namespaces/ns/pods/p") == {"kind": "Pod"}
    assert api.asked == [("GET", "https://api.example:6443/api/v1/namespaces/ns/pods/p")]


def test_an_unreachable_cluster_fails_the_first_request_as_the_probe_would(monkeypatch, tmp_path):
    auth = probe(monkeypatch, tmp_path, Unreachable(200, {}))
    with pytest.raises(ConnectionProblem) as probed:
        api_client(auth=auth)
    cluster, _found = api_client(auth=auth, probe=False)
    with pytest.raises(ConnectionProblem) as first:
        cluster.get("/api/v1/namespaces/ns/pods/p")
    assert str(first.value) == str(probed.value)
    assert str(first.value).startswith("cannot reach the cluster at https://api.example:6443")


def test_credentials_refused_at_the_first_request_are_said_as_such(monkeypatch, tmp_path):
    api = VersionAnswer(401, {"kind": "Status", "message": "Unauthorized"})
    cluster, _found = api_client(auth=probe(monkeypatch, tmp_path, api), probe=False)
    with pytest.raises(ConnectionProblem, match=r"refused the credentials \(icc_kubeconfig"):
        cluster.get("/api/v1/namespaces/ns/pods/p")


def test_after_a_first_answer_errors_are_the_request_layers_own(monkeypatch, tmp_path):
    # A 403 is the Role's answer to one request (handled where it is made), never a reason to
    # call the connection broken; nor is a later refusal.
    api = VersionAnswer(403, {"kind": "Status", "message": "nodes is forbidden"})
    cluster, _found = api_client(auth=probe(monkeypatch, tmp_path, api), probe=False)
    with pytest.raises(ApiError) as forbidden:
        cluster.get("/api/v1/nodes")
    assert forbidden.value.status == 403 and not isinstance(forbidden.value, ConnectionProblem)
    api.status = 401
    with pytest.raises(ApiError) as later:
        cluster.get("/api/v1/nodes")
    assert later.value.status == 401

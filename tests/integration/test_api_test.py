"""test.yml, the API smoke test, against a deployment in the sandbox, with the student's rights.

By default test.yml reaches TGI and Open WebUI through port-forwards the Kubernetes client opens
itself: the API server hands them to the node's kubelet, which the sandbox simulates
(icc_sandbox.portforward_stream), and each Ready TGI pod is served by the TGI stand-in (which
checks the API key like TGI does). The GPU test execs nvidia-smi and env in the TGI pod, also
through the kubelet. The sandbox has no Ingress controller: for icc_test_tgi_url as a URL the
tests open a local port-forward of their own, as `kubectl port-forward` gives a user.
"""

from __future__ import annotations

import base64
import re
import secrets
import select
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from kubernetes.stream import portforward
from views import FAST, FIRST_MODEL, SMALLER_MODEL
from waiting import wait_until

from playbooks import run_playbook, write_inventory

PROXY_SKIP = (
    "not testable through the API server's proxy (it removes the Authorization header): "
    "use icc_test_tgi_url=port-forward (the default), ingress or a URL"
)
CHAT_LINE = re.compile(
    r"200 in \d+\.\d\ds: (\d+) tokens, ([\d.]+) tokens/s \(key from Secret tgi-api-key\)"
)


def check_line(output: str, state: str, name: str) -> str:
    """The report's line of check `name` in state ok/skip/FAIL (the rest of the line)."""
    match = re.search(rf"^\s+{state}\s+{re.escape(name)}\s+(.*)$", output, re.MULTILINE)
    assert match, f"no {state!r} line for {name!r} in:\n{output[-4000:]}"
    return match.group(1)


def ready_pod(core: client.CoreV1Api, namespace: str, name: str) -> str:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/name={name}")
    ready = [
        pod
        for pod in pods.items
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    ]
    assert len(ready) == 1, [pod.metadata.name for pod in pods.items]
    return ready[0].metadata.name


@contextmanager
def local_forward(core: client.CoreV1Api, namespace: str, pod: str, port: int) -> Iterator[str]:
    """http://127.0.0.1:<free port>, each connection relayed through a port-forward to the pod's
    port: what `kubectl port-forward` gives a user, opened with the Kubernetes client."""
    server = socket.create_server(("127.0.0.1", 0))

    def relay(local: socket.socket) -> None:
        forward = portforward(
            core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port)
        )
        remote = forward.socket(port)
        try:
            while True:
                readable, _, _ = select.select([local, remote], [], [], 60)
                if not readable:
                    return
                for source in readable:
                    data = source.recv(65536)
                    if not data:
                        return
                    (remote if source is local else local).sendall(data)
        finally:
            local.close()
            forward.close()

    def accept() -> None:
        while True:
            try:
                local, _ = server.accept()
            except OSError:  # closed
                return
            threading.Thread(target=relay, args=(local,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        server.close()


@pytest.fixture(scope="module")
def deployed(sandbox, core, tmp_path_factory) -> Iterator[tuple[str, object]]:
    """One namespace with TGI and Open WebUI deployed by deploy.yml, shared by these tests."""
    namespace = f"t-api-test-{secrets.token_hex(3)}"
    sandbox.create_namespace(namespace)
    sandbox.wait_until_usable(namespace)
    inventory = write_inventory(
        tmp_path_factory.mktemp("api"), [namespace], sandbox.student_kubeconfig, **FAST
    )
    try:
        run = run_playbook("deploy.yml", inventory)
        assert run.rc == 0, run.output[-4000:]
        yield namespace, inventory
    finally:
        core.delete_namespace(namespace)


@pytest.fixture(scope="module")
def direct(deployed, core) -> Iterator[dict[str, str]]:
    """Direct URLs of TGI and Open WebUI: local port-forwards of the test's own."""
    namespace, _ = deployed
    tgi, webui = ready_pod(core, namespace, "tgi"), ready_pod(core, namespace, "open-webui")
    with (
        local_forward(core, namespace, tgi, 80) as tgi_url,
        local_forward(core, namespace, webui, 8080) as webui_url,
    ):
        yield {"icc_test_tgi_url": tgi_url, "icc_test_open_webui_url": webui_url}


def forward_requests(sandbox, namespace: str, since_line: int) -> list[tuple[str, str, int]]:
    """(verb, pod, status code) of the student's port-forwards into `namespace` since the mark."""
    return [
        (entry["verb"], entry["objectRef"]["name"], entry["responseStatus"]["code"])
        for entry in sandbox.student_requests(namespace, since_line)
        if entry["objectRef"].get("subresource") == "portforward"
    ]


@pytest.mark.sandbox
def test_by_default_every_check_runs_through_a_port_forward_with_the_key(deployed, core, sandbox):
    """No variable: TGI is asked with the key, through port-forwards the client opens itself,
    under the student's Role (the collection's), and nothing is refused."""
    namespace, inventory = deployed
    mark = sandbox.audit_lines()
    run = run_playbook("test.yml", inventory)
    assert run.rc == 0, run.output[-4000:]
    pod = ready_pod(core, namespace, "tgi")
    assert f"API test of {namespace} through a port-forward to pod {pod} (port 80)" in run.output
    tokens, rate = CHAT_LINE.match(check_line(run.output, "ok", "chat with the key")).groups()
    assert int(tokens) > 0 and float(rate) > 0
    assert check_line(run.output, "ok", "no key refused") == "401 without an API key"
    assert check_line(run.output, "ok", "wrong key refused") == "401 with a wrong key"
    assert f"serves {FIRST_MODEL} (TGI" in check_line(run.output, "ok", "tgi info")
    assert check_line(run.output, "ok", "open-webui health").startswith("200")
    summary = f"API test of {namespace} through a port-forward to pod {pod} (port 80): "
    assert f'"msg": "{summary}8 checks passed"' in run.output  # none skipped
    # One port-forward per request (six to TGI, one to Open WebUI): the Python client's
    # WebSocket is a GET, authorized as "get" on pods/portforward, and never refused.
    forwards = forward_requests(sandbox, namespace, mark)
    assert len(forwards) == 7, forwards
    assert {verb for verb, _, _ in forwards} == {"get"}
    assert [name for _, name, _ in forwards].count(pod) == 6
    assert all(code < 400 for _, _, code in forwards), forwards
    key = base64.b64decode(core.read_namespaced_secret("tgi-api-key", namespace).data["api-key"])
    assert key.decode() not in run.output


@pytest.mark.sandbox
def test_through_the_proxy_the_open_checks_pass_and_the_keyed_ones_are_skipped(deployed):
    namespace, inventory = deployed
    run = run_playbook("test.yml", inventory, extra_vars={"icc_test_tgi_url": "proxy"})
    assert run.rc == 0, run.output[-4000:]
    assert "through the API server's service proxy (services/tgi:3333)" in run.output
    assert check_line(run.output, "ok", "tgi health").startswith("200")
    assert f"serves {FIRST_MODEL} (TGI" in check_line(run.output, "ok", "tgi info")
    assert FIRST_MODEL in check_line(run.output, "ok", "tgi models")
    assert check_line(run.output, "skip", "chat with the key") == PROXY_SKIP
    assert check_line(run.output, "skip", "wrong key refused") == PROXY_SKIP
    # The header never reaches TGI through the proxy, so "without a key" is true there too.
    assert check_line(run.output, "ok", "no key refused") == "401 without an API key"
    assert check_line(run.output, "ok", "open-webui health").startswith("200")
    assert f"API test of {namespace} through the API server's service proxy" in run.output
    assert "6 checks passed, 2 skipped" in run.output


@pytest.mark.sandbox
def test_a_model_mismatch_fails_naming_both_models(deployed):
    _, inventory = deployed
    run = run_playbook("test.yml", inventory, extra_vars={"tgi_model_id": SMALLER_MODEL})
    assert run.rc != 0
    expected = f"TGI serves '{FIRST_MODEL}', but the inventory's tgi_model_id is '{SMALLER_MODEL}'"
    assert expected in check_line(run.output, "FAIL", "tgi info")
    assert "checks failed: tgi info: " + expected in run.output  # the task's message


@pytest.mark.sandbox
def test_direct_url_runs_every_check_with_the_key_from_the_secret(deployed, direct, core):
    namespace, inventory = deployed
    run = run_playbook("test.yml", inventory, "-vvv", extra_vars=direct)
    assert run.rc == 0, run.output[-4000:]
    assert f"through {direct['icc_test_tgi_url']} (direct)" in run.output
    chat = check_line(run.output, "ok", "chat with the key")
    assert CHAT_LINE.match(chat), chat
    assert check_line(run.output, "ok", "no key refused") == "401 without an API key"
    assert check_line(run.output, "ok", "wrong key refused") == "401 with a wrong key"
    assert check_line(run.output, "ok", "open-webui health").startswith("200")
    # nvidia-smi and env run in the TGI pod through exec: the API server, the node's kubelet.
    gpu = check_line(run.output, "ok", "gpu")
    assert re.match(r"1 x GPU: Tesla V100-PCIE-16GB 16384 MiB; driver 550\.\d+\.\d+; ", gpu), gpu
    assert "CUDA_VERSION=12.4" in gpu and "NVIDIA_VISIBLE_DEVICES=GPU-" in gpu, gpu
    key = base64.b64decode(core.read_namespaced_secret("tgi-api-key", namespace).data["api-key"])
    assert key.decode() not in run.output


@pytest.mark.sandbox
def test_a_wrong_key_fails_the_keyed_check(deployed):
    _, inventory = deployed
    wrong = "not-the-key-" + secrets.token_hex(8)
    run = run_playbook("test.yml", inventory, extra_vars={"tgi_api_key": wrong})
    assert run.rc != 0
    assert check_line(run.output, "FAIL", "chat with the key") == (
        "TGI refused the API key from tgi_api_key (401): it is not the key TGI was started with"
    )
    assert "1 of 8 checks failed: chat with the key" in run.output
    assert wrong not in run.output


@pytest.mark.sandbox
def test_direct_url_with_a_model_mismatch_fails(deployed, direct):
    _, inventory = deployed
    run = run_playbook("test.yml", inventory, extra_vars={**direct, "tgi_model_id": SMALLER_MODEL})
    assert run.rc != 0
    assert f"the inventory's tgi_model_id is '{SMALLER_MODEL}'" in check_line(
        run.output, "FAIL", "tgi info"
    )
    assert f"not the inventory's '{SMALLER_MODEL}'" in check_line(run.output, "FAIL", "tgi models")


@pytest.mark.sandbox
def test_bad_settings_are_refused_one_line_each_before_any_request(deployed):
    _, inventory = deployed
    run = run_playbook(
        "test.yml",
        inventory,
        extra_vars={
            "icc_test_tgi_url": "ftp://example.invalid",
            "icc_test_open_webui_url": "ingress",
            "icc_test_max_tokens": "many",
            "icc_test_gpu": "perhaps",
        },
    )
    port = run_playbook("test.yml", inventory, extra_vars={"icc_test_tgi_url": "http://h:99999"})
    assert "- icc_test_tgi_url: 'http://h:99999' is not allowed" in port.output
    assert run.rc != 0
    for line in (
        "- icc_test_tgi_url: 'ftp://example.invalid' is not allowed: port-forward, proxy, ingress "
        "or an http(s):// base URL (a host, optionally a port and a path; no query)",
        "- icc_test_open_webui_url=ingress needs open_webui_ingress_enabled: true and "
        "open_webui_ingress_host",
        "- icc_test_max_tokens: 'many' is not an integer",
        "- icc_test_gpu: 'perhaps' is not true or false (yes/no, on/off and 1/0 work too)",
    ):
        assert line in run.output, run.output[-3000:]
    assert "Run the API test" not in run.output


# What a user without exec may do in the namespace: read and proxy, but not pods/exec.
NO_EXEC_RULES = [
    {
        "apiGroups": [""],
        "resources": ["pods", "pods/log", "services", "endpoints", "secrets", "configmaps"],
        "verbs": ["get", "list", "watch"],
    },
    {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get", "create"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments", "replicasets", "statefulsets"],
        "verbs": ["get", "list", "watch"],
    },
]


def kubeconfig_without_exec(core, sandbox, namespace: str, directory: Path) -> Path:
    """A kubeconfig of a service account whose Role grants no pods/exec."""
    rbac = client.RbacAuthorizationV1Api(core.api_client)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "no-exec"}})
    rbac.create_namespaced_role(
        namespace, {"metadata": {"name": "no-exec"}, "rules": NO_EXEC_RULES}
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "no-exec"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "no-exec"},
            "subjects": [{"kind": "ServiceAccount", "name": "no-exec", "namespace": namespace}],
        },
    )

    def token() -> str | None:
        account = core.read_namespaced_service_account("no-exec", namespace)
        for ref in account.secrets or []:
            data = core.read_namespaced_secret(ref.name, namespace).data or {}
            if data.get("token"):
                return base64.b64decode(data["token"]).decode()
        return None

    value = wait_until(token, 30, "the service account's token")
    config = yaml.safe_load(sandbox.student_kubeconfig.read_text())
    config["users"][0]["user"] = {"token": value}
    path = directory / "no-exec.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.sandbox
def test_without_rights_to_exec_the_gpu_test_is_skipped_saying_why(
    deployed, direct, core, sandbox, tmp_path
):
    namespace, _ = deployed
    kubeconfig = kubeconfig_without_exec(core, sandbox, namespace, tmp_path)
    inventory = write_inventory(tmp_path, [namespace], kubeconfig, **FAST)
    run = run_playbook("test.yml", inventory, extra_vars=direct)
    assert run.rc == 0, run.output[-4000:]
    assert check_line(run.output, "skip", "gpu") == (
        "you may not exec into pods in this namespace (RBAC: create on pods/exec)"
    )
    assert check_line(run.output, "ok", "chat with the key").startswith("200")


@pytest.mark.sandbox
def test_without_the_right_to_port_forward_one_line_names_it_and_the_proxy_still_works(
    deployed, core, admin_client, student_client, sandbox
):
    """The student's Role without pods/portforward (as on a cluster that grants less): the API
    server refuses the forward (403 in its audit log), test.yml fails with one line naming the
    right and the fallback, and the fallback works."""
    namespace, inventory = deployed
    rbac = client.RbacAuthorizationV1Api(admin_client)
    rules = client.ApiClient().sanitize_for_serialization(
        rbac.read_namespaced_role("haw-icc-deployer", namespace).rules
    )
    kept = [rule for rule in rules if "pods/portforward" not in rule["resources"]]
    assert len(kept) == len(rules) - 1
    review = client.V1SelfSubjectAccessReview(
        spec=client.V1SelfSubjectAccessReviewSpec(
            resource_attributes=client.V1ResourceAttributes(
                namespace=namespace, verb="get", resource="pods", subresource="portforward"
            )
        )
    )
    authz = client.AuthorizationV1Api(student_client)

    def may_forward() -> bool:
        return authz.create_self_subject_access_review(review).status.allowed

    assert may_forward()
    rbac.patch_namespaced_role("haw-icc-deployer", namespace, {"rules": kept})
    try:
        wait_until(lambda: not may_forward(), 10, "the right to be gone")
        mark = sandbox.audit_lines()
        run = run_playbook("test.yml", inventory)
        assert run.rc != 0
        pod = ready_pod(core, namespace, "tgi")
        line = check_line(run.output, "FAIL", "tgi port-forward")
        assert line.startswith(f'the port-forward to pod {pod} is forbidden: pods "{pod}" is ')
        assert 'cannot get resource "pods/portforward"' in line
        assert line.endswith(
            "It needs get and create on pods/portforward in the namespace (RBAC; "
            "rbac/haw-icc-deployer.yml grants it): ask for it, or test through the API server's "
            "service proxy with -e icc_test_tgi_url=proxy (no key reaches TGI there: the keyed "
            "checks are skipped)"
        )
        assert check_line(run.output, "skip", "chat with the key") == "TGI not reached"
        assert "is forbidden" in check_line(run.output, "FAIL", "open-webui health")
        assert ("get", pod, 403) in forward_requests(sandbox, namespace, mark)

        fallback = run_playbook(
            "test.yml",
            inventory,
            extra_vars={"icc_test_tgi_url": "proxy", "icc_test_open_webui_url": "proxy"},
        )
        assert fallback.rc == 0, fallback.output[-4000:]
        assert check_line(fallback.output, "skip", "chat with the key") == PROXY_SKIP
        assert "6 checks passed, 2 skipped" in fallback.output
    finally:
        rbac.patch_namespaced_role("haw-icc-deployer", namespace, {"rules": rules})
        wait_until(may_forward, 10, "the right to be back")

"""test.yml, the API smoke test, against a deployment in the sandbox, with the student's rights.

The GPU test execs nvidia-smi and env in the TGI pod: the sandbox's kubelets serve exec. The
sandbox has no Ingress controller and no kubelet port-forward. Its pods' IPs are reachable
from this machine, and each Ready TGI pod is served by the TGI stand-in (which checks the API
key like TGI does), so `http://<pod IP>:<container port>` stands in for the port-forward or
Ingress URL a user would give in icc_test_tgi_url.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client
from views import FAST, FIRST_MODEL, SMALLER_MODEL, tgi_url
from waiting import wait_until

from playbooks import run_playbook, write_inventory

PROXY_SKIP = (
    "not testable through the API server's proxy (it removes the Authorization header): "
    "set icc_test_tgi_url to an Ingress URL or a port-forward"
)


def check_line(output: str, state: str, name: str) -> str:
    """The report's line of check `name` in state ok/skip/FAIL (the rest of the line)."""
    match = re.search(rf"^\s+{state}\s+{re.escape(name)}\s+(.*)$", output, re.MULTILINE)
    assert match, f"no {state!r} line for {name!r} in:\n{output[-4000:]}"
    return match.group(1)


def pod_url(core: client.CoreV1Api, namespace: str, name: str, port: int) -> str:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app.kubernetes.io/name={name}")
    ready = [
        pod
        for pod in pods.items
        if any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    ]
    assert len(ready) == 1, [pod.metadata.name for pod in pods.items]
    return f"http://{ready[0].status.pod_ip}:{port}"


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
def direct(deployed, core) -> dict[str, str]:
    """The direct URLs (stand-ins for a port-forward) of TGI and Open WebUI."""
    namespace, _ = deployed
    return {
        "icc_test_tgi_url": tgi_url(core, namespace, ""),
        "icc_test_open_webui_url": pod_url(core, namespace, "open-webui", 8080),
    }


@pytest.mark.sandbox
def test_through_the_proxy_the_open_checks_pass_and_the_keyed_ones_are_skipped(deployed):
    namespace, inventory = deployed
    run = run_playbook("test.yml", inventory)
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
    chat = check_line(run.output, "ok", "chat with the key")
    assert re.match(
        r"200 in \d+\.\d\ds: \d+ tokens, [\d.]+ tokens/s \(key from Secret tgi-api-key\)", chat
    ), chat
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
def test_direct_url_with_a_wrong_key_fails_the_keyed_check(deployed, direct):
    _, inventory = deployed
    wrong = "not-the-key-" + secrets.token_hex(8)
    run = run_playbook("test.yml", inventory, extra_vars={**direct, "tgi_api_key": wrong})
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
        "- icc_test_tgi_url: 'ftp://example.invalid' is not allowed: proxy, ingress or an "
        "http(s):// base URL (a host, optionally a port and a path; no query)",
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

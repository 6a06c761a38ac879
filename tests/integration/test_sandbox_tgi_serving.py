"""A Ready TGI pod in the sandbox answers TGI's API at its pod IP, as a real one would.

The node agent runs a TGI stand-in on podIP:80 while the pod is Ready, so tests can ask the pod
which model it serves (e.g. after a model switch).
"""

from __future__ import annotations

import pytest
from kubernetes import client
from views import fetch_in_sandbox
from waiting import wait_until

TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.0"
MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
API_KEY = "sandbox-Key-123"


def tgi_pod(name: str) -> dict:
    container = {
        "name": "tgi",
        "image": TGI_IMAGE,
        "args": ["--model-id", MODEL, "--max-input-tokens", "1024", "--max-total-tokens", "2048"],
        "env": [
            {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "tgi", "key": "api-key"}}}
        ],
        "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
        "resources": {"limits": {"nvidia.com/gpu": "1"}, "requests": {"nvidia.com/gpu": "1"}},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {"sandbox.haw.icc/ready-after-seconds": "1"}},
        "spec": {
            "containers": [container],
            "tolerations": [
                {"key": "gpu-tesla-v100", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
    }


def pod_is_ready(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    pod = core.read_namespaced_pod(name, namespace)
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def pod_is_gone(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return True
        raise
    return False


@pytest.mark.sandbox
def test_a_ready_tgi_pod_serves_its_model_at_its_ip_until_deleted(core, namespace):
    core.create_namespaced_secret(
        namespace, {"metadata": {"name": "tgi"}, "stringData": {"api-key": API_KEY}}
    )
    core.create_namespaced_pod(namespace, tgi_pod("tgi"))
    wait_until(lambda: pod_is_ready(core, namespace, "tgi"), 30, "TGI to become Ready")
    base = f"http://{core.read_namespaced_pod('tgi', namespace).status.pod_ip}:80"

    status, models = fetch_in_sandbox(f"{base}/v1/models")
    assert (status, [m["id"] for m in models["data"]]) == (200, [MODEL])
    info = fetch_in_sandbox(f"{base}/info")[1]
    assert (info["model_id"], info["max_input_tokens"], info["max_total_tokens"]) == (
        MODEL,
        1024,
        2048,
    )
    # The key from the pod's Secret guards generation, as TGI's API_KEY does.
    prompt = {"inputs": "Hello there", "parameters": {"max_new_tokens": 2}}
    assert fetch_in_sandbox(f"{base}/generate", prompt)[0] == 401
    assert fetch_in_sandbox(f"{base}/generate", prompt, key=API_KEY)[0] == 200

    core.delete_namespaced_pod("tgi", namespace)
    wait_until(lambda: pod_is_gone(core, namespace, "tgi"), 30, "the pod to be deleted")
    with pytest.raises(ConnectionRefusedError):
        fetch_in_sandbox(f"{base}/v1/models")

"""The student reads pod logs, execs into pods and port-forwards to them through the API server and
reaches pods through its service proxy, as operating playbooks do: all go through the sandbox's
simulated kubelets and pod network."""

from __future__ import annotations

import http.client
import json
import os
import re
import time

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations.nvidia_smi import (
    parse_gpu_csv,
    query_command,
)
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes.stream import portforward, stream
from views import V100, gpu_container, pod_manifest
from waiting import wait_until

TGI = "ghcr.io/huggingface/text-generation-inference:3.3.0"
WEBUI = "ghcr.io/open-webui/open-webui:v0.6.5"
READY_AFTER = "sandbox.haw.icc/ready-after-seconds"


def create_pod(core, namespace, name, container, annotations=None, labels=None):
    manifest = pod_manifest(name, container, tolerate=(V100,))
    manifest["metadata"] |= {"annotations": annotations or {}, "labels": labels or {"app": name}}
    core.create_namespaced_pod(namespace, manifest)


def logs(core, namespace, name, **options) -> str:
    return core.read_namespaced_pod_log(name, namespace, **options)


def terminated(core, namespace, name):
    status = core.read_namespaced_pod(name, namespace).status
    last = (status.container_statuses or [None])[0]
    return last is not None and last.last_state.terminated is not None


def ready(core, namespace, name) -> bool:
    conditions = core.read_namespaced_pod(name, namespace).status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def running(core, namespace, name) -> bool:
    statuses = core.read_namespaced_pod(name, namespace).status.container_statuses or [None]
    return statuses[0] is not None and statuses[0].state.running is not None


@pytest.fixture
def student(student_client) -> client.CoreV1Api:
    """What the student reads (logs, exec, the service proxy), under the collection's Role; the
    pods and Services the tests read are set up as admin (`core`): the Role creates no bare pod."""
    return client.CoreV1Api(student_client)


def test_tgi_logs_grow_while_the_weights_download(student, core, namespace):
    # 7B in bfloat16: 3 files of about 5 GB, each ~16 s of the 60 s before Ready.
    args = ["--model-id", "Qwen/Qwen2.5-7B-Instruct", "--num-shard", "1"]
    create_pod(core, namespace, "tgi", gpu_container("tgi", TGI, 1, args), {READY_AFTER: "60"})
    first = wait_until(
        lambda: logs(student, namespace, "tgi"), 20, "the first log lines of the TGI pod"
    )
    assert "text_generation_launcher: Args {" in first
    time.sleep(20)
    second = logs(student, namespace, "tgi")
    assert second.startswith(first)
    assert second.count("Download: [") > first.count("Download: [")
    assert "Downloaded /data/hub/models--Qwen--Qwen2.5-7B-Instruct/snapshots/" in second
    tail = logs(student, namespace, "tgi", tail_lines=1, timestamps=True)
    assert tail.count("\n") == 1 and tail.endswith(second.splitlines()[-1] + "\n")
    assert logs(student, namespace, "tgi", since_seconds=1) in second


def test_a_crash_loop_keeps_claps_error_in_the_previous_logs(student, core, namespace):
    args = ["--model-id", "Qwen/Qwen2.5-1.5B-Instruct", "--max-parallel-loading-workers", "2"]
    create_pod(core, namespace, "bad", gpu_container("tgi", TGI, 1, args))
    wait_until(lambda: terminated(student, namespace, "bad"), 30, "the first crash")
    previous = logs(student, namespace, "bad", previous=True)
    assert "error: unexpected argument '--max-parallel-loading-workers' found" in previous


def test_an_oom_killed_tgi_logs_cudas_out_of_memory(student, core, namespace):
    args = ["--model-id", "meta-llama/Llama-2-13b-chat-hf", "--num-shard", "1"]
    create_pod(core, namespace, "oom", gpu_container("tgi", TGI, 1, args), {READY_AFTER: "2"})
    wait_until(lambda: terminated(student, namespace, "oom"), 30, "the OOM kill")
    previous = logs(student, namespace, "oom", previous=True)
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate" in previous
    assert "Shard 0 failed to start" in previous


def test_the_service_proxy_reaches_tgi_and_open_webui(sandbox, student, core, namespace):
    if os.geteuid() != 0:
        pytest.skip("not root: the sandbox gives pods loopback IPs, which the proxy refuses")
    # As root the pod network must be there: its absence is a failure, not a reason to skip.
    assert sandbox.pod_network is not None
    tgi = gpu_container("tgi", TGI, 1, ["--model-id", "Qwen/Qwen2.5-1.5B-Instruct"])
    tgi["ports"] = [{"name": "http", "containerPort": 80}]
    create_pod(core, namespace, "tgi", tgi, {READY_AFTER: "1"})
    webui = {
        "name": "open-webui",
        "image": WEBUI,
        "ports": [{"name": "http", "containerPort": 8080}],
    }
    create_pod(core, namespace, "webui", webui)
    for name, port in (("tgi", 80), ("webui", 8080)):
        core.create_namespaced_service(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {
                    "selector": {"app": name},
                    "ports": [{"name": "http", "port": port, "targetPort": "http"}],
                },
            },
        )

    def proxied(service: str, path: str):
        response = student.connect_get_namespaced_service_proxy_with_path(
            f"{service}:http", namespace, path, _preload_content=False
        )
        body = response.data.decode()
        return json.loads(body) if body.startswith(("{", "[")) else body

    models = wait_until(lambda: proxied("tgi", "v1/models"), 30, "TGI through the proxy")
    assert models["data"][0]["id"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert proxied("tgi", "info")["model_id"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert "tgi_request_count" in proxied("tgi", "metrics")
    assert proxied("tgi", "health") == ""  # 200, empty; an error status would raise
    health = wait_until(lambda: proxied("webui", "health"), 30, "Open WebUI through the proxy")
    assert health == {"status": True}
    ip = student.read_namespaced_pod("tgi", namespace).status.pod_ip
    addresses = core.read_namespaced_endpoints("tgi", namespace).subsets[0].addresses
    assert [a.ip for a in addresses] == [ip] and not ip.startswith("127.")


def run_in_pod(core, namespace, name, command, container="tgi"):
    """(stdout, stderr, status channel as a dict) of an exec through the API server."""
    response = stream(
        core.connect_get_namespaced_pod_exec,
        name,
        namespace,
        command=command,
        container=container,
        stdout=True,
        stderr=True,
        stdin=False,
        tty=False,
        _preload_content=False,
    )
    response.run_forever(timeout=20)
    assert not response.is_open(), "the kubelet did not close the exec stream"
    out, err, status = response.read_stdout(), response.read_stderr(), response.read_channel(3)
    response.close()
    return out, err, json.loads(status)


def test_exec_runs_nvidia_smi_and_env_in_a_two_gpu_pod(student, core, namespace):
    """The student's exec goes through the API server to the node's kubelet (WebSocket, v4)."""
    args = ["--model-id", "Qwen/Qwen2.5-7B-Instruct", "--num-shard", "1"]
    create_pod(core, namespace, "tgi", gpu_container("tgi", TGI, 2, args), {READY_AFTER: "1"})
    wait_until(lambda: ready(student, namespace, "tgi"), 30, "the TGI pod to be Ready")
    out, err, status = run_in_pod(student, namespace, "tgi", query_command())
    assert status == {"metadata": {}, "status": "Success"} and err == ""
    gpus = parse_gpu_csv(out)
    assert [gpu["index"] for gpu in gpus] == [0, 1]
    for gpu in gpus:
        assert gpu["name"] == "Tesla V100-PCIE-16GB" and gpu["memory.total"] == 16384
        assert 0 < gpu["memory.used"] < 16384 and gpu["power.limit"] == 250
    env, _, _ = run_in_pod(student, namespace, "tgi", ["env"])
    uuids = ",".join(gpu["uuid"] for gpu in gpus)
    assert f"NVIDIA_VISIBLE_DEVICES={uuids}\n" in env and "HOSTNAME=tgi\n" in env

    bad_field = ["nvidia-smi", "--query-gpu=watts", "--format=csv"]
    out, _, status = run_in_pod(student, namespace, "tgi", bad_field)
    assert out == 'Field "watts" is not a valid field to query.\n\n'
    assert status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "2"}]
    _, _, status = run_in_pod(student, namespace, "tgi", ["bash"])
    assert status["reason"] == "InternalError"
    assert 'exec: "bash": executable file not found in $PATH' in status["message"]


def test_exec_into_a_crash_looping_container_is_refused_by_the_kubelet(student, core, namespace):
    args = ["--model-id", "Qwen/Qwen2.5-1.5B-Instruct", "--max-parallel-loading-workers", "2"]
    create_pod(core, namespace, "bad", gpu_container("tgi", TGI, 1, args))
    wait_until(lambda: terminated(student, namespace, "bad"), 30, "the first crash")
    wait_until(lambda: not running(student, namespace, "bad"), 30, "the back-off")
    with pytest.raises(ApiException) as error:
        run_in_pod(student, namespace, "bad", ["env"])
    # The kubelet's answer, relayed by the API server as the handshake's status and body.
    assert "Handshake status 500" in str(error.value)
    assert 'container not found ("tgi")' in str(error.value)


def forwarded_get(core, namespace, name, port, path) -> tuple[int, bytes, str | None]:
    """(status, body, the port's error) of one HTTP GET through the student's port-forward: the
    Python client's WebSocket through the API server to the node's kubelet."""
    forward = portforward(
        core.connect_get_namespaced_pod_portforward, name, namespace, ports=str(port)
    )
    connection = http.client.HTTPConnection("localhost", port, timeout=20)
    connection.sock = forward.socket(port)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read(), forward.error(port)
    except (OSError, http.client.HTTPException):
        return 0, b"", forward.error(port)
    finally:
        forward.close()


def test_port_forward_reaches_the_pods_port_and_a_closed_port_says_why(student, core, namespace):
    args = ["--model-id", "Qwen/Qwen2.5-1.5B-Instruct", "--num-shard", "1"]
    create_pod(core, namespace, "tgi", gpu_container("tgi", TGI, 1, args), {READY_AFTER: "1"})
    wait_until(lambda: ready(student, namespace, "tgi"), 30, "the TGI pod to be Ready")
    status, body, error = wait_until(
        lambda: (answer := forwarded_get(student, namespace, "tgi", 80, "/info"))[0] and answer,
        30,
        "TGI through a port-forward",
    )
    assert (status, json.loads(body)["model_id"], error) == (
        200,
        "Qwen/Qwen2.5-1.5B-Instruct",
        None,
    )

    status, _, error = forwarded_get(student, namespace, "tgi", 81, "/info")
    assert status == 0
    assert re.fullmatch(
        r"error forwarding port 81 to pod [0-9a-f]{64}, uid : failed to execute portforward in "
        r'network namespace "/var/run/netns/cni-[0-9a-f-]{36}": failed to dial 81: '
        r"dial tcp4 127\.0\.0\.1:81: connect: connection refused",
        error,
    ), error

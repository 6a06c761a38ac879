"""The node agent's simulation, without a cluster: timelines, probes, pod status."""

from __future__ import annotations

import pytest
from icc_sandbox.cluster import DEFAULT_NODES_FILE
from icc_sandbox.node_agent import (
    App,
    NodeSpec,
    Timing,
    crash_loop,
    load_nodes,
    probe_failure,
    quantity_bytes,
    simulate_pod,
    status_differs,
)

TGI = "ghcr.io/huggingface/text-generation-inference:3.3.0"
V100 = NodeSpec(
    name="n",
    index=0,
    cpu="32",
    memory="192Gi",
    gpu_type="gpu-tesla-v100",
    gpus=4,
    gpu_memory_gib=16,
)
TIMING = Timing(
    tgi_ready_seconds=5, webui_ready_seconds=1, crash_after_seconds=1, backoff_seconds=10
)


def pod(*containers: dict, annotations: dict | None = None) -> dict:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "abcdef12-0000",
            "annotations": annotations or {},
        },
        "spec": {"containers": list(containers)},
    }


def tgi(args: list[str], gpus: int = 1, **extra) -> dict:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {"name": "tgi", "image": TGI, "args": args, "resources": {"limits": limits}} | extra


@pytest.mark.parametrize(
    ("elapsed", "restarts", "running", "backoff"),
    [
        (0.5, 0, True, 10),  # first run, not crashed yet
        (1.5, 0, False, 10),  # crashed, first back-off of 10 s
        (11.5, 1, True, 10),  # restarted once
        (12.5, 1, False, 20),  # crashed again, back-off doubles
        (10_000, 37, False, 300),  # 5 cycles of 11+21+41+81+161 s, then 32 of 1+300 s (cap)
    ],
)
def test_crash_loop_follows_the_kubelets_back_off(elapsed, restarts, running, backoff):
    loop = crash_loop(elapsed, run_for=1, backoff=10)
    assert (loop.restart_count, loop.running, loop.backoff) == (restarts, running, backoff)


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"httpGet": {"path": "/health", "port": 80}}, None),
        ({"httpGet": {"path": "/health", "port": "http"}}, None),
        ({"httpGet": {"path": "/health", "port": 3000}}, "connection refused"),
        ({"httpGet": {"path": "/healthz", "port": 80}}, "statuscode: 404"),
        ({"tcpSocket": {"port": 80}}, None),
        ({"exec": {"command": ["true"]}}, None),
    ],
)
def test_probes_pass_only_where_the_application_listens(probe, expected):
    container = {"readinessProbe": probe, "ports": [{"name": "http", "containerPort": 80}]}
    failure = probe_failure(container, App("tgi", 80, frozenset({"/health"})), "127.10.0.1")
    assert failure == expected or (
        expected is not None and failure is not None and expected in failure
    )


def test_valid_tgi_becomes_ready_after_its_load_delay():
    spec = pod(tgi(["--model-id", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"]))
    assert not simulate_pod(spec, V100, started=0, now=4, timing=TIMING).status[
        "containerStatuses"
    ][0]["ready"]
    ready = simulate_pod(spec, V100, started=0, now=5, timing=TIMING).status
    assert ready["containerStatuses"][0]["ready"]
    assert {"type": "Ready", "status": "True"} in ready["conditions"]


def test_the_ready_delay_can_be_set_per_pod():
    spec = pod(
        tgi(["--model-id", "x/y-1b"]), annotations={"sandbox.haw.icc/ready-after-seconds": "0"}
    )
    assert simulate_pod(spec, V100, started=0, now=0, timing=TIMING).status["containerStatuses"][0][
        "ready"
    ]


def test_bad_tgi_arguments_crash_loop_with_the_launchers_message():
    spec = pod(tgi(["--model-id", "x/y-1b", "--max-parallel-loading-workers", "2"]))
    view = simulate_pod(spec, V100, started=0, now=2, timing=TIMING)
    container = view.status["containerStatuses"][0]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "--max-parallel-loading-workers" in container["lastState"]["terminated"]["message"]
    assert any(e["reason"] == "BackOff" for e in view.events)


def test_a_model_too_big_for_its_gpus_is_oom_killed_after_loading():
    spec = pod(tgi(["--model-id", "meta-llama/Llama-2-70b-chat-hf"]))
    loading = simulate_pod(spec, V100, started=0, now=4, timing=TIMING).status["containerStatuses"][
        0
    ]
    assert "running" in loading["state"]
    killed = simulate_pod(spec, V100, started=0, now=6, timing=TIMING).status["containerStatuses"][
        0
    ]
    assert killed["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert killed["lastState"]["terminated"]["exitCode"] == 137


def test_open_webui_needs_its_own_port_and_other_images_just_run():
    webui = {
        "name": "ui",
        "image": "ghcr.io/open-webui/open-webui:v0.11.0",
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}},
    }
    other = {"name": "sidecar", "image": "busybox:1.36"}
    view = simulate_pod(pod(webui, other), V100, started=0, now=1, timing=TIMING)
    assert [c["ready"] for c in view.status["containerStatuses"]] == [True, True]
    wrong = webui | {"readinessProbe": {"httpGet": {"path": "/health", "port": 3000}}}
    view = simulate_pod(pod(wrong), V100, started=0, now=60, timing=TIMING)
    assert not view.status["containerStatuses"][0]["ready"]


def test_an_unchanged_status_is_not_written_again():
    spec = pod(tgi(["--model-id", "x/y-1b"]))
    desired = simulate_pod(spec, V100, started=0, now=10, timing=TIMING).status
    live = desired | {
        "qosClass": "BestEffort",
        "conditions": [
            c | {"lastTransitionTime": "2026-01-01T00:00:00Z"} for c in desired["conditions"]
        ]
        + [{"type": "PodScheduled", "status": "True"}],
    }
    assert not status_differs(live, desired)
    later = simulate_pod(
        spec | {"spec": {"containers": [tgi(["--bogus"])]}}, V100, 0, 10, TIMING
    ).status
    assert status_differs(live, later)


@pytest.mark.parametrize(
    ("text", "expected"), [("16Gi", 16 * 2**30), ("500M", 500 * 10**6), ("1", 1), ("", None)]
)
def test_memory_quantities(text, expected):
    assert quantity_bytes(text) == expected


def test_the_default_nodes_file_matches_the_icc():
    nodes = {node.name: node for node in load_nodes(DEFAULT_NODES_FILE)}
    v100 = [n for n in nodes.values() if n.gpu_type == "gpu-tesla-v100"]
    v100s = [n for n in nodes.values() if n.gpu_type == "gpu-tesla-v100s"]
    assert [(n.gpus, n.gpu_memory_gib) for n in v100] == [(4, 16), (4, 16)]
    assert [(n.gpus, n.gpu_memory_gib) for n in v100s] == [(2, 32)]
    assert sum(1 for n in nodes.values() if not n.gpu_type) == 1

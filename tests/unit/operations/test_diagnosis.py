"""A namespace's objects -> the state, the cause with its evidence, and the fix in our terms."""

from __future__ import annotations

import json
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations.course_status import (
    status_document,
    status_table,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.diagnosis import diagnose
from test_progress import (
    CLAP_ERROR,
    GPU_UNSCHEDULABLE,
    NEW_RS,
    NOW,
    QUOTA,
    ago,
    deployment,
    event,
    make_pod,
    replicaset,
    running,
    scheduled,
    terminated,
    tgi_container,
    waiting,
)

NOT_READY = {"updated": 1, "available": 0}
OOM_LOG = [
    "2026-03-02T11:58:01.000000Z ERROR text_generation_launcher: Error when initializing model",
    "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.02 GiB. GPU 0 has a total "
    "capacity of 15.77 GiB of which 312.00 MiB is free.",
    "2026-03-02T11:58:02.000000Z ERROR text_generation_launcher: Shard 0 failed to start",
]
CAPACITY = {
    "memory": {"per_gpu_gib": 29.6, "usable_per_gpu_gib": 15.0},
    "recommendations": [
        "2 x gpu-tesla-v100 (layer-split): 15.9 GiB per GPU (set tgi_gpu_count: 2)",
        "bitsandbytes-nf4: 13.9 GiB (set tgi_quantize: bitsandbytes-nf4)",
    ],
    "sizing": {"weights_gib": 24.2},
}


def tgi_deployment(gpus: int = 1) -> dict[str, Any]:
    container = tgi_container(
        args=["--model-id", "meta-llama/Llama-2-13b-chat-hf", "--num-shard", "1"],
        resources={"limits": {"nvidia.com/gpu": str(gpus)}},
    )
    return deployment(template={"spec": {"containers": [container]}}, **NOT_READY)


def refused_replicaset(message: str) -> dict[str, Any]:
    """The newest ReplicaSet, whose pods the API server refuses (a quota) with `message`."""
    failure = {
        "type": "ReplicaFailure",
        "status": "True",
        "reason": "FailedCreate",
        "message": message,
        "lastTransitionTime": ago(300),
    }
    return replicaset("tgi-new", "10", conditions=[failure])


def new_pod(**kwargs: Any) -> dict[str, Any]:
    return make_pod("tgi-new-a", owner="tgi-new", **kwargs)


def run(pods, events=(), logs=(), capacity=None, total=None, rs=(NEW_RS,), dep=None, per_node=4):
    return diagnose(
        "tgi",
        dep if dep is not None else tgi_deployment(),
        list(rs),
        list(pods),
        list(events),
        NOW,
        "tgi",
        lambda _pod, _previous: list(logs),
        capacity,
        total,
        "wabc123-default",
        per_node,
    )


def test_absent_says_deploy() -> None:
    found = diagnose("tgi", None, [], [], [], NOW, "tgi", namespace="wabc123-default")
    assert found.state == "absent"
    assert found.fix == ["ansible-playbook haw.icc.deploy -l wabc123-default"]


def test_ready_has_no_problem() -> None:
    pod = new_pod(statuses=[running(90, True)], conditions=scheduled(True))
    found = run([pod], dep=deployment())
    assert (found.state, found.problem, found.fix) == ("ready", "", [])


def test_a_deployment_at_0_replicas_is_asleep_healthy_and_says_how_to_wake_it() -> None:
    found = run([], dep=deployment(replicas=0, updated=0, available=0, total=0))
    assert (found.state, found.problem) == ("asleep", "")
    assert found.fix == [
        "the next chat or API request wakes it and is answered once it is ready; or wake it "
        "now: ansible-playbook haw.icc.test -l wabc123-default"
    ]
    status = {
        "namespace": "wabc123-default",
        "tgi": found.as_dict(),
        "open_webui": {"state": "ready"},
    }
    assert status_table([status])[1].split() == ["wabc123-default", "asleep", "ready"]  # no problem
    # A wake that failed (the idle proxy noted it on the Deployment) is the row's problem.
    status["tgi"]["wake_problem"] = "2026-12-05T07:00:00Z: no node has the GPUs free"
    row = status_table([status], width=100)[1]
    assert row.endswith(
        "ready       the last wake failed at 2026-12-05T07:00:00Z: no node has the GPUs free"
    )


def test_pending_for_lack_of_gpus_names_the_gpus_and_fewer_as_the_fix() -> None:
    pod = new_pod(
        phase="Pending",
        node=None,
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "lastTransitionTime": ago(120),
            }
        ],
        containers=[
            tgi_container(
                resources={"limits": {"nvidia.com/gpu": "2"}},
            )
        ],
    )
    pod["spec"]["tolerations"] = [{"key": "gpu-tesla-v100", "effect": "NoSchedule"}]
    found = run([pod], events=[event("tgi-new-a", "FailedScheduling", GPU_UNSCHEDULABLE)])
    assert found.state == "pending"
    assert "no gpu-tesla-v100 node has 2 GPUs free" in found.cause
    assert found.fix[0] == (
        "ask for fewer GPUs: ansible-playbook haw.icc.scale -l wabc123-default -e tgi_gpu_count=1"
    )
    assert found.evidence == [GPU_UNSCHEDULABLE]

    beyond = run(
        [pod], events=[event("tgi-new-a", "FailedScheduling", GPU_UNSCHEDULABLE)], per_node=1
    )
    assert "a gpu-tesla-v100 node has 1 GPUs" in beyond.cause and "can never" in beyond.cause
    assert beyond.fix == [
        "ask for at most 1: ansible-playbook haw.icc.scale -l wabc123-default -e tgi_gpu_count=1"
    ]


def test_over_quota_gives_the_numbers_and_what_fits() -> None:
    found = run([], rs=[refused_replicaset(QUOTA)])
    assert found.state == "pending"
    assert found.cause == (
        "ResourceQuota gpu allows requests.nvidia.com/gpu=1 (0 in use, the pod asks for 2)"
    )
    assert any(fix.endswith("-e tgi_gpu_count=1") for fix in found.fix)


# The API server's words when a quota limits several resources (seen in the sandbox).
MIXED_QUOTA = (
    'pods "tgi-new-b" is forbidden: exceeded quota: compute, requested: requests.memory=8Gi,'
    "requests.nvidia.com/gpu=1, used: requests.memory=0,requests.nvidia.com/gpu=0, limited: "
    "requests.memory=4Gi,requests.nvidia.com/gpu=0"
)


def test_a_quota_on_several_resources_keeps_each_figure() -> None:
    found = run([], rs=[refused_replicaset(MIXED_QUOTA)])
    assert found.cause == (
        "ResourceQuota compute allows requests.memory=4Gi (0 in use, the pod asks for 8Gi), "
        "requests.nvidia.com/gpu=0 (0 in use, the pod asks for 1)"
    )
    assert any("tgi_memory_request" in fix for fix in found.fix)


def test_crash_loop_from_a_bad_flag_quotes_the_launcher_and_names_tgi_extra_args() -> None:
    pod = new_pod(
        statuses=[
            waiting(
                "CrashLoopBackOff", restartCount=3, lastState=terminated("Error", CLAP_ERROR, 2)
            )
        ],
        conditions=scheduled(False),
    )
    found = run([pod], logs=CLAP_ERROR.splitlines())
    assert found.state == "failed"
    assert found.problem.startswith("pod tgi-new-a:")
    assert "--max-parallel-loading-workers" in " ".join(found.evidence)
    assert "tgi_extra_args" in " ".join(found.fix)


def test_oom_kill_explains_with_the_capacity_numbers_and_alternatives() -> None:
    pod = new_pod(
        statuses=[
            waiting("CrashLoopBackOff", restartCount=2, lastState=terminated("OOMKilled", "", 137))
        ],
        conditions=scheduled(False),
    )
    found = run([pod], logs=OOM_LOG, capacity=CAPACITY)
    assert found.state == "failed"
    assert "OOMKilled" in found.problem  # as the sandbox reports a model too big for its GPUs
    assert "29.6 GiB per GPU" in found.cause and "15.0 GiB" in found.cause
    assert found.fix == CAPACITY["recommendations"]
    assert any("CUDA out of memory" in line for line in found.evidence)


def test_cuda_out_of_memory_in_a_crash_loop_gets_the_capacity_numbers_too() -> None:
    pod = new_pod(
        statuses=[
            waiting("CrashLoopBackOff", restartCount=1, lastState=terminated("Error", "", 1))
        ],
        conditions=scheduled(False),
    )
    found = run([pod], logs=OOM_LOG, capacity=CAPACITY)
    assert "CUDA out of memory" in found.problem
    assert "29.6 GiB per GPU" in found.cause


def test_oom_killed_without_cuda_is_the_memory_limit() -> None:
    pod = new_pod(
        statuses=[
            waiting("CrashLoopBackOff", restartCount=2, lastState=terminated("OOMKilled", "", 137))
        ],
        conditions=scheduled(False),
    )
    found = run([pod], capacity=CAPACITY)
    assert "more memory than its limit (32Gi)" in found.cause
    assert found.fix[0].startswith("a higher tgi_memory_limit")


def test_image_pull_failure_names_the_image_variable() -> None:
    pod = new_pod(
        statuses=[waiting("ImagePullBackOff", 'Back-off pulling image "ghcr.io/x:9"')],
        conditions=scheduled(False),
    )
    found = run([pod])
    assert found.state == "failed"
    assert "tgi_image" in found.fix[0]


DOWNLOAD_LOG = [
    "2026-03-02T11:55:00.000000Z  INFO download: text_generation_launcher: Starting check and "
    "download process for meta-llama/Llama-2-13b-chat-hf",
    "2026-03-02T11:55:01.000000Z  INFO text_generation_launcher: Download file: "
    "model-00001-of-00003.safetensors",
    "2026-03-02T11:56:01.000000Z  INFO text_generation_launcher: Downloaded "
    "/data/hub/models--meta-llama--Llama-2-13b-chat-hf/snapshots/abc/"
    "model-00001-of-00003.safetensors in 0:01:00.",
    "2026-03-02T11:56:01.000000Z  INFO text_generation_launcher: Download: [1/3] -- ETA: 0:02:00",
    "2026-03-02T11:56:01.000000Z  INFO text_generation_launcher: Download file: "
    "model-00002-of-00003.safetensors",
]


def test_a_download_in_progress_shows_files_bytes_and_time_left() -> None:
    pod = new_pod(statuses=[running(120, started=False)], conditions=scheduled(False))
    found = run([pod], logs=DOWNLOAD_LOG, total=24 * 2**30)
    assert found.state == "downloading"
    assert found.download["files_done"] == 1 and found.download["files_total"] == 3
    assert "1/3 files" in found.cause
    assert "8.0 of 24.0 GiB" in found.cause
    assert "left" in found.cause


def test_the_course_table_has_a_row_per_namespace_and_the_document_an_entry() -> None:
    pod = new_pod(
        statuses=[
            waiting("CrashLoopBackOff", restartCount=2, lastState=terminated("OOMKilled", "", 137))
        ],
        conditions=scheduled(False),
    )
    broken = run([pod], logs=OOM_LOG, capacity=CAPACITY).as_dict()
    ok = run([new_pod(statuses=[running(90, True)], conditions=scheduled(True))], dep=deployment())
    statuses = [
        {"namespace": "w1-default", "tgi": broken, "open_webui": ok.as_dict() | {"app": "x"}},
        {"namespace": "w2-default", "tgi": ok.as_dict(), "open_webui": ok.as_dict()},
        {"namespace": "w3-default"},  # its play failed before the status was read
    ]
    lines = status_table(statuses)
    assert lines[0].split()[:2] == ["NAMESPACE", "TGI"]
    assert [line.split()[0] for line in lines[1:]] == ["w1-default", "w2-default", "w3-default"]
    assert "failed" in lines[1] and "OOMKilled" in lines[1]
    assert "unknown" in lines[3]
    document = json.loads(json.dumps(status_document(statuses, "2026-03-02T12:00:00Z")))
    assert sorted(document["namespaces"]) == ["w1-default", "w2-default", "w3-default"]
    assert document["namespaces"]["w1-default"]["tgi"]["state"] == "failed"


@pytest.mark.parametrize("state", ["ready", "failed"])
def test_rows_carry_the_state(state: str) -> None:
    row_input = {"namespace": "n", "tgi": {"state": state, "problem": "p", "cause": "c"}}
    assert state in status_table([row_input])[1]


def test_0_replicas_without_an_idle_proxy_is_stopped_not_asleep() -> None:
    from ansible_collections.haw.icc.plugins.module_utils.operations.status import _idle_notes

    dep = deployment(replicas=0, updated=0, available=0, total=0)
    dep["metadata"]["annotations"] = {
        "haw.icc/asleep-since": "2026-12-05T07:00:00Z",
        "haw.icc/generated-tokens": "41",
    }
    with_proxy = run([], dep=dep).as_dict()
    _idle_notes(with_proxy, dep, {"metadata": {"name": "tgi-idle-proxy"}}, "wabc123-default")
    assert with_proxy["state"] == "asleep" and with_proxy["asleep_since"] == "2026-12-05T07:00:00Z"
    assert with_proxy["generated_tokens"] == 41
    without = run([], dep=dep).as_dict()
    _idle_notes(without, dep, None, "wabc123-default")  # notes left from an earlier proxy
    assert without["state"] == "stopped" and "generated_tokens" not in without
    assert without["fix"] == [
        "ansible-playbook haw.icc.deploy -l wabc123-default (puts it back to 1 replica)"
    ]

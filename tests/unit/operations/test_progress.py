"""Pods and Deployments as the API returns them -> one human line, and whether waiting helps."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    format_duration,
    parse_time,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.pod_progress import (
    describe_pod,
    first_useful_line,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import (
    ProgressLog,
    RolloutProgress,
    describe_rollout,
    previous_revision,
)

NOW = datetime(2026, 3, 2, 12, 0, 0, tzinfo=UTC)
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.0"
NAMESPACE = "wabc123-default"
GPU_UNSCHEDULABLE = (
    "0/4 nodes are available: 1 node(s) had taint {gpu-tesla-v100s: }, that the pod didn't "
    "tolerate, 3 Insufficient nvidia.com/gpu."
)
CLAP_ERROR = (
    "error: unexpected argument '--max-parallel-loading-workers' found\n\n"
    "Usage: text-generation-launcher [OPTIONS]\n\nFor more information, try '--help'."
)
SHARD_ERROR = "\n".join(
    [
        "\x1b[2m2026-03-02T11:58:01.123456Z\x1b[0m \x1b[31mERROR\x1b[0m shard-manager: "
        "text_generation_launcher: Shard complete standard error output:",
        "",
        "Traceback (most recent call last):",
        '  File "/opt/conda/bin/text-generation-server", line 8, in <module>',
        "    sys.exit(app())",
        "RuntimeError: Sharded LlamaForCausalLM requires Flash Attention enabled models. rank=0",
        "2026-03-02T11:58:02.000000Z ERROR text_generation_launcher: Shard 0 failed to start",
        "Error: ShardCannotStart",
    ]
)


def ago(seconds: float) -> str:
    return (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def tgi_container(**extra: Any) -> dict[str, Any]:
    return {
        "name": "tgi",
        "image": TGI_IMAGE,
        "args": ["--model-id", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"],
        "resources": {"limits": {"nvidia.com/gpu": "1", "memory": "32Gi"}},
        **extra,
    }


def make_pod(
    name: str = "tgi-7c9f-x2lq",
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    containers: list[dict[str, Any]] | None = None,
    node: str | None = "icc-gpu-v100-1",
    owner: str = "tgi-7c9f",
    created: float = 300,
    **status: Any,
) -> dict[str, Any]:
    pod = {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "creationTimestamp": ago(created),
            "ownerReferences": [{"kind": "ReplicaSet", "name": owner, "uid": f"uid-{owner}"}],
        },
        "spec": {"containers": containers or [tgi_container()]},
        "status": {"phase": phase, "conditions": conditions or [], **status},
    }
    if node:
        pod["spec"]["nodeName"] = node
    if statuses is not None:
        pod["status"]["containerStatuses"] = statuses
    return pod


def scheduled(ready: bool, since: float = 60) -> list[dict[str, Any]]:
    value = "True" if ready else "False"
    return [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": ago(300)},
        {"type": "Initialized", "status": "True", "lastTransitionTime": ago(300)},
        {"type": "ContainersReady", "status": value, "lastTransitionTime": ago(since)},
        {"type": "Ready", "status": value, "lastTransitionTime": ago(since)},
    ]


def running(since: float, ready: bool = False, **extra: Any) -> dict[str, Any]:
    return {
        "name": "tgi",
        "image": TGI_IMAGE,
        "ready": ready,
        "started": extra.pop("started", True),
        "restartCount": extra.pop("restartCount", 0),
        "state": {"running": {"startedAt": ago(since)}},
        **extra,
    }


def waiting(reason: str, message: str = "", **extra: Any) -> dict[str, Any]:
    state = {"reason": reason}
    if message:
        state["message"] = message
    return {
        "name": "tgi",
        "image": TGI_IMAGE,
        "ready": False,
        "started": False,
        "restartCount": extra.pop("restartCount", 0),
        "state": {"waiting": state},
        **extra,
    }


def terminated(reason: str, message: str = "", exit_code: int = 1) -> dict[str, Any]:
    last = {"reason": reason, "exitCode": exit_code, "finishedAt": ago(20)}
    if message:
        last["message"] = message
    return {"terminated": last}


def event(
    pod: str,
    reason: str,
    message: str,
    seconds_ago: float = 5,
    kind: str = "Warning",
    container: str | None = "tgi",
    uid: bool = True,
) -> dict[str, Any]:
    about = {"kind": "Pod", "name": pod, "namespace": NAMESPACE}
    if uid:
        about["uid"] = f"uid-{pod}"
    if container:
        about["fieldPath"] = f"spec.containers{{{container}}}"
    return {
        "involvedObject": about,
        "reason": reason,
        "message": message,
        "type": kind,
        "lastTimestamp": ago(seconds_ago),
    }


def unschedulable_pod(seconds: float, message: str = GPU_UNSCHEDULABLE) -> dict[str, Any]:
    return make_pod(
        phase="Pending",
        node=None,
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": message,
                "lastTransitionTime": ago(seconds),
            }
        ],
        created=seconds,
    )


# --- pods ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PodCase:
    id: str
    pod: dict[str, Any]
    summary: str  # exact summary
    failed: bool = False
    reason: str = ""  # substring of the reason; "" means the reason must be empty
    events: list[dict[str, Any]] = field(default_factory=list)
    ready: bool = False
    detail: str = ""  # substring of the detail


POD_CASES = [
    PodCase(
        "unschedulable-within-grace",
        unschedulable_pod(10),
        f"Pending: unschedulable: {GPU_UNSCHEDULABLE}",
        events=[event("tgi-7c9f-x2lq", "FailedScheduling", GPU_UNSCHEDULABLE, 8, container=None)],
    ),
    PodCase(
        "unschedulable-past-grace-quotes-the-scheduler-event",
        unschedulable_pod(130, "stale condition message"),
        f"Pending: unschedulable: {GPU_UNSCHEDULABLE}",
        failed=True,
        reason=f"unschedulable for 2m10s: {GPU_UNSCHEDULABLE}",
        events=[
            event("tgi-7c9f-x2lq", "FailedScheduling", "older message", 120, container=None),
            event("tgi-7c9f-x2lq", "FailedScheduling", GPU_UNSCHEDULABLE, 3, container=None),
        ],
    ),
    PodCase(
        "untolerated-taint-past-grace-from-the-condition",
        unschedulable_pod(
            90, "0/4 nodes are available: 4 node(s) had taint {gpu-tesla-v100: }, that the pod"
        ),
        "Pending: unschedulable: 0/4 nodes are available: 4 node(s) had taint "
        "{gpu-tesla-v100: }, that the pod",
        failed=True,
        reason="unschedulable for 1m30s: 0/4 nodes are available: 4 node(s) had taint",
    ),
    PodCase(
        "waiting-for-a-volume-to-be-bound-never-fails",
        unschedulable_pod(600, "0/4 nodes are available: 4 pod has unbound immediate "),
        "Pending: waiting for volume: 0/4 nodes are available: 4 pod has unbound immediate "
        "PersistentVolumeClaims.",
        events=[
            event(
                "tgi-7c9f-x2lq",
                "FailedScheduling",
                "0/4 nodes are available: 4 pod has unbound immediate PersistentVolumeClaims.",
                container=None,
            )
        ],
    ),
    PodCase(
        "container-creating-waiting-for-a-mount",
        make_pod(phase="Pending", statuses=[waiting("ContainerCreating")]),
        'Pending: waiting for volume: MountVolume.SetUp failed for volume "model-cache"',
        events=[
            event(
                "tgi-7c9f-x2lq",
                "FailedMount",
                'MountVolume.SetUp failed for volume "model-cache"',
                container=None,
            )
        ],
    ),
    PodCase(
        "container-creating",
        make_pod(phase="Pending", statuses=[waiting("ContainerCreating")]),
        "Pending: creating the container",
    ),
    PodCase(
        "tgi-loading-behind-its-startup-probe",
        make_pod(
            statuses=[running(130, started=False)],
            conditions=scheduled(False),
            containers=[tgi_container(startupProbe={"httpGet": {"path": "/health", "port": 80}})],
        ),
        "Running for 2m10s, not ready yet (startup probe: loading the model)",
        events=[
            event(
                "tgi-7c9f-x2lq",
                "Unhealthy",
                "Startup probe failed: dial tcp 10.0.0.5:80: connect: connection refused",
            )
        ],
    ),
    PodCase(
        "tgi-readiness-probe-on-a-wrong-path-quotes-the-kubelet",
        make_pod(
            statuses=[running(45)],
            conditions=scheduled(False),
            containers=[tgi_container(readinessProbe={"httpGet": {"path": "/ready", "port": 80}})],
        ),
        "Running for 45s, not ready yet "
        "(Readiness probe failed: HTTP probe failed with statuscode: 404)",
        events=[
            event(
                "tgi-7c9f-x2lq",
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 404",
            ),
            # Older than the container's start: from a previous run, not quoted.
            event("tgi-7c9f-x2lq", "Unhealthy", "Readiness probe failed: old", 200),
        ],
    ),
    PodCase(
        "unhealthy-events-of-another-pod-are-ignored",
        make_pod(
            statuses=[running(45)],
            conditions=scheduled(False),
            containers=[{"name": "tgi", "image": "nginx:1.27", "readinessProbe": {}}],
        ),
        "Running for 45s, not ready yet",
        events=[event("someone-else", "Unhealthy", "Readiness probe failed: 500")],
    ),
    PodCase(
        "ready",
        make_pod(statuses=[running(300, ready=True)], conditions=scheduled(True, since=60)),
        "Ready for 1m00s",
        ready=True,
    ),
    PodCase(
        "crash-loop-quotes-tgi",
        make_pod(
            statuses=[
                waiting(
                    "CrashLoopBackOff",
                    "back-off 40s restarting failed container=tgi",
                    restartCount=3,
                    lastState=terminated("Error", CLAP_ERROR, exit_code=2),
                )
            ],
            conditions=scheduled(False),
        ),
        "CrashLoopBackOff (restart 3): error: unexpected argument "
        "'--max-parallel-loading-workers' found",
        failed=True,
        reason="CrashLoopBackOff (restart 3): error: unexpected argument",
        events=[event("tgi-7c9f-x2lq", "BackOff", "Back-off restarting failed container")],
        detail="Usage: text-generation-launcher [OPTIONS]",
    ),
    PodCase(
        "crash-loop-quotes-the-last-python-exception",
        make_pod(
            statuses=[
                waiting(
                    "CrashLoopBackOff",
                    restartCount=1,
                    lastState=terminated("Error", SHARD_ERROR),
                )
            ]
        ),
        "CrashLoopBackOff (restart 1): RuntimeError: Sharded LlamaForCausalLM requires Flash "
        "Attention enabled models. rank=0",
        failed=True,
        reason="RuntimeError: Sharded LlamaForCausalLM",
        detail="Error: ShardCannotStart",
    ),
    PodCase(
        "crash-without-a-message-gives-the-exit-code",
        make_pod(
            statuses=[waiting("CrashLoopBackOff", restartCount=2, lastState=terminated("Error"))]
        ),
        "CrashLoopBackOff (restart 2): exit code 1, no termination message "
        "(see the container's previous log)",
        failed=True,
        reason="exit code 1",
    ),
    PodCase(
        "oom-killed-by-the-kernel",
        make_pod(
            statuses=[
                waiting(
                    "CrashLoopBackOff",
                    restartCount=1,
                    lastState=terminated("OOMKilled", exit_code=137),
                )
            ]
        ),
        "OOMKilled (restart 1): the container ran out of memory (limit 32Gi)",
        failed=True,
        reason="OOMKilled (restart 1)",
    ),
    PodCase(
        "oom-while-running-again-quotes-cuda",
        make_pod(
            statuses=[
                running(
                    2,
                    restartCount=1,
                    lastState=terminated(
                        "OOMKilled",
                        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.",
                        137,
                    ),
                )
            ],
            conditions=scheduled(False),
        ),
        "OOMKilled (restart 1): torch.OutOfMemoryError: CUDA out of memory. "
        "Tried to allocate 2.00 GiB.",
        failed=True,
        reason="torch.OutOfMemoryError",
    ),
    PodCase(
        "running-again-after-an-error-will-fail-again",
        make_pod(
            statuses=[running(1, restartCount=1, lastState=terminated("Error", CLAP_ERROR, 2))],
            conditions=scheduled(False),
        ),
        "Crashed (restart 1): error: unexpected argument '--max-parallel-loading-workers' found",
        failed=True,
        reason="Crashed (restart 1)",
    ),
    PodCase(
        "a-clean-restart-is-not-a-crash",
        make_pod(
            statuses=[running(10, restartCount=1, lastState=terminated("Completed", exit_code=0))],
            conditions=scheduled(False),
        ),
        "Running for 10s, not ready yet",
    ),
    PodCase(
        "image-pull-back-off-quotes-the-pull-error",
        make_pod(
            phase="Pending",
            statuses=[waiting("ImagePullBackOff", 'Back-off pulling image "tgi:9.9.9"')],
        ),
        'ImagePullBackOff: Failed to pull image "tgi:9.9.9": not found',
        failed=True,
        reason="ImagePullBackOff",
        events=[
            event("tgi-7c9f-x2lq", "Failed", 'Failed to pull image "tgi:9.9.9": not found', 9),
            event("tgi-7c9f-x2lq", "Failed", "Error: ErrImagePull", 8),
            event("tgi-7c9f-x2lq", "Failed", "Error: ImagePullBackOff", 2),
        ],
    ),
    PodCase(
        "err-image-pull-without-events",
        make_pod(phase="Pending", statuses=[waiting("ErrImagePull", "manifest unknown")]),
        "ErrImagePull: manifest unknown",
        failed=True,
        reason="ErrImagePull: manifest unknown",
    ),
    PodCase(
        "invalid-image-name",
        make_pod(
            phase="Pending",
            statuses=[waiting("InvalidImageName", 'Failed to apply default image tag "TGI:"')],
        ),
        'InvalidImageName: Failed to apply default image tag "TGI:"',
        failed=True,
        reason="InvalidImageName",
    ),
    PodCase(
        "missing-secret-key",
        make_pod(
            phase="Pending",
            statuses=[
                waiting(
                    "CreateContainerConfigError",
                    "couldn't find key api-key in Secret wabc123-default/tgi-api-key",
                )
            ],
        ),
        "CreateContainerConfigError: couldn't find key api-key in Secret "
        "wabc123-default/tgi-api-key",
        failed=True,
        reason="couldn't find key api-key",
    ),
    PodCase(
        "terminating",
        make_pod(statuses=[running(50, ready=True)], conditions=scheduled(True))
        | {
            "metadata": {
                "name": "tgi-old",
                "uid": "uid-tgi-old",
                "deletionTimestamp": ago(1),
            }
        },
        "Terminating",
        ready=True,
    ),
    PodCase(
        "evicted",
        make_pod(phase="Failed", reason="Evicted", message="The node was low on memory."),
        "Failed: Evicted: The node was low on memory.",
    ),
    PodCase(
        "init-container-running",
        make_pod(
            phase="Pending",
            statuses=[waiting("PodInitializing")],
            initContainerStatuses=[
                {
                    "name": "fetch-model",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": ago(75)}},
                }
            ],
            conditions=[{"type": "Initialized", "status": "False"}],
        ),
        "Pending: init container fetch-model: running for 1m15s",
    ),
    PodCase(
        "waiting-to-be-scheduled",
        make_pod(phase="Pending", node=None),
        "Pending: waiting to be scheduled",
    ),
]


@pytest.mark.parametrize("case", POD_CASES, ids=lambda case: case.id)
def test_describe_pod(case: PodCase) -> None:
    progress = describe_pod(case.pod, case.events, NOW, unschedulable_grace=60)
    assert progress.summary == case.summary
    assert progress.failed is case.failed
    assert progress.ready is case.ready
    if case.reason:
        assert case.reason in progress.reason
    else:
        assert progress.reason == ""
    assert case.detail in progress.detail
    assert progress.phase == case.pod["status"]["phase"]


def test_state_leaves_out_the_clocks() -> None:
    pod = make_pod(statuses=[running(45)], conditions=scheduled(False))
    early = describe_pod(pod, [], NOW)
    later = describe_pod(pod, [], NOW + timedelta(seconds=30))
    assert early.summary != later.summary
    assert early.state == later.state == "Running, not ready yet"


def test_events_without_uid_match_by_name_and_naive_now_counts_as_utc() -> None:
    pod = unschedulable_pod(30)
    events = [
        event("tgi-7c9f-x2lq", "FailedScheduling", "from the event", container=None, uid=False)
    ]
    progress = describe_pod(pod, events, NOW.replace(tzinfo=None), unschedulable_grace=20)
    assert progress.summary == "Pending: unschedulable: from the event"
    assert progress.reason == "unschedulable for 30s: from the event"


def test_grace_is_configurable() -> None:
    assert not describe_pod(unschedulable_pod(100), [], NOW, unschedulable_grace=300).failed
    assert describe_pod(unschedulable_pod(100), [], NOW, unschedulable_grace=0).failed


def test_several_containers_name_the_failing_one() -> None:
    pod = make_pod(
        containers=[tgi_container(), {"name": "sidecar", "image": "busybox"}],
        statuses=[
            running(30, ready=True) | {"name": "sidecar"},
            waiting("CrashLoopBackOff", restartCount=2, lastState=terminated("Error", "boom")),
        ],
        conditions=scheduled(False),
    )
    progress = describe_pod(pod, [], NOW)
    assert progress.summary == "container tgi: CrashLoopBackOff (restart 2): boom"
    assert progress.container == "tgi"
    assert progress.restarts == 2


# --- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "line"),
    [
        (CLAP_ERROR, "error: unexpected argument '--max-parallel-loading-workers' found"),
        (
            SHARD_ERROR,
            "RuntimeError: Sharded LlamaForCausalLM requires Flash Attention enabled "
            "models. rank=0",
        ),
        (
            'Error: ArgumentValidation("`max_batch_prefill_tokens` must be >= `max_input_tokens`")'
            "\nERROR text_generation_launcher: Webserver Crashed",
            'Error: ArgumentValidation("`max_batch_prefill_tokens` must be >= `max_input_tokens`")',
        ),
        ("\n\n  starting up\nall good\n", "starting up"),
        ("", ""),
        (None, ""),
        ("x" * 500, "x" * 299 + "…"),
    ],
)
def test_first_useful_line(message: str | None, line: str) -> None:
    assert first_useful_line(message) == line


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45.9, "45s"), (60, "1m00s"), (130, "2m10s"), (3600, "1h00m"), (-5, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    "value",
    [
        "2026-03-02T12:00:00Z",
        "2026-03-02T12:00:00+00:00",
        "2026-03-02T13:00:00+01:00",
        "2026-03-02T12:00:00.000000Z",
        datetime(2026, 3, 2, 12, 0, 0),
    ],
)
def test_parse_time(value: Any) -> None:
    assert parse_time(value) == NOW


@pytest.mark.parametrize("value", [None, "", "yesterday", 17])
def test_parse_time_rejects(value: Any) -> None:
    assert parse_time(value) is None


# --- Deployments -----------------------------------------------------------------------------


def deployment(
    name: str = "tgi",
    replicas: int = 1,
    generation: int = 2,
    observed: int = 2,
    updated: int = 1,
    available: int = 1,
    total: int = 1,
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "generation": generation,
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, **spec},
        "status": {
            "observedGeneration": observed,
            "updatedReplicas": updated,
            "availableReplicas": available,
            "readyReplicas": available,
            "replicas": total,
        },
    }


def replicaset(name: str, revision: str, owner: str = "tgi", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "creationTimestamp": ago(600),
            "annotations": {"deployment.kubernetes.io/revision": revision},
            "ownerReferences": [{"kind": "Deployment", "name": owner, "uid": f"uid-{owner}"}],
        },
        "status": status,
    }


OLD_RS, NEW_RS = replicaset("tgi-old", "9"), replicaset("tgi-new", "10")
READY_NEW = make_pod(
    "tgi-new-a", owner="tgi-new", statuses=[running(90, True)], conditions=scheduled(True)
)
LOADING_NEW = make_pod(
    "tgi-new-a",
    owner="tgi-new",
    statuses=[running(45, started=False)],
    conditions=scheduled(False),
    containers=[tgi_container(startupProbe={"httpGet": {"path": "/health", "port": 80}})],
)
CRASHING_NEW = make_pod(
    "tgi-new-a",
    owner="tgi-new",
    statuses=[
        waiting("CrashLoopBackOff", restartCount=3, lastState=terminated("Error", CLAP_ERROR, 2))
    ],
    conditions=scheduled(False),
)
CRASHING_OLD = make_pod(
    "tgi-old-z",
    owner="tgi-old",
    statuses=[waiting("CrashLoopBackOff", restartCount=9, lastState=terminated("Error", "old"))],
    conditions=scheduled(False),
)
READY_OLD = make_pod(
    "tgi-old-z", owner="tgi-old", statuses=[running(900, True)], conditions=scheduled(True)
)
OTHER_APP = make_pod(
    "webui-x",
    owner="webui-1",
    statuses=[
        waiting("CrashLoopBackOff", restartCount=5, lastState=terminated("Error", "not ours"))
    ],
)
QUOTA = (
    'pods "tgi-new-b" is forbidden: exceeded quota: gpu, requested: requests.nvidia.com/gpu=2, '
    "used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=1"
)


@dataclass(frozen=True)
class RolloutCase:
    id: str
    deployment: dict[str, Any]
    summary: str
    done: bool = False
    failed: bool = False
    reason: str = ""
    replicasets: list[dict[str, Any]] = field(default_factory=lambda: [OLD_RS, NEW_RS])
    pods: list[dict[str, Any]] = field(default_factory=list)
    pod: str = ""


ROLLOUT_CASES = [
    RolloutCase("done", deployment(), "tgi: 1/1 ready", done=True, pods=[READY_NEW, OTHER_APP]),
    RolloutCase(
        "not-done-loading",
        deployment(available=0, total=2),
        "tgi: 0/1 ready, 1 pod of an older revision left — pod tgi-new-a: Running for 45s, "
        "not ready yet (startup probe: loading the model)",
        pods=[LOADING_NEW, READY_OLD],
        pod="tgi-new-a",
    ),
    RolloutCase(
        "old-pods-left",
        deployment(total=2),
        "tgi: 1/1 ready, 1 pod of an older revision left — waiting for pods of the older "
        "revision to go",
        pods=[READY_NEW, READY_OLD],
    ),
    RolloutCase(
        "old-pods-left-even-when-the-counters-agree",
        deployment(),
        "tgi: 1/1 ready, 1 pod of an older revision left — waiting for pods of the older "
        "revision to go",
        pods=[READY_NEW, READY_OLD],
    ),
    RolloutCase(
        "new-spec-not-seen-yet",
        deployment(generation=3, observed=2),
        "tgi: 1/1 ready — waiting for the Deployment controller to see the new spec",
        pods=[READY_NEW],
    ),
    RolloutCase(
        "a-crashing-old-pod-does-not-fail-the-rollout",
        deployment(available=0, total=2),
        "tgi: 0/1 ready, 1 pod of an older revision left — pod tgi-new-a: Running for 45s, "
        "not ready yet (startup probe: loading the model)",
        pods=[CRASHING_OLD, LOADING_NEW],
        pod="tgi-new-a",
    ),
    RolloutCase(
        "a-crashing-new-pod-fails-it",
        deployment(available=0, total=2),
        "tgi: 0/1 ready, 1 pod of an older revision left — pod tgi-new-a: CrashLoopBackOff "
        "(restart 3): error: unexpected argument '--max-parallel-loading-workers' found",
        failed=True,
        reason="pod tgi-new-a: CrashLoopBackOff (restart 3): error: unexpected argument",
        pods=[READY_OLD, CRASHING_NEW],
        pod="tgi-new-a",
    ),
    RolloutCase(
        "the-newest-replicaset-is-chosen-by-revision-number",
        deployment(available=0, updated=0, total=1),
        "tgi: 0/1 ready — pod tgi-new-a: Running for 45s, not ready yet "
        "(startup probe: loading the model)",
        replicasets=[NEW_RS, OLD_RS],
        pods=[LOADING_NEW],
        pod="tgi-new-a",
    ),
    RolloutCase(
        "pods-not-created-yet",
        deployment(available=0, updated=0, total=0),
        "tgi: 0/1 ready — waiting for 1 pod to be created",
    ),
    RolloutCase(
        "quota-exceeded-past-grace",
        deployment(available=0, updated=0, total=0),
        f"tgi: 0/1 ready — cannot create pods: {QUOTA}",
        failed=True,
        reason=f"cannot create pods: {QUOTA}",
        replicasets=[
            OLD_RS,
            replicaset(
                "tgi-new",
                "10",
                conditions=[
                    {
                        "type": "ReplicaFailure",
                        "status": "True",
                        "reason": "FailedCreate",
                        "message": QUOTA,
                        "lastTransitionTime": ago(120),
                    }
                ],
            ),
        ],
    ),
    RolloutCase(
        "quota-exceeded-within-grace",
        deployment(available=0, updated=0, total=0),
        f"tgi: 0/1 ready — cannot create pods: {QUOTA}",
        replicasets=[
            replicaset(
                "tgi-new",
                "10",
                conditions=[
                    {
                        "type": "ReplicaFailure",
                        "status": "True",
                        "message": QUOTA,
                        "lastTransitionTime": ago(5),
                    }
                ],
            ),
        ],
    ),
    RolloutCase(
        "paused",
        deployment(available=0, updated=0, paused=True),
        "tgi: 0/1 ready — paused",
        failed=True,
        reason="paused",
    ),
    RolloutCase(
        "scaled-to-zero-is-asleep",
        deployment(replicas=0, updated=0, available=0, total=0),
        "tgi: asleep (0 replicas, no GPU held; the next request wakes it)",
        done=True,
    ),
    RolloutCase(
        "pods-not-listable-trusts-the-status",
        deployment(available=0, total=1),
        "tgi: 0/1 ready — waiting for 1 pod to be created",
        replicasets=[],
    ),
]


@pytest.mark.parametrize("case", ROLLOUT_CASES, ids=lambda case: case.id)
def test_describe_rollout(case: RolloutCase) -> None:
    progress = describe_rollout(
        case.deployment, case.replicasets, case.pods, [], NOW, unschedulable_grace=60
    )
    assert progress.summary == case.summary
    assert progress.done is case.done
    assert progress.failed is case.failed
    if case.reason:
        assert case.reason in progress.reason
    else:
        assert progress.reason == ""
    assert progress.pod == case.pod


def test_rollout_failure_keeps_the_containers_output() -> None:
    progress = describe_rollout(deployment(available=0), [NEW_RS], [CRASHING_NEW], [], NOW)
    assert progress.detail.startswith("error: unexpected argument")
    assert progress.revision == "10"
    assert [pod.name for pod in progress.pods] == ["tgi-new-a"]


def test_rollout_of_several_pods_counts_the_others() -> None:
    second = make_pod(
        "tgi-new-b",
        owner="tgi-new",
        statuses=[running(5)],
        conditions=scheduled(False),
        created=100,
    )
    progress = describe_rollout(
        deployment(replicas=3, available=1, updated=3, total=3),
        [NEW_RS],
        [
            READY_NEW,
            LOADING_NEW
            | {
                "metadata": {**LOADING_NEW["metadata"], "name": "tgi-new-c", "uid": "uid-tgi-new-c"}
            },
            second,
        ],
        [],
        NOW,
    )
    assert progress.summary.startswith("tgi: 1/3 ready — pod ")
    assert progress.summary.endswith("(+1 more not ready)")
    assert progress.ready == 1


# --- progress lines --------------------------------------------------------------------------


def rollout(state: str, done: bool = False, name: str = "tgi") -> RolloutProgress:
    return RolloutProgress(name=name, done=done, summary=state + " (clock)", state=state)


def test_progress_log_prints_changes_and_a_heartbeat() -> None:
    log = ProgressLog(prefix="[wabc123-default] ", heartbeat=60)
    assert log.lines([rollout("loading")], 0) == ["[wabc123-default] loading (clock)"]
    assert log.lines([rollout("loading")], 5) == []
    assert log.lines([rollout("loading")], 59) == []
    assert log.lines([rollout("loading")], 61) == [
        "[wabc123-default] loading (clock) (waited 1m01s)"
    ]
    assert log.lines([rollout("crashed")], 62) == [
        "[wabc123-default] crashed (clock) (waited 1m02s)"
    ]
    assert log.lines([rollout("ready", done=True)], 70) == [
        "[wabc123-default] ready (clock) (waited 1m10s)"
    ]
    assert log.lines([rollout("ready", done=True)], 500) == []


def test_progress_log_keeps_a_heartbeat_per_deployment() -> None:
    log = ProgressLog(heartbeat=60)
    assert len(log.lines([rollout("a1", name="a"), rollout("b", name="b")], 0)) == 2
    # `a` changes every 30 s; `b` still gets its line once a minute.
    assert log.lines([rollout("a2", name="a"), rollout("b", name="b")], 30) == [
        "a2 (clock) (waited 30s)"
    ]
    assert log.lines([rollout("a3", name="a"), rollout("b", name="b")], 60) == [
        "a3 (clock) (waited 1m00s)",
        "b (clock) (waited 1m00s)",
    ]


def test_the_previous_revision_is_the_newest_older_one_without_its_hash_label() -> None:
    newest = deployment()
    newest["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "10"}
    template = {"metadata": {"labels": {"app": "tgi", "pod-template-hash": "abc"}}, "spec": {}}
    older = [
        dict(replicaset("tgi-older", "7"), spec={"template": {"metadata": {"labels": {}}}}),
        dict(OLD_RS, spec={"template": template}),
        dict(NEW_RS, spec={"template": {}}),
        dict(replicaset("other-app", "9", owner="open-webui"), spec={"template": {}}),
    ]
    revision, found = previous_revision(newest, older)
    assert revision == 9
    assert found == {"metadata": {"labels": {"app": "tgi"}}, "spec": {}}
    assert template["metadata"]["labels"]["pod-template-hash"] == "abc"  # the input is kept
    assert previous_revision(newest, [dict(NEW_RS, spec={})]) is None  # a first revision

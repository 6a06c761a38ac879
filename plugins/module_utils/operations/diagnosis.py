# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Why a deployment is not healthy, and what to do: pure functions over what the API returns.

The status playbook reads a namespace (Deployments, ReplicaSets, pods, events, quota, the TGI
container's log) and hands it here. `pod_progress` already says what a pod is doing in one line;
this module turns that state into a diagnosis: the problem, its cause (with the evidence it was
read from: an event, a termination message, a log line) and the fix in the collection's own terms
(variables and playbooks). No Ansible, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Callable, Dict, List, Optional  # noqa: UP035

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import format_duration
from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import ENGINE_LABELS
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import pod_gpus
from ansible_collections.haw.icc.plugins.module_utils.operations import (
    pod_progress,
    progress,
    tgi_logs,
    vllm_logs,
)

JSON = Dict[str, Any]  # noqa: UP006

# "0/5 nodes are available: 2 Insufficient nvidia.com/gpu, 3 node(s) had taint {...}, ..."
_INSUFFICIENT_GPU = re.compile(r"(\d+) Insufficient nvidia\.com/gpu")
_UNTOLERATED = re.compile(r"(\d+) node\(s\) had (?:untolerated )?taint \{([^}:]*)")
_SELECTOR = re.compile(r"(\d+) node\(s\) didn't match (?:Pod's )?node (?:selector|affinity)")
# "exceeded quota: gpu-quota, requested: requests.nvidia.com/gpu=2, used: requests.nvidia.com/gpu=1,
#  limited: requests.nvidia.com/gpu=2"
# With several resources each field lists them all: "requested: requests.memory=8Gi,requests.
# nvidia.com/gpu=1, used: ..., limited: ...".
_QUOTA = re.compile(
    r"exceeded quota: (?P<name>[^,]+), requested: (?P<requested>\S+), used: (?P<used>\S+), "
    r"limited: (?P<limited>[^\s,]+(?:,[^\s,]+)*)"
)
GPU_QUOTA = "requests.nvidia.com/gpu"
CUDA_OOM = "cuda-out-of-memory"


# Healthy: serving, or asleep with its GPUs given back (icc_idle_minutes).
HEALTHY_STATES = ("ready", "asleep")


@dataclass
class Diagnosis:
    """One application of a namespace (TGI or Open WebUI), as the status playbook shows it."""

    app: str
    state: str  # ready, asleep, starting, downloading, pending, failed, absent
    summary: str  # pod_progress's line, e.g. "tgi: 0/1 ready — pod ...: Running for 2m, ..."
    problem: str = ""  # what is wrong, one line ("" when healthy)
    cause: str = ""
    fix: List[str] = field(default_factory=list)  # noqa: UP006
    evidence: List[str] = field(default_factory=list)  # noqa: UP006  quoted lines it rests on
    download: Optional[JSON] = None  # noqa: UP045  tgi_logs.download_progress, while downloading
    pod: str = ""
    restarts: int = 0

    def as_dict(self) -> JSON:
        return asdict(self)


def _amounts(text: str) -> dict[str, str]:
    """'requests.memory=8Gi,requests.nvidia.com/gpu=1' as {resource: amount}."""
    pairs = (part.split("=", 1) for part in (text or "").strip(",").split(",") if "=" in part)
    return {key: value for key, value in pairs}


def _whole(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() else None


def playbook(name: str, namespace: str | None, *extra: str) -> str:
    """The command of one of the collection's playbooks for this namespace (the same from a
    checkout and from the installed collection)."""
    limit = f" -l {namespace}" if namespace else ""
    return " ".join((f"ansible-playbook haw.icc.{name}{limit}", *extra))


def _pod_in_question(rollout: progress.RolloutProgress, pods: list[JSON]) -> JSON | None:
    """The pod pod_progress describes (the failed or not ready one), else the first new one."""
    names = {view.name for view in rollout.pods}
    chosen = rollout.pod or next((view.name for view in rollout.pods), "")
    for pod in pods:
        if (pod.get("metadata") or {}).get("name") == chosen and chosen in names:
            return pod
    return None


def container_parts(pod: JSON | None, name: str) -> tuple[JSON, JSON]:
    """(spec, status) of one container of a pod (empty dicts when absent)."""
    pod = pod or {}
    spec = next(
        (c for c in (pod.get("spec") or {}).get("containers") or [] if c.get("name") == name), {}
    )
    status = next(
        (
            s
            for s in (pod.get("status") or {}).get("containerStatuses") or []
            if s.get("name") == name
        ),
        {},
    )
    return spec, status


def _terminated(status: JSON) -> JSON:
    state = status.get("state") or {}
    return (status.get("lastState") or {}).get("terminated") or state.get("terminated") or {}


def _scheduling(
    message: str, gpus: int, gpu_type: str, per_node: int | None, namespace: str | None
) -> tuple[str, list[str]]:
    """Cause and fixes for a pod the scheduler cannot place, from its FailedScheduling message.

    `per_node`: the most GPUs of the type one node has (the catalog's gpus_per_node)."""
    wanted = f"{gpus} x {gpu_type}" if gpus else "its resources"
    if _INSUFFICIENT_GPU.search(message):
        if per_node and gpus > per_node:
            scale = playbook("scale", namespace, f"-e tgi_gpu_count={per_node}")
            return (
                f"a {gpu_type} node has {per_node} GPUs, and all GPUs of a pod are on one node: "
                f"{gpus} can never be scheduled"
            ), [f"ask for at most {per_node}: {scale}"]
        cause = (
            f"no {gpu_type} node has {gpus} GPU{'s' if gpus != 1 else ''} free right now "
            "(other pods hold them)"
        )
        fixes = ["wait: the pod starts by itself when the GPUs are released"]
        if gpus > 1:
            scale = playbook("scale", namespace, f"-e tgi_gpu_count={gpus - 1}")
            fixes.insert(0, f"ask for fewer GPUs: {scale}")
        fixes.append("or another GPU type: -e tgi_gpu_type=<type> (see README: GPU types)")
        return cause, fixes
    taint = _UNTOLERATED.search(message)
    if _SELECTOR.search(message) or taint:
        cause = f"no node offers {wanted}: the GPU type matches no node the pod may run on"
        return cause, [
            "check tgi_gpu_type against the cluster's GPU types (the taint of the GPU nodes), "
            f"then {playbook('deploy', namespace)}"
        ]
    return f"the scheduler cannot place the pod: {message}", [
        "read the scheduler's message above; fewer GPUs or less memory (tgi_memory_request) may fit"
    ]


def _quota(message: str, namespace: str | None) -> tuple[str, list[str]]:
    match = _QUOTA.search(message)
    if not match:
        return f"the namespace's quota refuses the pod: {message}", [
            "ask for fewer resources, or ask the ICC admins for a larger quota"
        ]
    requested, used, limited = (
        _amounts(match[field]) for field in ("requested", "used", "limited")
    )
    over = [name for name in limited if name in requested] or list(limited)
    cause = f"ResourceQuota {match['name']} allows " + ", ".join(
        f"{name}={limited[name]} ({used.get(name, '0')} in use, the pod asks for "
        f"{requested.get(name, '?')})"
        for name in over
    )
    fixes = []
    if GPU_QUOTA in over:
        left = max((_whole(limited[GPU_QUOTA]) or 0) - (_whole(used.get(GPU_QUOTA)) or 0), 0)
        asked = _whole(requested.get(GPU_QUOTA))
        if left and asked and left < asked:
            scale = playbook("scale", namespace, f"-e tgi_gpu_count={left}")
            fixes.append(f"ask for at most {left} GPU{'s' if left != 1 else ''}: {scale}")
        if _whole(used.get(GPU_QUOTA)):
            fixes.append("free GPUs held by other Deployments of this namespace")
    if "requests.memory" in over or "limits.memory" in over:
        fixes.append("ask for less memory: tgi_memory_request / tgi_memory_limit")
    fixes.append("or ask the ICC admins for a larger quota")
    return cause, fixes


def _crash(
    terminated: JSON,
    spec: JSON,
    log_lines: list[str],
    capacity: JSON | None,
    namespace: str | None,
    engine: str = "tgi",
) -> tuple[str, str, list[str], list[str]]:
    """(problem kind, cause, fixes, evidence) for a container that crashed.

    CUDA out of memory is the GPUs' memory: the capacity check's estimate explains it. OOMKilled
    without it is the container's own memory limit (host RAM), which the kernel enforces."""
    message = terminated.get("message") or ""
    read = vllm_logs.vllm_failures if engine == "vllm" else tgi_logs.known_failures
    failures = read([*message.splitlines(), *log_lines])
    label = ENGINE_LABELS[engine]
    evidence = [pod_progress.first_useful_line(message)] if message.strip() else []
    cuda = next((f for f in failures if f["kind"] == CUDA_OOM), None)
    if cuda is not None:
        cause = "the model does not fit into the GPUs' memory (CUDA out of memory while loading)"
        fixes = []
        memory = (capacity or {}).get("memory") or {}
        if memory.get("per_gpu_gib") is not None:
            cause = (
                f"the model needs about {memory['per_gpu_gib']} GiB per GPU, and one GPU "
                f"offers {memory.get('usable_per_gpu_gib')} GiB (the capacity check's estimate)"
            )
            fixes += list((capacity or {}).get("recommendations") or [])[:4]
        fixes = fixes or [cuda["fix"]]
        kind = "OOMKilled" if terminated.get("reason") == "OOMKilled" else "CUDA out of memory"
        return kind, cause, fixes, _unique([*evidence, cuda["line"]])
    if terminated.get("reason") == "OOMKilled":
        deploy = playbook("deploy", namespace)
        limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
        cause = (
            "the container used more memory than its limit"
            + (f" ({limit})" if limit else "")
            + " and the kernel killed it: host memory, not the GPUs' ("
            + label
            + " loads the weights through it)"
        )
        return (
            "OOMKilled",
            cause,
            [f"a higher tgi_memory_limit (and tgi_memory_request): {deploy}"],
            evidence,
        )
    if failures:
        first = failures[0]
        return first["kind"], first["cause"], [first["fix"]], _unique([*evidence, first["line"]])
    code = terminated.get("exitCode")
    cause = f"{label} exited with code {code}" + (f": {evidence[0]}" if evidence else "")
    return "Crashed", cause, [f"read the whole log: {playbook('logs', namespace)}"], evidence


def _unique(lines: list[str]) -> list[str]:
    seen, out = set(), []
    for line in lines:
        if line and line not in seen:
            seen.add(line)
            out.append(line)
    return out


def diagnose(
    app: str,
    deployment: JSON | None,
    replicasets: list[JSON],
    pods: list[JSON],
    events: list[JSON],
    now: datetime,
    container: str,
    read_log: Callable[[str, bool], list[str]] | None = None,
    capacity: JSON | None = None,
    total_bytes: int | None = None,
    namespace: str | None = None,
    gpus_per_node: int | None = None,
    engine: str = "tgi",
) -> Diagnosis:
    """The state of one application and, when it is not healthy, why and what to do.

    `read_log(pod, previous)` gives the newest lines of the main container of a pod that is not
    ready (its previous run's after a crash); it is called at most once. `capacity` is
    gpu_capacity_check's result for the deployed settings, used to explain an out-of-memory
    kill; `total_bytes` the model's weights on the Hub, for download progress; `namespace` goes
    into the commands of the fixes; `gpus_per_node` is the catalog's figure for the pod's GPU
    type; `engine` the inference server the pod runs (tgi or vllm), whose log is read.
    """
    if deployment is None:
        return Diagnosis(
            app,
            "absent",
            f"{app}: not deployed",
            problem=f"{app} is not deployed in this namespace",
            cause="no Deployment of that name",
            fix=[playbook("deploy", namespace)],
        )
    rollout = progress.describe_rollout(deployment, replicasets, pods, events, now)
    if rollout.done and rollout.desired == 0:  # healthy: asleep (icc_idle_minutes)
        return Diagnosis(
            app,
            "asleep",
            rollout.summary,
            fix=[
                "the next chat or API request wakes it and is answered once it is ready; "
                f"or wake it now: {playbook('test', namespace)}"
            ],
        )
    pod = _pod_in_question(rollout, pods)
    view = next((v for v in rollout.pods if pod and v.name == pod["metadata"]["name"]), None)
    result = Diagnosis(
        app,
        "ready" if rollout.done else "starting",
        rollout.summary,
        pod=rollout.pod or (view.name if view else ""),
        restarts=view.restarts if view else 0,
    )
    if rollout.done:
        return result
    spec, status = container_parts(pod, container)
    crashed = int(status.get("restartCount") or 0) > 0 and not (status.get("state") or {}).get(
        "running"
    )
    log_lines = read_log(view.name, crashed) if read_log and view and status else []
    gpus = pod_gpus(pod) if pod else 0
    gpu_type = gpu_type_of((pod or {}).get("spec")) or "GPU"
    reason = rollout.reason or (view.summary if view else rollout.summary)
    if "exceeded quota" in rollout.summary or "exceeded quota" in reason:
        result.state, result.problem = "pending", f"{app} cannot create its pod"
        result.cause, result.fix = _quota(rollout.summary, namespace)
        # The quota's own words are in the summary line already.
    elif view is not None and "unschedulable" in view.summary:
        message = view.summary.split("unschedulable: ", 1)[-1]
        result.state, result.problem = "pending", f"pod {view.name} is Pending"
        result.cause, result.fix = _scheduling(message, gpus, gpu_type, gpus_per_node, namespace)
        result.evidence = [message]
    elif view is not None and any(word in view.summary for word in pod_progress.IMAGE_FAILURES):
        result.state, result.problem = "failed", f"pod {view.name} cannot pull its image"
        result.cause = f"the image {spec.get('image')} cannot be pulled"
        variable = {"tgi": "tgi_image", "idle-proxy": "tgi_idle_proxy_image"}.get(
            app, "open_webui_image"
        )
        result.fix = [
            f"check the image name and tag ({variable}); the catalog's pinned images exist"
        ]
        result.evidence = [view.summary]
    elif view is not None and "CreateContainerConfigError" in view.summary:
        result.state, result.problem = "failed", f"pod {view.name} cannot start its container"
        result.cause = "its configuration refers to something missing (usually a Secret or a key)"
        result.fix = [f"{playbook('deploy', namespace)} (creates the Secrets it needs)"]
        result.evidence = [view.summary]
    elif view is not None and (view.failed or int(status.get("restartCount") or 0) > 0):
        kind, cause, fixes, evidence = _crash(
            _terminated(status), spec, log_lines, capacity, namespace, engine
        )
        result.state = "failed"
        result.problem = f"pod {view.name}: {kind} (restart {view.restarts})"
        result.cause, result.fix, result.evidence = cause, fixes, evidence
    elif app == "tgi" and view is not None and status.get("state", {}).get("running"):
        _starting(result, view.name, log_lines, total_bytes, namespace, engine)
    else:
        result.problem = rollout.summary
        if rollout.failed:
            result.state = "failed"
            result.cause = rollout.reason
    return result


def _starting(
    result: Diagnosis,
    pod: str,
    log_lines: list[str],
    total_bytes: int | None,
    namespace: str | None,
    engine: str = "tgi",
) -> None:
    """An inference container that runs but does not serve yet: downloading (how far, from
    TGI's log; vLLM does not log its download file by file) or loading."""
    if engine == "tgi" and tgi_logs.startup_phase(log_lines) == "downloading":
        progress = tgi_logs.download_progress(log_lines, total_bytes)
        result.state, result.download = "downloading", progress
        result.problem = f"pod {pod} is downloading the model"
        result.cause = (
            _download_text(progress)
            if progress
            else ("the download has started; the file count is known once the first file is done")
        )
        result.fix = ["nothing to do but wait (status.yml shows the progress)"]
    else:
        result.problem = f"pod {pod} is loading the model"
        result.cause = f"the startup probe waits until {ENGINE_LABELS[engine]} serves"
        result.fix = [f"wait; past tgi_startup_timeout_seconds: {playbook('logs', namespace)}"]


def gpu_type_of(pod_spec: JSON | None) -> str | None:
    """The GPU type a pod (or pod template) spec asks for: the key of its GPU toleration."""
    for toleration in (pod_spec or {}).get("tolerations") or []:
        key = toleration.get("key") or ""
        if key.startswith("gpu-"):
            return key
    return None


def _download_text(progress: JSON) -> str:
    parts = [f"{progress.get('files_done')}/{progress.get('files_total')} files"]
    if progress.get("bytes_total"):
        parts.append(
            f"{progress['bytes_done'] / 2**30:.1f} of {progress['bytes_total'] / 2**30:.1f} GiB"
        )
    if progress.get("percent") is not None:
        parts.append(f"{progress['percent']:.0f}%")
    if progress.get("eta_seconds") is not None:
        eta = format_duration(progress["eta_seconds"])
        parts.append(f"about {eta} left by TGI's estimate at the last file")
    return "download in progress: " + ", ".join(parts)

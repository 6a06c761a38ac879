# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What one pod is doing, in one human line, and whether waiting can help (describe_pod), from
its status and what pod_events reads out of its events and its containers' output.

Pure functions over plain dicts as the Kubernetes API returns them (camelCase keys). No Ansible,
no I/O: the caller fetches the objects and passes the current time. progress.py builds a
Deployment's line from its pods' here.

A state "will not heal" when waiting longer cannot make the pod Ready: a crash loop, an image
that cannot be pulled, a container whose configuration refers to a missing Secret key, or a pod
the scheduler cannot place for longer than a grace period (no node has the GPUs, an
untolerated taint). Such states set `failed` with a `reason`, so a caller can stop at once
instead of waiting for its timeout.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    format_duration,
    parse_time,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.pod_events import (
    JSON,
    clip,
    clip_detail,
    event_message,
    events_for,
    first_useful_line,
    latest_warning,
    seconds_since,
    status_condition,
)

REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DEFAULT_UNSCHEDULABLE_GRACE = 60.0
TGI_IMAGE_MARK = "text-generation-inference"

# Container waiting reasons that the kubelet keeps retrying without any chance of success.
IMAGE_FAILURES = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CONFIG_FAILURES = frozenset({"CreateContainerConfigError"})
# lastState.terminated reasons that mean the container's process failed (not a clean exit).
CRASH_REASONS = frozenset({"Error", "OOMKilled", "ContainerCannotRun", "StartError"})
# Warning events worth quoting, by the situation they explain.
SCHEDULING_EVENTS = ("FailedScheduling",)
VOLUME_EVENTS = ("FailedMount", "FailedAttachVolume")
PULL_EVENTS = ("Failed",)
PROBE_EVENTS = ("Unhealthy",)

# The scheduler waits for volumes to be provisioned or bound: that heals by itself.
_VOLUME_WAIT = re.compile(
    r"unbound immediate PersistentVolumeClaims|didn't find available persistent volumes"
    r"|waiting for (?:a )?volume|volume binding",
    re.IGNORECASE,
)
# The kubelet follows "Failed to pull image ...: <why>" with a bare "Error: ErrImagePull".
_BARE_ERROR = re.compile(r"^Error: \w+$")


@dataclass
class PodProgress:
    """One pod, as a person watching it would describe it."""

    name: str
    phase: str  # the pod's status.phase: Pending, Running, Succeeded, Failed (or Unknown)
    ready: bool
    summary: str  # one line, e.g. "Running for 2m10s, not ready yet (startup probe: ...)"
    failed: bool = False  # a state that will not heal by waiting
    reason: str = ""  # why it failed, one line
    detail: str = ""  # the full text behind the reason (a container's termination message)
    state: str = ""  # the summary without its clocks: compare it to see whether anything changed
    container: str = ""  # the container the summary is about, if any
    restarts: int = 0  # restarts of all containers


def _is_tgi(container: JSON) -> bool:
    return TGI_IMAGE_MARK in (container.get("image") or "")


# --- one pod -----------------------------------------------------------------------------------


@dataclass
class _View:
    """What one container (or the scheduler) contributes to the pod's line."""

    summary: str
    state: str = ""
    failed: bool = False
    reason: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        self.state = self.state or self.summary


def _crash_view(label: str, status: JSON, spec: JSON, prefix: str) -> _View:
    """A container that failed and restarts (or waits to): quote its last output."""
    state = status.get("state") or {}
    terminated = (status.get("lastState") or {}).get("terminated") or state.get("terminated") or {}
    restarts = int(status.get("restartCount") or 0)
    message = terminated.get("message") or ""
    line = first_useful_line(message)
    if terminated.get("reason") == "OOMKilled":
        label = "OOMKilled"
        if not line:
            limit = ((spec.get("resources") or {}).get("limits") or {}).get("memory")
            line = "the container ran out of memory" + (f" (limit {limit})" if limit else "")
    if not line:
        code = terminated.get("exitCode")
        code = "unknown" if code is None else code
        line = f"exit code {code}, no termination message (see the container's previous log)"
    text = f"{prefix}{label} (restart {restarts}): {line}"
    return _View(text, failed=True, reason=text, detail=clip_detail(message))


def _last_crash(status: JSON) -> bool:
    terminated = (status.get("lastState") or {}).get("terminated") or {}
    return terminated.get("reason") in CRASH_REASONS


def _waiting_view(
    status: JSON, spec: JSON, events: list[JSON], prefix: str, phase: str
) -> _View | None:
    waiting = (status.get("state") or {}).get("waiting")
    if waiting is None:
        return None
    reason = waiting.get("reason") or "Waiting"
    message = clip(waiting.get("message") or "")
    name = status.get("name") or spec.get("name") or ""
    if reason == "CrashLoopBackOff":
        return _crash_view("CrashLoopBackOff", status, spec, prefix)
    if reason in IMAGE_FAILURES:
        event = latest_warning(events, PULL_EVENTS, container=name, skip=_BARE_ERROR)
        why = (event_message(event) if event else message) or spec.get("image") or ""
        text = f"{prefix}{reason}: {why}" if why else f"{prefix}{reason}"
        return _View(text, failed=True, reason=text)
    if reason in CONFIG_FAILURES:
        text = f"{prefix}{reason}: {message}" if message else f"{prefix}{reason}"
        return _View(text, failed=True, reason=text)
    if reason == "ContainerCreating":
        event = latest_warning(events, VOLUME_EVENTS)
        if event is not None:
            return _View(f"{phase}: {prefix}waiting for volume: {event_message(event)}")
        return _View(f"{phase}: {prefix}creating the container")
    if reason == "PodInitializing":
        return _View(f"{phase}: {prefix}initializing")
    if int(status.get("restartCount") or 0) >= 1 and _last_crash(status):
        return _crash_view("Crashed", status, spec, prefix)
    return _View(f"{phase}: {prefix}{reason}" + (f": {message}" if message else ""))


def _probe_hint(status: JSON, spec: JSON, unhealthy: str) -> str:
    """Which probe holds a running container back, in words."""
    if spec.get("startupProbe") and status.get("started") is not True:
        probe = "startup"
    elif spec.get("readinessProbe"):
        probe = "readiness"
    else:
        probe = ""
    # TGI serves nothing until the model is loaded: a refused connection means "still loading".
    if _is_tgi(spec) and probe and (not unhealthy or "connection refused" in unhealthy):
        return f"{probe} probe: loading the model"
    if unhealthy:
        return unhealthy
    if probe == "startup":
        return "startup probe: waiting for the application to start"
    if probe:
        return "readiness probe: waiting for the application"
    return ""


def _running_view(
    status: JSON, spec: JSON, events: list[JSON], now: datetime, prefix: str
) -> _View:
    """A running container that is not ready yet: for how long, and which probe holds it."""
    started_at = parse_time(((status.get("state") or {}).get("running") or {}).get("startedAt"))
    age = seconds_since(started_at, now)
    name = status.get("name") or spec.get("name") or ""
    unhealthy = latest_warning(events, PROBE_EVENTS, after=started_at, container=name)
    hint = _probe_hint(status, spec, event_message(unhealthy) if unhealthy else "")
    tail = ", not ready yet" + (f" ({hint})" if hint else "")
    clock = f" for {format_duration(age)}" if age is not None else ""
    return _View(f"{prefix}Running{clock}{tail}", f"{prefix}Running{tail}")


def _container_view(
    status: JSON,
    spec: JSON,
    events: list[JSON],
    now: datetime,
    phase: str,
    prefix: str,
    init: bool = False,
) -> _View | None:
    """None when this container is fine (ready, or an init container that completed)."""
    state = status.get("state") or {}
    terminated = state.get("terminated") or {}
    if init and terminated and terminated.get("exitCode") == 0:
        return None
    if not init and status.get("ready"):
        return None
    view = _waiting_view(status, spec, events, prefix, phase)
    if view is not None:
        return view
    if int(status.get("restartCount") or 0) >= 1 and _last_crash(status):
        # Running again after a failure: the same start-up will fail the same way.
        return _crash_view("Crashed", status, spec, prefix)
    if terminated:
        if terminated.get("reason") in CRASH_REASONS or terminated.get("exitCode"):
            return _crash_view(terminated.get("reason") or "Error", status, spec, prefix)
        return _View(f"{phase}: {prefix}terminated ({terminated.get('reason') or 'Completed'})")
    if state.get("running"):
        if init:
            age = seconds_since(parse_time(state["running"].get("startedAt")), now)
            clock = f" for {format_duration(age)}" if age is not None else ""
            return _View(f"{phase}: {prefix}running{clock}", f"{phase}: {prefix}running")
        return _running_view(status, spec, events, now, prefix)
    return _View(f"{phase}: {prefix}waiting")


def _scheduling_view(pod: JSON, events: list[JSON], now: datetime, grace: float) -> _View | None:
    """None once the pod is bound to a node."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    scheduled = status_condition(status, "PodScheduled")
    if spec.get("nodeName") or scheduled.get("status") == "True":
        return None
    event = latest_warning(events, SCHEDULING_EVENTS)
    if scheduled.get("reason") != "Unschedulable" and event is None:
        return _View("Pending: waiting to be scheduled")
    message = event_message(event) if event else clip(scheduled.get("message") or "")
    message = message or "no node fits the pod"
    if _VOLUME_WAIT.search(message):
        return _View("Pending: waiting for volume: " + message)
    text = "Pending: unschedulable: " + message
    since = parse_time(scheduled.get("lastTransitionTime")) or parse_time(
        (pod.get("metadata") or {}).get("creationTimestamp")
    )
    waited = seconds_since(since, now)
    if waited is not None and waited >= grace:
        return _View(
            text, failed=True, reason=f"unschedulable for {format_duration(waited)}: {message}"
        )
    return _View(text)


def _containers_view(
    pod: JSON, events: list[JSON], now: datetime, phase: str
) -> tuple[_View, str] | None:
    """The first init container not done, else the first failed or not ready container."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    if status_condition(status, "Initialized").get("status") != "True":
        specs = {c.get("name"): c for c in spec.get("initContainers") or []}
        for item in status.get("initContainerStatuses") or []:
            name = item.get("name") or ""
            view = _container_view(
                item, specs.get(name, {}), events, now, phase, f"init container {name}: ", True
            )
            if view is not None:
                return view, name
    specs = {c.get("name"): c for c in spec.get("containers") or []}
    views = []
    for item in status.get("containerStatuses") or []:
        name = item.get("name") or ""
        prefix = f"container {name}: " if len(specs) > 1 else ""
        view = _container_view(item, specs.get(name, {}), events, now, phase, prefix)
        if view is not None:
            views.append((view, name))
    failed = [entry for entry in views if entry[0].failed]
    return (failed or views or [None])[0]


def describe_pod(
    pod: JSON,
    events: list[JSON],
    now: datetime,
    unschedulable_grace: float = DEFAULT_UNSCHEDULABLE_GRACE,
) -> PodProgress:
    """Describes one pod; `events` may hold the whole namespace's events (filtered here)."""
    now = parse_time(now)
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    phase = status.get("phase") or "Pending"
    mine = events_for(pod, events)
    statuses = status.get("containerStatuses") or []
    ready_condition = status_condition(status, "Ready")
    ready = ready_condition.get("status") == "True"
    container = ""

    if meta.get("deletionTimestamp"):
        view = _View("Terminating")
    elif phase in ("Succeeded", "Failed"):
        why = ": ".join(part for part in (status.get("reason"), status.get("message")) if part)
        view = _View(phase + (": " + clip(why) if why else ""))
    elif ready:
        age = seconds_since(parse_time(ready_condition.get("lastTransitionTime")), now)
        view = _View("Ready" + (f" for {format_duration(age)}" if age else ""), "Ready")
    else:
        view = _scheduling_view(pod, mine, now, unschedulable_grace)
        if view is None:
            found = _containers_view(pod, mine, now, phase)
            if found is not None:
                view, container = found
            elif not statuses:
                volume = latest_warning(mine, VOLUME_EVENTS)
                view = _View(
                    f"{phase}: waiting for volume: {event_message(volume)}"
                    if volume is not None
                    else f"{phase}: starting"
                )
            else:
                view = _View(f"{phase}, not ready yet")
    return PodProgress(
        name=meta.get("name") or "",
        phase=phase,
        ready=ready,
        summary=view.summary,
        failed=view.failed,
        reason=view.reason,
        detail=view.detail,
        state=view.state,
        container=container,
        restarts=sum(int(s.get("restartCount") or 0) for s in statuses),
    )

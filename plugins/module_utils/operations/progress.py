# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What a Deployment's rollout is doing, in one human line, and whether waiting can help: its
newest revision's pods (each described by pod_progress), the revision before it, and when to
tell the user (ProgressLog).

Pure functions over plain dicts as the Kubernetes API returns them (camelCase keys). No Ansible,
no I/O: the caller fetches the objects, passes the current time and decides what to print. Used
by the wait_for_rollout and tgi_model_switch action plugins and by the status's diagnosis.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import datetime

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    format_duration,
    parse_time,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.pod_progress import (
    DEFAULT_UNSCHEDULABLE_GRACE,
    JSON,
    REVISION_ANNOTATION,
    PodProgress,
    clip,
    describe_pod,
    seconds_since,
    status_condition,
)


@dataclass
class RolloutProgress:
    """One Deployment: is its newest revision ready, and if not, what is its pod doing."""

    name: str
    done: bool
    summary: str  # e.g. "tgi: 0/1 ready — pod tgi-7c9f-x2l: Running for 45s, not ready yet"
    failed: bool = False
    reason: str = ""  # e.g. "pod tgi-7c9f-x2l: CrashLoopBackOff (restart 3): error: ..."
    detail: str = ""
    state: str = ""  # the summary without its clocks
    desired: int = 1
    ready: int = 0  # ready pods of the newest revision
    revision: str = ""
    replicaset: str = ""  # the newest ReplicaSet's name, when known
    pod: str = ""  # the pod the summary is about
    pods: list[PodProgress] = field(default_factory=list)  # pods of the newest revision


# --- one Deployment ----------------------------------------------------------------------------


# What the idle proxy (roles/tgi_server/files/idle_proxy.py, which runs alone and cannot import
# this) notes on the server's Deployment: when it put it to sleep, the last request, a failed
# wake, the tokens generated.
ASLEEP_SINCE_ANNOTATION = "haw.icc/asleep-since"
LAST_REQUEST_ANNOTATION = "haw.icc/last-request"
WAKE_PROBLEM_ANNOTATION = "haw.icc/wake-problem"  # when a wake failed, and why
GENERATED_TOKENS_ANNOTATION = "haw.icc/generated-tokens"  # since the proxy was deployed


def _revision(obj: JSON | None) -> int:
    annotations = ((obj or {}).get("metadata") or {}).get("annotations") or {}
    try:
        return int(annotations.get(REVISION_ANNOTATION))
    except (TypeError, ValueError):
        return -1


def _owned_by(obj: JSON, owner: JSON) -> bool:
    meta = owner.get("metadata") or {}
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if meta.get("uid") and ref.get("uid"):
            if ref["uid"] == meta["uid"]:
                return True
        elif ref.get("name") == meta.get("name"):
            return True
    return False


def _created(obj: JSON) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('creationTimestamp') or ''} {meta.get('name') or ''}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _replica_failure(obj: JSON | None) -> JSON | None:
    condition = status_condition((obj or {}).get("status") or {}, "ReplicaFailure")
    return condition if condition.get("status") == "True" else None


def previous_revision(deployment: JSON, replicasets: list[JSON]) -> tuple[int, JSON] | None:
    """(revision, pod template) of the Deployment's revision before its newest one, as
    `kubectl rollout undo` finds it, or None when there is none.

    The template comes without the ReplicaSet's `pod-template-hash` label: written back to the
    Deployment, it makes the controller reuse that ReplicaSet.
    """
    newest = _revision(deployment)
    older = [
        rs for rs in replicasets or [] if _owned_by(rs, deployment) and 0 < _revision(rs) < newest
    ]
    if not older:
        return None
    replicaset = max(older, key=_revision)
    template = copy.deepcopy((replicaset.get("spec") or {}).get("template") or {})
    labels = (template.get("metadata") or {}).get("labels") or {}
    labels.pop("pod-template-hash", None)
    return _revision(replicaset), template


def _split_pods(
    deployment: JSON, replicasets: list[JSON], pods: list[JSON]
) -> tuple[JSON | None, list[JSON], list[JSON]]:
    """The newest ReplicaSet of the Deployment, the pods it owns, and pods of older ones."""
    owned = [rs for rs in replicasets or [] if _owned_by(rs, deployment)]
    newest = max(owned, key=lambda rs: (_revision(rs), _created(rs))) if owned else None
    new_pods, old_pods = [], []
    for pod in sorted(pods or [], key=_created):
        if newest is not None and _owned_by(pod, newest):
            new_pods.append(pod)
        elif any(_owned_by(pod, rs) for rs in owned):
            old_pods.append(pod)
    return newest, new_pods, old_pods


def _rollout_done(deployment: JSON, old_pods: list[JSON]) -> bool:
    meta, status = deployment.get("metadata") or {}, deployment.get("status") or {}
    desired = _desired(deployment)
    return (
        int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 0)
        and int(status.get("updatedReplicas") or 0) == desired
        and int(status.get("availableReplicas") or 0) == desired
        and int(status.get("replicas") or 0) == desired
        and not old_pods
    )


def _desired(deployment: JSON) -> int:
    replicas = (deployment.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _waiting_tail(
    deployment: JSON,
    newest: JSON | None,
    live: int,
    old_pods: list[JSON],
    now: datetime,
    grace: float,
) -> tuple[str, str]:
    """(summary tail, failure reason) when no pod of the newest revision is waiting."""
    status = deployment.get("status") or {}
    desired = _desired(deployment)
    failure = _replica_failure(newest) or _replica_failure(deployment)
    if failure:
        message = clip(failure.get("message") or failure.get("reason") or "")
        waited = seconds_since(parse_time(failure.get("lastTransitionTime")), now)
        failed = waited is None or waited >= grace
        return "cannot create pods: " + message, (
            "cannot create pods: " + message
        ) if failed else ""
    if live < desired:
        tail = f"waiting for {_plural(desired - live, 'pod')} to be created"
    elif old_pods:
        tail = "waiting for pods of the older revision to go"
    elif int(status.get("availableReplicas") or 0) < desired:
        tail = "waiting for the pods to count as available"
    else:
        tail = "waiting for the Deployment controller"
    if status_condition(status, "Progressing").get("reason") == "ProgressDeadlineExceeded":
        tail += " (progress deadline exceeded)"
    return tail, ""


def describe_rollout(
    deployment: JSON,
    replicasets: list[JSON],
    pods: list[JSON],
    events: list[JSON],
    now: datetime,
    unschedulable_grace: float = DEFAULT_UNSCHEDULABLE_GRACE,
) -> RolloutProgress:
    """Describes a Deployment's rollout from its ReplicaSets, pods and the namespace's events.

    `replicasets` and `pods` may hold more than this Deployment's (they are filtered by owner).
    Done means: the controller saw the latest spec, every desired replica runs the newest
    revision and is available, and no pod of an older revision is left. Only pods of the newest
    ReplicaSet (by revision annotation) can fail the rollout.
    """
    now = parse_time(now)
    meta, spec = deployment.get("metadata") or {}, deployment.get("spec") or {}
    status = deployment.get("status") or {}
    name = meta.get("name") or ""
    desired = _desired(deployment)
    newest, new_pods, old_pods = _split_pods(deployment, replicasets, pods)
    views = [describe_pod(pod, events, now, unschedulable_grace) for pod in new_pods]
    live = [view for view in views if view.state != "Terminating"]
    ready = sum(1 for view in live if view.ready)
    if not new_pods:  # pods unknown (not listed, or not allowed to list): trust the status
        ready = min(int(status.get("updatedReplicas") or 0), int(status.get("readyReplicas") or 0))
    revision = _revision(newest)
    done = _rollout_done(deployment, old_pods)
    progress = RolloutProgress(
        name=name,
        done=done,
        summary="",
        desired=desired,
        ready=desired if done else ready,
        revision=str(revision) if revision >= 0 else "",
        replicaset=((newest or {}).get("metadata") or {}).get("name") or "",
        pods=views,
    )
    tail, state_tail = "", None
    if progress.done:
        pass
    elif spec.get("paused"):
        tail = "paused"
        progress.failed = True
        progress.reason = "the Deployment is paused (spec.paused): its rollout cannot progress"
    elif int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        tail = "waiting for the Deployment controller to see the new spec"
    elif [view for view in live if view.failed or not view.ready]:
        waiting = [view for view in live if not view.ready]
        chosen = ([view for view in live if view.failed] or waiting)[0]
        more = f" (+{len(waiting) - 1} more not ready)" if len(waiting) > 1 else ""
        tail = f"pod {chosen.name}: {chosen.summary}{more}"
        state_tail = f"pod {chosen.name}: {chosen.state}{more}"
        progress.pod = chosen.name
        if chosen.failed:
            progress.failed = True
            progress.reason = f"pod {chosen.name}: {chosen.reason}"
            progress.detail = chosen.detail
    else:
        tail, reason = _waiting_tail(
            deployment, newest, len(live), old_pods, now, unschedulable_grace
        )
        if reason:
            progress.failed, progress.reason = True, reason

    head = f"{name}: {progress.ready}/{desired} ready"
    if done and desired == 0:  # the idle proxy's sleep (icc_idle_minutes), or scaled by hand
        head = f"{name}: asleep (0 replicas, no GPU held; the next request wakes it)"
    if old_pods:
        head += f", {_plural(len(old_pods), 'pod')} of an older revision left"
    progress.summary = head + (f" — {tail}" if tail else "")
    state_tail = tail if state_tail is None else state_tail
    progress.state = head + (f" — {state_tail}" if state_tail else "")
    return progress


# --- when to tell the user -------------------------------------------------------------------


class ProgressLog:
    """Decides which progress lines to print while waiting, so the output stays readable.

    A Deployment's line is printed when its state changes (its summary without the clocks) and,
    while it is not done, at least every `heartbeat` seconds, with the time waited so far.
    """

    def __init__(self, prefix: str = "", heartbeat: float = 60.0) -> None:
        self.prefix = prefix
        self.heartbeat = heartbeat
        self._states: dict[str, str] = {}
        self._printed: dict[str, float] = {}

    def lines(self, rollouts: list[RolloutProgress], elapsed: float) -> list[str]:
        out = []
        for rollout in rollouts:
            changed = self._states.get(rollout.name) != rollout.state
            last = self._printed.get(rollout.name)
            due = not rollout.done and (last is None or elapsed - last >= self.heartbeat)
            self._states[rollout.name] = rollout.state
            if not (changed or due):
                continue
            self._printed[rollout.name] = elapsed
            clock = f" (waited {format_duration(elapsed)})" if elapsed >= 1 else ""
            out.append(f"{self.prefix}{rollout.summary}{clock}")
        return out

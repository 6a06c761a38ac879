# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Waiting for Deployments to roll out, and the shape of what a wait found.

`wait_for_rollouts` polls through a watcher (module_utils/operations/rollout.py) until every
Deployment is ready, a pod is in a state that will not heal, or the time is up, turning what the
pods do into lines (module_utils/operations/progress.py) that it hands to a callback.
`rollout_report` and `failure_message` shape its findings for task results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional  # noqa: UP035

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import format_duration
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import (
    ProgressLog,
    RolloutProgress,
)

HEARTBEAT_SECONDS = 60.0
ERROR_TOLERANCE_SECONDS = 60.0  # how long API errors may last once the first poll worked

READY = "ready"
FAILED = "failed"  # a pod of the newest revision is in a state that will not heal
TIMED_OUT = "timed out"
UNOBSERVED = "unobserved"  # the API could not be read (gone, forbidden, unreachable too long)


@dataclass
class WaitOutcome:
    """How a wait ended: `status` is READY, FAILED, TIMED_OUT or UNOBSERVED."""

    status: str
    rollouts: Dict[str, RolloutProgress]  # noqa: UP006 - the last state seen, by name
    elapsed: float
    message: Optional[str] = None  # noqa: UP045 - why it failed, for the user
    failing: list = field(default_factory=list)  # the rollouts that will not heal

    @property
    def ready(self) -> bool:
        return self.status == READY


def rollout_report(progress: RolloutProgress) -> dict[str, Any]:
    """A rollout as the `deployments` entries of wait_for_rollout's result."""
    report = {
        "ready": progress.done,
        "summary": progress.summary,
        "replicas": progress.desired,
        "ready_replicas": progress.ready,
        "revision": progress.revision,
        "failed": progress.failed,
        "reason": progress.reason,
        "pod": progress.pod,
    }
    if progress.detail:
        report["detail"] = progress.detail
    return report


def failure_message(progress: RolloutProgress, namespace: str) -> str:
    message = f"Deployment {progress.name} in namespace {namespace} cannot become ready: "
    message += progress.reason
    if progress.detail and progress.detail.strip() not in progress.reason:
        message += "\n\nLast output of the container:\n" + progress.detail
    return message


def _at_least_generation(deployment: dict[str, Any], minimum: int | None) -> dict[str, Any]:
    """The Deployment as if at generation `minimum`, so an older read never counts as done."""
    meta = deployment.get("metadata") or {}
    if minimum is None or int(meta.get("generation") or 0) >= minimum:
        return deployment
    return dict(deployment, metadata=dict(meta, generation=minimum))


def wait_for_rollouts(
    watcher: Any,
    names: list[str],
    *,
    timeout: float,
    poll_interval: float,
    grace: float,
    show: Callable[[str], None],
    warn: Callable[[str], None],
    log: ProgressLog | None = None,
    fail_fast: bool = True,
    generations: dict[str, int] | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Polls until every Deployment in `names` is rolled out, showing lines through `show`.

    `generations` holds, per Deployment, the generation a patch produced: the wait looks at
    that spec or a newer one. API errors are retried for ERROR_TOLERANCE_SECONDS once a first
    round worked (each new one reported through `warn`); 401/403/404 end the wait at once.
    """
    log = log or ProgressLog(heartbeat=HEARTBEAT_SECONDS)
    minimum = generations or {}
    began = clock()
    deadline = began + timeout
    last_success: float | None = None
    last_problem = ""
    rollouts: dict[str, RolloutProgress] = {}

    def finish(status: str, message: str | None, failing: list | None = None) -> WaitOutcome:
        elapsed = round(clock() - began, 1)
        return WaitOutcome(status, rollouts, elapsed, message, list(failing or []))

    while True:
        round_began = clock()
        try:
            # Deployments first: a missing or forbidden one ends the wait before anything else.
            deployments = [
                _at_least_generation(watcher.deployment(name), minimum.get(name)) for name in names
            ]
            events = watcher.events()
            for name, deployment in zip(names, deployments):  # noqa: B905 - Python 3.8
                rollouts[name] = watcher.rollout(deployment, events, grace)
            last_success, last_problem = clock(), ""
        except ApiError as problem:
            since = began if last_success is None else last_success
            if (
                problem.lasting
                or last_success is None
                or (clock() - since >= ERROR_TOLERANCE_SECONDS)
            ):
                return finish(UNOBSERVED, str(problem))
            if str(problem) != last_problem:
                warn(f"{problem}; retrying")
                last_problem = str(problem)
        elapsed = clock() - began
        current = [rollouts[name] for name in names if name in rollouts]
        for line in log.lines(current, elapsed):
            show(line)
        if len(current) == len(names) and all(r.done for r in current):
            return finish(READY, None)
        failing = [r for r in current if r.failed and not r.done]
        if failing and fail_fast:
            message = "\n\n".join(failure_message(r, watcher.namespace) for r in failing)
            return finish(FAILED, message, failing)
        now = clock()
        if now >= deadline:
            pending = [r for r in current if not r.done]
            lines = "\n".join(
                r.summary + (f" (would not heal: {r.reason})" if r.failed else "") for r in pending
            )
            message = (
                f"timed out after {format_duration(timeout)} waiting for "
                f"Deployment(s) {', '.join(names)} in namespace {watcher.namespace}:\n{lines}"
            )
            if failing:
                message += "\n\n" + "\n\n".join(
                    failure_message(r, watcher.namespace) for r in failing
                )
            return finish(TIMED_OUT, message, failing)
        pause = max(0.0, round_began + poll_interval - now)
        sleep(min(pause, max(0.0, deadline - now)))

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""A change of a running TGI to new settings, safely: a new model (change_model.yml) or another
number of GPUs (the gpu_scale role) are both new settings of the same pod.

ModelSwitch reads the Deployment, writes what differs as one JSON patch (the owned part and the
patch: workload/tgi_pod_spec.py), waits for the new revision while it shows what the new pod
does, and puts the previous settings back when the new ones do not come up. It words every
outcome for the task's result. Its `watcher` is a RolloutWatcher (operations/rollout.py) or a
fake; what it shows and warns goes to the callables it is given.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import format_duration
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import runs_on_cpu
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import (
    DEFAULT_UNSCHEDULABLE_GRACE,
    REVISION_ANNOTATION,
    ProgressLog,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout import FIELD_MANAGER
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout_wait import (
    HEARTBEAT_SECONDS,
    READY,
    TIMED_OUT,
    UNOBSERVED,
    WaitOutcome,
    rollout_report,
    wait_for_rollouts,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_pod_spec import (
    SwitchRefused,
    find_container,
    live_spec,
    same_spec,
    spec_view,
    switch_patch,
)

PATCH_ATTEMPTS = 3  # the Deployment controller writes status often: a stale read is normal
OOM_MARKS = ("OOMKilled", "OutOfMemoryError", "out of memory")


def should_roll_back(outcome: WaitOutcome, rollback: bool) -> bool:
    """Roll back when the new revision failed or timed out; not when the API could not be read.

    Without a view of the cluster nobody knows whether the new revision works, and a rollback
    write would most likely fail the same way.
    """
    return rollback and outcome.status not in (READY, UNOBSERVED)


def gpus_text(count: int) -> str:
    """'CPU', '1 GPU', '2 GPUs'."""
    return "CPU" if runs_on_cpu(count) else f"{count} GPU" + ("s" if count > 1 else "")


def serving_text(view: dict[str, Any]) -> str:
    """What a pod (spec_view) serves: 'model A on 1 GPU'."""
    return f"model {view['model_id']} on {gpus_text(view['gpus'])}"


def describe_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """'from model A to B', 'from 1 GPU to 2 GPUs', both, or 'the settings of model A'."""
    parts = []
    if before["model_id"] != after["model_id"]:
        parts.append(f"from model {before['model_id']} to {after['model_id']}")
    if before["gpus"] != after["gpus"]:
        parts.append(f"from {gpus_text(before['gpus'])} to {gpus_text(after['gpus'])}")
    return " and ".join(parts) or f"the settings of model {after['model_id']}"


def switch_result(
    *,
    changed: bool,
    before: dict[str, Any],
    after: dict[str, Any],
    revision_before: str,
    revision_after: str | None,
    replicaset: str | None = None,
    rolled_back: bool = False,
    report: dict[str, Any] | None = None,
    diff: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result keys every path returns, in one shape."""
    result = {
        "changed": changed,
        "model": {"before": before["model_id"], "after": after["model_id"]},
        "gpus": {"before": before["gpus"], "after": after["gpus"]},
        "revision": {"before": revision_before, "after": revision_after},
        "replicaset": replicaset,
        "rolled_back": rolled_back,
        "deployment": report or {},
    }
    if diff is not None:
        result["diff"] = diff
    return result


def failure_hint(outcome: WaitOutcome, timeout: int) -> str:
    """What to do about a revision that did not come up (a paragraph), or ''."""
    text = outcome.message or ""
    if any(mark in text for mark in OOM_MARKS):
        return (
            "\n\nThe model does not fit into the GPU memory: check it with "
            "haw.icc.gpu_capacity_check, then choose a smaller model, a quantization "
            "(tgi_quantize) or more GPUs (playbooks/scale.yml)"
        )
    if outcome.status == TIMED_OUT:
        return (
            f"\n\nA first start downloads the model: if it only needs longer, raise the "
            f"timeout (now {format_duration(timeout)})"
        )
    return ""


def unrolled_message(outcome: WaitOutcome, where: str, change: str, old: str, hint: str) -> str:
    """The failure of a change that is not rolled back: the rollout could not be followed, or
    the task said rollback: false. `old` is what served before (serving_text)."""
    if outcome.status == UNOBSERVED:
        return (
            f"changed {where} {change}, but cannot follow the rollout: {outcome.message}. "
            "The new revision may still be starting; look again with "
            f"haw.icc.wait_for_rollout, and go back to {old} if it does not come up"
        )
    return (
        f"the change of {where} {change} failed and was not rolled back (rollback: false): "
        f"{outcome.message}{hint}\nGo back to {old} (or another choice) to restore the service"
    )


def _revision(deployment: dict[str, Any]) -> str:
    return ((deployment.get("metadata") or {}).get("annotations") or {}).get(
        REVISION_ANNOTATION, ""
    )


# --- the switch --------------------------------------------------------------------------------


class ModelSwitch:
    """One switch of one Deployment; `watcher` reads and patches (a RolloutWatcher or a fake)."""

    def __init__(
        self,
        watcher: Any,
        args: dict[str, Any],
        *,
        check_mode: bool,
        show: Callable[[str], None],
        warn: Callable[[str], None],
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.watcher = watcher
        self.args = args
        self.name = args["name"]
        self.namespace = args["namespace"]
        self.where = f"Deployment {self.name} in namespace {self.namespace}"
        self.container = args["container"]
        self.check_mode = check_mode
        self.show = show
        self.warn = warn
        self.prefix = prefix
        self.clock = clock
        self.sleep = sleep

    # reading --------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            return self.watcher.deployment(self.name)
        except ApiError as problem:
            if problem.status == 404:
                raise SwitchRefused(
                    f"{problem}: the switch changes a running TGI and does not create one; "
                    "run playbooks/deploy.yml first"
                ) from problem
            raise

    # writing --------------------------------------------------------------------------------

    def _patch(
        self, deployment: dict[str, Any], spec: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        """Patches the owned part of the pod to `spec` (see live_spec), re-reading and retrying
        when the Deployment changed meanwhile."""
        for attempt in range(1, PATCH_ATTEMPTS + 1):
            index, _live = find_container(deployment, self.container)
            version = (deployment.get("metadata") or {}).get("resourceVersion") or ""
            patch = switch_patch(version, deployment, index, spec)
            try:
                return self.watcher.patch_deployment(self.name, patch, FIELD_MANAGER, dry_run)
            except ApiError as problem:
                # A failed `test` is a bare 422: see whether the Deployment moved on since.
                if problem.status not in (409, 422):
                    raise
                deployment = self._read()
                moved = (deployment.get("metadata") or {}).get("resourceVersion") != version
                if not moved or attempt == PATCH_ATTEMPTS:
                    raise ApiError(
                        f"the API server refused the change of Deployment {self.name}: {problem}"
                        + (" (it kept changing while being patched; run again)" if moved else ""),
                        problem.status,
                    ) from problem
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, timeout: int, generation: int | None) -> WaitOutcome:
        return wait_for_rollouts(
            self.watcher,
            [self.name],
            timeout=timeout,
            poll_interval=self.args["poll_interval"],
            grace=float(self.args.get("unschedulable_grace", DEFAULT_UNSCHEDULABLE_GRACE)),
            log=ProgressLog(prefix=self.prefix, heartbeat=HEARTBEAT_SECONDS),
            show=self.show,
            warn=self.warn,
            generations={self.name: generation} if generation else None,
            clock=self.clock,
            sleep=self.sleep,
        )

    def _snapshot(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """The rollout as it is now, for the result of a run that writes nothing."""
        try:
            events = self.watcher.events()
            progress = self.watcher.rollout(deployment, events, DEFAULT_UNSCHEDULABLE_GRACE)
        except ApiError as problem:
            self.warn(f"cannot describe the rollout of Deployment {self.name}: {problem}")
            return {}
        return rollout_report(progress)

    # the whole switch -----------------------------------------------------------------------

    def run(self, wanted: dict[str, Any]) -> dict[str, Any]:
        """Changes the pod to `wanted` (see wanted_spec); the task result (with `failed` on
        failure)."""
        deployment = self._read()
        _index, container = find_container(deployment, self.container)
        live = live_spec(deployment, container, wanted["annotations"])
        before, after = spec_view(live), spec_view(wanted)
        revision_before = _revision(deployment)
        where, change = self.where, describe_change(before, after)
        result_of = partial(
            switch_result, before=before, after=after, revision_before=revision_before
        )
        if same_spec(live, wanted):
            result = result_of(
                changed=False, revision_after=revision_before, report=self._snapshot(deployment)
            )
            result["msg"] = f"{where} already runs {serving_text(after)} with these settings"
            return result
        header = f"Deployment {self.name}, container {self.container}"
        diff = {
            "before": before,
            "after": after,
            "before_header": f"{header} (revision {revision_before or 'unknown'})",
            "after_header": f"{header} (new revision)",
        }
        if self.check_mode:
            self._patch(deployment, wanted, dry_run=True)
            result = result_of(
                changed=True, revision_after=None, report=self._snapshot(deployment), diff=diff
            )
            result["msg"] = (
                f"check mode: would change {where} {change} (the API server accepted the change "
                "in a dry run; nothing was written)"
            )
            return result

        patched = self._patch(deployment, wanted)
        generation = (patched.get("metadata") or {}).get("generation")
        self.show(f"{self.prefix}{self.name}: changing {change}")
        outcome = self._wait(self.args["timeout"], generation)
        progress = outcome.rollouts.get(self.name)
        result = result_of(
            changed=True,
            revision_after=(progress.revision if progress else "") or None,
            replicaset=self.watcher.replicasets.get(self.name),
            report=rollout_report(progress) if progress else {},
            diff=diff,
        )
        result["elapsed"] = outcome.elapsed
        if outcome.ready and progress is not None and progress.desired == 0:
            result["asleep"] = True
            result["msg"] = (
                f"changed {where} {change}: revision {result['revision']['after']}; the server "
                "sleeps (icc_idle_minutes), and the new revision starts with the next request "
                "(test.yml wakes it now and tests it)"
            )
            return result
        if outcome.ready:
            result["msg"] = (
                f"changed {where} {change}: revision {result['revision']['after']} "
                f"(ReplicaSet {result['replicaset']}) ready after "
                f"{format_duration(outcome.elapsed)}"
            )
            return result
        result["failed"] = True
        if progress is not None and outcome.status != UNOBSERVED:
            result["failed_rollout"] = rollout_report(progress)
        hint = failure_hint(outcome, self.args["timeout"])
        if not should_roll_back(outcome, self.args["rollback"]):
            result["msg"] = unrolled_message(outcome, where, change, serving_text(before), hint)
            return result
        return self._roll_back(result, outcome, live, serving_text(before), change, hint)

    def _roll_back(
        self,
        result: dict[str, Any],
        outcome: WaitOutcome,
        previous: dict[str, Any],
        old: str,
        change: str,
        hint: str,
    ) -> dict[str, Any]:
        """Writes the `previous` spec back (what served `old`) and waits for it."""
        where, why = self.where, f"{outcome.message}{hint}"
        self.show(f"{self.prefix}{self.name}: the new revision failed; rolling back to {old}")
        try:
            patched = self._patch(self._read(), previous)
        except (ApiError, SwitchRefused) as problem:
            result["msg"] = (
                f"the change of {where} {change} failed, and the rollback to {old} failed "
                f"too.\n\nWhy the change failed: {why}\n\nWhy the rollback failed: {problem}"
                f"\n\nThe Deployment still runs the new settings: run playbooks/deploy.yml with "
                f"the previous ones ({old}) to restore it"
            )
            return result
        restored = self._wait(
            self.args["rollback_timeout"], (patched.get("metadata") or {}).get("generation")
        )
        result["rolled_back"] = True
        progress = restored.rollouts.get(self.name)
        if progress is not None:
            result["deployment"] = rollout_report(progress)
        result["elapsed"] = round(outcome.elapsed + restored.elapsed, 1)
        if restored.ready:
            result["msg"] = (
                f"the change of {where} {change} failed, so it was rolled back: {old} serves "
                f"again (revision {progress.revision if progress else '?'}).\n\nWhy the change "
                f"failed: {why}"
            )
        else:
            result["msg"] = (
                f"the change of {where} {change} failed; the previous settings ({old}) were "
                f"written back, but they did not become ready either.\n\nWhy the change failed: "
                f"{why}\n\nWhy the rollback failed: {restored.message}"
            )
        return result

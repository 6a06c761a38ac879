# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.wait_for_rollout: waits on the controller and shows progress.

It runs on the controller (not as a module) so that it can print a line while it waits: a
student watching a model download sees what the pod is doing instead of a silent spinner. The
logic that turns API objects into those lines lives in module_utils/operations/progress.py,
the client and the polling loop in module_utils/operations/rollout_wait.py (shared with
tgi_model_switch); this file only checks the options, prints and shapes the result.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import format_duration
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import (
    ASLEEP_SINCE_ANNOTATION,
    WAKE_PROBLEM_ANNOTATION,
    ProgressLog,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout import (
    RolloutWatcher,
    undo_rollout,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout_wait import (
    FAILED,
    HEARTBEAT_SECONDS,
    TIMED_OUT,
    WaitOutcome,
    rollout_report,
    wait_for_rollouts,
)
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)

display = Display()
# Who woke a sleeping server, in its managedFields (the idle proxy follows the replicas).
WAKE_FIELD_MANAGER = "haw.icc-wake"


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        names = list(dict.fromkeys(args["names"]))
        namespace = args["namespace"]
        listed = ", ".join(names)
        if not names:
            return self._fail(result, "names must list at least one Deployment")
        problem = self._timing_problem(args, ("timeout", "unschedulable_grace", "rollback_timeout"))
        if problem:
            return self._fail(result, problem)
        if self._task.check_mode:
            result["skipped"] = True
            result["msg"] = (
                f"check mode: not waiting for Deployment(s) {listed} in namespace {namespace} "
                "(in check mode they may not exist yet)"
            )
            return result
        api = self._cluster_api(args)
        host = to_text(task_vars.get("inventory_hostname") or "")
        return self._wait(result, api, namespace, names, args, host)

    def _wait(
        self,
        result: dict[str, Any],
        api: Any,
        namespace: str,
        names: list[str],
        args: dict[str, Any],
        host: str,
    ) -> dict[str, Any]:
        watcher = RolloutWatcher(api, namespace)
        prefix = f"[{host}] " if host else ""

        def wait(wanted: list[str], timeout: int, generations: dict | None = None) -> WaitOutcome:
            return wait_for_rollouts(
                watcher,
                wanted,
                timeout=timeout,
                poll_interval=args["poll_interval"],
                grace=float(args["unschedulable_grace"]),
                fail_fast=args["fail_fast"],
                generations=generations,
                log=ProgressLog(prefix=prefix, heartbeat=HEARTBEAT_SECONDS),
                show=display.display,
                warn=lambda message: display.warning(f"{host}: {message}"),
            )

        asleep = self._wake(watcher, names, prefix) if args["wake"] else []
        outcome = wait(names, args["timeout"])
        self._finish(result, outcome, watcher)
        if asleep and outcome.ready:
            result["woken"] = {name: outcome.elapsed for name in asleep}
            woken = ", ".join(asleep)
            result["msg"] = f"woken ({woken}), ready after {format_duration(outcome.elapsed)}"
        if outcome.ready or not args["rollback"] or outcome.status not in (FAILED, TIMED_OUT):
            return result
        return self._roll_back(result, outcome, watcher, wait, prefix, args["rollback_timeout"])

    @staticmethod
    def _wake(watcher: RolloutWatcher, names: list[str], prefix: str) -> list[str]:
        """Scales each Deployment that sleeps (0 replicas) to 1; the names of those woken."""
        woken = []
        for name in names:
            try:
                deployment = watcher.deployment(name)
            except ApiError:  # missing or not readable: the wait names it
                continue
            if (deployment.get("spec") or {}).get("replicas") != 0:
                continue
            display.display(f"{prefix}{name}: asleep (0 replicas); waking it")
            notes = (deployment.get("metadata") or {}).get("annotations") or {}
            patch = [{"op": "replace", "path": "/spec/replicas", "value": 1}]
            for note in (ASLEEP_SINCE_ANNOTATION, WAKE_PROBLEM_ANNOTATION):
                if note in notes:
                    key = note.replace("~", "~0").replace("/", "~1")
                    patch.append({"op": "remove", "path": f"/metadata/annotations/{key}"})
            watcher.patch_deployment(name, patch, WAKE_FIELD_MANAGER)
            woken.append(name)
        return woken

    def _roll_back(
        self,
        result: dict[str, Any],
        outcome: WaitOutcome,
        watcher: RolloutWatcher,
        wait: Any,
        prefix: str,
        timeout: int,
    ) -> dict[str, Any]:
        """Puts back the revision before each failed one, waits for it, and says why."""
        why = outcome.message or "the new revision did not become ready"
        failed = [name for name, rollout in outcome.rollouts.items() if not rollout.done]
        generations, revisions = {}, {}
        for name in failed:
            new_revision = outcome.rollouts[name].revision or "?"
            try:
                revision, generation = undo_rollout(watcher, name)
            except ApiError as problem:
                result["msg"] = (
                    f"{why}\n\nThe new revision {new_revision} of Deployment {name} could not be "
                    f"rolled back: {problem}"
                )
                return result
            display.display(
                f"{prefix}{name}: revision {new_revision} failed; rolling back to revision "
                f"{revision}"
            )
            generations[name], revisions[name] = generation, revision
        restored = wait(failed, timeout, generations)
        result["rolled_back"] = revisions
        result["elapsed"] = round(outcome.elapsed + restored.elapsed, 1)
        result["deployments"].update(
            {name: rollout_report(r) for name, r in restored.rollouts.items()}
        )
        back = ", ".join(f"{name} revision {revision}" for name, revision in revisions.items())
        if restored.ready:
            result["msg"] = (
                f"{why}\n\nRolled back: {back} serves again, as before this change. Fix what "
                "failed before applying it again: the inventory still asks for it."
            )
        else:
            result["msg"] = (
                f"{why}\n\nRolled back to {back}, but it did not become ready either: "
                f"{restored.message}"
            )
        return result

    @staticmethod
    def _finish(
        result: dict[str, Any], outcome: WaitOutcome, watcher: RolloutWatcher
    ) -> dict[str, Any]:
        result["elapsed"] = outcome.elapsed
        result["deployments"] = {name: rollout_report(r) for name, r in outcome.rollouts.items()}
        if watcher.warnings:
            result["warnings"] = list(watcher.warnings)
        if not outcome.ready:
            result["failed"] = True
            result["msg"] = outcome.message
        else:
            ready = ", ".join(r.summary for r in outcome.rollouts.values())
            result["msg"] = f"ready after {format_duration(result['elapsed'])}: {ready}"
        return result

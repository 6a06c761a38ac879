# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.wait_for_rollout: waits on the controller and shows progress.

It runs on the controller (not as a module) so that it can print a line while it waits: a
student watching a model download sees what the pod is doing instead of a silent spinner. The
logic that turns API objects into those lines lives in module_utils/pod_progress.py, the client
and the polling loop in module_utils/k8s_client.py (shared with tgi_model_switch); this file
only checks the options, prints and shapes the result.
"""

from __future__ import annotations

from typing import Any

from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.k8s_client import (
    HEARTBEAT_SECONDS,
    RolloutWatcher,
    SetupError,
    WaitOutcome,
    rollout_report,
    wait_for_rollouts,
)
from ansible_collections.haw.icc.plugins.module_utils.pod_progress import (
    ProgressLog,
    format_duration,
)
from ansible_collections.haw.icc.plugins.modules.wait_for_rollout import ARGUMENT_SPEC
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import KubernetesAction

display = Display()


class ActionModule(KubernetesAction):
    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        names = list(dict.fromkeys(args["names"]))
        namespace = args["namespace"]
        listed = ", ".join(names)
        result["changed"] = False
        if not names:
            return self._fail(result, "names must list at least one Deployment")
        if args["poll_interval"] < 1 or args["timeout"] < 0 or args["unschedulable_grace"] < 0:
            return self._fail(
                result, "poll_interval must be >= 1, timeout and unschedulable_grace >= 0"
            )
        if self._task.check_mode:
            result["skipped"] = True
            result["msg"] = (
                f"check mode: not waiting for Deployment(s) {listed} in namespace {namespace} "
                "(in check mode they may not exist yet)"
            )
            return result
        try:
            api = self._api_client(args)
        except SetupError as error:
            return self._fail(result, f"cannot connect to Kubernetes: {error}")
        host = to_text(task_vars.get("inventory_hostname") or "")
        try:
            return self._wait(result, api, namespace, names, args, host)
        finally:
            api.close()

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
        outcome = wait_for_rollouts(
            watcher,
            names,
            timeout=args["timeout"],
            poll_interval=args["poll_interval"],
            grace=float(args["unschedulable_grace"]),
            fail_fast=args["fail_fast"],
            log=ProgressLog(prefix=f"[{host}] " if host else "", heartbeat=HEARTBEAT_SECONDS),
            show=display.display,
            warn=lambda message: display.warning(f"{host}: {message}"),
        )
        return self._finish(result, outcome, watcher)

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

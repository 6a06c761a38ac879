# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.tgi_model_switch: changes a running TGI to new settings, safely.

A new model (change_model.yml) or another number of GPUs (the gpu_scale role) are both new
settings of the same pod. It runs on the controller so that it can print what the new pod does
while it starts. The work is in module_utils: the pod from workload/tgi_workload.py (the function
the tgi_server role renders its Deployment with; vllm_workload.py for a vLLM namespace), the part
of it the switch owns and the JSON patch in workload/tgi_pod_spec.py, the switch itself (write,
wait, roll back, the messages) in operations/model_switch.py. This file types the settings,
connects, and prints what happens.
"""

from __future__ import annotations

from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.operations.model_switch import ModelSwitch
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout import RolloutWatcher
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_pod_spec import (
    SwitchRefused,
    wanted_spec,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import TgiSettingsError
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import tgi_workload
from ansible_collections.haw.icc.plugins.module_utils.workload.vllm_workload import vllm_workload
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)

display = Display()


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        problem = self._timing_problem(args, ("timeout", "rollback_timeout", "unschedulable_grace"))
        if problem:
            return self._fail(result, problem)
        where = f"Deployment {args['name']} in namespace {args['namespace']}"
        try:
            make = vllm_workload if args["engine"] == "vllm" else tgi_workload
            workload = make(args["settings"], args["catalog"] or None)
        except TgiSettingsError as error:
            problems = "\n".join(f"- {problem}" for problem in error.errors)
            return self._fail(result, f"Refusing to change {where}:\n{problems}")
        watcher = RolloutWatcher(self._cluster_api(args), args["namespace"])
        host = to_text(task_vars.get("inventory_hostname") or "")
        switch = ModelSwitch(
            watcher,
            args,
            check_mode=bool(self._task.check_mode),
            show=display.display,
            warn=lambda message: display.warning(f"{host}: {message}" if host else message),
            prefix=f"[{host}] " if host else "",
        )
        try:
            result.update(switch.run(wanted_spec(workload, args["pod_annotations"])))
            result["multi_gpu"] = workload["multi_gpu"]
        except SwitchRefused as refusal:
            return self._fail(result, f"Refusing to change {where}: {refusal}")
        except ApiError as problem:
            return self._fail(result, f"cannot change {where}: {problem}")
        if watcher.warnings:
            result["warnings"] = list(watcher.warnings)
        return result

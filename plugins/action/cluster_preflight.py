# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.cluster_preflight: connects, says with which credentials, and runs
the namespace's check (module_utils/operations/preflight.py). Which cluster and credentials were
used is printed as the task ends (the playbooks need no task of their own to show it)."""

from __future__ import annotations

from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.operations import preflight
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)

display = Display()


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        namespace = args["namespace"]
        result.update(namespace_exists=None, namespace_created=False, denied=[], volume_problems=[])
        api, found = self._connect(args)
        result.update(
            server=found.server, server_version=found.version, credentials=found.describe()
        )
        warnings: list[str] = []
        try:
            stop = preflight.check(
                api, found.describe(), args, self._task.check_mode, result, warnings.append
            )
        except ApiError as error:
            stop = f"Checking namespace {namespace} failed: {error}"
        if warnings:
            result["warnings"] = warnings
        if stop:
            return self._fail(result, stop)
        result["msg"] = (
            f"{found.server} (Kubernetes {found.version}), namespace {namespace}, with "
            f"{found.describe()}"
        )
        host = to_text(task_vars.get("inventory_hostname") or "")
        display.display(f"[{host}] {result['msg']}" if host else result["msg"])
        return result

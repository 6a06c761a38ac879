# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.gpu_capacity_check: the check (module_utils/capacity/check.py) on the
task's options, reading the cluster only when GPUs are asked for, and the verdict printed as the
task ends."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.capacity.check import check
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)

display = Display()


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """The verdict in one line, and how TGI will use the GPUs (when the request was judged)."""
    lines = [str(result["msg"])] if result.get("msg") else []
    reason = (result.get("multi_gpu") or {}).get("reason")
    return lines + ([str(reason)] if reason else [])


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        warnings: list[str] = []
        try:
            stop = check(args, result, lambda: self._cluster_api(args), warnings)
        finally:  # also when the connection cannot be made (the base fails the task then)
            if warnings:
                result["warnings"] = warnings
        if stop:
            return self._fail(result, stop)
        # A refusal says all of it in the failure; a verdict that passes is shown here (the
        # playbooks need no task of their own to print it).
        host = to_text(task_vars.get("inventory_hostname") or "")
        for line in verdict_lines(result):
            display.display(f"[{host}] {line}" if host else line)
        return result

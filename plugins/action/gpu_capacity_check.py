# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.gpu_capacity_check: its module's run() inside the controller's process
(see plugin_utils/in_process_module.py), and the verdict printed as the task ends."""

from __future__ import annotations

from typing import Any

from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.modules.gpu_capacity_check import argspec, run
from ansible_collections.haw.icc.plugins.plugin_utils.in_process_module import (
    InProcessModuleAction,
)

display = Display()


def verdict_lines(result: dict[str, Any]) -> list[str]:
    """The verdict in one line, and how TGI will use the GPUs (when the request was judged)."""
    lines = [str(result["msg"])] if result.get("msg") else []
    reason = (result.get("multi_gpu") or {}).get("reason")
    return lines + ([str(reason)] if reason else [])


class ActionModule(InProcessModuleAction):
    ARGUMENT_SPEC = argspec()
    RUN = staticmethod(run)

    def act(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        result = super().act(result, args, task_vars)
        # A refusal says all of it in the failure; a verdict that passes is shown here (the
        # playbooks need no task of their own to print it).
        if not result.get("failed"):
            host = to_text(task_vars.get("inventory_hostname") or "")
            for line in verdict_lines(result):
                display.display(f"[{host}] {line}" if host else line)
        return result

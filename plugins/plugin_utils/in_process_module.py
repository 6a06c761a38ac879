# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Run a collection module's run(module) inside an action plugin, on the controller.

A module task costs a new Python process that imports the kubernetes library and its typed
models again (about a second each time, for every namespace of a course). The same code run
in the action plugin's worker starts from Ansible's process, where kubernetes_action.py has
imported them once. The module file keeps its run(module) and main(), so it still documents
itself and runs under ansible-test and the unit tests as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import KubernetesAction


class ModuleDone(Exception):
    """exit_json or fail_json was called: the module's result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result.get("msg", ""))
        self.result = result


class InProcessModule:
    """What the modules' run() uses of AnsibleK8SModule, for a run inside the controller."""

    server_side_dry_run = False

    def __init__(self, params: dict[str, Any], check_mode: bool) -> None:
        self.params = params
        self.check_mode = check_mode
        self.warnings: list[str] = []
        self.no_log_values: set[str] = set()

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def requires(self, *_args: Any, **_kwargs: Any) -> None:
        """The controller has the kubernetes library (kubernetes_action.py imported it)."""

    def fail_json(self, msg: str, **result: Any) -> None:
        raise ModuleDone({**result, "failed": True, "msg": msg})

    def exit_json(self, **result: Any) -> None:
        raise ModuleDone(result)


class InProcessModuleAction(KubernetesAction):
    """An action plugin whose work is its module's run(module)."""

    RUN: ClassVar[Callable[[Any], None]]

    def act(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        module = InProcessModule(args, self._task.check_mode)
        try:
            type(self).RUN(module)
        except ModuleDone as done:
            result.update(done.result)
        else:  # pragma: no cover - every run() ends in exit_json or fail_json
            return self._fail(result, "the module ended without a result")
        if module.warnings:
            result["warnings"] = [*result.get("warnings", []), *module.warnings]
        return result

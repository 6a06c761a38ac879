# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The base of the collection's action plugins: they all run on the controller only."""

from __future__ import annotations

from typing import Any, ClassVar

from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """No connection to a host, check mode supported, one failure shape.

    A plugin sets ARGUMENT_SPEC (its module's) and implements act(); run() validates the task's
    arguments against the spec first.
    """

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False
    ARGUMENT_SPEC: ClassVar[dict[str, Any]] = {}
    # Option names of which exactly one must be given, when the plugin has such a choice.
    ONE_OF: ClassVar[tuple[str, ...]] = ()

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        one_of = [list(self.ONE_OF)] if self.ONE_OF else None
        _validation, args = self.validate_argument_spec(
            argument_spec=self.ARGUMENT_SPEC, mutually_exclusive=one_of, required_one_of=one_of
        )
        result["changed"] = False
        return self.act(result, args, task_vars or {})

    def act(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        """The plugin's work: `result` to fill and return, `args` validated."""
        raise NotImplementedError

    @staticmethod
    def _fail(result: dict[str, Any], message: str) -> dict[str, Any]:
        result["failed"] = True
        result["msg"] = message
        return result

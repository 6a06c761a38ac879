# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The base of the collection's action plugins: they all run on the controller only.

The shape of a module and its action plugin is stated in module_utils/action_docs.py.
"""

from __future__ import annotations

import json
from importlib import import_module
from typing import Any, ClassVar

from ansible.plugins.action import ActionBase
from ansible_collections.haw.icc.plugins.plugin_utils.worker_memory import freeze_imported_objects

JSON = dict[str, Any]  # a task's result, its arguments, its variables


class ControllerAction(ActionBase):
    """No connection to a host, check mode supported, one failure shape.

    A plugin implements act(); run() validates the task's arguments first, against the
    ARGUMENT_SPEC of the module file of the same name (plugins/modules/<name>.py), or the
    plugin's own ARGUMENT_SPEC where it sets one.
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
            argument_spec=self.argument_spec(), mutually_exclusive=one_of, required_one_of=one_of
        )
        result["changed"] = False
        # Plain types: Ansible's tagged strings (a value from a variable) are a str subclass that
        # YAML writers and JSON-typed libraries do not know ('cannot represent an object').
        args = json.loads(json.dumps(args, default=str))
        return self._act(result, args, task_vars or {})

    def _act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        """act(), where a base class may turn what it raises into the task's failure."""
        return self.act(result, args, task_vars)

    @classmethod
    def argument_spec(cls) -> dict[str, Any]:
        """The options: plugins/modules/<name>.py's ARGUMENT_SPEC for plugins/action/<name>.py."""
        if cls.ARGUMENT_SPEC:
            return cls.ARGUMENT_SPEC
        module = import_module(cls.__module__.replace(".plugins.action.", ".plugins.modules."))
        return module.ARGUMENT_SPEC

    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        """The plugin's work: `result` to fill and return, `args` validated."""
        raise NotImplementedError

    @staticmethod
    def _fail(result: dict[str, Any], message: str) -> dict[str, Any]:
        result["failed"] = True
        result["msg"] = message
        return result


# Imported in Ansible's main process before the first worker of a task of ours is forked.
freeze_imported_objects()

"""Fixtures of the unit tests: an action plugin run as Ansible runs it, without a play."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest


@pytest.fixture
def run_action() -> Callable[..., dict[str, Any]]:
    """run_action(name, args, check_mode=False, diff=False, task_vars=None): the result of
    haw.icc.<name>'s action plugin for a task with these arguments."""

    def run(
        name: str,
        args: dict[str, Any],
        check_mode: bool = False,
        diff: bool = False,
        task_vars: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        plugin = importlib.import_module(f"ansible_collections.haw.icc.plugins.action.{name}")
        task = SimpleNamespace(
            args=dict(args),
            async_val=0,
            check_mode=check_mode,
            diff=diff,
            action=f"haw.icc.{name}",
            environment=None,
        )
        connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
        action = plugin.ActionModule(task, connection, SimpleNamespace(), None, None, None)
        return action.run(task_vars=task_vars or {})

    return run

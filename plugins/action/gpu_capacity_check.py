# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.gpu_capacity_check: its module's run() inside the controller's process
(see plugin_utils/in_process_module.py)."""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.modules.gpu_capacity_check import argspec, run
from ansible_collections.haw.icc.plugins.plugin_utils.in_process_module import (
    InProcessModuleAction,
)


class ActionModule(InProcessModuleAction):
    ARGUMENT_SPEC = argspec()
    RUN = staticmethod(run)

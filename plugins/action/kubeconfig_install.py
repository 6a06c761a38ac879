# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.kubeconfig_install: the install of
module_utils/cluster/kubeconfig_file.py, on the controller, where the user's kubeconfig is."""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils.cluster.kubeconfig_file import (
    InstallFailed,
    install,
)
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import (
    JSON,
    ControllerAction,
)


class ActionModule(ControllerAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        try:
            result.update(install(args, self._task.check_mode, self._task.diff))
        except InstallFailed as failure:
            result.update(failure.result)
            return self._fail(result, str(failure))
        return result

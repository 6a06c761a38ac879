# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.gpu_monitor: samples TGI's GPUs and metrics, writes a CSV and a plot.

It runs on the controller so that it can print a line per sample. What is sampled, written and
drawn is module_utils/operations/monitor.py's (and monitor_plot.py's); this file checks the
options and the folder, connects, prints and shapes the result.
"""

from __future__ import annotations

import os

from ansible import constants as C
from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.operations.monitor import (
    Sampler,
    gpu_command,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.tgi_metrics import (
    PROMETHEUS_CLIENT_ERROR,
)
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)

display = Display()


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        result["problems"] = []
        namespace = args["namespace"]
        if args["interval"] < 1 or args["samples"] < 1:
            return self._fail(result, "interval and samples must each be at least 1")
        if PROMETHEUS_CLIENT_ERROR is not None:
            return self._fail(
                result,
                "prometheus_client is needed on the Ansible controller to read TGI's /metrics "
                f"(pip install prometheus_client): {PROMETHEUS_CLIENT_ERROR}",
            )
        try:
            command = gpu_command(args["gpu_command"])
        except ValueError as error:
            return self._fail(result, str(error))
        directory = os.path.abspath(os.path.expanduser(args["directory"]))
        if self._task.check_mode:
            result["skipped"] = True
            result["msg"] = (
                f"check mode: would sample namespace {namespace} {args['samples']} times every "
                f"{args['interval']} s and write a CSV file and a plot into {directory}"
            )
            return result
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as error:
            return self._fail(result, f"cannot create the folder {directory}: {error.strerror}")
        if not os.access(directory, os.W_OK | os.X_OK):
            return self._fail(result, f"cannot write into the folder {directory}")
        api = self._cluster_api(args)
        prefix = f"[{to_text(task_vars.get('inventory_hostname') or namespace)}] "
        sampler = Sampler(
            api,
            args,
            command,
            show=lambda line: display.display(prefix + line),
            # A line of its own (a warning would be wrapped), in the warning colour.
            show_problem=lambda line: display.display(prefix + line, color=C.COLOR_WARN),
        )
        result.update(sampler.run(directory))
        written = ", ".join(path for path in (result["csv"], result["png"]) if path)
        result["msg"] = f"{namespace}: {args['samples']} samples in {written}"
        return result

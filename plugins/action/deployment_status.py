# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.deployment_status: connects and reads the namespace's status
(module_utils/operations/status.py)."""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    CatalogError,
    merged_catalog,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.status import read_status
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    JSON,
    KubernetesAction,
)


class ActionModule(KubernetesAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        namespace = args["namespace"]
        result.update(namespace=namespace, healthy=False, tgi={}, open_webui={}, lines=[])
        api = self._cluster_api(args)
        try:
            catalog = merged_catalog(args["catalog"])
        except CatalogError as error:
            return self._fail(result, f"icc_gpu_catalog: {error}")
        warnings: list[str] = []
        try:
            result.update(read_status(api, args, catalog, warnings))
        except ApiError as error:
            return self._fail(result, f"Reading namespace {namespace} failed: {error}")
        if warnings:
            result["warnings"] = warnings
        return result

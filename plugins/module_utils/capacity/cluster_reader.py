# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What the capacity check reads from the cluster: nodes, pods, the namespace's quota and the
pods of the Deployment being replaced. Read-only; a read this user may not make gives None and a
warning, so the check degrades under namespace-only rights instead of failing.
"""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError, resource_path
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import label_selector
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import pod_gpus, pod_key

UNFINISHED_PODS = "status.phase!=Succeeded,status.phase!=Failed"


class ClusterReader:
    """Reads what the cluster rules need through ClusterApi (module_utils/cluster/api.py). A
    forbidden read gives None and a warning; any other failure is the ApiError."""

    def __init__(self, api, namespace, warnings):
        self.api = api
        self.namespace = namespace
        self.warnings = warnings

    def _here(self, api_version, plural, name=None):
        """The path of the namespace's `plural` (or one of them, `name`)."""
        return resource_path(api_version, plural, self.namespace, name)

    def _listed(self, what, consequence, path, **query):
        """Items of a list call; None, with a warning, when this user may not make it."""
        try:
            return self.api.list(path, query)
        except ApiError as error:
            if error.status != 403:
                raise
            self.warnings.append(f"cannot {what} ({error}): {consequence}")
            return None

    def nodes(self):
        return self._listed(
            "list nodes", "free GPUs per node unknown; quota only", resource_path("v1", "nodes")
        )

    def pods_everywhere(self):
        return self._listed(
            "list the pods of all namespaces",
            "GPUs in use per node unknown; quota only",
            resource_path("v1", "pods"),
            fieldSelector=UNFINISHED_PODS,
        )

    def quotas(self):
        return self._listed(
            f"read the ResourceQuotas of {self.namespace}",
            "whether the quota leaves enough GPUs is unknown",
            self._here("v1", "resourcequotas"),
        )

    def pods_of_deployment(self, name):
        """The unfinished pods of the Deployment `name`; none when it does not exist."""
        not_released = f"the GPUs of Deployment {name}'s pod are not counted as released"
        try:
            deployment = self.api.get(self._here("apps/v1", "deployments", name))
        except ApiError as error:
            if error.status == 404:
                return []
            if error.status != 403:
                raise
            self.warnings.append(
                f"cannot read Deployment {name} in {self.namespace} ({error}): " + not_released
            )
            return []
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        if not selector:
            return []
        pods = self._listed(
            f"list the pods in {self.namespace}",
            not_released,
            self._here("v1", "pods"),
            labelSelector=selector,
            fieldSelector=UNFINISHED_PODS,
        )
        return pods or []

    def gpu_pods_here(self, exclude=()):
        """Names and GPUs of the namespace's unfinished pods that hold GPUs, but `exclude`;
        None when they cannot be listed (they only serve a recommendation)."""
        try:
            pods = self.api.list(self._here("v1", "pods"), {"fieldSelector": UNFINISHED_PODS})
        except ApiError:
            return None
        skipped = {pod_key(pod) for pod in exclude}
        return [
            (pod["metadata"]["name"], pod_gpus(pod))
            for pod in pods
            if pod_gpus(pod) and pod_key(pod) not in skipped
        ]

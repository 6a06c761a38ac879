# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What the capacity check reads from the cluster: nodes, pods, the namespace's quota and the
pods of the Deployment being replaced. Read-only; a read this user may not make gives None and a
warning, so the check degrades under namespace-only rights instead of failing.
"""

from __future__ import annotations

import json

from ansible_collections.haw.icc.plugins.module_utils.cluster.connection import (
    REQUEST_TIMEOUT,
    api_message,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import label_selector
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import pod_gpus, pod_key

try:
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError
except ImportError:  # reported by the module's requirement check
    ApiException = HTTPError = OSError

UNFINISHED_PODS = "status.phase!=Succeeded,status.phase!=Failed"


class ClusterReader:
    """Reads what the cluster rules need. A forbidden read gives None and a warning."""

    def __init__(self, core, apps, namespace, warnings):
        self.core = core
        self.apps = apps
        self.namespace = namespace
        self.warnings = warnings

    def _call(self, method, *args, **kwargs):
        response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        return json.loads(response.data or b"{}")

    def _items(self, method, *args, **kwargs):
        return self._call(method, *args, **kwargs).get("items") or []

    def _listed(self, what, consequence, method, *args, **kwargs):
        """Items of a list call; None, with a warning, when this user may not make it."""
        try:
            return self._items(method, *args, **kwargs)
        except ApiException as error:
            if error.status != 403:
                raise
            self.warnings.append(f"cannot {what} ({api_message(error)}): {consequence}")
            return None

    def nodes(self):
        return self._listed(
            "list nodes", "free GPUs per node unknown; quota only", self.core.list_node
        )

    def pods_everywhere(self):
        return self._listed(
            "list the pods of all namespaces",
            "GPUs in use per node unknown; quota only",
            self.core.list_pod_for_all_namespaces,
            field_selector=UNFINISHED_PODS,
        )

    def quotas(self):
        return self._listed(
            f"read the ResourceQuotas of {self.namespace}",
            "whether the quota leaves enough GPUs is unknown",
            self.core.list_namespaced_resource_quota,
            self.namespace,
        )

    def pods_of_deployment(self, name):
        """The unfinished pods of the Deployment `name`; none when it does not exist."""
        not_released = f"the GPUs of Deployment {name}'s pod are not counted as released"
        try:
            deployment = self._call(self.apps.read_namespaced_deployment, name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return []
            if error.status != 403:
                raise
            self.warnings.append(
                f"cannot read Deployment {name} in {self.namespace} ({api_message(error)}): "
                + not_released
            )
            return []
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        if not selector:
            return []
        pods = self._listed(
            f"list the pods in {self.namespace}",
            not_released,
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=selector,
            field_selector=UNFINISHED_PODS,
        )
        return pods or []

    def gpu_pods_here(self, exclude=()):
        """Names and GPUs of the namespace's unfinished pods that hold GPUs, but `exclude`;
        None when they cannot be listed (they only serve a recommendation)."""
        try:
            pods = self._items(
                self.core.list_namespaced_pod, self.namespace, field_selector=UNFINISHED_PODS
            )
        except (ApiException, HTTPError, OSError):
            return None
        skipped = {pod_key(pod) for pod in exclude}
        return [
            (pod["metadata"]["name"], pod_gpus(pod))
            for pod in pods
            if pod_gpus(pod) and pod_key(pod) not in skipped
        ]

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""How many GPUs the cluster has free, from the objects the Kubernetes API returns.

Inputs are API objects as dicts in the API's own JSON shape (camelCase keys, as `kubectl get -o
json` prints them): Nodes, Pods and ResourceQuotas. Outputs are plain dicts for module results.

- `free_gpus_by_node`: per node of one GPU type, allocatable GPUs minus what running pods
  request, plus what the pods about to be replaced (the namespace's current TGI pod) release.
- `quota_left`: what the namespace's GPU ResourceQuota still allows, with the same release.

Pure Python: no Ansible imports, no I/O, so the module and unit tests share it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

GPU_RESOURCE = "nvidia.com/gpu"
# Quotas limit extended resources by their request ("requests." prefix); the bare name is
# accepted as well, as for cpu and memory.
QUOTA_GPU_RESOURCES = ("requests." + GPU_RESOURCE, GPU_RESOURCE)
TERMINATED_PHASES = ("Succeeded", "Failed")


def gpu_quantity(value) -> int:
    """A GPU count from a resource quantity ("4", 4, "2.0"); missing or unreadable -> 0."""
    if value is None or isinstance(value, bool):
        return 0
    try:
        return int(Decimal(str(value).strip()))
    except (InvalidOperation, ValueError):
        return 0


def container_gpus(container) -> int:
    """GPUs one container asks for (its request, else its limit); none -> 0."""
    resources = container.get("resources") or {}
    # Extended resources need request == limit; the API server copies a lone limit into the
    # request, but objects built by hand may carry only the limit.
    for kind in ("requests", "limits"):
        amounts = resources.get(kind) or {}
        if GPU_RESOURCE in amounts:
            return gpu_quantity(amounts[GPU_RESOURCE])
    return 0


def pod_gpus(pod) -> int:
    """GPUs a pod requests, counted as the scheduler does.

    App containers run together (their requests add up); init containers run one at a time
    before them (the largest one counts). The pod needs the larger of the two.
    """
    spec = pod.get("spec") or {}
    running = sum(container_gpus(c) for c in spec.get("containers") or [])
    init = max((container_gpus(c) for c in spec.get("initContainers") or []), default=0)
    return max(running, init)


def holds_gpus(pod) -> bool:
    """Whether the pod still holds what it requests: every pod not finished does, including
    pending ones and pods being deleted (until they are gone)."""
    return (pod.get("status") or {}).get("phase") not in TERMINATED_PHASES


def pod_key(pod):
    """Identity of a pod: its uid when known, else namespace/name."""
    metadata = pod.get("metadata") or {}
    return metadata.get("uid") or (metadata.get("namespace"), metadata.get("name"))


def released_gpus(released_pods) -> int:
    """GPUs held by the pods that the deployment will replace."""
    return sum(pod_gpus(pod) for pod in released_pods if holds_gpus(pod))


def is_gpu_node(node, gpu_type) -> bool:
    """GPU nodes of a type carry a taint whose key is the type (e.g. gpu-tesla-v100)."""
    taints = (node.get("spec") or {}).get("taints") or []
    return any(taint.get("key") == gpu_type for taint in taints)


def node_unusable_reason(node):
    """Why no new pod can start on the node (cordoned, not ready), or None when it can."""
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned (unschedulable)"
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    if ready is None or ready.get("status") != "True":
        return "not ready"
    return None


def free_gpus_by_node(nodes, pods, gpu_type, released_pods=()) -> dict:
    """Free GPUs on each node of `gpu_type`, and the most free on one node.

    nodes: every Node; pods: every Pod of every namespace (a pod's GPUs are all on one node);
    released_pods: pods that will be gone before the new one needs its GPUs (they are counted
    only when they are among `pods`).

    Returns {"nodes": [{"name", "allocatable", "requested", "released", "free", "schedulable",
    "note"}] sorted by name, "free_gpus": most free on one node (0 when there is no such node)}.
    A cordoned or not-ready node has 0 free; "note" says why.
    """
    released = {pod_key(pod) for pod in released_pods}
    requested_by_node = {}
    released_by_node = {}
    for pod in pods:
        node_name = (pod.get("spec") or {}).get("nodeName")
        gpus = pod_gpus(pod)
        if not node_name or not gpus or not holds_gpus(pod):
            continue
        requested_by_node[node_name] = requested_by_node.get(node_name, 0) + gpus
        if pod_key(pod) in released:
            released_by_node[node_name] = released_by_node.get(node_name, 0) + gpus

    rows = []
    for node in nodes:
        if not is_gpu_node(node, gpu_type):
            continue
        name = (node.get("metadata") or {}).get("name")
        status = node.get("status") or {}
        amounts = status.get("allocatable") or status.get("capacity") or {}
        allocatable = gpu_quantity(amounts.get(GPU_RESOURCE))
        requested = requested_by_node.get(name, 0)
        node_released = released_by_node.get(name, 0)
        unusable = node_unusable_reason(node)
        free = 0 if unusable else max(allocatable - requested + node_released, 0)
        rows.append(
            {
                "name": name,
                "allocatable": allocatable,
                "requested": requested,
                "released": node_released,
                "free": free,
                "schedulable": unusable is None,
                "note": unusable,
            }
        )
    rows.sort(key=lambda row: row["name"] or "")
    return {"nodes": rows, "free_gpus": max((row["free"] for row in rows), default=0)}


def _quota_amount(amounts, resource):
    return gpu_quantity(amounts[resource]) if resource in amounts else None


def quota_left(quotas, released_gpus=0):
    """What the namespace's ResourceQuotas still allow in GPUs, or None when none limits GPUs.

    quotas: the namespace's ResourceQuota objects. released_gpus: GPUs of the namespace's pods
    that the deployment replaces (they leave the quota's "used").

    Returns {"name", "resource", "hard", "used", "released", "left"} of the tightest limit.
    When the quota controller has not computed a limit's usage yet, "used" and "left" are None
    and that limit is returned: nothing can be said until it has.
    """
    limits = []
    for quota in quotas:
        name = (quota.get("metadata") or {}).get("name")
        spec_hard = (quota.get("spec") or {}).get("hard") or {}
        status = quota.get("status") or {}
        status_hard = status.get("hard") or {}
        used_amounts = status.get("used") or {}
        for resource in QUOTA_GPU_RESOURCES:
            # status.hard is what the quota controller enforces; a new quota has only spec.hard
            hard = _quota_amount(status_hard, resource)
            if hard is None:
                hard = _quota_amount(spec_hard, resource)
            if hard is None:
                continue
            used = _quota_amount(used_amounts, resource)
            # Only GPUs the quota counts can come back: never more than it has used.
            released = 0 if used is None else min(max(int(released_gpus), 0), used)
            left = None if used is None else max(hard - used + released, 0)
            limits.append(
                {
                    "name": name,
                    "resource": resource,
                    "hard": hard,
                    "used": used,
                    "released": released,
                    "left": left,
                }
            )
    if not limits:
        return None
    pending = [limit for limit in limits if limit["left"] is None]
    if pending:
        return pending[0]
    return min(limits, key=lambda limit: limit["left"])

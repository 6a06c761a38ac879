# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The capacity check's cluster rules: are the GPUs free on one node, does the quota allow them.

Pure functions over what module_utils/gpu/allocation.py computes from the API's objects; the
model's own rules are gpu_rules'. `judge(gpu_type, count)` says whether the model rules pass for
another configuration: it finds the alternatives a refusal proposes. No Ansible, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import free_gpus_by_node

GPUS_FREE = "gpus-free"
GPU_QUOTA = "gpu-quota"
CLUSTER_RULES = {
    GPUS_FREE: "a node of the GPU type has as many GPUs free as asked for",
    GPU_QUOTA: "the namespace's GPU quota leaves as many GPUs as asked for",
}
Judge = Callable[[str, int], bool]


def rule(rule_id: str, verdict: str, reason: str, options: Iterable[str] = ()) -> tuple:
    """A verdict shaped like gpu_rules' entries, and the alternatives one by one."""
    options = list(options)
    entry = {"id": rule_id, "verdict": verdict, "reason": reason, "recommendation": ""}
    if verdict in ("refuse", "unknown"):
        entry["recommendation"] = " or ".join(options)
    return entry, options


def gpus_word(count: int) -> str:
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


def most_gpus_that_pass(judge: Judge, gpu_type: str, most: int) -> int | None:
    """The largest GPU count from `most` down to 1 (the closest to what was asked) on which the
    model rules pass, or None: an alternative to GPUs is never the CPU."""
    for count in range(most, 0, -1):
        if judge(gpu_type, count):
            return count
    return None


def gpus_free_rule(
    gpu_type: str,
    wanted: int,
    other_types: list[str],
    nodes: list | None,
    pods: list | None,
    released_pods: list,
    judge: Judge,
) -> tuple[tuple, dict | None]:
    """Verdict of "gpus-free" and the per-node table (None when nodes or pods are unknown)."""
    if nodes is None or pods is None:  # the reader has warned
        unknown = rule(
            GPUS_FREE,
            "unknown",
            "nodes or the pods of other namespaces cannot be listed with these rights, so the "
            "free GPUs per node are unknown",
            [
                "ask the cluster admins which GPU types have free GPUs",
                "watch the TGI pod after deploying: it stays Pending while no node has enough "
                "GPUs free",
            ],
        )
        return unknown, None
    table = free_gpus_by_node(nodes, pods, gpu_type, released_pods)
    most = table["free_gpus"]
    if most >= wanted:
        best = max(table["nodes"], key=lambda row: row["free"])
        reason = f"node {best['name']} has {best['free']} of {best['allocatable']} GPUs free"
        if best["released"]:
            reason += f" ({best['released']} of them held by the pod being replaced)"
        return rule(GPUS_FREE, "pass", reason), table
    if not table["nodes"]:
        reason = f"no node is tainted {gpu_type}: the cluster has no GPUs of that type"
    else:
        free = ", ".join(f"{row['name']} {row['free']}" for row in table["nodes"])
        reason = f"no {gpu_type} node has {gpus_word(wanted)} free; free per node: {free}"
    options = []
    count = most_gpus_that_pass(judge, gpu_type, min(most, wanted - 1))
    if count is not None:
        options.append(
            f"{count} x {gpu_type}: the model fits and runs, and a node has them free "
            f"(set tgi_gpu_count: {count})"
        )
    for other in other_types:
        other_most = free_gpus_by_node(nodes, pods, other, released_pods)["free_gpus"]
        count = most_gpus_that_pass(judge, other, min(other_most, wanted))
        if count is not None:
            options.append(
                f"{count} x {other}: the model fits and runs, and a node has {other_most} free "
                f"(set tgi_gpu_type: {other}, tgi_gpu_count: {count})"
            )
    if table["nodes"]:
        options.append("try again later, when other pods have released GPUs")
    return rule(GPUS_FREE, "refuse", reason, options), table


def gpu_quota_rule(
    namespace: str,
    gpu_type: str,
    wanted: int,
    quotas: list | None,
    quota: Mapping | None,
    other_gpu_pods: list | None,
    judge: Judge,
    warnings: list[str],
) -> tuple:
    """Verdict of "gpu-quota"; `other_gpu_pods` are (name, GPUs) of the namespace's other GPU
    pods (None when unknown)."""
    if quotas is None:  # the reader has warned
        return rule(
            GPU_QUOTA,
            "unknown",
            f"the ResourceQuotas of {namespace} cannot be read with these rights",
            ["ask the cluster admins how many GPUs your namespace may use"],
        )
    if quota is None:
        return rule(GPU_QUOTA, "pass", f"no ResourceQuota in {namespace} limits GPUs")
    if quota["left"] is None:
        warnings.append(
            f"{GPU_QUOTA}: the usage of ResourceQuota {quota['name']} in {namespace} is not "
            "computed yet, so whether it leaves enough GPUs is unknown; run the check again"
        )
        return rule(
            GPU_QUOTA,
            "unknown",
            f"ResourceQuota {quota['name']} in {namespace} limits {quota['resource']} to "
            f"{quota['hard']}, but its usage is not computed yet",
            ["run the check again in a few seconds"],
        )
    used = f"{quota['used']} in use"
    if quota["released"]:
        used += f", {quota['released']} of them by the pod being replaced"
    reason = (
        f"ResourceQuota {quota['name']} in {namespace} allows {quota['hard']} "
        f"({quota['resource']}), {used}: {quota['left']} left"
    )
    if quota["left"] >= wanted:
        return rule(GPU_QUOTA, "pass", reason)
    options = ["ask the cluster admins for more GPU quota"]
    count = most_gpus_that_pass(judge, gpu_type, quota["left"])
    if count is not None:
        options.append(
            f"{count} x {gpu_type}: the model fits and runs within the quota "
            f"(set tgi_gpu_count: {count})"
        )
    if other_gpu_pods:
        listed = ", ".join(f"{name} ({gpus_word(gpus)})" for name, gpus in other_gpu_pods)
        options.append(f"delete the other GPU pods in {namespace}: {listed}")
    else:
        options.append(f"clean up other GPU workloads in {namespace}")
    return rule(GPU_QUOTA, "refuse", f"{reason}, fewer than the {wanted} asked for", options)


def apply_ignore(entry: dict, ignore_rules: Iterable[str], warnings: list[str]) -> dict:
    """An ignored rule that would refuse becomes "ignored", and a warning says what it hides."""
    if entry["id"] in ignore_rules and entry["verdict"] == "refuse":
        warnings.append(f"{entry['id']} ignored (tgi_ignore_rules): {entry['reason']}")
        return dict(entry, verdict="ignored")
    return entry


def refusal_line(entry: Mapping[str, Any]) -> str:
    """The same shape as gpu_rules' refusals."""
    return f"{entry['id']}: {entry['reason']}. Instead: {entry['recommendation']}"

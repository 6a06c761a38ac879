# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Free GPUs per node and quota left, from API objects shaped like the server's JSON."""

from __future__ import annotations

import pytest
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import (
    free_gpus_by_node,
    pod_gpus,
    quota_left,
    released_gpus,
)

V100 = "gpu-tesla-v100"
V100S = "gpu-tesla-v100s"


def node(name, gpu_type=V100, gpus=4, ready="True", unschedulable=False):
    spec = {"taints": [{"key": gpu_type, "effect": "NoSchedule"}]} if gpu_type else {}
    if unschedulable:
        spec["unschedulable"] = True
    allocatable = {"cpu": "32", "memory": "192Gi"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    return {
        "metadata": {"name": name},
        "spec": spec,
        "status": {"allocatable": allocatable, "capacity": allocatable, "conditions": conditions},
    }


def container(gpus=None, limits_only=False):
    resources = {"requests": {"cpu": "1"}}
    if gpus is not None:
        if limits_only:
            resources["limits"] = {"nvidia.com/gpu": str(gpus)}
        else:
            resources["requests"]["nvidia.com/gpu"] = str(gpus)
            resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    return {"name": "c", "resources": resources}


def pod(name, node_name, gpus, phase="Running", namespace="wabc123-default", uid=None, **more):
    spec = {"containers": [container(gpus)]}
    if node_name:
        spec["nodeName"] = node_name
    spec.update(more)
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"},
        "spec": spec,
        "status": {"phase": phase},
    }


CLUSTER = [node("v100-1"), node("v100-2"), node("v100s-1", V100S, 2), node("cpu-1", None, 0)]


def frees(result):
    return {row["name"]: row["free"] for row in result["nodes"]}


@pytest.mark.parametrize(
    ("case", "nodes", "pods", "gpu_type", "released", "expected_free", "expected_most"),
    [
        (
            "idle cluster: every GPU of the type is free",
            CLUSTER, [], V100, [],
            {"v100-1": 4, "v100-2": 4}, 4,
        ),
        (
            "requests are subtracted per node",
            CLUSTER, [pod("a", "v100-1", 3), pod("b", "v100-2", 1), pod("c", "v100-2", 2)],
            V100, [],
            {"v100-1": 4 - 3, "v100-2": 4 - 1 - 2}, 1,
        ),
        (
            "the other type has its own nodes",
            CLUSTER, [pod("a", "v100s-1", 1)], V100S, [],
            {"v100s-1": 2 - 1}, 1,
        ),
        (
            "finished pods hold nothing, pending bound pods do, unbound pods are on no node",
            CLUSTER,
            [pod("done", "v100-1", 4, "Succeeded"), pod("crashed", "v100-1", 4, "Failed"),
             pod("starting", "v100-1", 1, "Pending"), pod("unbound", None, 4, "Pending")],
            V100, [],
            {"v100-1": 4 - 1, "v100-2": 4}, 4,
        ),
        (
            "the current TGI pod's GPUs come back",
            CLUSTER, [pod("tgi-old", "v100-1", 2), pod("other", "v100-1", 2)], V100,
            [pod("tgi-old", "v100-1", 2)],
            {"v100-1": 4 - 2 - 2 + 2, "v100-2": 4}, 4,
        ),
        (
            "a released pod not among the listed pods gives nothing back",
            CLUSTER, [pod("other", "v100-1", 4)], V100, [pod("ghost", "v100-1", 2)],
            {"v100-1": 0, "v100-2": 4}, 4,
        ),
        (
            "a cordoned node and a not-ready node have nothing free",
            [node("v100-1", unschedulable=True), node("v100-2", ready="False"),
             node("v100-3", ready=None), node("v100-4")],
            [pod("a", "v100-4", 1)], V100, [],
            {"v100-1": 0, "v100-2": 0, "v100-3": 0, "v100-4": 4 - 1}, 3,
        ),
        (
            "over-committed node (allocatable shrank) is 0, not negative",
            [node("v100-1", gpus=2)], [pod("a", "v100-1", 4)], V100, [],
            {"v100-1": 0}, 0,
        ),
        (
            "no node of the type",
            CLUSTER, [], "gpu-tesla-a100", [],
            {}, 0,
        ),
    ],
)  # fmt: skip
def test_free_gpus_by_node(case, nodes, pods, gpu_type, released, expected_free, expected_most):
    result = free_gpus_by_node(nodes, pods, gpu_type, released)
    assert frees(result) == expected_free, case
    assert result["free_gpus"] == expected_most, case


def test_free_gpus_rows_explain_the_numbers():
    result = free_gpus_by_node(
        [node("v100-2"), node("v100-1", unschedulable=True)],
        [pod("tgi", "v100-2", 2), pod("x", "v100-2", 1)],
        V100,
        [pod("tgi", "v100-2", 2)],
    )
    assert result["nodes"] == [
        {"name": "v100-1", "allocatable": 4, "requested": 0, "released": 0, "free": 0,
         "schedulable": False, "note": "cordoned (unschedulable)"},
        {"name": "v100-2", "allocatable": 4, "requested": 2 + 1, "released": 2,
         "free": 4 - 3 + 2, "schedulable": True, "note": None},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "spec", "expected"),
    [
        ("no GPU", {"containers": [container()]}, 0),
        ("one container", {"containers": [container(2)]}, 2),
        ("containers add up", {"containers": [container(1), container(2)]}, 1 + 2),
        ("only a limit (request defaults to it)", {"containers": [container(3, True)]}, 3),
        (
            "an init container asking more wins",
            {"initContainers": [container(4), container(1)], "containers": [container(2)]},
            max(4, 2),
        ),
        (
            "a smaller init container does not add",
            {"initContainers": [container(1)], "containers": [container(2), container(1)]},
            2 + 1,
        ),
        ("numbers instead of strings", {"containers": [{"resources": {"requests": {
            "nvidia.com/gpu": 2}}}]}, 2),
    ],
)  # fmt: skip
def test_pod_gpus(case, spec, expected):
    assert pod_gpus({"spec": spec}) == expected, case


def test_released_gpus_skips_finished_pods():
    pods = [pod("tgi-a", "v100-1", 2), pod("tgi-b", "v100-1", 1, "Failed"), pod("tgi-c", None, 1)]
    assert released_gpus(pods) == 2 + 1


def quota(name, hard, used=None, resource="requests.nvidia.com/gpu", computed=True, **other):
    hard_amounts = {resource: str(hard), **other} if hard is not None else dict(other)
    result = {"metadata": {"name": name}, "spec": {"hard": hard_amounts}}
    if computed:
        used_amounts = {key: "0" for key in hard_amounts}
        if used is not None:
            used_amounts[resource] = str(used)
        result["status"] = {"hard": hard_amounts, "used": used_amounts}
    return result


@pytest.mark.parametrize(
    ("case", "quotas", "released", "expected"),
    [
        ("no quota", [], 0, None),
        ("a quota without GPUs", [quota("compute", None, **{"requests.cpu": "8"})], 0, None),
        (
            "hard minus used",
            [quota("gpu", 4, 3)], 0,
            {"name": "gpu", "resource": "requests.nvidia.com/gpu", "hard": 4, "used": 3,
             "released": 0, "left": 4 - 3},
        ),
        (
            "the current TGI pod's GPUs come back",
            [quota("gpu", 2, 2)], 1,
            {"name": "gpu", "resource": "requests.nvidia.com/gpu", "hard": 2, "used": 2,
             "released": 1, "left": 2 - 2 + 1},
        ),
        (
            "never more comes back than the quota has used",
            [quota("gpu", 2, 1)], 3,
            {"name": "gpu", "resource": "requests.nvidia.com/gpu", "hard": 2, "used": 1,
             "released": 1, "left": 2 - 1 + 1},
        ),
        (
            "the bare resource name counts as well",
            [quota("gpu", 1, 0, resource="nvidia.com/gpu")], 0,
            {"name": "gpu", "resource": "nvidia.com/gpu", "hard": 1, "used": 0,
             "released": 0, "left": 1},
        ),
        (
            "the tightest of several quotas",
            [quota("wide", 8, 2), quota("narrow", 2, 1), quota("cpu", None, **{"cpu": "4"})], 0,
            {"name": "narrow", "resource": "requests.nvidia.com/gpu", "hard": 2, "used": 1,
             "released": 0, "left": 2 - 1},
        ),
        (
            "used above hard (quota lowered) leaves 0",
            [quota("gpu", 1, 3)], 0,
            {"name": "gpu", "resource": "requests.nvidia.com/gpu", "hard": 1, "used": 3,
             "released": 0, "left": 0},
        ),
        (
            "usage not computed yet: unknown, even beside a computed one",
            [quota("wide", 8, 2), quota("new", 2, computed=False)], 1,
            {"name": "new", "resource": "requests.nvidia.com/gpu", "hard": 2, "used": None,
             "released": 0, "left": None},
        ),
    ],
)  # fmt: skip
def test_quota_left(case, quotas, released, expected):
    assert quota_left(quotas, released) == expected, case

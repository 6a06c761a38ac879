"""The TGI pod computed from the settings, and the multi-GPU mode (tgi_workload, multi_gpu).

Expected values are written out: which GPUs, which flags, which env, which /dev/shm.
"""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.engine import tgi_multi_gpu as multi_gpu
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    TGI_IMAGE_CPU,
    TGI_IMAGE_SM70,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import TgiSettingsError
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    flag_value,
    mode_of,
    tgi_workload,
)

BASE: dict[str, Any] = {
    "tgi_model_id": "Qwen/Qwen2.5-1.5B-Instruct",
    "tgi_gpu_type": "gpu-tesla-v100",
    "tgi_gpu_count": 1,
    "tgi_api_key_secret": "tgi-api-key",
    "tgi_cpu_request": "2",
    "tgi_memory_request": "8Gi",
    "tgi_memory_limit": "32Gi",
    "tgi_shm_size_per_gpu": "1Gi",
}
V100_TOLERATION = [{"key": "gpu-tesla-v100", "operator": "Exists", "effect": "NoSchedule"}]


def pod(**changes: Any) -> dict[str, Any]:
    return tgi_workload({**BASE, **changes})


def num_shard(args: list[str]) -> str | None:
    return args[args.index("--num-shard") + 1] if "--num-shard" in args else None


# (model, GPU type, count, tgi_multi_gpu_mode) -> (mode, works, --num-shard, NCCL env, /dev/shm)
MODES = {
    "cpu": (
        ("Qwen/Qwen2.5-1.5B-Instruct", "gpu-tesla-v100", 0, "auto"),
        ("cpu", True, None, False, "1Gi"),
    ),
    "one v100": (
        ("Qwen/Qwen2.5-1.5B-Instruct", "gpu-tesla-v100", 1, "auto"),
        ("single-gpu", True, "1", False, "1Gi"),
    ),
    "qwen2 splits its layers on v100s": (
        ("Qwen/Qwen2.5-7B-Instruct", "gpu-tesla-v100", 2, "auto"),
        ("layer-split", True, "1", False, "1Gi"),
    ),
    "llama splits over four": (
        ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-v100", 4, "auto"),
        ("layer-split", True, "1", False, "1Gi"),
    ),
    "bloom shards on v100s": (
        ("bigscience/bloom-7b1", "gpu-tesla-v100", 2, "auto"),
        ("tensor-sharding", True, "2", True, "2Gi"),
    ),
    "everything shards on an a100": (
        ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-a100", 4, "auto"),
        ("tensor-sharding", True, "4", True, "4Gi"),
    ),
    "forced tensor sharding of llama on v100s fails": (
        ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-v100", 2, "tensor-sharding"),
        ("tensor-sharding", False, "2", True, "2Gi"),
    ),
    "forced layer split of bloom on v100s works": (
        ("bigscience/bloom-7b1", "gpu-tesla-v100", 2, "layer-split"),
        ("layer-split", True, "1", False, "1Gi"),
    ),
    "a layer split on an a100 would idle the other gpus": (
        ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-a100", 2, "layer-split"),
        ("layer-split", False, "1", False, "1Gi"),
    ),
    "mistral can do neither on v100s": (
        ("mistralai/Mistral-7B-Instruct-v0.2", "gpu-tesla-v100", 2, "auto"),
        ("layer-split", False, "1", False, "1Gi"),
    ),
    "an unknown architecture splits, unconfirmed": (
        ("my-org/custom-7b", "gpu-tesla-v100", 2, "auto"),
        ("layer-split", None, "1", False, "1Gi"),
    ),
}


@pytest.mark.parametrize(("given", "expected"), MODES.values(), ids=MODES)
def test_the_multi_gpu_mode_by_architecture_and_gpu_type(given, expected) -> None:
    model, gpu_type, count, forced = given
    mode, works, shards, nccl, shm = expected
    workload = pod(
        tgi_model_id=model, tgi_gpu_type=gpu_type, tgi_gpu_count=count, tgi_multi_gpu_mode=forced
    )
    assert workload["multi_gpu"]["mode"] == mode
    assert workload["multi_gpu"]["works"] is works
    assert num_shard(workload["args"]) == shards
    assert any(e["name"] == "NCCL_DEBUG" for e in workload["env"]) is nccl
    assert workload["shm_size"] == shm
    assert "--sharded" not in workload["args"]


def test_a_layer_split_says_it_is_read_in_the_source_not_confirmed() -> None:
    reason = pod(tgi_gpu_count=2)["multi_gpu"]["reason"]
    assert "device_map=auto" in reason and multi_gpu.UNCONFIRMED in reason


def test_the_hub_s_architecture_wins_over_the_id() -> None:
    # An id that says nothing; the Hub (or the expert) says bloom, which shards.
    workload = pod(tgi_model_id="my-org/chat-v3", tgi_gpu_count=2, tgi_model_architecture="bloom")
    assert workload["multi_gpu"]["mode"] == "tensor-sharding"


def test_gpu_request_equals_the_limit_and_tolerations_follow_the_gpus() -> None:
    two = pod(tgi_gpu_count=2)
    assert two["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "32Gi", "nvidia.com/gpu": "2"},
    }
    assert two["tolerations"] == V100_TOLERATION
    assert two["image"] == TGI_IMAGE_SM70
    cpu = pod(tgi_gpu_count=0)
    assert cpu["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"memory": "32Gi"},
    }
    assert cpu["tolerations"] == [] and cpu["image"] == TGI_IMAGE_CPU
    assert "--num-shard" not in cpu["args"]


def test_unset_resources_are_left_out_and_a_given_image_wins() -> None:
    bare = pod(tgi_cpu_request=None, tgi_memory_request=None, tgi_memory_limit=None)
    assert bare["resources"] == {
        "requests": {"nvidia.com/gpu": "1"},
        "limits": {"nvidia.com/gpu": "1"},
    }
    image = "registry.example.org/tgi:3.3.0-patched"
    assert pod(tgi_image=image)["image"] == image


def test_scaling_down_removes_every_sharding_trace() -> None:
    sharded = pod(tgi_model_id="bigscience/bloom-7b1", tgi_gpu_count=4)
    back = pod(tgi_model_id="bigscience/bloom-7b1", tgi_gpu_count=1)
    assert num_shard(sharded["args"]) == "4" and sharded["shm_size"] == "4Gi"
    assert num_shard(back["args"]) == "1" and back["shm_size"] == "1Gi"
    assert not any(entry["name"].startswith("NCCL_") for entry in back["env"])
    assert back["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_bad_pod_settings_are_refused_naming_the_variable() -> None:
    with pytest.raises(TgiSettingsError) as raised:
        pod(
            tgi_memory_request="64Gi",
            tgi_shm_size_per_gpu="lots",
            tgi_multi_gpu_mode="pipeline",
            tgi_model_architecture="Llama 2",
            tgi_image="Not An Image",
        )
    named = [error.split(" ")[0].rstrip(":") for error in raised.value.errors]
    assert named == [
        "tgi_shm_size_per_gpu",
        "tgi_image",
        "tgi_model_architecture",
        "tgi_multi_gpu_mode",
        "tgi_memory_request",
    ]


@pytest.mark.parametrize(
    ("args", "count", "mode"),
    [
        ([], 0, "cpu"),
        (["--num-shard", "1"], 1, "single-gpu"),
        (["--num-shard", "2", "--sharded", "true"], 2, "tensor-sharding"),
        (["--num-shard=1"], 2, "layer-split"),
        ([], 3, "layer-split"),
    ],
)
def test_the_mode_is_read_back_from_the_command_line(args, count, mode):
    assert mode_of(args, count) == mode


def test_the_command_line_reads_back_its_own_mode_and_model():
    settings = {**BASE, "tgi_gpu_count": 2, "tgi_model_id": "bigscience/bloom-7b1"}
    workload = tgi_workload(settings)
    assert mode_of(workload["args"], 2) == workload["multi_gpu"]["mode"]
    assert flag_value(workload["args"], "--model-id") == "bigscience/bloom-7b1"

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Everything about the TGI pod that follows from the settings, computed in one place.

`tgi_workload(settings, catalog)` gives the image, the container's args and env, its resources
(GPU request = limit), the tolerations, the size of the in-memory /dev/shm and the multi-GPU mode.
The tgi_server role's template only places the result (filter `haw.icc.tgi_workload`); the
model switch and the GPU scale (action `tgi_model_switch`) patch a running Deployment to it.
The same settings always give the same result, in the same order, so an unchanged setting
never looks like a change; an unset optional setting leaves its flag out.

Pure Python: no Ansible imports, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import quantity_times
from ansible_collections.haw.icc.plugins.module_utils.engine import tgi_multi_gpu as multi_gpu
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import GPU_RESOURCE
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    CPU,
    compute_capability,
    merged_catalog,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import guess_architecture
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import (
    API_KEY_SECRET_KEY,
    HF_TOKEN_SECRET_KEY,
    NCCL_ENV_DEFAULTS,
    TgiSettings,
    TgiSettingsError,
    check_tgi_settings,
)


def architecture_of(settings: TgiSettings) -> str | None:
    """tgi_model_architecture when given (or read from the Hub), else a guess from the id."""
    return settings["tgi_model_architecture"] or guess_architecture(settings["tgi_model_id"])


def gpu_entry(settings: TgiSettings, catalog: Mapping) -> tuple[str, Mapping[str, Any]]:
    """(name, entry) of the merged `catalog` the pod runs on: its GPU type, or CPU without GPUs."""
    name = CPU if settings.on_cpu else settings["tgi_gpu_type"]
    return name, catalog[name]


def image_of(settings: TgiSettings, entry: Mapping[str, Any]) -> str | None:
    """tgi_image when given, else the catalog entry's pinned image."""
    return settings["tgi_image"] or entry.get("tgi_image")


def choose_mode(settings: TgiSettings, catalog: Mapping) -> multi_gpu.MultiGpu:
    """The multi-GPU mode of checked settings on the merged `catalog`."""
    _name, entry = gpu_entry(settings, catalog)
    return multi_gpu.choose(
        architecture_of(settings),
        compute_capability(entry["compute_capability"]),
        settings.gpu_count,
        settings["tgi_multi_gpu_mode"],
    )


def flag_value(args: list[Any] | None, flag: str) -> str | None:
    """The value of `flag` in a TGI command line ('--flag X' or '--flag=X'), else None: the
    reading back of what _args writes."""
    args = [str(arg) for arg in args or []]
    for position, arg in enumerate(args):
        if arg == flag and position + 1 < len(args):
            return args[position + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def mode_of(args: list[Any] | None, count: int) -> str:
    """The multi-GPU mode a running TGI command line with `count` GPUs is in (as _args sets
    --num-shard for each mode)."""
    if multi_gpu.runs_on_cpu(count):
        return multi_gpu.CPU
    if count == 1:
        return multi_gpu.SINGLE
    shards = flag_value(args, "--num-shard")
    many = shards is not None and shards.isdigit() and int(shards) > 1
    return multi_gpu.TENSOR_SHARDING if many else multi_gpu.LAYER_SPLIT


def _float_arg(value: float) -> str:
    text = repr(float(value))
    if not math.isfinite(float(value)):  # pragma: no cover - refused by validation
        raise ValueError(text)
    return text


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": str(secret), "key": key}}}


def _args(values: TgiSettings, mode: str, count: int) -> list[str]:
    args = ["--model-id", str(values["tgi_model_id"])]
    if values["tgi_model_revision"] is not None:
        args += ["--revision", str(values["tgi_model_revision"])]
    if mode != multi_gpu.CPU:
        # Always explicit: without it TGI starts one shard per visible GPU, and a layer split
        # needs one shard that sees them all.
        args += ["--num-shard", str(count if mode == multi_gpu.TENSOR_SHARDING else 1)]
    if values["tgi_dtype"] is not None:
        args += ["--dtype", str(values["tgi_dtype"])]
    if values["tgi_quantize"] is not None:
        args += ["--quantize", str(values["tgi_quantize"])]
    for flag, name in (
        ("--max-input-tokens", "tgi_max_input_tokens"),
        ("--max-total-tokens", "tgi_max_total_tokens"),
        ("--max-batch-prefill-tokens", "tgi_max_batch_prefill_tokens"),
        ("--max-concurrent-requests", "tgi_max_concurrent_requests"),
    ):
        if values[name] is not None:
            args += [flag, str(values[name])]
    if values["tgi_cuda_memory_fraction"] is not None:
        args += ["--cuda-memory-fraction", _float_arg(values["tgi_cuda_memory_fraction"])]
    return args + [str(arg) for arg in values["tgi_extra_args"]]


def _env(values: TgiSettings, mode: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        # Kubernetes sets HOSTNAME to the pod name, which TGI would take as its bind address.
        {"name": "HOSTNAME", "value": "0.0.0.0"},
        {"name": "PORT", "value": str(values["tgi_container_port"])},
        {"name": "USAGE_STATS", "value": "off"},
        {"name": "HF_HOME", "value": str(values["tgi_cache_mount_path"])},
        secret_env("API_KEY", values["tgi_api_key_secret"], API_KEY_SECRET_KEY),
    ]
    if values["tgi_hf_token_secret"] is not None:
        env.append(secret_env("HF_TOKEN", values["tgi_hf_token_secret"], HF_TOKEN_SECRET_KEY))
    if mode == multi_gpu.TENSOR_SHARDING:  # only shards talk over NCCL
        nccl = {**NCCL_ENV_DEFAULTS, **values["tgi_nccl_env"]}
        env += [{"name": str(key), "value": str(nccl[key])} for key in sorted(nccl)]
    return env


def pod_resources(values: TgiSettings) -> dict[str, dict[str, str]]:
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    if values["tgi_cpu_request"] is not None:
        requests["cpu"] = str(values["tgi_cpu_request"])
    if values["tgi_memory_request"] is not None:
        requests["memory"] = str(values["tgi_memory_request"])
    if values["tgi_memory_limit"] is not None:
        limits["memory"] = str(values["tgi_memory_limit"])
    if not values.on_cpu:
        # Extended resources need the request equal to the limit.
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(values.gpu_count)
    return {key: part for key, part in (("requests", requests), ("limits", limits)) if part}


def tgi_workload(settings: Any, catalog: Mapping | None = None) -> dict[str, Any]:
    """The TGI pod for `settings`; `catalog` holds the icc_gpu_catalog entries.

    Settings checked before (TgiSettings, or sealed by the check: tgi_settings.sealed) are
    taken as they are; others are checked here (tgi_settings.check_tgi_settings).

    Returns {"image", "args", "env", "resources", "tolerations", "shm_size", "gpu_count",
    "multi_gpu": {"mode", "works", "reason"}}. Raises TgiSettingsError listing every problem.
    """
    values = check_tgi_settings(settings, catalog)
    merged = merged_catalog(catalog)
    count = values.gpu_count
    _name, entry = gpu_entry(values, merged)
    image = image_of(values, entry)
    if not image:
        raise TgiSettingsError(
            [f"tgi_image: no image for GPU type {values['tgi_gpu_type']} in the catalog"]
        )
    chosen = choose_mode(values, merged)
    tolerations = (
        []
        if values.on_cpu
        else [{"key": values["tgi_gpu_type"], "operator": "Exists", "effect": "NoSchedule"}]
    )
    # NCCL's buffers live in /dev/shm, one set per shard; everything else needs the base size.
    shards = count if chosen.mode == multi_gpu.TENSOR_SHARDING else 1
    return {
        "image": image,
        "args": _args(values, chosen.mode, count),
        "env": _env(values, chosen.mode),
        "resources": pod_resources(values),
        "tolerations": tolerations,
        "shm_size": quantity_times(values["tgi_shm_size_per_gpu"], shards),
        "gpu_count": count,
        "multi_gpu": {"mode": chosen.mode, "works": chosen.works, "reason": chosen.reason},
    }

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The pod of a namespace that runs vLLM, from the same settings as TGI's (tgi_workload): the
variables users know keep their meaning (tgi_model_id, tgi_gpu_type, tgi_gpu_count as the
tensor-parallel size, tgi_max_total_tokens as --max-model-len, the Secrets, the cache volume,
the port the Service and the probes use).

Returns the same keys as tgi_workload, so that one template places either. vLLM listens on
tgi_container_port, reads its key from VLLM_API_KEY (the API key Secret, never an argument) and
keeps the Hub's files in the cache volume's hub/ folder, where TGI keeps them: a switch of engine
downloads nothing again.

Pure Python: no Ansible imports, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import quantity_times
from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import (
    API_KEY_ENV,
    VLLM_QUANTIZATION,
    parallel_mode,
    serve_args,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    compute_capability,
    merged_catalog,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import DEFAULT_KV_TOKENS
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import (
    API_KEY_SECRET_KEY,
    HF_TOKEN_SECRET_KEY,
    NCCL_ENV_DEFAULTS,
    TgiSettingsError,
    check_tgi_settings,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    gpu_entry,
    pod_resources,
    secret_env,
)


def vllm_workload(
    settings: Any, catalog: Mapping | None = None, max_model_len: int | None = None
) -> dict[str, Any]:
    """The vLLM pod for `settings`; `max_model_len` is what the capacity check chose when
    tgi_max_total_tokens is unset (the model's context when shorter than 4096).

    Raises TgiSettingsError listing every problem (vLLM on CPU, a GPU type without a vLLM image,
    a quantize method vLLM has no kernels for)."""
    values = check_tgi_settings(settings, catalog)
    errors = []
    if values.on_cpu:
        errors.append("icc_engine vllm needs GPUs: tgi_gpu_count is 0 (TGI runs on CPU, vLLM not)")
        raise TgiSettingsError(errors)
    gpu_type, entry = gpu_entry(values, merged_catalog(catalog))
    image = entry.get("vllm_image")
    if not image:
        errors.append(
            f"icc_engine vllm: GPU type {gpu_type} has no vllm_image in the catalog "
            "(add one to icc_gpu_catalog, or use icc_engine tgi)"
        )
    quantize = values["tgi_quantize"]
    if quantize is not None and quantize not in VLLM_QUANTIZATION:
        errors.append(
            f"tgi_quantize: {quantize!r} has no vLLM kernels here; with icc_engine vllm use one "
            f"of {', '.join(sorted(VLLM_QUANTIZATION))}"
        )
    if errors:
        raise TgiSettingsError(errors)
    count = values.gpu_count
    cache = str(values["tgi_cache_mount_path"]).rstrip("/")
    dtype = {"float16": "half", "bfloat16": "bfloat16"}.get(values["tgi_dtype"] or "")
    args = serve_args(
        str(values["tgi_model_id"]),
        revision=values["tgi_model_revision"],
        served_model_name=str(values["tgi_model_id"]),
        capability=compute_capability(entry["compute_capability"]),
        dtype=dtype,
        max_model_len=values["tgi_max_total_tokens"] or max_model_len or DEFAULT_KV_TOKENS,
        tensor_parallel_size=count,
        download_dir=f"{cache}/hub",
        port=values["tgi_container_port"],
        quantization=VLLM_QUANTIZATION.get(quantize) if quantize else None,
    )
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": cache},
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
        {"name": "DO_NOT_TRACK", "value": "1"},
        secret_env(API_KEY_ENV, values["tgi_api_key_secret"], API_KEY_SECRET_KEY),
    ]
    if values["tgi_hf_token_secret"] is not None:
        env.append(secret_env("HF_TOKEN", values["tgi_hf_token_secret"], HF_TOKEN_SECRET_KEY))
    if count > 1:  # the tensor-parallel workers talk over NCCL
        nccl = {**NCCL_ENV_DEFAULTS, **values["tgi_nccl_env"]}
        env += [{"name": str(key), "value": str(nccl[key])} for key in sorted(nccl)]
    return {
        "image": image,
        "args": args + [str(arg) for arg in values["tgi_extra_args"]],
        "env": env,
        "resources": pod_resources(values),
        "tolerations": [{"key": gpu_type, "operator": "Exists", "effect": "NoSchedule"}],
        # NCCL's buffers live in /dev/shm, one set per GPU with tensor parallelism.
        "shm_size": quantity_times(values["tgi_shm_size_per_gpu"], count),
        "gpu_count": count,
        "multi_gpu": {
            "mode": parallel_mode(count),
            "works": True,
            "reason": f"vLLM splits the model over {count} GPU(s) by tensor parallelism",
        },
    }

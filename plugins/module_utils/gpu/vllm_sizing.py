# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""How vLLM (the pinned release, engine/vllm_server.py) shares out each GPU, and whether the KV
cache for one request of `--max-model-len` tokens fits what is left.

vLLM's own accounting (0.14.1: v1/worker/utils.py request_memory, v1/worker/gpu_worker.py
determine_available_memory, utils/mem_utils.py memory_profiling, v1/core/kv_cache_utils.py):

    requested   = GPU total x gpu_memory_utilization (0.9), claimed up front
    KV cache    = requested - weights - peak activations of the profiling run - non-torch memory
    refused     when KV cache <= 0 ("No available memory for the cache blocks") or when it holds
                  fewer tokens than one request of max_model_len ("To serve at least one request
                  ..."; vLLM then names the estimated maximum model length)

per GPU, with tensor parallelism splitting the weights, the KV heads and the MLP evenly over the
GPUs (KV heads are replicated when there are fewer of them than GPUs). The CUDA context and the
CUDA graphs come out of the 10 % left unrequested. Estimates this file adds, not read in vLLM:

    GPU total      = the catalog's GiB less 0.25 GiB the driver keeps (nvidia-smi shows 16160 MiB
                     of a 16 GiB V100 and 32510 MiB of a 32 GiB V100S)
    activations    = max_num_batched_tokens (2048) x 2 bytes x (4 x hidden + 3 x intermediate / TP)
                     for the residual stream and the MLP of one layer, plus the sampler's float32
                     logits and probabilities for max_num_seqs (256) x vocabulary
    non-torch      = 0.25 GiB (cuBLAS workspaces, allocator), + 0.5 GiB of NCCL buffers with TP

Weights and the model's shape come from gpu/sizing.py (the same parameter count, quantization and
stand-in shape for an unknown config as TGI's check), so knowing less is never kinder here either.
Pure Python, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import (
    BLOCK_SIZE,
    GPU_MEMORY_UTILIZATION,
    MAX_NUM_BATCHED_TOKENS,
    MAX_NUM_SEQS,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import (
    DEFAULT_KV_TOKENS,
    GIB,
    QUANTIZATION_PRECISION,
    _parameter_count,
    _weights,
    describe_model,
    model_shape,
)

DRIVER_RESERVED_BYTES = 0.25 * GIB
NON_TORCH_BYTES = 0.25 * GIB
NCCL_BYTES = 0.5 * GIB
VALUE_BYTES = 2  # float16 activations and KV cache (--dtype half on a V100)
LOGITS_BYTES = 4 * 2  # float32 logits and the probabilities computed from them

# Outcomes, in the order vLLM would meet them at start-up.
FITS = "fits"
WEIGHTS_TOO_BIG = "weights-too-big"  # torch's CUDA out of memory while loading
NO_CACHE_MEMORY = "no-cache-memory"
CONTEXT_TOO_LONG = "context-too-long"


def _kv_heads_per_gpu(kv_heads: int, tensor_parallel_size: int) -> float:
    if kv_heads >= tensor_parallel_size:
        return math.ceil(kv_heads / tensor_parallel_size)
    return 1.0  # fewer KV heads than GPUs: each GPU keeps a copy of one


def _precision(traits: Mapping[str, Any]) -> str:
    method = traits["quantization"]
    if not method:
        return "float16"  # bfloat16 and float32 checkpoints run in float16 on a V100
    bits = traits["quantization_bits"]
    if bits:
        return "4bit" if bits <= 4 else "8bit"
    return QUANTIZATION_PRECISION.get(method, "8bit")


def size_for_vllm(
    model_id: str,
    *,
    gpu_memory_gib: float,
    tensor_parallel_size: int,
    max_model_len: int | None = None,
    quantize: str | None = None,
    parameters: Any = None,
    hub: Mapping | None = None,
    max_num_seqs: int | None = None,
) -> dict[str, Any]:
    """vLLM's memory per GPU for `model_id` on `tensor_parallel_size` GPUs of `gpu_memory_gib`,
    the outcome at start-up and the largest max_model_len that fits. Raises sizing.SizingError
    when the model's size is unknown."""
    hub = hub if isinstance(hub, Mapping) else None
    count, source, notes = _parameter_count(model_id, parameters, hub)
    traits = describe_model(model_id, quantize=quantize, hub=hub)
    precision = _precision(traits)
    weights, _ = _weights(count, source, precision, traits, hub, notes)
    shape = model_shape(traits["config"], count)
    tp = max(int(tensor_parallel_size), 1)
    seqs = max_num_seqs or MAX_NUM_SEQS

    if max_model_len is None:
        max_model_len = DEFAULT_KV_TOKENS
        if shape["max_positions"]:
            max_model_len = min(max_model_len, shape["max_positions"])
        notes.append(f"max_model_len {max_model_len} (tgi_max_total_tokens unset)")
    kv_per_token = shape["kv_values_per_token"] * VALUE_BYTES
    if shape["known"]:
        kv_per_token *= _kv_heads_per_gpu(shape["kv_heads"], tp) / shape["kv_heads"]
    else:
        kv_per_token /= tp
        notes.append(
            "the model's config is unknown: KV cache and activations are those of a conservative "
            "stand-in; the Hub's config (icc_hub_lookup) gives the real, smaller figures"
        )

    total = gpu_memory_gib * GIB - DRIVER_RESERVED_BYTES
    requested = total * GPU_MEMORY_UTILIZATION
    weights_per_gpu = weights / tp
    mlp = (
        MAX_NUM_BATCHED_TOKENS
        * VALUE_BYTES
        * (4 * shape["hidden"] + 3 * shape["intermediate"] / tp)
    )
    sampler = seqs * shape["vocab"] * LOGITS_BYTES
    activations = mlp + sampler
    non_torch = NON_TORCH_BYTES + (NCCL_BYTES if tp > 1 else 0.0)
    kv_available = requested - weights_per_gpu - activations - non_torch
    blocks_needed = math.ceil(max_model_len / BLOCK_SIZE)
    kv_needed = blocks_needed * BLOCK_SIZE * kv_per_token
    tokens_available = max(int(kv_available // (kv_per_token * BLOCK_SIZE)), 0) * BLOCK_SIZE
    largest = tokens_available
    if shape["max_positions"]:
        largest = min(largest, shape["max_positions"])

    if weights_per_gpu > total:
        outcome = WEIGHTS_TOO_BIG
    elif kv_available <= 0:
        outcome = NO_CACHE_MEMORY
    elif kv_needed > kv_available:
        outcome = CONTEXT_TOO_LONG
    else:
        outcome = FITS
    return {
        "model_id": model_id,
        "parameters": count,
        "parameters_source": source,
        "config_known": shape["known"],
        "precision": precision,
        "quantization": traits["quantization"],
        "architecture": traits["architecture"],
        "attention_heads": shape["heads"] if shape["known"] else None,
        "tensor_parallel_size": tp,
        "total_gib": total / GIB,
        "requested_gib": requested / GIB,
        "weights_gib": weights / GIB,
        "weights_per_gpu_gib": weights_per_gpu / GIB,
        "activations_gib": activations / GIB,
        "non_torch_gib": non_torch / GIB,
        "kv_available_gib": kv_available / GIB,
        "kv_bytes_per_token": kv_per_token,
        "max_model_len": max_model_len,
        "kv_needed_gib": kv_needed / GIB,
        "kv_tokens_available": tokens_available,
        "largest_max_model_len": largest,
        "outcome": outcome,
        "notes": notes,
    }

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""How much GPU memory a model needs under TGI: parameters, precision, overhead, KV cache.

The parameter count comes from, in this order: an explicit override (`tgi_model_parameters`),
the Hugging Face Hub (module_utils/gpu/hub.py reads it), or
the model id itself (`7b`, `1.1B`, `8x7B`, `bloom-7b1`, `350m`; counted 35% higher, since ids
round down). Everything else is arithmetic:

    weights     = parameters x bytes per parameter (by dtype or quantization)
    KV cache    = 2 (K and V) x layers x KV heads x head dim x bytes per value, per token,
                  for max_total_tokens x concurrent sequences
    context     = CUDA context and workspaces, per GPU
    activations = one layer's MLP for the prefill tokens, and without flash attention the
                  attention scores (heads x prompt x prefill tokens)
    logits      = without flash attention, every prefill token x the vocabulary
    per GPU     = (weights + KV cache) / GPUs + context + activations + logits
                  (activations and logits split too when tensor-sharded)

Layers, heads and the vocabulary come from the model's config; without one (no Hub), from a
conservative stand-in (`model_shape`), so that knowing less never makes a verdict kinder.

What the id and the config say of the model (its size, quantization, architecture, KV cache
layout, context length) is read in model_facts; here the memory it takes.

Pure Python: no Ansible imports, no I/O (what the Hub says comes in as `hub`, from
module_utils/gpu/hub.py), so modules, filters and unit tests share it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import (
    LAYER_SPLIT,
    TENSOR_SHARDING,
    runs_on_cpu,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.model_facts import (
    HEAD_KEYS,
    HIDDEN_KEYS,
    LAYER_KEYS,
    QUANTIZATION_BITS_HINTS,
    checkpoint_quantization,
    first_positive,
    guess_architecture,
    kv_cache_layout,
    model_name,
    name_words,
    parse_parameter_count,
    positive_number,
    quantization_hint,
)

GIB = 2**30
# 4-bit formats store a scale (and often a zero point) per group of weights: a few percent more.
FOUR_BIT_SCALES_FRACTION = 0.06
# Tokens the estimate assumes when the limits are unset (TGI's defaults for most models).
DEFAULT_KV_TOKENS = 4096
DEFAULT_PREFILL_TOKENS = 4096
PARAMETERS_VARIABLE = "tgi_model_parameters"
# A size read from a model id is rounded, mostly down: gemma-7b has 8.54B parameters (+22%),
# gemma-2-2b 2.61B (+31%), Llama-3.2-1B 1.24B. Counting 35% more keeps a verdict from the id
# no more optimistic than one from the Hub's exact count.
NAME_MARGIN = 1.35
# Share of a 7B model's parameters in its embeddings and output head, which quantized
# checkpoints keep in 16 bits (Llama-2-7b: 2 x 32000 x 4096 = 0.26B of 6.74B, Mistral-7B about
# the same); counted for 4-bit and 8-bit checkpoints sized from their id.
EMBEDDING_SHARE = 0.12
# The CUDA context, cuBLAS workspaces and PyTorch's allocator reserve on every GPU a process
# uses, before any tensor: commonly 300-500 MiB with CUDA 12 and PyTorch 2 (as nvidia-smi shows
# right after torch.cuda.init()); 0.5 GiB per GPU is counted.
CUDA_CONTEXT_BYTES = 0.5 * 2**30
# The vocabulary of the stand-in for an unknown config: gemma's 256000, the largest common one.
STAND_IN_VOCABULARY = 256000

PRECISION_BYTES = {
    "float32": 4.0,
    "float16": 2.0,
    "bfloat16": 2.0,
    "8bit": 1.0,
    "4bit": 0.5 * (1 + FOUR_BIT_SCALES_FRACTION),
}
# Weight precision of each TGI quantize method (a checkpoint's config may say otherwise).
QUANTIZATION_PRECISION = {
    "awq": "4bit",
    "gptq": "4bit",
    "marlin": "4bit",
    "exl2": "4bit",
    "bitsandbytes-nf4": "4bit",
    "bitsandbytes-fp4": "4bit",
    "bitsandbytes": "8bit",
    "eetq": "8bit",
    "fp8": "8bit",
    "compressed-tensors": "8bit",  # W8A8/FP8 and W4A16 exist: the config's bit width decides
}
# Methods whose checkpoints pack several low-bit weights into one int32 tensor element.
PACKED_INT32_METHODS = frozenset({"awq", "gptq", "marlin", "exl2", "compressed-tensors"})

# Bytes of one element per safetensors dtype (the Hub's per-dtype parameter counts).
SAFETENSORS_DTYPE_BYTES = {
    "F64": 8,
    "I64": 8,
    "U64": 8,
    "F32": 4,
    "I32": 4,
    "U32": 4,
    "F16": 2,
    "BF16": 2,
    "I16": 2,
    "U16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}
FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})


class SizingError(ValueError):
    """No usable parameter count (or a bad sizing input); the message names the variable."""


def _precision_of_bits(bits: float) -> str:
    return "4bit" if bits <= 4 else "8bit"


def describe_model(
    model_id: Any, *, quantize: str | None = None, hub: Mapping | None = None
) -> dict[str, Any]:
    """What the rules need to know without a size: architecture and the quantization in effect.

    Returns {"architecture", "quantization", "quantization_source": "tgi_quantize"|"config"|
    "name"|None, "quantization_bits": float|None, "config": dict|None}.
    """
    config = hub.get("config") if isinstance(hub, Mapping) else None
    config = config if isinstance(config, Mapping) else None
    checkpoint_method, checkpoint_bits = checkpoint_quantization(config)
    hint = quantization_hint(model_id)
    if quantize:
        method, source = quantize, "tgi_quantize"
        bits = checkpoint_bits if quantize == checkpoint_method else None
    elif checkpoint_method:
        method, source, bits = checkpoint_method, "config", checkpoint_bits
    elif hint:
        method, source = hint, "name"
        words = set(name_words(model_id))
        bits = next((float(b) for w, b in QUANTIZATION_BITS_HINTS.items() if w in words), None)
    else:
        method, source, bits = None, None, None
    return {
        "architecture": guess_architecture(model_id, config),
        "quantization": method,
        "quantization_source": source,
        "quantization_bits": bits,
        "checkpoint_quantization": checkpoint_method or hint,
        "config": config,
    }


def _precision_for(
    dtype: str | None, traits: Mapping[str, Any], gpu_count: int
) -> tuple[str, list[str]]:
    notes = []
    method = traits["quantization"]
    if method:
        bits = traits["quantization_bits"]
        precision = _precision_of_bits(bits) if bits else QUANTIZATION_PRECISION.get(method, "8bit")
        if method not in QUANTIZATION_PRECISION and not bits:
            notes.append(f"quantization {method!r} is unknown here: assumed 8-bit weights")
        return precision, notes
    if dtype:
        return dtype, notes
    if runs_on_cpu(gpu_count):
        notes.append("CPU: weights assumed in float32 (TGI's CPU default)")
        return "float32", notes
    return "float16", notes


def _parameter_count(
    model_id: str, parameters: Any, hub: Mapping | None
) -> tuple[float, str, list[str]]:
    if parameters is not None:
        count = parse_parameter_count(parameters)
        if count is None:
            raise SizingError(
                f"{PARAMETERS_VARIABLE}: {parameters!r} is not a parameter count: give a "
                "number like 7000000000 or a size like '7B' or '1.1B'"
            )
        return count, "override", [f"parameters from {PARAMETERS_VARIABLE}: {count / 1e9:g}B"]
    hub_count = positive_number(hub.get("parameters")) if isinstance(hub, Mapping) else None
    if hub_count:
        return hub_count, "hub", [f"parameters from the Hub: {hub_count / 1e9:.3g}B"]
    named = parse_parameter_count(model_id)
    if named:
        counted = named * NAME_MARGIN
        notes = [
            f"parameters from the model id: {named / 1e9:g}B, counted as {counted / 1e9:.3g}B "
            f"(+{NAME_MARGIN - 1:.0%}: ids round down, gemma-2-2b has 2.61B)"
        ]
        if re.search(r"[0-9]+x[0-9]", model_name(model_id)):
            notes.append("mixture of experts: experts x expert size is an upper bound")
        return counted, "name", notes
    raise SizingError(
        f"the size of {model_id!r} is unknown: the Hub was not asked or did not answer, and "
        f"the model id names no size (like '7B'); set {PARAMETERS_VARIABLE} "
        "(for example '7B' or 7000000000)"
    )


def _weights(
    count: float, source: str, precision: str, traits: Mapping, hub: Mapping | None, notes: list
) -> tuple[float, float]:
    """(bytes of the weights in GPU memory, bytes per parameter)."""
    bytes_per_parameter = PRECISION_BYTES[precision]
    stored = positive_number(hub.get("weights_bytes")) if hub else None
    method = traits["quantization"]
    if stored and source == "hub" and method and method == traits["checkpoint_quantization"]:
        # Pre-quantized: the stored bytes already include scales and unquantized layers.
        notes.append(f"weights as stored on the Hub: {stored / GIB:.2f} GiB")
        return stored, stored / count
    if precision in ("4bit", "8bit"):
        # Quantization leaves the embeddings and the output head in 16 bits.
        weights = count * (EMBEDDING_SHARE * 2.0 + (1 - EMBEDDING_SHARE) * bytes_per_parameter)
        return weights, weights / count
    return count * bytes_per_parameter, bytes_per_parameter


def _prefill_memory(
    shape: Mapping, input_tokens: int, prefill: int, sequences: int, value_bytes: int, flash: bool
) -> tuple[float, float]:
    """(activations, logits) in bytes while the largest prefill batch goes through."""
    if flash:
        # Flash attention never holds the scores, and TGI computes the logits of the last
        # token of each sequence only.
        scores, logits = 0.0, sequences * shape["vocab"] * 4.0
    else:
        # The transformers path pads the batch and holds each layer's attention scores (heads
        # x prompt x prompt, for every prompt of the prefill batch), and transformers computes
        # the logits of every prompt token (prefill x vocabulary).
        scores = shape["heads"] * input_tokens * prefill * value_bytes
        logits = prefill * shape["vocab"] * value_bytes
    mlp = prefill * shape["intermediate"] * 2 * value_bytes  # gate and up projections
    return scores + mlp, logits


def model_shape(config: Mapping | None, parameters: float) -> dict[str, Any]:
    """What the KV cache, the activations and the logits depend on: from the model's config,
    and for what it does not say, a conservative stand-in (`known` is whether the config gave
    the KV cache's layout).

    The stand-in is a dense model of `parameters` without grouped KV heads: deeper and with more
    heads than real models of that size (layers = width/64, heads of 64), a wide MLP (8 x the
    width, as gemma) and a 256k vocabulary (gemma's, the largest common one). Real configs use
    grouped KV heads, 128-wide heads and smaller vocabularies, so the stand-in never needs less.
    """
    width = (parameters * 64 / 12) ** (1 / 3)  # parameters ~ 12 x layers x width^2
    layout = kv_cache_layout(config)
    text = config if isinstance(config, Mapping) else {}
    if first_positive(text, LAYER_KEYS) is None and isinstance(text.get("text_config"), Mapping):
        text = text["text_config"]
    hidden = first_positive(text, HIDDEN_KEYS)
    heads = first_positive(text, HEAD_KEYS)
    intermediate = first_positive(text, ("intermediate_size", "ffn_hidden_size", "n_inner"))
    if layout:
        kv_values = 2 * layout["layers"] * layout["kv_heads"] * layout["head_dim"]
    else:
        kv_values = 2 * (width / 64) * width
    return {
        "known": layout is not None,
        "kv_values_per_token": kv_values,
        "kv_heads": layout["kv_heads"] if layout else None,
        "heads": int(heads) if heads else math.ceil(width / 64),
        "hidden": int(hidden or width),
        "intermediate": int(intermediate or 4 * (hidden or 2 * width)),
        "vocab": int(positive_number(text.get("vocab_size")) or STAND_IN_VOCABULARY),
        "max_positions": layout["max_positions"] if layout else None,
    }


def size_model(
    model_id: str,
    *,
    dtype: str | None = None,
    quantize: str | None = None,
    parameters: Any = None,
    hub: Mapping | None = None,
    gpu_count: int = 1,
    mode: str | None = None,
    flash_attention: bool = False,
    max_total_tokens: int | None = None,
    max_input_tokens: int | None = None,
    prefill_tokens: int | None = None,
    concurrent_sequences: int = 1,
) -> dict[str, Any]:
    """The memory `model_id` needs under TGI, per GPU; see the module docstring.

    `parameters` (a number or '7B') overrides everything; else `hub` (what a fetcher returned)
    gives the count, else the model id. `mode` is the multi-GPU mode (multi_gpu): tensor
    sharding splits everything over the GPUs, a layer split only the weights and the KV cache.
    `flash_attention` is whether TGI takes its flash path on this GPU (compute capability 8.0):
    without it, attention scores and the logits of every prompt token are held in memory. Raises
    SizingError when no size is known. The inputs are the capacity rules' checked settings
    (tgi_settings.TgiSettings): they are not checked again. GiB figures are rounded to 3
    decimals.
    """
    hub = hub if isinstance(hub, Mapping) else None
    count, source, notes = _parameter_count(model_id, parameters, hub)
    traits = describe_model(model_id, quantize=quantize, hub=hub)
    precision, precision_notes = _precision_for(dtype, traits, gpu_count)
    notes += precision_notes
    method = traits["quantization"]
    if traits["quantization_source"] == "config":
        notes.append(f"pre-quantized checkpoint ({method}, from its quantization_config)")
    elif traits["quantization_source"] == "name":
        notes.append(f"pre-quantized checkpoint assumed from the model id: {method}")
    checkpoint = traits["checkpoint_quantization"]
    if quantize and checkpoint and quantize != checkpoint:
        notes.append(
            f"the checkpoint looks pre-quantized ({checkpoint}) but tgi_quantize is {quantize}: "
            "TGI may refuse to load it; leave tgi_quantize unset for pre-quantized checkpoints"
        )
    if dtype and method:
        notes.append(f"tgi_dtype {dtype} applies to the layers {method} leaves unquantized")

    weights, bytes_per_parameter = _weights(count, source, precision, traits, hub, notes)
    shape = model_shape(traits["config"], count)
    total_tokens = max_total_tokens
    if total_tokens is None:
        # TGI's own default: 4096, or the model's context when shorter. Limits given beyond the
        # context are sized as given; the context-length rule (gpu_rules) refuses them.
        total_tokens = DEFAULT_KV_TOKENS
        if shape["max_positions"]:
            total_tokens = min(total_tokens, shape["max_positions"])
        notes.append(f"{total_tokens} tokens per sequence (tgi_max_total_tokens unset)")
    input_tokens = max_input_tokens or max(total_tokens - 1, 1)
    prefill = prefill_tokens or max(DEFAULT_PREFILL_TOKENS, input_tokens)
    value_bytes = 4 if precision == "float32" else 2
    kv_tokens = total_tokens * concurrent_sequences
    kv_cache = shape["kv_values_per_token"] * value_bytes * kv_tokens
    activations, logits = _prefill_memory(
        shape, input_tokens, prefill, concurrent_sequences, value_bytes, flash_attention
    )
    if shape["known"]:
        notes.append(
            f"KV cache: {int(shape['kv_values_per_token'])} values x {value_bytes} bytes per "
            f"token, for {kv_tokens} tokens"
        )
    else:
        notes.append(
            "the model's config is unknown: KV cache, activations and logits are those of a "
            "conservative stand-in (no grouped KV heads, 64-wide heads, 256k vocabulary); the "
            "Hub's config (icc_hub_lookup) gives the real, smaller figures"
        )

    gpus = max(gpu_count, 1)
    split = gpus if mode in (TENSOR_SHARDING, LAYER_SPLIT) else 1
    context = 0.0 if runs_on_cpu(gpu_count) else CUDA_CONTEXT_BYTES
    per_gpu_overhead = context + (activations + logits) / (split if mode == TENSOR_SHARDING else 1)
    per_gpu = (weights + kv_cache) / split + per_gpu_overhead
    total = weights + kv_cache + (activations + logits) + context * gpus
    return {
        "model_id": model_id,
        "parameters": count,
        "parameters_source": source,
        "architecture": traits["architecture"],
        "config_known": shape["known"],
        "precision": precision,
        "quantization": method,
        "quantization_source": traits["quantization_source"],
        "bytes_per_parameter": round(bytes_per_parameter, 4),
        "weights_gib": round(weights / GIB, 3),
        "kv_cache_gib": round(kv_cache / GIB, 3),
        "kv_cache_tokens": kv_tokens,
        "context_gib": round(context / GIB, 3),
        "activations_gib": round(activations / GIB, 3),
        "logits_gib": round(logits / GIB, 3),
        "overhead_gib": round(per_gpu_overhead / GIB, 3),
        "total_gib": round(total / GIB, 3),
        "mode": mode,
        "shards": split,
        "per_gpu_gib": round(per_gpu / GIB, 3),
        "notes": notes,
    }

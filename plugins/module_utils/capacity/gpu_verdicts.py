# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The GPU rules judged for one configuration of the TGI settings (gpu_rules.assess judges the
request with them, gpu_alternatives other configurations near it): the TGI image's CUDA build
against the GPU's compute capability, how several GPUs are used, the architectures that need
flash attention, the quantize method's minimum compute capability, whether the memory per GPU
fits, and whether the token limits stay within the model's context length.

Each rule gives (verdict, reason). Pure Python: no Ansible imports, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import (
    FLASH_ATTENTION_FROM,
    FLASH_ATTENTION_ONLY,
    LAYER_SPLIT,
    TENSOR_SHARDING,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    TGI_IMAGE_SM70,
    compute_capability,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.model_facts import context_length
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import (
    SizingError,
    describe_model,
    size_model,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import TgiSettings
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    choose_mode,
    gpu_entry,
    image_of,
)

RULES: dict[str, str] = {
    "tgi-image-cuda": "TGI 3.3.1 and newer images are built without kernels for compute "
    "capability 7.0: they need 7.5 or newer",
    "multi-gpu-mode": "several GPUs are used by tensor sharding where TGI can shard the "
    "architecture on that compute capability, else by a layer split; some architectures allow "
    "neither",
    "flash-attention-required": "Mistral, Mixtral and the vision-language models run only with "
    "flash attention, which needs compute capability 8.0",
    "quantization-compute-capability": "each quantize method needs a minimum compute "
    "capability; on 7.0 only bitsandbytes works",
    "model-fits": "the memory per GPU (weights, KV cache, CUDA context, activations, logits) "
    "must fit the GPU's memory x cuda_memory_fraction",
    "context-length": "tgi_max_total_tokens and tgi_max_input_tokens stay within the model's "
    "context length, when its config is known",
}

PASS = "pass"
REFUSE = "refuse"
IGNORED = "ignored"
UNKNOWN = "unknown"
NOT_APPLICABLE = "not-applicable"

# TGI 3.3.1 moved to PyTorch 2.7 for CUDA 12.8, which has no sm_70 kernels.
FIRST_VERSION_WITHOUT_SM70 = (3, 3, 1)
SM70_DROPPED_BELOW = (7, 5)

# Quantize method -> lowest compute capability whose kernels TGI has for it.
QUANTIZATION_MIN_COMPUTE_CAPABILITY = {
    "bitsandbytes": "7.0",
    "bitsandbytes-nf4": "7.0",
    "bitsandbytes-fp4": "7.0",
    "awq": "7.5",
    "gptq": "7.5",
    "exl2": "7.5",
    "eetq": "7.5",
    "marlin": "8.0",
    "fp8": "8.0",
    "compressed-tensors": "8.0",
}

_VERSION_TAG = re.compile(r"^v?(?P<major>[0-9]+)\.(?P<minor>[0-9]+)(?:\.(?P<patch>[0-9]+))?")


def _version_text(version: tuple) -> str:
    return ".".join(str(part) for part in version)


def image_version(image: Any) -> tuple[int, int, int] | None:
    """The TGI version of an image reference from its tag ('...:3.3.0' -> (3, 3, 0)), else None.

    Digest-only references, 'latest' and tags without a version ('sha-...') give None.
    """
    if not isinstance(image, str):
        return None
    reference = image.split("@", 1)[0]
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:
        return None  # no tag (a ':' of a registry port only)
    match = _VERSION_TAG.match(tag)
    if not match:
        return None
    return (int(match["major"]), int(match["minor"]), int(match["patch"] or 0))


# ---------------------------------------------------------------------------------------------
# The rules, for one configuration


def image_rule(image: str, capability: tuple[int, int]) -> tuple[str, str]:
    if capability >= SM70_DROPPED_BELOW:
        return PASS, f"compute capability {_version_text(capability)} is built into every TGI 3"
    version = image_version(image)
    if version is None:
        return UNKNOWN, (
            f"the TGI version of tgi_image {image!r} cannot be read from its tag: TGI "
            f"{_version_text(FIRST_VERSION_WITHOUT_SM70)} and newer do not start on compute "
            f"capability {_version_text(capability)}; use a version tag such as "
            f"{TGI_IMAGE_SM70!r}"
        )
    if version >= FIRST_VERSION_WITHOUT_SM70:
        return REFUSE, (
            f"TGI {_version_text(version)} (tgi_image {image!r}) is built for CUDA 12.8 "
            f"without kernels for compute capability {_version_text(capability)}: it would "
            "not start"
        )
    return PASS, f"TGI {_version_text(version)} still has kernels for this GPU"


def _multi_gpu_rule(
    multi: Any, count: int, capability: tuple[int, int], architecture: str | None
) -> tuple[str, str]:
    if count == 1:
        return PASS, "one GPU"
    if (
        multi.mode == LAYER_SPLIT
        and capability < FLASH_ATTENTION_FROM
        and architecture in FLASH_ATTENTION_ONLY
    ):
        # Such a model does not start on this GPU at all: one refusal (that rule's) says so.
        return NOT_APPLICABLE, "flash-attention-required decides whether this model runs here"
    verdict = {True: PASS, False: REFUSE, None: UNKNOWN}[multi.works]
    return verdict, multi.reason


def _flash_attention_rule(capability: tuple[int, int], architecture: str | None):
    if capability >= FLASH_ATTENTION_FROM:
        return PASS, "flash attention is available"
    if architecture is None:
        return UNKNOWN, (
            "the model's architecture is unknown (Mistral, Mixtral and the vision-language "
            "models would not start); set tgi_model_architecture or turn on icc_hub_lookup"
        )
    if architecture not in FLASH_ATTENTION_ONLY:
        return PASS, f"{architecture} models run without flash attention too"
    return REFUSE, (
        f"{architecture} models run only with flash attention, which compute capability "
        f"{_version_text(capability)} lacks"
    )


def _quantization_source_text(traits: Mapping) -> str:
    method, source = traits["quantization"], traits["quantization_source"]
    if source == "config":
        return f"the checkpoint is pre-quantized with {method} (its quantization_config)"
    if source == "name":
        return f"the model id suggests a {method} checkpoint"
    return f"tgi_quantize is {method}"


def _quantization_rule(capability: tuple[int, int], traits: Mapping):
    method = traits["quantization"]
    if method is None:
        return PASS, "no quantization"
    minimum = compute_capability(QUANTIZATION_MIN_COMPUTE_CAPABILITY.get(method))
    if minimum is None:
        return UNKNOWN, (
            f"{_quantization_source_text(traits)}, a method not known here: whether this GPU "
            "can run it is unknown"
        )
    if capability < minimum:
        return REFUSE, (
            f"{_quantization_source_text(traits)}, which needs compute capability "
            f"{_version_text(minimum)}; this GPU has {_version_text(capability)}"
        )
    return PASS, f"{method} runs on compute capability {_version_text(capability)}"


def _parts_text(sizing: Mapping) -> str:
    split = sizing["shards"]
    per = f"/{split}" if split > 1 else ""
    parts = (
        f"weights {sizing['weights_gib']:.1f}{per} + KV cache {sizing['kv_cache_gib']:.1f}{per} "
        f"for {sizing['kv_cache_tokens']} tokens + CUDA context {sizing['context_gib']:.1f} + "
        f"activations {sizing['activations_gib']:.1f}"
    )
    if sizing["mode"] == TENSOR_SHARDING:
        parts += per
    parts += f" + logits {sizing['logits_gib']:.1f}"
    if sizing["mode"] == TENSOR_SHARDING:
        parts += per
    parts += " GiB"
    if not sizing["config_known"]:
        parts += "; config unknown: a conservative stand-in"
    return parts


def _fits_rule(sizing: Mapping | None, sizing_error: str | None, gpu: Mapping, usable: float):
    if sizing is None:
        return REFUSE, f"how much memory it needs is unknown: {sizing_error}"
    need = f"{sizing['per_gpu_gib']:.1f} GiB per GPU ({_parts_text(sizing)})"
    if sizing["per_gpu_gib"] <= usable:
        return PASS, f"needs {need} of {usable:g} GiB usable"
    return REFUSE, (
        f"needs {need}, but a {gpu['type']} has {usable:g} GiB usable "
        f"({gpu['memory_gib']:g} GiB x tgi_cuda_memory_fraction)"
    )


# Launcher flags that stretch the model's context (TGI's RoPE scaling): the model's own
# context length no longer bounds the token limits.
ROPE_SCALING_FLAGS = ("--rope-scaling", "--rope-factor")


def _context_rule(values: Mapping, traits: Mapping) -> tuple[str, str]:
    context = context_length(traits["config"])
    if context is None:
        return NOT_APPLICABLE, "the model's context length is unknown (no config from the Hub)"
    tokens = context["tokens"]
    flags = [
        arg for arg in values["tgi_extra_args"] or [] if str(arg).startswith(ROPE_SCALING_FLAGS)
    ]
    if flags:
        return NOT_APPLICABLE, (
            f"tgi_extra_args scales RoPE ({', '.join(flags)}): the model's context of {tokens} "
            "tokens no longer bounds the token limits"
        )
    total, prompt = values["tgi_max_total_tokens"], values["tgi_max_input_tokens"]
    beyond = []
    if total is not None and total > tokens:
        beyond.append(f"tgi_max_total_tokens {total} (at most {tokens})")
    if prompt is not None and prompt >= tokens:
        beyond.append(f"tgi_max_input_tokens {prompt} (at most {tokens - 1}: one for the answer)")
    where = f"{values['tgi_model_id']} attends to at most {tokens} tokens ({context['source']})"
    if beyond:
        return REFUSE, (
            f"{' and '.join(beyond)}: {where}; it was not trained for longer sequences, so TGI "
            "would answer garbage past them or fail"
        )
    return PASS, f"the token limits fit: {where}"


def evaluate(
    values: TgiSettings, catalog: Mapping, hub: Mapping | None, parameters: Any, sequences: int
) -> dict[str, Any]:
    """Sizing, memory and verdicts of one configuration; no recommendations."""
    count = values.gpu_count
    gpu_type, entry = gpu_entry(values, catalog)
    gpu = {
        "type": gpu_type,
        "count": count,
        "memory_gib": entry["memory_gib"],
        "compute_capability": entry["compute_capability"],
        "image": image_of(values, entry),
    }
    traits = describe_model(values["tgi_model_id"], quantize=values["tgi_quantize"], hub=hub)
    architecture = values["tgi_model_architecture"] or traits["architecture"]
    capability = compute_capability(entry["compute_capability"])
    # The mode the pod will be rendered with: the role passes the architecture judged here on.
    multi = choose_mode(values.but(tgi_model_architecture=architecture), catalog)
    sizing, sizing_error = None, None
    try:
        sizing = size_model(
            values["tgi_model_id"],
            dtype=values["tgi_dtype"],
            quantize=values["tgi_quantize"],
            parameters=parameters,
            hub=hub,
            gpu_count=count,
            mode=multi.mode,
            flash_attention=capability is not None and capability >= FLASH_ATTENTION_FROM,
            max_total_tokens=values["tgi_max_total_tokens"],
            max_input_tokens=values["tgi_max_input_tokens"],
            prefill_tokens=values["tgi_max_batch_prefill_tokens"],
            concurrent_sequences=sequences,
        )
    except SizingError as error:
        sizing_error = str(error)

    fraction = values["tgi_cuda_memory_fraction"] or 1.0
    usable = entry["memory_gib"] * fraction if entry["memory_gib"] is not None else None
    verdicts: dict[str, tuple[str, str]] = {}
    if values.on_cpu:
        for rule in RULES:
            verdicts[rule] = (NOT_APPLICABLE, "no GPU (tgi_gpu_count is 0): TGI runs on CPU")
    else:
        capability = capability or (0, 0)
        verdicts["tgi-image-cuda"] = image_rule(gpu["image"], capability)
        verdicts["multi-gpu-mode"] = _multi_gpu_rule(multi, count, capability, architecture)
        verdicts["flash-attention-required"] = _flash_attention_rule(capability, architecture)
        verdicts["quantization-compute-capability"] = _quantization_rule(capability, traits)
        verdicts["model-fits"] = _fits_rule(sizing, sizing_error, gpu, usable)
    # Judged on the limits as given: sizing's default for an unset tgi_max_total_tokens (the
    # context, when shorter than 4096) is TGI's, not the user's.
    verdicts["context-length"] = _context_rule(values, traits)
    return {
        "values": values,
        "gpu": gpu,
        "sizing": sizing,
        "sizing_error": sizing_error,
        "traits": traits,
        "architecture": architecture,
        "multi": multi,
        "usable": usable,
        "verdicts": verdicts,
        "parameters": parameters,
        "sequences": sequences,
    }


def passes(evaluation: Mapping, ignored: Any) -> bool:
    return all(
        verdict != REFUSE or rule in ignored
        for rule, (verdict, _) in evaluation["verdicts"].items()
    )

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The GPU rules for a namespace that runs vLLM (`icc_engine: vllm`): the image's CUDA build
against the GPU, the dtype, the quantization kernels' minimum compute capability, tensor
parallelism that must divide the attention heads, and vLLM's memory accounting
(gpu/vllm_sizing.py) with the largest max_model_len that fits; and the alternatives to a refusal,
each naming the engine.

Each rule gives (verdict, reason) as TGI's rules do (gpu_verdicts). Knowing less never passes
where knowing more refuses: without the model's config the heads are unknown and a tensor-parallel
size above 1 is refused (the rule can be ignored), and the memory is that of sizing's stand-in.
Pure Python: no Ansible imports, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.capacity.gpu_verdicts import (
    NOT_APPLICABLE,
    PASS,
    REFUSE,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import (
    BFLOAT16_FROM,
    VLLM_QUANTIZATION,
    VLLM_VERSION,
    attention_backend,
    dtype_for,
    heads_error,
    parallel_mode,
    quantization_error,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import compute_capability
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import SizingError
from ansible_collections.haw.icc.plugins.module_utils.gpu.vllm_sizing import (
    CONTEXT_TOO_LONG,
    FITS,
    NO_CACHE_MEMORY,
    WEIGHTS_TOO_BIG,
    size_for_vllm,
)

ENGINE = "vllm"
RULES: dict[str, str] = {
    "vllm-image-cuda": f"vLLM up to {VLLM_VERSION} is built with kernels for compute capability "
    "7.0; later releases are not known to be",
    "vllm-dtype": "a V100 has no bfloat16: vLLM runs there in float16 (--dtype half)",
    "vllm-quantization": "each quantization method needs a minimum compute capability "
    "(AWQ, GPTQ-Marlin and FP8 need 7.5)",
    "vllm-tensor-parallel": "the tensor-parallel size (the GPU count) must divide the model's "
    "attention heads",
    "vllm-memory": "weights, the profiling run's activations and non-torch memory leave room in "
    "0.9 of each GPU for the KV cache of one request of max_model_len tokens",
}
_VERSION = re.compile(r":v?(?P<major>[0-9]+)\.(?P<minor>[0-9]+)(?:\.(?P<patch>[0-9]+))?$")
_LAST_SM70_RELEASE = tuple(int(part) for part in VLLM_VERSION.split("."))


def image_rule(image: str, capability: tuple[int, int]) -> tuple[str, str]:
    if capability >= (7, 5):
        return PASS, f"compute capability {capability[0]}.{capability[1]} is built for"
    match = _VERSION.search(image or "")
    if match is None:
        return REFUSE, (
            f"{image} names no version: only vLLM up to {VLLM_VERSION} is known to carry kernels "
            f"for compute capability 7.0; pin such an image in the catalog's vllm_image"
        )
    version = (int(match["major"]), int(match["minor"]), int(match["patch"] or 0))
    if version <= _LAST_SM70_RELEASE:
        return PASS, f"{image} compiles compute capability 7.0 (CUDA architecture list)"
    return REFUSE, (
        f"{image} is newer than vLLM {VLLM_VERSION}, the last release read to compile compute "
        f"capability 7.0; use {VLLM_VERSION} (the catalog's vllm_image)"
    )


def dtype_rule(dtype: str | None, capability: tuple[int, int]) -> tuple[str, str]:
    if capability >= BFLOAT16_FROM:
        return PASS, "the checkpoint's own dtype (--dtype auto)"
    if dtype == "bfloat16":
        return REFUSE, (
            "tgi_dtype bfloat16: vLLM refuses it below compute capability 8.0 ('Bfloat16 is only "
            "supported on GPUs with compute capability of at least 8.0'); leave tgi_dtype unset "
            "or set float16"
        )
    return PASS, f"runs in float16 (--dtype {dtype_for(capability)}): a V100 has no bfloat16"


def quantization_rule(method: str | None, capability: tuple[int, int]) -> tuple[str, str]:
    if not method:
        return NOT_APPLICABLE, "not quantized"
    vllm_method = VLLM_QUANTIZATION.get(method)
    if vllm_method is None:
        return REFUSE, (
            f"quantization {method}: which vLLM {VLLM_VERSION} kernel runs it on compute "
            f"capability {capability[0]}.{capability[1]} is not known here; use icc_engine: tgi "
            "or an unquantized checkpoint"
        )
    error = quantization_error(vllm_method, capability)
    if error:
        return REFUSE, f"vLLM says: {error}"
    return PASS, f"vLLM's {vllm_method} kernels run on {capability[0]}.{capability[1]}"


def tensor_parallel_rule(sizing: Mapping | None, gpus: int) -> tuple[str, str]:
    if gpus == 1:
        return NOT_APPLICABLE, "one GPU: no tensor parallelism"
    heads = sizing["attention_heads"] if sizing else None
    if heads is None:
        return REFUSE, (
            f"tensor parallel over {gpus} GPUs needs the model's attention heads to split "
            f"evenly, and its config is unknown; turn on icc_hub_lookup"
        )
    error = heads_error(heads, gpus)
    if error:
        return REFUSE, f"vLLM says: {error}"
    return PASS, f"{heads} attention heads, {heads // gpus} per GPU"


def _memory_text(sizing: Mapping) -> str:
    tp = sizing["tensor_parallel_size"]
    per = f"/{tp}" if tp > 1 else ""
    return (
        f"0.9 x {sizing['total_gib']:.2f} GiB = {sizing['requested_gib']:.2f} GiB per GPU; "
        f"weights {sizing['weights_gib']:.2f}{per} + activations {sizing['activations_gib']:.2f} + "
        f"non-torch {sizing['non_torch_gib']:.2f} leave {sizing['kv_available_gib']:.2f} GiB of "
        f"KV cache, {sizing['kv_tokens_available']} tokens"
    )


def memory_rule(sizing: Mapping | None, sizing_error: str | None) -> tuple[str, str]:
    if sizing is None:
        return REFUSE, f"how much memory it needs is unknown: {sizing_error}"
    text = _memory_text(sizing)
    outcome, length = sizing["outcome"], sizing["max_model_len"]
    if outcome == FITS:
        return PASS, f"{text}: a request of {length} tokens fits"
    if outcome == WEIGHTS_TOO_BIG:
        return (
            REFUSE,
            f"the weights alone ({sizing['weights_per_gpu_gib']:.2f} GiB per GPU) "
            f"exceed the GPU ({sizing['total_gib']:.2f} GiB): CUDA out of memory while loading",
        )
    if outcome == NO_CACHE_MEMORY:
        return (
            REFUSE,
            f"{text}: no room for the KV cache ('No available memory for the cache blocks')",
        )
    # CONTEXT_TOO_LONG: the KV cache holds less than one request of max_model_len.
    largest = sizing["largest_max_model_len"]
    offer = f"; tgi_max_total_tokens {largest} would fit" if largest else ""
    return REFUSE, f"{text}, fewer than one request of max_model_len {length}{offer}"


def evaluate(
    model_id: str,
    *,
    gpu: Mapping[str, Any],
    gpu_count: int,
    max_model_len: int | None,
    quantize: str | None = None,
    dtype: str | None = None,
    parameters: Any = None,
    hub: Mapping | None = None,
) -> dict[str, Any]:
    """Every vLLM rule for `model_id` on `gpu_count` GPUs of the catalog entry `gpu` (memory_gib,
    compute_capability, vllm_image)."""
    capability = compute_capability(gpu["compute_capability"]) or (0, 0)
    sizing, sizing_error = None, None
    try:
        sizing = size_for_vllm(
            model_id,
            gpu_memory_gib=gpu["memory_gib"],
            tensor_parallel_size=gpu_count,
            max_model_len=max_model_len,
            quantize=quantize,
            parameters=parameters,
            hub=hub,
        )
    except SizingError as error:
        sizing_error = str(error)
    method = sizing["quantization"] if sizing else quantize
    verdicts = {
        "vllm-image-cuda": image_rule(gpu.get("vllm_image") or "", capability),
        "vllm-dtype": dtype_rule(dtype, capability),
        "vllm-quantization": quantization_rule(method, capability),
        "vllm-tensor-parallel": tensor_parallel_rule(sizing, gpu_count),
        "vllm-memory": memory_rule(sizing, sizing_error),
    }
    return {
        "engine": ENGINE,
        "attention": attention_backend(capability),
        "sizing": sizing,
        "verdicts": verdicts,
        "passes": all(verdict != REFUSE for verdict, _ in verdicts.values()),
    }


def alternatives(
    model_id: str,
    *,
    catalog: Mapping[str, Mapping[str, Any]],
    max_model_len: int | None,
    quantize: str | None = None,
    dtype: str | None = None,
    parameters: Any = None,
    hub: Mapping | None = None,
) -> list[str]:
    """Configurations that pass, fewest GPUs of the smallest memory first, each naming vLLM."""
    found = []
    for gpu_type, entry in sorted(catalog.items(), key=lambda item: item[1].get("memory_gib") or 0):
        if not entry.get("memory_gib"):
            continue
        for count in range(1, int(entry["gpus_per_node"]) + 1):
            result = evaluate(
                model_id,
                gpu=entry,
                gpu_count=count,
                max_model_len=max_model_len,
                quantize=quantize,
                dtype=dtype,
                parameters=parameters,
                hub=hub,
            )
            if result["passes"]:
                mode = ", tensor parallel" if count > 1 else ""
                found.append(f"vllm on {count} x {gpu_type}{mode}")
                break
    return found


def assess(
    values: Mapping[str, Any], catalog: Mapping, hub: Mapping | None, parameters: Any, ignored: set
) -> dict[str, Any]:
    """gpu_rules.assess's result for checked settings of a namespace on vLLM: the same keys,
    vLLM's rules, memory and alternatives."""
    gpu_type, count = values["tgi_gpu_type"], values["tgi_gpu_count"]
    entry = catalog[gpu_type]
    options = {
        "max_model_len": values["tgi_max_total_tokens"],
        "quantize": values["tgi_quantize"],
        "dtype": values["tgi_dtype"],
        "parameters": parameters,
        "hub": hub,
    }
    base = evaluate(values["tgi_model_id"], gpu=entry, gpu_count=count, **options)
    found = (
        [] if base["passes"] else alternatives(values["tgi_model_id"], catalog=catalog, **options)
    )
    sizing = base["sizing"]
    largest = sizing["largest_max_model_len"] if sizing else 0
    if sizing and not base["passes"] and sizing["outcome"] == CONTEXT_TOO_LONG and largest:
        found.insert(0, f"tgi_max_total_tokens: {largest} on {count} x {gpu_type}")
    rules, refusals, warnings = [], [], []
    for rule, (judged, reason) in base["verdicts"].items():
        verdict, recommendation = judged, ""
        if verdict == REFUSE:
            recommendation = " or ".join(found[:3]) or "icc_engine: tgi, or a smaller model"
            if rule in ignored:
                verdict = "ignored"
                warnings.append(
                    f"{rule} ignored (tgi_ignore_rules): {reason}; vLLM will probably fail"
                )
            else:
                refusals.append(f"{rule}: {reason}. Instead: {recommendation}")
        rules.append(
            {"id": rule, "verdict": verdict, "reason": reason, "recommendation": recommendation}
        )
    if sizing:
        warnings += [note for note in sizing["notes"] if "unknown" in note]
    verdicts = {entry["id"]: entry["verdict"] for entry in rules}
    mode = parallel_mode(count)
    memory = None
    if sizing:
        need = sizing["weights_per_gpu_gib"] + sizing["activations_gib"] + sizing["non_torch_gib"]
        memory = {
            "per_gpu_gib": round(need + sizing["kv_needed_gib"], 3),
            "usable_per_gpu_gib": round(sizing["requested_gib"], 3),
            "kv_cache_available_gib": round(sizing["kv_available_gib"], 3),
            "largest_max_model_len": largest,
        }
    return {
        "model_id": values["tgi_model_id"],
        "engine": ENGINE,
        "ok": not refusals,
        "fits": {PASS: True, REFUSE: False, "ignored": False}.get(verdicts["vllm-memory"]),
        "runs": all(verdicts[r] not in (REFUSE, "ignored") for r in verdicts if r != "vllm-memory"),
        "architecture": sizing["architecture"] if sizing else None,
        "multi_gpu": {
            "mode": mode,
            "works": True,
            "reason": f"vLLM, attention {base['attention']}",
        },
        "gpu": {
            "type": gpu_type,
            "count": count,
            "memory_gib": entry["memory_gib"],
            "compute_capability": entry["compute_capability"],
            "image": entry.get("vllm_image"),
        },
        "sizing": sizing,
        "memory": memory,
        "rules": rules,
        "refusals": refusals,
        "recommendations": found,
        "warnings": warnings,
    }

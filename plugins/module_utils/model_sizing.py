# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""How much GPU memory a model needs under TGI: parameters, precision, overhead, KV cache.

The parameter count comes from, in this order: an explicit override (`tgi_model_parameters`),
the Hugging Face Hub (through a fetcher the caller injects; `hub_fetcher` is the default), or
the model id itself (`7b`, `1.1B`, `8x7B`, `bloom-7b1`, `350m`). Everything else is arithmetic:

    weights  = parameters x bytes per parameter (by dtype or quantization)
    overhead = 20% of the weights (activations, CUDA context)
    KV cache = 2 (K and V) x layers x KV heads x head dim x bytes per value, per token,
               for max_total_tokens x concurrent sequences (only when the config is known)
    per GPU  = (weights + overhead + KV cache) / shards

Pure Python apart from `hub_fetcher`, which imports huggingface_hub only when called. No
Ansible imports, so modules, filters and unit tests share it. Runs on Python 3.8+.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.tgi_settings import (
    DTYPES,
    QUANTIZE_METHODS,
)

GIB = 2**30
# TGI needs room beyond the weights for activations and the CUDA context.
OVERHEAD_FRACTION = 0.20
# 4-bit formats store a scale (and often a zero point) per group of weights: a few percent more.
FOUR_BIT_SCALES_FRACTION = 0.06
# Tokens the KV cache estimate assumes when max_total_tokens is not set.
DEFAULT_KV_TOKENS = 4096
PARAMETERS_VARIABLE = "tgi_model_parameters"

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
_FLOAT_DTYPES = frozenset({"F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2"})

# A size in a model id: "7b", "1.1B", "8x7B" (experts x size), "7b1" (7.1B), "350m". A letter or
# digit right before or after means it is part of another word ("4bit", "v0.1", "A2.7B").
_SIZE_IN_ID = re.compile(
    r"(?<![a-z0-9.])(?:(?P<experts>[0-9]+)x)?(?P<number>[0-9]+(?:\.[0-9]+)?)"
    r"(?P<unit>[bm])(?P<decimals>[0-9]+)?(?![a-z0-9])",
    re.IGNORECASE,
)
# A size given on its own: "7B", "1.1b", "350M", "8x7B", "0.5 T".
_SIZE_ALONE = re.compile(
    r"^(?:(?P<experts>[0-9]+)\s*x\s*)?(?P<number>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[kmbt])$",
    re.IGNORECASE,
)
_UNIT = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}

# Words of a model id that hint a pre-quantized checkpoint, most specific first.
_QUANTIZATION_HINTS = (
    ("awq", "awq"),
    ("gptq", "gptq"),
    ("exl2", "exl2"),
    ("marlin", "marlin"),
    ("fp8", "fp8"),
    ("w4a16", "compressed-tensors"),
    ("w8a16", "compressed-tensors"),
    ("w8a8", "compressed-tensors"),
    ("eetq", "eetq"),
    ("nf4", "bitsandbytes-nf4"),
    ("fp4", "bitsandbytes-fp4"),
    ("4bit", "bitsandbytes-nf4"),
    ("int4", "gptq"),  # a guess: int4 checkpoints on the Hub are mostly GPTQ
    ("8bit", "bitsandbytes"),
    ("int8", "bitsandbytes"),
)
_QUANTIZATION_BITS_HINTS = {"w4a16": 4, "w8a16": 8, "w8a8": 8}

# Architecture (the config's model_type) guessed from a model id, first match wins.
_ARCHITECTURE_HINTS = (
    (re.compile(r"mixtral"), "mixtral"),
    (re.compile(r"mistral|zephyr"), "mistral"),
    (re.compile(r"qwen3"), "qwen3"),
    (re.compile(r"qwen2|qwen1\.5"), "qwen2"),
    (re.compile(r"gemma-?3(?=[-_.]|$)"), "gemma3"),
    (re.compile(r"gemma-?2(?=[-_.]|$)"), "gemma2"),
    (re.compile(r"gemma"), "gemma"),
    (re.compile(r"phi-?3(?=[-_.]|$)"), "phi3"),
    (re.compile(r"(?:^|[-_.])phi"), "phi"),
    (re.compile(r"starcoder2"), "starcoder2"),
    (re.compile(r"starcoder|santacoder"), "gpt_bigcode"),
    (re.compile(r"llama|vicuna|solar"), "llama"),
    (re.compile(r"bloom"), "bloom"),
    (re.compile(r"(?:^|[-_.])mpt(?=[-_.]|$)"), "mpt"),
    (re.compile(r"falcon"), "falcon"),
    (re.compile(r"gpt-?neox|pythia"), "gpt_neox"),
    (re.compile(r"(?:^|[-_.])opt(?=[-_.])"), "opt"),
    (re.compile(r"gpt2"), "gpt2"),
    (re.compile(r"(?:^|[-_.])t5(?=[-_.]|$)"), "t5"),
)
# model_type spellings that TGI treats as one architecture.
_ARCHITECTURE_ALIASES = {"refinedweb": "falcon", "refinedwebmodel": "falcon"}

# A checkpoint's quantization_config.quant_method -> TGI quantize method.
_CHECKPOINT_METHODS = {
    "gptq": "gptq",
    "awq": "awq",
    "exl2": "exl2",
    "marlin": "marlin",
    "gptq_marlin": "marlin",
    "eetq": "eetq",
    "fp8": "fp8",
    "fbgemm_fp8": "fp8",
    "compressed-tensors": "compressed-tensors",
    "compressed_tensors": "compressed-tensors",
}

# Config keys that mean the same thing across architectures, in order of preference.
_LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")
_HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads")
_KV_HEAD_KEYS = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
_HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")


class SizingError(ValueError):
    """No usable parameter count (or a bad sizing input); the message names the variable."""


class HubUnavailable(Exception):
    """The Hub could not answer; the message is one line saying why."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_number(value: Any) -> float | None:
    if _is_number(value) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def _model_name(model_id: Any) -> str:
    """The repository name of a Hub id, lower-cased: 'Org/Name-7B' -> 'name-7b'."""
    return str(model_id).rstrip("/").rsplit("/", 1)[-1].lower()


def _size_from_match(match: Any) -> float:
    number = match.group("number")
    decimals = match.groupdict().get("decimals")
    if decimals and "." not in number:
        number = f"{number}.{decimals}"  # bloom-7b1 -> 7.1
    size = float(number) * _UNIT[match.group("unit").lower()]
    if match.group("experts"):
        # Experts share attention and embeddings: experts x size is an upper bound.
        size *= int(match.group("experts"))
    return size


def parse_parameter_count(text: Any) -> float | None:
    """A parameter count from a number, a size like '7B' or '8x7B', or a model id; else None.

    'meta-llama/Llama-2-7b-hf' -> 7e9, '1.1B' -> 1.1e9, '8x7B' -> 56e9, 'bloom-7b1' -> 7.1e9,
    '350m' -> 3.5e8, 7000000000 -> 7e9. Ids are searched in their repository name only, and
    for the first size there (later ones are usually context lengths or training tokens).
    """
    if _is_number(text):
        return _positive_number(text)
    if not isinstance(text, str) or not text.strip():
        return None
    stripped = text.strip()
    try:
        return _positive_number(float(stripped))
    except ValueError:
        pass
    alone = _SIZE_ALONE.match(stripped)
    if alone:
        return _positive_number(_size_from_match(alone))
    in_id = _SIZE_IN_ID.search(_model_name(stripped))
    return _positive_number(_size_from_match(in_id)) if in_id else None


def _name_words(model_id: Any) -> list[str]:
    return [word for word in re.split(r"[-_.\s]+", _model_name(model_id)) if word]


def quantization_hint(model_id: Any) -> str | None:
    """The quantize method a model id hints at ('-AWQ' -> 'awq', '-bnb-4bit' -> nf4), or None."""
    words = set(_name_words(model_id))
    for word, method in _QUANTIZATION_HINTS:
        if word in words:
            return method
    return None


def guess_architecture(model_id: Any, config: Mapping | None = None) -> str | None:
    """The config's model_type when known, else a guess from the id ('Mistral-7B' -> mistral)."""
    if isinstance(config, Mapping) and isinstance(config.get("model_type"), str):
        model_type = config["model_type"].strip().lower()
        if model_type:
            return _ARCHITECTURE_ALIASES.get(model_type, model_type)
    name = _model_name(model_id)
    for pattern, architecture in _ARCHITECTURE_HINTS:
        if pattern.search(name):
            return architecture
    return None


def checkpoint_quantization(config: Mapping | None) -> tuple[str | None, float | None]:
    """(TGI quantize method, weight bits) of a pre-quantized checkpoint's config, else (None, None).

    Unknown quant_method values are returned as given, so the rules can say they do not know them.
    """
    if not isinstance(config, Mapping):
        return None, None
    quantization = config.get("quantization_config")
    if not isinstance(quantization, Mapping):
        return None, None
    raw = str(quantization.get("quant_method") or "").strip().lower()
    bits = _positive_number(quantization.get("bits"))
    if raw == "bitsandbytes":
        if quantization.get("load_in_4bit"):
            kind = str(quantization.get("bnb_4bit_quant_type") or "nf4").lower()
            return ("bitsandbytes-fp4" if kind == "fp4" else "bitsandbytes-nf4"), 4.0
        return "bitsandbytes", 8.0
    if raw in ("compressed-tensors", "compressed_tensors") and bits is None:
        bits = _compressed_tensors_bits(quantization)
    if not raw:
        return None, None
    return _CHECKPOINT_METHODS.get(raw, raw), bits


def _compressed_tensors_bits(quantization: Mapping) -> float | None:
    groups = quantization.get("config_groups")
    if not isinstance(groups, Mapping):
        return None
    widths = [
        group["weights"].get("num_bits")
        for group in groups.values()
        if isinstance(group, Mapping) and isinstance(group.get("weights"), Mapping)
    ]
    widths = [width for width in widths if _positive_number(width)]
    return float(max(widths)) if widths else None


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
        words = set(_name_words(model_id))
        bits = next((float(b) for w, b in _QUANTIZATION_BITS_HINTS.items() if w in words), None)
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


def _first_positive(config: Mapping, keys: tuple) -> float | None:
    for key in keys:
        value = _positive_number(config.get(key))
        if value is not None:
            return value
    return None


def kv_cache_layout(config: Mapping | None) -> dict[str, Any] | None:
    """{"layers", "kv_heads", "head_dim", "max_positions"} from a model config, or None.

    Handles the key spellings of Llama-style, GPT-2/BLOOM (n_layer, n_head, n_embd), MPT
    (n_layers, d_model, attn_config.kv_n_heads) and Falcon (num_kv_heads, multi_query) configs,
    and multimodal configs that keep the language model under text_config.
    """
    if not isinstance(config, Mapping):
        return None
    if _first_positive(config, _LAYER_KEYS) is None and isinstance(
        config.get("text_config"), Mapping
    ):
        config = config["text_config"]
    layers = _first_positive(config, _LAYER_KEYS)
    heads = _first_positive(config, _HEAD_KEYS)
    hidden = _first_positive(config, _HIDDEN_KEYS)
    head_dim = _positive_number(config.get("head_dim"))
    if head_dim is None and hidden and heads:
        head_dim = hidden / heads
    kv_heads = _first_positive(config, _KV_HEAD_KEYS)
    attention = config.get("attn_config")
    if kv_heads is None and isinstance(attention, Mapping):
        kv_heads = _positive_number(attention.get("kv_n_heads"))
    if (
        kv_heads is None
        and config.get("multi_query")
        and not config.get("new_decoder_architecture")
    ):
        kv_heads = 1.0  # multi-query attention: one K/V head shared by all heads
    kv_heads = kv_heads or heads
    if not (layers and kv_heads and head_dim):
        return None
    positions = _first_positive(config, _POSITION_KEYS)
    return {
        "layers": int(layers),
        "kv_heads": int(kv_heads),
        "head_dim": int(head_dim),
        "max_positions": int(positions) if positions else None,
    }


def hub_data(model_info: Mapping | None, config: Mapping | None = None) -> dict[str, Any]:
    """Normalizes Hub API answers into what `size_model` takes as `hub`.

    `model_info` is shaped like `GET /api/models/<id>?expand=safetensors&expand=config`
    (`{"safetensors": {"total", "parameters": {dtype: count}}, "config": {...}}`); `config` is
    the repository's config.json, laid over the API's shorter config. Returns
    {"parameters": int|None, "config": dict|None, "source": "hub", "safetensors_total",
    "parameters_by_dtype", "weights_bytes" (the weights as stored), "notes": [str]}.

    Pre-quantized checkpoints pack 32/bits weights into each int32 (GPTQ, AWQ) or two 4-bit
    weights into each uint8 (bitsandbytes), so the Hub's total counts tensor elements, not
    parameters: the per-dtype breakdown recovers both the parameters and the stored bytes.
    """
    info = model_info if isinstance(model_info, Mapping) else {}
    merged: dict[str, Any] = {}
    for part in (info.get("config"), config):
        if isinstance(part, Mapping):
            merged.update(part)
    notes: list[str] = []
    safetensors = info.get("safetensors") if isinstance(info.get("safetensors"), Mapping) else {}
    total = _positive_number(safetensors.get("total"))
    raw_counts = safetensors.get("parameters")
    by_dtype = (
        {str(k): int(v) for k, v in raw_counts.items() if _positive_number(v)}
        if isinstance(raw_counts, Mapping)
        else {}
    )
    parameters = int(total) if total else None
    weights_bytes = None
    if by_dtype:
        weights_bytes = sum(
            count * SAFETENSORS_DTYPE_BYTES.get(k, 2) for k, count in by_dtype.items()
        )
        method, bits = checkpoint_quantization(merged)
        bits = bits or 4.0
        if method in PACKED_INT32_METHODS and by_dtype.get("I32"):
            per_element = max(int(32 // bits), 1)
            floats = sum(n for k, n in by_dtype.items() if k in _FLOAT_DTYPES)
            parameters = by_dtype["I32"] * per_element + floats
            notes.append(
                f"the Hub counts {by_dtype['I32']} packed int32 elements of this {method} "
                f"checkpoint: about {per_element} weights each, so ~{parameters / 1e9:.2f}B "
                f"parameters stored in {weights_bytes / GIB:.2f} GiB"
            )
        elif method and method.startswith("bitsandbytes-") and by_dtype.get("U8"):
            floats = sum(n for k, n in by_dtype.items() if k in _FLOAT_DTYPES)
            parameters = by_dtype["U8"] * 2 + floats
            notes.append(
                f"the Hub counts {by_dtype['U8']} uint8 elements holding two 4-bit weights "
                f"each: ~{parameters / 1e9:.2f}B parameters stored in "
                f"{weights_bytes / GIB:.2f} GiB"
            )
        elif parameters is None:
            parameters = sum(by_dtype.values())
    elif parameters is None:
        notes.append("the Hub lists no safetensors weights for this model (size unknown there)")
    return {
        "parameters": parameters,
        "config": merged or None,
        "source": "hub",
        "safetensors_total": int(total) if total else None,
        "parameters_by_dtype": by_dtype or None,
        "weights_bytes": weights_bytes,
        "notes": notes,
    }


def _offline_by_environment() -> bool:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    return False


def _one_line_reason(model_id: str, error: BaseException) -> str:
    """Why the Hub did not answer, in one line, from the error's class and first line."""
    names = [cls.__name__ for cls in type(error).__mro__]
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "OfflineModeIsEnabled" in names:
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE is set)"
    if "GatedRepoError" in names:
        return f"{model_id} is gated: accept its license on the Hub and set tgi_hf_token"
    if "RepositoryNotFoundError" in names:
        return (
            f"{model_id} was not found on the Hub (or is private: set tgi_hf_token); "
            "check tgi_model_id"
        )
    if "RevisionNotFoundError" in names:
        return f"revision not found for {model_id}: check tgi_model_revision"
    if any("Timeout" in name for name in names):
        return f"the Hub did not answer in time ({type(error).__name__})"
    if any(name in ("ConnectError", "ConnectionError", "NetworkError") for name in names):
        return f"the Hub is not reachable ({text[:160]})"
    return f"{type(error).__name__}: {text[:200]}"


def hub_fetcher(
    model_id: str, revision: str | None = None, token: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """The model's size and config from the Hugging Face Hub, normalized by `hub_data`.

    Two requests through huggingface_hub, each limited to `timeout` seconds: the model info
    (safetensors counts, short config) and config.json (layers, heads). A failing config.json
    only leaves a note. Raises HubUnavailable with a one-line reason on any other failure:
    library missing, offline mode (HF_HUB_OFFLINE), unknown or private model, timeout.
    """
    if _offline_by_environment():
        # huggingface_hub reads HF_HUB_OFFLINE only at import: check it here, at call time.
        raise HubUnavailable("offline mode: HF_HUB_OFFLINE is set, the Hub is not asked")
    try:
        from huggingface_hub import HfApi, hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
    except ImportError as error:
        raise HubUnavailable(
            f"the Python library huggingface_hub is not installed ({error}): "
            "pip install huggingface_hub, or set tgi_model_parameters"
        ) from error
    try:
        info = HfApi().model_info(
            model_id,
            revision=revision,
            timeout=timeout,
            expand=["safetensors", "config"],
            token=token,
        )
    except Exception as error:
        raise HubUnavailable(_one_line_reason(model_id, error)) from error
    safetensors = getattr(info, "safetensors", None)
    model_info = {
        "id": getattr(info, "id", model_id),
        "safetensors": (
            {
                "total": getattr(safetensors, "total", None),
                "parameters": dict(getattr(safetensors, "parameters", None) or {}),
            }
            if safetensors is not None
            else None
        ),
        "config": getattr(info, "config", None),
    }
    config = None
    config_note = None
    try:
        url = hf_hub_url(model_id, "config.json", revision=revision)
        response = get_session().get(url, headers=build_hf_headers(token=token), timeout=timeout)
        hf_raise_for_status(response)
        config = response.json()
        if not isinstance(config, Mapping):
            raise ValueError("config.json is not a JSON object")
    except Exception as error:
        config = None
        config_note = f"config.json not read ({_one_line_reason(model_id, error)})"
    data = hub_data(model_info, config)
    if config_note:
        data["notes"].append(config_note)
    return data


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
    if gpu_count == 0:
        notes.append("CPU: weights assumed in float32 (TGI's CPU default)")
        return "float32", notes
    return "float16", notes


def _check_inputs(model_id, dtype, quantize, gpu_count, max_total_tokens, sequences) -> None:
    if not isinstance(model_id, str) or not model_id.strip():
        raise SizingError(f"tgi_model_id: {model_id!r} is not a Hugging Face model id")
    if dtype is not None and dtype not in DTYPES:
        raise SizingError(f"tgi_dtype: {dtype!r} is not one of {', '.join(DTYPES)}")
    if quantize is not None and quantize not in QUANTIZE_METHODS:
        raise SizingError(f"tgi_quantize: {quantize!r} is not one of {', '.join(QUANTIZE_METHODS)}")
    if not (isinstance(gpu_count, int) and not isinstance(gpu_count, bool) and gpu_count >= 0):
        raise SizingError(f"tgi_gpu_count: {gpu_count!r} is not a whole number >= 0")
    if max_total_tokens is not None and not (
        isinstance(max_total_tokens, int)
        and not isinstance(max_total_tokens, bool)
        and max_total_tokens >= 1
    ):
        raise SizingError(f"tgi_max_total_tokens: {max_total_tokens!r} is not a whole number >= 1")
    if not (isinstance(sequences, int) and not isinstance(sequences, bool) and sequences >= 1):
        raise SizingError(f"concurrent_sequences: {sequences!r} is not a whole number >= 1")


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
    hub_count = _positive_number(hub.get("parameters")) if isinstance(hub, Mapping) else None
    if hub_count:
        return hub_count, "hub", [f"parameters from the Hub: {hub_count / 1e9:.3g}B"]
    named = parse_parameter_count(model_id)
    if named:
        notes = [f"parameters guessed from the model id: {named / 1e9:g}B"]
        if re.search(r"[0-9]+x[0-9]", _model_name(model_id)):
            notes.append("mixture of experts: experts x expert size is an upper bound")
        return named, "name", notes
    raise SizingError(
        f"the size of {model_id!r} is unknown: the Hub was not asked or did not answer, and "
        f"the model id names no size (like '7B'); set {PARAMETERS_VARIABLE} "
        "(for example '7B' or 7000000000)"
    )


def size_model(
    model_id: str,
    *,
    dtype: str | None = None,
    quantize: str | None = None,
    parameters: Any = None,
    hub: Mapping | None = None,
    gpu_count: int = 1,
    max_total_tokens: int | None = None,
    concurrent_sequences: int = 1,
) -> dict[str, Any]:
    """The memory `model_id` needs under TGI; see the module docstring for the arithmetic.

    `parameters` (a number or '7B') overrides everything; else `hub` (what a fetcher returned)
    gives the count, else the model id. Raises SizingError when none does, or on bad inputs.
    GiB figures are rounded to 3 decimals.
    """
    _check_inputs(model_id, dtype, quantize, gpu_count, max_total_tokens, concurrent_sequences)
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

    bytes_per_parameter = PRECISION_BYTES[precision]
    stored = _positive_number(hub.get("weights_bytes")) if hub else None
    if stored and source == "hub" and method and method == traits["checkpoint_quantization"]:
        # Pre-quantized: the stored bytes already include scales and unquantized layers.
        weights = stored
        bytes_per_parameter = stored / count
        notes.append(f"weights as stored on the Hub: {stored / GIB:.2f} GiB")
    else:
        weights = count * bytes_per_parameter
    overhead = weights * OVERHEAD_FRACTION

    layout = kv_cache_layout(traits["config"])
    tokens = max_total_tokens
    if tokens is None:
        tokens = DEFAULT_KV_TOKENS
        if layout and layout["max_positions"]:
            tokens = min(tokens, layout["max_positions"])
        notes.append(
            f"KV cache sized for {tokens} tokens per sequence (tgi_max_total_tokens unset)"
        )
    kv_tokens = int(tokens) * int(concurrent_sequences)
    kv_cache = None
    if layout:
        value_bytes = 4 if precision == "float32" else 2
        per_token = 2 * layout["layers"] * layout["kv_heads"] * layout["head_dim"] * value_bytes
        kv_cache = per_token * kv_tokens
        notes.append(
            f"KV cache: 2 x {layout['layers']} layers x {layout['kv_heads']} KV heads x "
            f"{layout['head_dim']} x {value_bytes} bytes = {per_token // 1024} KiB per token"
        )
    else:
        notes.append("KV cache not counted: the model config (layers, heads) is unknown")

    total = weights + overhead + (kv_cache or 0)
    shards = max(gpu_count, 1)
    return {
        "model_id": model_id,
        "parameters": count,
        "parameters_source": source,
        "architecture": traits["architecture"],
        "precision": precision,
        "quantization": method,
        "quantization_source": traits["quantization_source"],
        "bytes_per_parameter": round(bytes_per_parameter, 4),
        "weights_gib": round(weights / GIB, 3),
        "overhead_gib": round(overhead / GIB, 3),
        "kv_cache_gib": round(kv_cache / GIB, 3) if kv_cache is not None else None,
        "kv_cache_tokens": kv_tokens,
        "total_gib": round(total / GIB, 3),
        "shards": shards,
        "per_gpu_gib": round(total / shards / GIB, 3),
        "notes": notes,
    }

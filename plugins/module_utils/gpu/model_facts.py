# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What is known of a model before sizing it, from its id and its config: a parameter count read
from the id or given on its own ('7B', '8x7B', 'bloom-7b1'), the quantization an id hints at or
a checkpoint's config declares, the architecture (the config's model_type, else a guess from the
id), the KV cache's layout and the context length. sizing.py turns these into memory.

Pure Python: no Ansible imports, no I/O (the config comes in as a mapping, from
module_utils/gpu/hub.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

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
QUANTIZATION_BITS_HINTS = {"w4a16": 4, "w8a16": 8, "w8a8": 8}

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
LAYER_KEYS = ("num_hidden_layers", "n_layer", "n_layers", "num_layers")
HEAD_KEYS = ("num_attention_heads", "n_head", "n_heads")
_KV_HEAD_KEYS = ("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
HIDDEN_KEYS = ("hidden_size", "n_embd", "d_model")
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def positive_number(value: Any) -> float | None:
    if _is_number(value) and math.isfinite(value) and value > 0:
        return float(value)
    return None


def model_name(model_id: Any) -> str:
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
        return positive_number(text)
    if not isinstance(text, str) or not text.strip():
        return None
    stripped = text.strip()
    try:
        return positive_number(float(stripped))
    except ValueError:
        pass
    alone = _SIZE_ALONE.match(stripped)
    if alone:
        return positive_number(_size_from_match(alone))
    in_id = _SIZE_IN_ID.search(model_name(stripped))
    return positive_number(_size_from_match(in_id)) if in_id else None


def name_words(model_id: Any) -> list[str]:
    return [word for word in re.split(r"[-_.\s]+", model_name(model_id)) if word]


def quantization_hint(model_id: Any) -> str | None:
    """The quantize method a model id hints at ('-AWQ' -> 'awq', '-bnb-4bit' -> nf4), or None."""
    words = set(name_words(model_id))
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
    name = model_name(model_id)
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
    bits = positive_number(quantization.get("bits"))
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
    widths = [width for width in widths if positive_number(width)]
    return float(max(widths)) if widths else None


def first_positive(config: Mapping, keys: tuple) -> float | None:
    for key in keys:
        value = positive_number(config.get(key))
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
    if first_positive(config, LAYER_KEYS) is None and isinstance(
        config.get("text_config"), Mapping
    ):
        config = config["text_config"]
    layers = first_positive(config, LAYER_KEYS)
    heads = first_positive(config, HEAD_KEYS)
    hidden = first_positive(config, HIDDEN_KEYS)
    head_dim = positive_number(config.get("head_dim"))
    if head_dim is None and hidden and heads:
        head_dim = hidden / heads
    kv_heads = first_positive(config, _KV_HEAD_KEYS)
    attention = config.get("attn_config")
    if kv_heads is None and isinstance(attention, Mapping):
        kv_heads = positive_number(attention.get("kv_n_heads"))
    if (
        kv_heads is None
        and config.get("multi_query")
        and not config.get("new_decoder_architecture")
    ):
        kv_heads = 1.0  # multi-query attention: one K/V head shared by all heads
    kv_heads = kv_heads or heads
    if not (layers and kv_heads and head_dim):
        return None
    positions = first_positive(config, _POSITION_KEYS)
    return {
        "layers": int(layers),
        "kv_heads": int(kv_heads),
        "head_dim": int(head_dim),
        "max_positions": int(positions) if positions else None,
    }


def context_length(config: Mapping | None) -> dict[str, Any] | None:
    """{"tokens", "source"}: how many tokens the model attends to at most, from its config
    (max_position_embeddings, or GPT-2's n_positions; a language model's text_config in a
    multimodal config), else None.

    A `rope_scaling` with a factor stretches it: to factor x original_max_position_embeddings
    (or x max_position_embeddings when the original is not given), when that is longer. Other
    keys (MPT's max_seq_len, ChatGLM's seq_length) are left alone: ALiBi models and some others
    run past them, and this must never refuse on a guess.
    """
    if not isinstance(config, Mapping):
        return None
    if first_positive(config, ("max_position_embeddings", "n_positions")) is None and isinstance(
        config.get("text_config"), Mapping
    ):
        config = config["text_config"]
    for key in ("max_position_embeddings", "n_positions"):
        positions = positive_number(config.get(key))
        if positions is not None:
            break
    else:
        return None
    tokens, source = int(positions), f"{key} in its config"
    scaling = config.get("rope_scaling")
    factor = positive_number(scaling.get("factor")) if isinstance(scaling, Mapping) else None
    if factor and factor > 1:
        original = positive_number(scaling.get("original_max_position_embeddings")) or positions
        if int(original * factor) > tokens:
            tokens = int(original * factor)
            source = f"{key} {int(positions)} stretched by its rope_scaling factor {factor:g}"
    return {"tokens": tokens, "source": source}

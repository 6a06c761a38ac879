"""What a model's id and config say of it (module_utils/gpu/model_facts.py): parameter counts
from text, the quantization an id hints at, the architecture, a checkpoint's quantization, the KV
cache's layout and the context length. The memory made of them is tested in test_sizing.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.gpu.hub import hub_data
from ansible_collections.haw.icc.plugins.module_utils.gpu.model_facts import (
    checkpoint_quantization,
    context_length,
    guess_architecture,
    kv_cache_layout,
    parse_parameter_count,
    quantization_hint,
)

HUB_DATA = Path(__file__).parents[1] / "data" / "hub"


def hub_answer(model_id: str) -> dict[str, Any]:
    """The fetcher's result for a model of data/hub, through the same normalizer it uses."""
    folder = HUB_DATA / model_id.replace("/", "__")
    info = json.loads((folder / "model_info.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    return hub_data(info, config)


# ---------------------------------------------------------------------------------------------
# Parameter counts from text

PARSED = {
    "meta-llama/Llama-2-7b-hf": 7e9,
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": 1.1e9,
    "mistralai/Mixtral-8x7B-Instruct-v0.1": 8 * 7e9,
    "mistralai/Mixtral-8x22B-v0.1": 8 * 22e9,
    "bigscience/bloom-7b1": 7.1e9,
    "bigscience/bloom-1b7": 1.7e9,
    "bigscience/bloom-560m": 560e6,
    "facebook/opt-350m": 350e6,
    "Qwen/Qwen2.5-1.5B-Instruct": 1.5e9,
    "Qwen/Qwen2.5-0.5B-Instruct": 0.5e9,
    "upstage/SOLAR-10.7B-Instruct-v1.0": 10.7e9,
    "unsloth/llama-3-8b-Instruct-bnb-4bit": 8e9,  # "4bit" is not a size
    "TinyLlama/TinyLlama-1.1B-intermediate-step-1431k-3T": 1.1e9,  # the first size counts
    "microsoft/Phi-3-mini-4k-instruct": None,  # "4k" is a context length
    "microsoft/phi-2": None,
    "gpt2": None,
    "7B": 7e9,
    "1.1b": 1.1e9,
    "350M": 350e6,
    "8x7B": 56e9,
    " 13 B ": 13e9,
    "7000000000": 7e9,
    "7e9": 7e9,
    7000000000: 7e9,
    1.5e9: 1.5e9,
    0: None,
    -7: None,
    True: None,
    None: None,
    "": None,
    "lots": None,
}


@pytest.mark.parametrize(("text", "expected"), PARSED.items(), ids=[repr(k) for k in PARSED])
def test_parse_parameter_count(text: Any, expected: float | None) -> None:
    assert parse_parameter_count(text) == (pytest.approx(expected) if expected else None)


HINTS = {
    "TheBloke/Llama-2-13B-chat-GPTQ": "gptq",
    "TheBloke/Mistral-7B-Instruct-v0.2-AWQ": "awq",
    "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4": "gptq",
    "Qwen/Qwen2.5-7B-Instruct-AWQ": "awq",
    "turboderp/Llama-3-8B-Instruct-exl2": "exl2",
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8": "fp8",
    "neuralmagic/Meta-Llama-3-8B-Instruct-quantized.w4a16": "compressed-tensors",
    "unsloth/llama-3-8b-Instruct-bnb-4bit": "bitsandbytes-nf4",
    "someone/Llama-2-7b-chat-int4": "gptq",
    "someone/Llama-2-7b-chat-8bit": "bitsandbytes",
    "meta-llama/Llama-2-7b-chat-hf": None,
    "TheBlokeAWQ/Llama-2-7b": None,  # only the repository name counts
}


@pytest.mark.parametrize(("model_id", "expected"), HINTS.items(), ids=HINTS.keys())
def test_quantization_hint(model_id: str, expected: str | None) -> None:
    assert quantization_hint(model_id) == expected


ARCHITECTURES = {
    "mistralai/Mixtral-8x7B-Instruct-v0.1": "mixtral",
    "mistralai/Mistral-7B-Instruct-v0.2": "mistral",
    "TheBloke/Mistral-7B-Instruct-v0.2-AWQ": "mistral",
    "meta-llama/Llama-2-7b-chat-hf": "llama",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": "llama",
    "Qwen/Qwen2.5-1.5B-Instruct": "qwen2",
    "google/gemma-2b": "gemma",
    "google/gemma-2-9b-it": "gemma2",
    "microsoft/Phi-3-mini-4k-instruct": "phi3",
    "microsoft/phi-2": "phi",
    "bigscience/bloom-560m": "bloom",
    "mosaicml/mpt-7b": "mpt",
    "tiiuae/falcon-40b": "falcon",
    "EleutherAI/pythia-70m": "gpt_neox",
    "facebook/opt-350m": "opt",
    "someone/prompt-tuned-7b": None,  # "mpt" inside a word is not MPT
}


@pytest.mark.parametrize(("model_id", "expected"), ARCHITECTURES.items(), ids=ARCHITECTURES.keys())
def test_guess_architecture_from_the_id(model_id: str, expected: str | None) -> None:
    assert guess_architecture(model_id) == expected


def test_the_config_model_type_wins_over_the_id() -> None:
    assert guess_architecture("someone/Mistral-lookalike-7b", {"model_type": "llama"}) == "llama"
    assert guess_architecture("tiiuae/falcon-7b", {"model_type": "RefinedWebModel"}) == "falcon"


# ---------------------------------------------------------------------------------------------
# Config details

CHECKPOINTS = [
    ({"quantization_config": {"quant_method": "gptq", "bits": 4}}, ("gptq", 4.0)),
    ({"quantization_config": {"quant_method": "gptq", "bits": 8}}, ("gptq", 8.0)),
    ({"quantization_config": {"quant_method": "awq", "bits": 4}}, ("awq", 4.0)),
    ({"quantization_config": {"quant_method": "fbgemm_fp8"}}, ("fp8", None)),
    (
        {"quantization_config": {"quant_method": "bitsandbytes", "load_in_4bit": True}},
        ("bitsandbytes-nf4", 4.0),
    ),
    (
        {
            "quantization_config": {
                "quant_method": "bitsandbytes",
                "load_in_4bit": True,
                "bnb_4bit_quant_type": "fp4",
            }
        },
        ("bitsandbytes-fp4", 4.0),
    ),
    (
        {"quantization_config": {"quant_method": "bitsandbytes", "load_in_8bit": True}},
        ("bitsandbytes", 8.0),
    ),
    (
        {
            "quantization_config": {
                "quant_method": "compressed-tensors",
                "config_groups": {"group_0": {"weights": {"num_bits": 4}}},
            }
        },
        ("compressed-tensors", 4.0),
    ),
    ({"quantization_config": {"quant_method": "hqq"}}, ("hqq", None)),
    ({"model_type": "llama"}, (None, None)),
    (None, (None, None)),
]


@pytest.mark.parametrize(("config", "expected"), CHECKPOINTS)
def test_checkpoint_quantization(config: dict | None, expected: tuple) -> None:
    assert checkpoint_quantization(config) == expected


def test_kv_cache_layout_reads_multimodal_configs_from_text_config() -> None:
    config = {
        "model_type": "llava_next",
        "text_config": {
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "hidden_size": 4096,
            "max_position_embeddings": 32768,
        },
    }
    assert kv_cache_layout(config) == {
        "layers": 32,
        "kv_heads": 8,
        "head_dim": 128,
        "max_positions": 32768,
    }
    assert kv_cache_layout({"model_type": "llama"}) is None
    assert kv_cache_layout(None) is None


# The context length, from the config only (issue 17). Figures are the models' published
# config.json values: TinyLlama 2048 (max_position_embeddings), GPT-J 2048 (n_positions),
# Llama 3.1 131072 with rope_scaling factor 8 over an original 8192.
CONTEXTS = [
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", 2048, "max_position_embeddings in its config"),
    ("EleutherAI/gpt-j-6b", 2048, "n_positions in its config"),
    ("mosaicml/mpt-7b", None, None),  # ALiBi: max_seq_len is not a limit TGI keeps to
    ("tiiuae/falcon-7b", None, None),  # its config names no context length
]


@pytest.mark.parametrize(("model", "tokens", "source"), CONTEXTS)
def test_the_context_length_comes_from_the_config(model, tokens, source):
    found = context_length(hub_answer(model)["config"])
    assert found == ({"tokens": tokens, "source": source} if tokens else None)


def test_rope_scaling_stretches_the_context_only_beyond_the_positions():
    llama_3_1 = {
        "max_position_embeddings": 131072,
        "rope_scaling": {
            "factor": 8.0,
            "original_max_position_embeddings": 8192,
            "rope_type": "llama3",
        },
    }
    # 8 x 8192 = 65536 is less than the 131072 positions: those stand.
    assert context_length(llama_3_1)["tokens"] == 131072
    yarn = {"max_position_embeddings": 32768, "rope_scaling": {"type": "yarn", "factor": 4.0}}
    assert context_length(yarn) == {
        "tokens": 131072,  # 4 x 32768
        "source": "max_position_embeddings 32768 stretched by its rope_scaling factor 4",
    }
    vision = {"model_type": "llava", "text_config": {"max_position_embeddings": 4096}}
    assert context_length(vision)["tokens"] == 4096
    assert context_length(None) is None and context_length({"rope_scaling": None}) is None

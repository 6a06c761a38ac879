"""Model sizing: parameter counts, bytes per parameter, KV cache (module_utils/gpu/sizing.py).

Expected figures are written as the arithmetic that gives them, from the model's published
size or the hand-made Hub answers in data/hub (see its README), never from the code under test.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_launcher import QUANTIZE_METHODS
from ansible_collections.haw.icc.plugins.module_utils.gpu import hub as hub_module
from ansible_collections.haw.icc.plugins.module_utils.gpu.hub import (
    HubUnavailable,
    hub_data,
    hub_fetcher,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import (
    GIB,
    PRECISION_BYTES,
    QUANTIZATION_PRECISION,
    SizingError,
    size_model,
)

HUB_DATA = Path(__file__).parents[1] / "data" / "hub"
FOUR_BIT = 0.5 * 1.06  # half a byte per weight plus 6% for group scales and zeros
NAMED = 1.35  # a size read from an id is counted 35% higher (ids round down: gemma-7b is 8.5B)


# Quantized weights: the embeddings and the head (12% of a 7B model) stay in 16 bits.
def QUANTIZED(bytes_per_parameter: float) -> float:
    return 0.12 * 2 + 0.88 * bytes_per_parameter


Q4, Q8 = QUANTIZED(FOUR_BIT), QUANTIZED(1)
CONTEXT = 0.5  # GiB of CUDA context per GPU


def hub_answer(model_id: str) -> dict[str, Any]:
    """The fetcher's result for a model of data/hub, through the same normalizer it uses."""
    folder = HUB_DATA / model_id.replace("/", "__")
    info = json.loads((folder / "model_info.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    return hub_data(info, config)


# ---------------------------------------------------------------------------------------------
# Sizes from the model id: 20+ models, weights = parameters x NAMED x bytes per parameter

# model_id, size_model kwargs, parameters, precision, architecture, expected weights in GiB
NAMED_MODELS = [
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", {}, 1.1e9, "float16", "llama", 1.1e9 * 2 / GIB),
    ("meta-llama/Llama-2-7b-chat-hf", {}, 7e9, "float16", "llama", 7e9 * 2 / GIB),
    ("meta-llama/Llama-2-7b-hf", {"dtype": "bfloat16"}, 7e9, "bfloat16", "llama", 7e9 * 2 / GIB),
    ("meta-llama/Meta-Llama-3-8B-Instruct", {}, 8e9, "float16", "llama", 8e9 * 2 / GIB),
    ("Qwen/Qwen2.5-1.5B-Instruct", {}, 1.5e9, "float16", "qwen2", 1.5e9 * 2 / GIB),
    ("Qwen/Qwen2.5-0.5B-Instruct", {"gpu_count": 0}, 0.5e9, "float32", "qwen2", 0.5e9 * 4 / GIB),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", {}, 56e9, "float16", "mixtral", 56e9 * 2 / GIB),
    ("mistralai/Mixtral-8x22B-Instruct-v0.1", {}, 176e9, "float16", "mixtral", 176e9 * 2 / GIB),
    ("TheBloke/Llama-2-13B-chat-GPTQ", {}, 13e9, "4bit", "llama", 13e9 * Q4 / GIB),
    ("TheBloke/Mistral-7B-Instruct-v0.2-AWQ", {}, 7e9, "4bit", "mistral", 7e9 * Q4 / GIB),
    ("TheBloke/Llama-2-70B-Chat-AWQ", {}, 70e9, "4bit", "llama", 70e9 * Q4 / GIB),
    ("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", {}, 7e9, "4bit", "qwen2", 7e9 * Q4 / GIB),
    ("unsloth/llama-3-8b-Instruct-bnb-4bit", {}, 8e9, "4bit", "llama", 8e9 * Q4 / GIB),
    ("neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8", {}, 8e9, "8bit", "llama", 8e9 * Q8 / GIB),
    ("meta-llama/Llama-2-70b-chat-hf", {}, 70e9, "float16", "llama", 70e9 * 2 / GIB),
    (
        "meta-llama/Llama-2-13b-chat-hf",
        {"quantize": "bitsandbytes-nf4"},
        13e9,
        "4bit",
        "llama",
        13e9 * Q4 / GIB,
    ),
    (
        "meta-llama/Llama-2-13b-chat-hf",
        {"quantize": "bitsandbytes"},
        13e9,
        "8bit",
        "llama",
        13e9 * Q8 / GIB,
    ),
    (
        "mistralai/Mistral-7B-Instruct-v0.2",
        {"quantize": "eetq"},
        7e9,
        "8bit",
        "mistral",
        7e9 * Q8 / GIB,
    ),
    ("bigscience/bloom-7b1", {}, 7.1e9, "float16", "bloom", 7.1e9 * 2 / GIB),
    ("bigscience/bloom-1b7", {}, 1.7e9, "float16", "bloom", 1.7e9 * 2 / GIB),
    ("bigscience/bloom-560m", {}, 560e6, "float16", "bloom", 560e6 * 2 / GIB),
    ("tiiuae/falcon-40b", {}, 40e9, "float16", "falcon", 40e9 * 2 / GIB),
    ("google/gemma-2b", {}, 2e9, "float16", "gemma", 2e9 * 2 / GIB),
    ("google/gemma-2-9b-it", {}, 9e9, "float16", "gemma2", 9e9 * 2 / GIB),
    ("facebook/opt-350m", {}, 350e6, "float16", "opt", 350e6 * 2 / GIB),
    ("EleutherAI/gpt-neox-20b", {}, 20e9, "float16", "gpt_neox", 20e9 * 2 / GIB),
    ("upstage/SOLAR-10.7B-Instruct-v1.0", {}, 10.7e9, "float16", "llama", 10.7e9 * 2 / GIB),
    ("codellama/CodeLlama-34b-Instruct-hf", {}, 34e9, "float16", "llama", 34e9 * 2 / GIB),
    ("mosaicml/mpt-7b", {}, 7e9, "float16", "mpt", 7e9 * 2 / GIB),
]


@pytest.mark.parametrize(
    ("model_id", "kwargs", "parameters", "precision", "architecture", "weights_gib"),
    NAMED_MODELS,
    ids=[f"{row[0]}{row[1] or ''}" for row in NAMED_MODELS],
)
def test_weights_of_models_sized_by_their_id(
    model_id: str,
    kwargs: dict,
    parameters: float,
    precision: str,
    architecture: str,
    weights_gib: float,
) -> None:
    sizing = size_model(model_id, **kwargs)
    assert sizing["parameters"] == pytest.approx(parameters * NAMED)
    assert sizing["parameters_source"] == "name"
    assert sizing["precision"] == precision
    assert sizing["architecture"] == architecture
    assert sizing["weights_gib"] == pytest.approx(weights_gib * NAMED, abs=1e-3)
    # No config: KV cache, activations and logits are those of a conservative stand-in.
    assert sizing["config_known"] is False
    assert min(sizing["kv_cache_gib"], sizing["activations_gib"], sizing["logits_gib"]) > 0


def test_the_table_covers_what_the_issue_asks_for() -> None:
    sizes = [row[2] for row in NAMED_MODELS]
    assert len({row[0] for row in NAMED_MODELS}) >= 20
    assert min(sizes) <= 1.1e9 and max(sizes) >= 70e9
    assert {"4bit", "8bit", "float16", "float32"} <= {row[3] for row in NAMED_MODELS}
    assert "mixtral" in {row[4] for row in NAMED_MODELS}


def test_a_mixture_of_experts_size_from_the_id_is_flagged_as_an_upper_bound() -> None:
    sizing = size_model("mistralai/Mixtral-8x7B-Instruct-v0.1")
    assert any("upper bound" in note for note in sizing["notes"])


def test_every_tgi_quantize_method_has_a_precision() -> None:
    assert set(QUANTIZATION_PRECISION) == set(QUANTIZE_METHODS)
    assert set(QUANTIZATION_PRECISION.values()) <= set(PRECISION_BYTES)
    for method in QUANTIZE_METHODS:
        expected = QUANTIZED(1.0 if QUANTIZATION_PRECISION[method] == "8bit" else FOUR_BIT)
        sizing = size_model("meta-llama/Llama-2-7b-hf", quantize=method)
        assert sizing["bytes_per_parameter"] == pytest.approx(expected), method
        assert sizing["quantization_source"] == "tgi_quantize"


# ---------------------------------------------------------------------------------------------
# Sizes from the Hub (hand-made answers in the API's shape)

TOKENS = 4096  # the KV estimate's default tokens per sequence

# model_id, parameters, weights GiB, KV cache GiB for the default tokens (2 x layers x kv heads
# x head dim x 2 bytes x tokens), architecture, quantization
HUB_MODELS = [
    (
        "meta-llama/Meta-Llama-3-8B-Instruct",
        8030261248,
        8030261248 * 2 / GIB,
        2 * 32 * 8 * 128 * 2 * TOKENS / GIB,
        "llama",
        None,
    ),
    (
        "mistralai/Mixtral-8x7B-Instruct-v0.1",
        46702792704,
        46702792704 * 2 / GIB,
        2 * 32 * 8 * 128 * 2 * TOKENS / GIB,
        "mixtral",
        None,
    ),
    (
        "Qwen/Qwen2.5-1.5B-Instruct",
        1543714304,
        1543714304 * 2 / GIB,
        2 * 28 * 2 * (1536 // 12) * 2 * TOKENS / GIB,
        "qwen2",
        None,
    ),
    # BLOOM: n_layer / n_head / hidden_size, no position limit (ALiBi).
    (
        "bigscience/bloom-560m",
        559214592,
        559214592 * 2 / GIB,
        2 * 24 * 16 * (1024 // 16) * 2 * TOKENS / GIB,
        "bloom",
        None,
    ),
    # Falcon 40B: 8 KV heads (num_kv_heads, new decoder architecture).
    (
        "tiiuae/falcon-40b",
        41838342144,
        41838342144 * 2 / GIB,
        2 * 60 * 8 * (8192 // 128) * 2 * TOKENS / GIB,
        "falcon",
        None,
    ),
    # Falcon 7B: multi-query attention, one KV head.
    (
        "tiiuae/falcon-7b",
        6921720704,
        6921720704 * 2 / GIB,
        2 * 32 * 1 * (4544 // 71) * 2 * TOKENS / GIB,
        "falcon",
        None,
    ),
    # Phi-2: 2048 positions cap the default tokens; no KV head count -> all heads.
    (
        "microsoft/phi-2",
        2779683840,
        2779683840 * 2 / GIB,
        2 * 32 * 32 * (2560 // 32) * 2 * 2048 / GIB,
        "phi",
        None,
    ),
    # Gemma 7B: head_dim 256 given explicitly (hidden 3072 / 16 heads would be 192).
    (
        "google/gemma-7b",
        8537680896,
        8537680896 * 2 / GIB,
        2 * 28 * 16 * 256 * 2 * TOKENS / GIB,
        "gemma",
        None,
    ),
    # MPT: n_layers / n_heads / d_model, max_seq_len 2048.
    (
        "mosaicml/mpt-7b",
        6649286656,
        6649286656 * 2 / GIB,
        2 * 32 * 32 * (4096 // 32) * 2 * 2048 / GIB,
        "mpt",
        None,
    ),
    # GPTQ: 8 four-bit weights per int32; weights as stored = I32 x 4 + F16 x 2 bytes.
    (
        "TheBloke/Llama-2-13B-chat-GPTQ",
        1600143360 * 8 + 427217920,
        (1600143360 * 4 + 427217920 * 2) / GIB,
        2 * 40 * 40 * 128 * 2 * TOKENS / GIB,
        "llama",
        "gptq",
    ),
    (
        "TheBloke/Mistral-7B-Instruct-v0.2-AWQ",
        879230976 * 8 + 316936192,
        (879230976 * 4 + 316936192 * 2) / GIB,
        2 * 32 * 8 * 128 * 2 * TOKENS / GIB,
        "mistral",
        "awq",
    ),
]


@pytest.mark.parametrize(
    ("model_id", "parameters", "weights_gib", "kv_gib", "architecture", "quantization"),
    HUB_MODELS,
    ids=[row[0] for row in HUB_MODELS],
)
def test_sizes_from_hub_answers(
    model_id: str,
    parameters: int,
    weights_gib: float,
    kv_gib: float,
    architecture: str,
    quantization: str | None,
) -> None:
    sizing = size_model(model_id, hub=hub_answer(model_id))
    assert sizing["parameters_source"] == "hub"
    assert sizing["parameters"] == parameters
    assert sizing["architecture"] == architecture
    assert sizing["quantization"] == quantization
    assert sizing["weights_gib"] == pytest.approx(weights_gib, abs=1e-3)
    assert sizing["kv_cache_gib"] == pytest.approx(kv_gib, abs=1e-3)
    assert sizing["config_known"] is True


def test_a_packed_gptq_checkpoint_is_not_sized_by_the_hub_total() -> None:
    hub = hub_answer("TheBloke/Llama-2-13B-chat-GPTQ")
    # The Hub's total counts tensor elements: 2.03B, though the model has about 13B weights.
    assert hub["safetensors_total"] == 1600143360 + 427217920
    assert hub["parameters"] == 1600143360 * 8 + 427217920
    assert hub["weights_bytes"] == 1600143360 * 4 + 427217920 * 2
    assert any("packed int32" in note for note in hub["notes"])
    sizing = size_model("TheBloke/Llama-2-13B-chat-GPTQ", hub=hub)
    assert sizing["precision"] == "4bit"
    assert sizing["quantization_source"] == "config"
    assert sizing["bytes_per_parameter"] == pytest.approx(
        (1600143360 * 4 + 427217920 * 2) / (1600143360 * 8 + 427217920), abs=1e-4
    )
    assert any("as stored" in note for note in sizing["notes"])


def test_the_hub_count_is_used_as_is_for_an_unquantized_checkpoint() -> None:
    hub = hub_answer("meta-llama/Meta-Llama-3-8B-Instruct")
    assert hub["parameters"] == hub["safetensors_total"] == 8030261248
    assert hub["config"]["num_key_value_heads"] == 8  # config.json laid over the API's excerpt
    # The stored BF16 bytes are not used: TGI converts to the dtype in effect.
    sizing = size_model("meta-llama/Meta-Llama-3-8B-Instruct", hub=hub, gpu_count=0)
    assert sizing["precision"] == "float32"
    assert sizing["weights_gib"] == pytest.approx(8030261248 * 4 / GIB, abs=1e-3)
    # float32 KV cache on CPU: 4 bytes per value.
    assert sizing["kv_cache_gib"] == pytest.approx(2 * 32 * 8 * 128 * 4 * TOKENS / GIB, abs=1e-3)


def test_without_safetensors_counts_the_id_gives_the_size_and_the_config_the_kv_cache() -> None:
    hub = hub_answer("EleutherAI/gpt-j-6b")
    assert hub["parameters"] is None
    sizing = size_model("EleutherAI/gpt-j-6b", hub=hub)
    assert sizing["parameters_source"] == "name"
    assert sizing["parameters"] == pytest.approx(6e9 * NAMED)
    assert sizing["architecture"] == "gptj"
    # n_layer 28, n_head 16, n_embd 4096, n_positions 2048 caps the tokens.
    assert sizing["kv_cache_gib"] == pytest.approx(2 * 28 * 16 * 256 * 2 * 2048 / GIB, abs=1e-3)


def test_the_override_wins_over_hub_and_name() -> None:
    hub = hub_answer("meta-llama/Meta-Llama-3-8B-Instruct")
    sizing = size_model("meta-llama/Meta-Llama-3-8B-Instruct", parameters="7.5B", hub=hub)
    assert sizing["parameters_source"] == "override"
    assert sizing["parameters"] == pytest.approx(7.5e9)
    assert sizing["weights_gib"] == pytest.approx(7.5e9 * 2 / GIB, abs=1e-3)
    # The config still gives the KV cache.
    assert sizing["kv_cache_gib"] == pytest.approx(2 * 32 * 8 * 128 * 2 * TOKENS / GIB, abs=1e-3)
    assert size_model("x/y", parameters=3_000_000_000)["parameters"] == 3e9


def test_kv_cache_scales_with_tokens_and_sequences_and_everything_splits_over_shards() -> None:
    hub = hub_answer("meta-llama/Meta-Llama-3-8B-Instruct")
    sizing = size_model(
        "meta-llama/Meta-Llama-3-8B-Instruct",
        hub=hub,
        gpu_count=2,
        max_total_tokens=8192,
        concurrent_sequences=4,
    )
    kv = 2 * 32 * 8 * 128 * 2 * 8192 * 4 / GIB
    weights = 8030261248 * 2 / GIB
    assert sizing["kv_cache_tokens"] == 8192 * 4
    assert sizing["kv_cache_gib"] == pytest.approx(kv, abs=1e-3)
    # Without a mode the GPUs are not shared out: everything on each.
    assert sizing["shards"] == 1
    prefill = sizing["activations_gib"] + sizing["logits_gib"]
    assert sizing["per_gpu_gib"] == pytest.approx(weights + kv + CONTEXT + prefill, abs=2e-3)
    for mode, split_prefill in (("tensor-sharding", True), ("layer-split", False)):
        split = size_model(
            "meta-llama/Meta-Llama-3-8B-Instruct",
            hub=hub,
            gpu_count=2,
            mode=mode,
            max_total_tokens=8192,
            concurrent_sequences=4,
        )
        assert split["shards"] == 2
        expected = (weights + kv) / 2 + CONTEXT + (prefill / 2 if split_prefill else prefill)
        assert split["per_gpu_gib"] == pytest.approx(expected, abs=2e-3), mode


def test_the_parts_of_the_overhead_from_the_config() -> None:
    """Llama 3 8B: 32 heads, MLP 14336 wide, a 128256-token vocabulary; prompt 2048 of a
    4096-token prefill, without flash attention (V100) and with it."""
    hub = hub_answer("meta-llama/Meta-Llama-3-8B-Instruct")
    kwargs = dict(hub=hub, max_total_tokens=4096, max_input_tokens=2048, prefill_tokens=4096)
    plain = size_model("meta-llama/Meta-Llama-3-8B-Instruct", **kwargs)
    scores = 32 * 2048 * 4096 * 2  # heads x prompt x prefill tokens x 2 bytes
    mlp = 4096 * 14336 * 2 * 2  # prefill tokens x MLP width x (gate, up) x 2 bytes
    assert plain["context_gib"] == CONTEXT
    assert plain["activations_gib"] == pytest.approx((scores + mlp) / GIB, abs=1e-3)
    assert plain["logits_gib"] == pytest.approx(4096 * 128256 * 2 / GIB, abs=1e-3)
    flash = size_model("meta-llama/Meta-Llama-3-8B-Instruct", flash_attention=True, **kwargs)
    assert flash["activations_gib"] == pytest.approx(mlp / GIB, abs=1e-3)
    assert flash["logits_gib"] == pytest.approx(128256 * 4 / GIB, abs=1e-3)  # the last token


def test_a_dtype_on_cpu_and_the_cpu_default() -> None:
    assert size_model("Qwen/Qwen2.5-0.5B", gpu_count=0)["precision"] == "float32"
    assert size_model("Qwen/Qwen2.5-0.5B", gpu_count=0, dtype="bfloat16")["precision"] == (
        "bfloat16"
    )
    assert size_model("Qwen/Qwen2.5-0.5B", gpu_count=0)["shards"] == 1


def test_no_size_anywhere_raises_an_error_naming_the_variable() -> None:
    with pytest.raises(SizingError, match="tgi_model_parameters"):
        size_model("microsoft/phi-2")
    with pytest.raises(SizingError, match="tgi_model_parameters"):
        size_model("microsoft/phi-2", hub={"parameters": None, "config": None, "source": "hub"})
    with pytest.raises(SizingError, match="tgi_model_parameters: 'lots'"):
        size_model("meta-llama/Llama-2-7b-hf", parameters="lots")


# ---------------------------------------------------------------------------------------------
# Config details


def test_an_8bit_gptq_checkpoint_and_a_w4a16_one_are_sized_by_their_bits() -> None:
    eight = {"config": {"quantization_config": {"quant_method": "gptq", "bits": 8}}}
    assert size_model("x/llama-7b-gptq", hub=eight)["precision"] == "8bit"
    assert size_model("x/Llama-3-8B-quantized.w4a16")["precision"] == "4bit"


def test_an_unquantized_checkpoint_with_tgi_quantize_is_quantized_while_loading() -> None:
    hub = hub_answer("meta-llama/Meta-Llama-3-8B-Instruct")
    sizing = size_model("meta-llama/Meta-Llama-3-8B-Instruct", hub=hub, quantize="bitsandbytes")
    assert sizing["weights_gib"] == pytest.approx(8030261248 * Q8 / GIB, abs=1e-3)


def test_a_different_tgi_quantize_on_a_prequantized_checkpoint_is_noted() -> None:
    hub = hub_answer("TheBloke/Llama-2-13B-chat-GPTQ")
    sizing = size_model("TheBloke/Llama-2-13B-chat-GPTQ", hub=hub, quantize="bitsandbytes-nf4")
    assert sizing["quantization"] == "bitsandbytes-nf4"
    assert any("TGI may refuse" in note for note in sizing["notes"])
    # Not the stored GPTQ bytes: the parameters at nf4's bytes per parameter.
    assert sizing["weights_gib"] == pytest.approx((1600143360 * 8 + 427217920) * Q4 / GIB, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# The default fetcher, without the network


class _NoNetwork:
    """Fails the test on any attempt to resolve a name or open a connection."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.attempts: list[str] = []

        def refuse(name: str):
            def blocked(*args: Any, **kwargs: Any) -> Any:
                self.attempts.append(f"{name}{args[:2]!r}")
                raise OSError(f"network access in a unit test: {name}")

            return blocked

        monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
        monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
        monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
        monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))


def test_the_default_fetcher_fails_cleanly_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    network = _NoNetwork(monkeypatch)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(HubUnavailable, match="HF_HUB_OFFLINE") as caught:
        hub_fetcher("haw-icc-tests/no-such-model-7b", timeout=0.5)
    assert "\n" not in str(caught.value)
    assert network.attempts == []


def test_the_library_s_own_offline_mode_is_reported_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # HF_HUB_OFFLINE set before huggingface_hub was imported: the library refuses by itself.
    from huggingface_hub import constants

    network = _NoNetwork(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubUnavailable, match="offline mode") as caught:
        hub_fetcher("haw-icc-tests/no-such-model-7b", timeout=0.5)
    assert "\n" not in str(caught.value)
    assert network.attempts == []


def test_without_huggingface_hub_the_fetcher_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(HubUnavailable, match="pip install huggingface_hub"):
        hub_fetcher("meta-llama/Llama-2-7b-hf")


def test_the_default_fetcher_reads_model_info_and_config_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The library calls are replaced by the hand-made answers; the sockets stay blocked."""
    import huggingface_hub
    from huggingface_hub.hf_api import ModelInfo

    network = _NoNetwork(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    model_id = "TheBloke/Llama-2-13B-chat-GPTQ"
    folder = HUB_DATA / model_id.replace("/", "__")
    info = json.loads((folder / "model_info.json").read_text())
    config = json.loads((folder / "config.json").read_text())
    calls: list[tuple] = []

    def model_info(self: Any, repo_id: str, **kwargs: Any) -> ModelInfo:
        calls.append(("model_info", repo_id, kwargs))
        return ModelInfo(**info)

    class Response:
        status_code = 200

        def json(self) -> dict:
            return config

    class Session:
        def get(self, url: str, **kwargs: Any) -> Response:
            calls.append(("get", url, kwargs))
            return Response()

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    monkeypatch.setattr(huggingface_hub.utils, "get_session", Session)
    monkeypatch.setattr(huggingface_hub.utils, "hf_raise_for_status", lambda response: None)

    data = hub_fetcher(model_id, revision="main", token="hf_test", timeout=2.5)

    assert data == hub_answer(model_id)
    assert calls[0][0] == "model_info"
    assert calls[0][2]["timeout"] == 2.5
    assert calls[0][2]["token"] == "hf_test"
    assert calls[0][2]["revision"] == "main"
    assert set(calls[0][2]["expand"]) == {"safetensors", "config"}
    assert calls[1][0] == "get"
    assert calls[1][1].endswith("/TheBloke/Llama-2-13B-chat-GPTQ/resolve/main/config.json")
    assert calls[1][2]["timeout"] == 2.5
    assert calls[1][2]["headers"]["authorization"] == "Bearer hf_test"
    assert network.attempts == []


def test_a_failing_model_info_becomes_hub_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    class RepositoryNotFoundError(Exception):
        pass

    def model_info(self: Any, repo_id: str, **kwargs: Any) -> None:
        raise RepositoryNotFoundError("404 Client Error.\n\nRepository Not Found for url")

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)
    with pytest.raises(HubUnavailable) as caught:
        hub_fetcher("someone/private-7b")
    assert "not found" in str(caught.value) and "tgi_hf_token" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_the_module_imports_huggingface_hub_only_when_fetching() -> None:
    source = Path(hub_module.__file__).read_text()
    top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    assert not any("huggingface_hub" in line for line in top_level)


def test_the_network_guard_of_these_tests_sees_the_library_connect(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proves the offline tests above would notice I/O: without offline mode, it is caught."""
    import huggingface_hub

    network = _NoNetwork(monkeypatch)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    # Loopback only, in case the guard ever failed: port 9 (discard) answers nothing.
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(HubUnavailable, match="not reachable"):
        hub_fetcher("haw-icc-tests/no-such-model-7b", timeout=0.5)
    assert network.attempts

"""GPU compatibility rules and their recommendations (module_utils/capacity/gpu_rules.py).

Every rule of FACTS.md "TGI on V100" has a refused and a passing case; the request is the TGI
settings dict the tgi_server role renders its pod from. Memory figures are checked as the
arithmetic of their parts in test_model_sizing.py; here the verdicts, the alternatives, and that
knowing less (no Hub) never gives a kinder verdict.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.capacity import gpu_rules
from ansible_collections.haw.icc.plugins.module_utils.capacity.gpu_rules import (
    RULES,
    assess,
    format_refusal,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_launcher import QUANTIZE_METHODS
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import TGI_IMAGE_SM70
from ansible_collections.haw.icc.plugins.module_utils.gpu.hub import hub_data
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import GIB
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import sealed

HUB_DATA = Path(__file__).parents[1] / "data" / "hub"
TGI = "ghcr.io/huggingface/text-generation-inference"
RULE_IDS = [
    "tgi-image-cuda",
    "multi-gpu-mode",
    "flash-attention-required",
    "quantization-compute-capability",
    "model-fits",
    "context-length",  # issue 17: token limits beyond the model's config
]
H100 = {
    "gpu-h100": {
        "memory_gib": 80,
        "compute_capability": "9.0",
        "gpus_per_node": 8,
        "tgi_image": f"{TGI}:3.3.7",
    }
}
# What the tgi_server role passes by default, for one V100.
ROLE = {
    "tgi_gpu_type": "gpu-tesla-v100",
    "tgi_gpu_count": 1,
    "tgi_max_input_tokens": 2048,
    "tgi_max_total_tokens": 4096,
    "tgi_max_batch_prefill_tokens": 4096,
}


def settings(model: str, **changes: Any) -> dict[str, Any]:
    return {"tgi_model_id": model, **ROLE, **changes}


def hub_answer(model_id: str) -> dict[str, Any]:
    folder = HUB_DATA / model_id.replace("/", "__")
    return hub_data(
        json.loads((folder / "model_info.json").read_text()),
        json.loads((folder / "config.json").read_text()),
    )


def llama_13b_hub() -> dict[str, Any]:
    """The Hub's answer for meta-llama/Llama-2-13b-chat-hf: the GPTQ copy's shape, unquantized."""
    config = hub_answer("TheBloke/Llama-2-13B-chat-GPTQ")["config"]
    return {
        "parameters": 13015864320,
        "config": {k: v for k, v in config.items() if k != "quantization_config"},
    }


def verdict(result: dict, rule: str) -> str:
    return next(entry["verdict"] for entry in result["rules"] if entry["id"] == rule)


def rule_entry(result: dict, rule: str) -> dict:
    return next(entry for entry in result["rules"] if entry["id"] == rule)


def test_the_rule_ids_are_the_agreed_ones_in_order() -> None:
    assert list(RULES) == RULE_IDS
    result = assess(settings("Qwen/Qwen2.5-1.5B-Instruct"))
    assert [entry["id"] for entry in result["rules"]] == RULE_IDS
    assert set(result) >= {
        "ok",
        "fits",
        "runs",
        "architecture",
        "multi_gpu",
        "gpu",
        "sizing",
        "memory",
        "rules",
        "refusals",
        "recommendations",
        "warnings",
    }


def test_the_sandbox_default_model_fits_and_runs_on_one_v100() -> None:
    result = assess(settings("Qwen/Qwen2.5-1.5B-Instruct"))
    assert result["ok"] and result["fits"] and result["runs"]
    assert result["refusals"] == [] and result["recommendations"] == []
    assert result["gpu"] == {
        "type": "gpu-tesla-v100",
        "count": 1,
        "memory_gib": 16,
        "compute_capability": "7.0",
        "image": TGI_IMAGE_SM70,
    }
    memory = result["memory"]
    parts = ("weights_gib", "kv_cache_gib", "context_gib", "activations_gib", "logits_gib")
    assert memory["per_gpu_gib"] == pytest.approx(sum(memory[part] for part in parts), abs=2e-3)
    assert memory["headroom_gib"] == pytest.approx(16 - memory["per_gpu_gib"], abs=2e-3)
    assert result["multi_gpu"]["mode"] == "single-gpu"
    assert any("read from its id and counted high" in w for w in result["warnings"])
    assert any("conservative stand-in" in w for w in result["warnings"])


# ---------------------------------------------------------------------------------------------
# tgi-image-cuda: TGI >= 3.3.1 has no sm_70 kernels

IMAGE_CASES = [
    ("gpu-tesla-v100", f"{TGI}:3.3.7", "refuse"),
    ("gpu-tesla-v100", f"{TGI}:3.3.1", "refuse"),
    ("gpu-tesla-v100s", f"{TGI}:3.4.0", "refuse"),
    ("gpu-tesla-v100", f"{TGI}:3.3.0", "pass"),
    ("gpu-tesla-v100", f"{TGI}:2.4.1", "pass"),
    ("gpu-tesla-v100", None, "pass"),  # the catalog's image for V100s is 3.3.0
    ("gpu-tesla-a100", f"{TGI}:3.3.7", "pass"),
    ("gpu-tesla-v100", f"{TGI}@sha256:{'a' * 64}", "unknown"),
    ("gpu-tesla-v100", f"{TGI}:sha-1a2b3c4", "unknown"),
    ("gpu-tesla-v100", f"{TGI}:latest", "unknown"),
]


@pytest.mark.parametrize(("gpu_type", "image", "expected"), IMAGE_CASES)
def test_tgi_image_version_against_compute_capability(
    gpu_type: str, image: str | None, expected: str
) -> None:
    result = assess(settings("Qwen/Qwen2.5-1.5B-Instruct", tgi_gpu_type=gpu_type, tgi_image=image))
    assert verdict(result, "tgi-image-cuda") == expected
    assert result["ok"] == (expected != "refuse")
    if expected == "unknown":
        assert any(warning.startswith("tgi-image-cuda") for warning in result["warnings"])


def test_an_image_refusal_recommends_the_sm70_image_and_gpus_it_runs_on() -> None:
    result = assess(settings("Qwen/Qwen2.5-1.5B-Instruct", tgi_image=f"{TGI}:3.3.7"))
    recommendation = rule_entry(result, "tgi-image-cuda")["recommendation"]
    assert f"set tgi_image to {TGI_IMAGE_SM70}" in recommendation
    # The A100 runs the image asked for; a V100S would need another one, so it is not offered.
    assert "1 x gpu-tesla-a100 (40 GiB)" in recommendation
    assert "v100s" not in recommendation


# ---------------------------------------------------------------------------------------------
# multi-gpu-mode: tensor sharding where TGI can shard, a layer split where it cannot

MODE_CASES = [
    ("Qwen/Qwen2.5-7B-Instruct", "gpu-tesla-v100", 2, "auto", "pass", "layer-split"),
    ("google/gemma-7b", "gpu-tesla-v100", 4, "auto", "pass", "layer-split"),
    ("bigscience/bloom-7b1", "gpu-tesla-v100", 2, "auto", "pass", "tensor-sharding"),
    ("mosaicml/mpt-7b", "gpu-tesla-v100", 2, "auto", "pass", "tensor-sharding"),
    ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-a100", 2, "auto", "pass", "tensor-sharding"),
    ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-v100", 1, "auto", "pass", "single-gpu"),
    ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-v100", 2, "tensor-sharding", "refuse", None),
    # Runs neither way: flash-attention-required refuses it, once (see below).
    ("mistralai/Mistral-7B-Instruct-v0.2", "gpu-tesla-v100", 2, "auto", "not-applicable", None),
    ("mistralai/Mistral-7B-Instruct-v0.2", "gpu-tesla-v100", 2, "tensor-sharding", "refuse", None),
    ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-a100", 2, "layer-split", "refuse", None),
    ("someone/mystery-model-7b", "gpu-tesla-v100", 2, "auto", "unknown", "layer-split"),
]


@pytest.mark.parametrize(("model", "gpu_type", "count", "forced", "expected", "mode"), MODE_CASES)
def test_the_multi_gpu_mode_per_architecture_and_gpu_type(
    model: str, gpu_type: str, count: int, forced: str, expected: str, mode: str | None
) -> None:
    result = assess(
        settings(model, tgi_gpu_type=gpu_type, tgi_gpu_count=count, tgi_multi_gpu_mode=forced)
    )
    assert verdict(result, "multi-gpu-mode") == expected
    if mode:
        assert result["multi_gpu"]["mode"] == mode
    if expected == "unknown":
        assert any("multi-gpu-mode not judged" in w for w in result["warnings"])


def test_a_forced_tensor_sharding_names_the_layer_split_instead() -> None:
    result = assess(
        settings(
            "meta-llama/Llama-2-7b-chat-hf", tgi_gpu_count=2, tgi_multi_gpu_mode="tensor-sharding"
        )
    )
    reason = rule_entry(result, "multi-gpu-mode")["reason"]
    assert "requires Flash Attention enabled models" in reason
    assert "a layer split works (tgi_multi_gpu_mode: auto)" in reason


def test_an_architecture_that_can_do_neither_is_refused_with_an_alternative() -> None:
    result = assess(settings("mistralai/Mistral-7B-Instruct-v0.2", tgi_gpu_count=2))
    assert result["multi_gpu"]["works"] is False
    assert "can neither be sharded nor split by layers over 2 GPUs" in result["multi_gpu"]["reason"]
    # One refusal, not two for the same cause; it names the GPU that runs the model.
    [refusal] = result["refusals"]
    assert refusal.startswith("flash-attention-required: mistral models run only with flash")
    assert "Instead: 1 x gpu-tesla-a100 (40 GiB)" in refusal
    assert verdict(result, "multi-gpu-mode") == "not-applicable"


# ---------------------------------------------------------------------------------------------
# flash-attention-required

FLASH_CASES = [
    ("mistralai/Mistral-7B-Instruct-v0.2", "gpu-tesla-v100", "refuse"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpu-tesla-v100s", "refuse"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "gpu-tesla-a100", "pass"),
    ("meta-llama/Llama-2-7b-chat-hf", "gpu-tesla-v100", "pass"),
]


@pytest.mark.parametrize(("model_id", "gpu_type", "expected"), FLASH_CASES)
def test_architectures_that_need_flash_attention(
    model_id: str, gpu_type: str, expected: str
) -> None:
    result = assess(settings(model_id, tgi_gpu_type=gpu_type))
    assert verdict(result, "flash-attention-required") == expected


def test_a_vision_model_s_config_says_it_needs_flash_attention() -> None:
    result = assess(settings("someone/chat-vl-7b", tgi_model_architecture="qwen2_vl"))
    assert verdict(result, "flash-attention-required") == "refuse"


def test_an_extended_catalog_offers_its_gpus() -> None:
    result = assess(settings("mistralai/Mixtral-8x7B-Instruct-v0.1"), catalog=H100)
    options = rule_entry(result, "flash-attention-required")["recommendation"]
    assert "x gpu-h100 (80 GiB, tensor-sharding)" in options


def test_without_any_gpu_that_passes_the_recommendation_says_what_to_change() -> None:
    catalog = {"gpu-tesla-a100": {"compute_capability": "7.0", "tgi_image": TGI_IMAGE_SM70}}
    result = assess(settings("mistralai/Mistral-7B-Instruct-v0.2"), catalog=catalog)
    assert "another family" in rule_entry(result, "flash-attention-required")["recommendation"]


# ---------------------------------------------------------------------------------------------
# quantization-compute-capability

V100_QUANTIZATION = {"bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4"}


@pytest.mark.parametrize("method", QUANTIZE_METHODS)
@pytest.mark.parametrize("gpu_type", ["gpu-tesla-v100", "gpu-tesla-a100"])
def test_quantize_methods_per_gpu(method: str, gpu_type: str) -> None:
    result = assess(
        settings("meta-llama/Llama-2-7b-chat-hf", tgi_gpu_type=gpu_type, tgi_quantize=method)
    )
    runs_here = gpu_type == "gpu-tesla-a100" or method in V100_QUANTIZATION
    assert verdict(result, "quantization-compute-capability") == ("pass" if runs_here else "refuse")


def test_a_prequantized_checkpoint_counts_as_its_method_from_the_name() -> None:
    result = assess(settings("TheBloke/Llama-2-13B-chat-GPTQ"))
    entry = rule_entry(result, "quantization-compute-capability")
    assert entry["verdict"] == "refuse"
    assert "suggests a gptq checkpoint" in entry["reason"]
    # By name the stand-in shape is too wide for nf4 on a V100; only a newer GPU is offered.
    assert entry["recommendation"].startswith("1 x gpu-tesla-a100 (40 GiB): needs ")
    # The Hub's config shows the unquantized original fits one V100 with nf4.
    hub = hub_answer("TheBloke/Llama-2-13B-chat-GPTQ")
    entry = rule_entry(assess(settings("TheBloke/Llama-2-13B-chat-GPTQ"), hub=hub),
                       "quantization-compute-capability")  # fmt: skip
    assert entry["recommendation"].startswith(
        "the unquantized original of this model with 1 x gpu-tesla-v100 (16 GiB): needs "
    )
    assert "(set tgi_quantize: bitsandbytes-nf4" in entry["recommendation"]


def test_a_prequantized_checkpoint_counts_as_its_method_from_the_hub_config() -> None:
    model_id = "TheBloke/Mistral-7B-Instruct-v0.2-AWQ"
    hub = hub_answer(model_id)
    assert verdict(assess(settings(model_id, tgi_gpu_type="gpu-tesla-a100"), hub=hub),
                   "quantization-compute-capability") == "pass"  # fmt: skip
    entry = rule_entry(assess(settings(model_id), hub=hub), "quantization-compute-capability")
    assert entry["verdict"] == "refuse"
    assert "pre-quantized with awq" in entry["reason"]


def test_bitsandbytes_nf4_lets_a_13b_model_run_on_one_v100() -> None:
    result = assess(
        settings("meta-llama/Llama-2-13b-chat-hf", tgi_quantize="bitsandbytes-nf4"),
        hub=llama_13b_hub(),
    )
    assert result["ok"], result["refusals"]


# ---------------------------------------------------------------------------------------------
# model-fits


def test_the_fit_is_the_need_per_gpu_against_memory_times_the_fraction() -> None:
    hub = hub_answer("bigscience/bloom-560m")
    full = assess(settings("bigscience/bloom-560m"), hub=hub)
    need = full["memory"]["per_gpu_gib"]
    assert verdict(full, "model-fits") == "pass"
    tight = assess(
        settings("bigscience/bloom-560m", tgi_cuda_memory_fraction=round(need / 16 - 0.01, 3)),
        hub=hub,
    )
    assert verdict(tight, "model-fits") == "refuse"
    assert "x tgi_cuda_memory_fraction" in rule_entry(tight, "model-fits")["reason"]


def test_the_parts_of_the_need_are_named_in_the_reason() -> None:
    hub = hub_answer("meta-llama/Meta-Llama-3-8B-Instruct")
    result = assess(settings("meta-llama/Meta-Llama-3-8B-Instruct"), hub=hub)
    reason = rule_entry(result, "model-fits")["reason"]
    for part in ("weights", "KV cache", "for 4096 tokens", "CUDA context", "activations", "logits"):
        assert part in reason
    assert "stand-in" not in reason  # the Hub's config is known


def test_a_split_over_gpus_divides_weights_and_kv_cache() -> None:
    hub = hub_answer("google/gemma-7b")
    one = assess(settings("google/gemma-7b", tgi_gpu_type="gpu-tesla-v100s"), hub=hub)
    two = assess(settings("google/gemma-7b", tgi_gpu_count=2), hub=hub)
    assert two["multi_gpu"]["mode"] == "layer-split"
    memory = one["memory"]
    besides = memory["context_gib"] + memory["activations_gib"] + memory["logits_gib"]
    expected = (memory["weights_gib"] + memory["kv_cache_gib"]) / 2 + besides
    assert two["memory"]["per_gpu_gib"] == pytest.approx(expected, abs=3e-3)
    assert "weights 15.9/2" in rule_entry(two, "model-fits")["reason"]


def test_a_model_that_fits_only_with_fewer_tokens_is_told_the_largest_that_fits() -> None:
    hub = hub_answer("bigscience/bloom-560m")
    long = settings(
        "bigscience/bloom-560m",
        tgi_max_input_tokens=60000,
        tgi_max_total_tokens=65536,
        tgi_max_batch_prefill_tokens=65536,
    )
    result = assess(long, hub=hub)
    assert verdict(result, "model-fits") == "refuse"
    option = next(o for o in result["recommendations"] if o.startswith("fewer tokens"))
    tokens = int(option.split("tgi_max_total_tokens: ")[1].split(",")[0])
    assert 256 <= tokens < 65536
    fits = {
        "tgi_max_total_tokens": tokens,
        "tgi_max_input_tokens": tokens - 1,
        "tgi_max_batch_prefill_tokens": tokens,
    }
    assert verdict(assess({**long, **fits}, hub=hub), "model-fits") == "pass"
    one_more = {key: value + 1 for key, value in fits.items()}
    assert verdict(assess({**long, **one_more}, hub=hub), "model-fits") == "refuse"


def test_a_model_too_big_for_one_v100_gets_all_kinds_of_alternatives() -> None:
    result = assess(settings("meta-llama/Llama-2-13b-chat-hf"), hub=llama_13b_hub())
    options = result["recommendations"]
    assert any(o.startswith("2 x gpu-tesla-v100 (16 GiB, layer-split): needs") for o in options)
    assert any(o.startswith("1 x gpu-tesla-v100s (32 GiB): needs") for o in options)
    assert any(o.startswith("quantize with bitsandbytes-nf4: 1 x gpu-tesla-v100") for o in options)
    assert any(o.startswith("a model of up to ~") for o in options)
    assert result["refusals"] == [
        f"model-fits: {rule_entry(result, 'model-fits')['reason']}. Instead: "
        + " or ".join(options[:3])
    ]


def test_a_size_nobody_knows_is_refused_and_says_how_to_give_it() -> None:
    result = assess(settings("microsoft/phi-2"))
    entry = rule_entry(result, "model-fits")
    assert entry["verdict"] == "refuse" and result["fits"] is False
    assert "tgi_model_parameters" in entry["recommendation"]
    assert "icc_hub_lookup" in entry["recommendation"]
    # The Hub knows it.
    result = assess(settings("microsoft/phi-2"), hub=hub_answer("microsoft/phi-2"))
    assert result["sizing"]["parameters"] == 2779683840
    assert result["fits"] is True


# ---------------------------------------------------------------------------------------------
# Knowing less never gives a kinder verdict: the id alone against the Hub's exact data

CONSISTENCY_MODELS = [
    "Qwen/Qwen2.5-1.5B-Instruct",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "bigscience/bloom-560m",
    "tiiuae/falcon-40b",
    "tiiuae/falcon-7b",
    "google/gemma-7b",
    "mosaicml/mpt-7b",
    "TheBloke/Llama-2-13B-chat-GPTQ",
    "TheBloke/Mistral-7B-Instruct-v0.2-AWQ",
    "microsoft/phi-2",
    "EleutherAI/gpt-j-6b",
]
CONFIGURATIONS = [
    ("gpu-tesla-v100", 1),
    ("gpu-tesla-v100", 2),
    ("gpu-tesla-v100", 4),
    ("gpu-tesla-v100s", 1),
    ("gpu-tesla-a100", 1),
    ("gpu-tesla-a100", 2),
]


@pytest.mark.parametrize("model", CONSISTENCY_MODELS)
def test_a_verdict_from_the_id_alone_is_never_kinder_than_one_from_the_hub(model: str) -> None:
    hub = hub_answer(model)
    for gpu_type, count in CONFIGURATIONS:
        asked = settings(model, tgi_gpu_type=gpu_type, tgi_gpu_count=count)
        # The context length is known from the config only, and never guessed from the id:
        # that rule alone may refuse with the Hub what the id lets through (issue 17).
        guessed = ["context-length"]
        by_name = assess(asked, ignore_rules=guessed)
        by_hub = assess(asked, hub=hub, ignore_rules=guessed)
        where = f"{model} on {count} x {gpu_type}"
        # Each verdict is at most as kind by the id as with the Hub's data.
        assert by_hub["ok"] or not by_name["ok"], f"{where}: ok by its id, refused with the Hub"
        assert by_hub["fits"] or not by_name["fits"], f"{where}: fits by its id only"
        if by_name["memory"] is None:
            # Its size unknown by the id: refused, never waved through.
            assert by_name["fits"] is False and by_name["ok"] is False, where
        else:
            assert by_name["memory"]["per_gpu_gib"] >= by_hub["memory"]["per_gpu_gib"], where


def test_the_table_covers_what_the_issue_asks_for() -> None:
    assert len(CONSISTENCY_MODELS) >= 10
    # Llama-2-7b fp16 on one V100 was accepted by its name before (15.6 GiB) but refused with
    # the Hub's data (17.1 GiB); gemma-7b by name although its weights alone are 15.9 GiB.
    gemma = assess(settings("google/gemma-7b"))
    assert gemma["fits"] is False


def test_the_hub_s_weights_are_exact() -> None:
    gemma = assess(settings("google/gemma-7b"), hub=hub_answer("google/gemma-7b"))
    assert gemma["memory"]["weights_gib"] == pytest.approx(8537680896 * 2 / GIB, rel=0.005)


# ---------------------------------------------------------------------------------------------
# Overrides, CPU, bad requests


def test_ignore_rules_turns_a_refusal_into_a_warning() -> None:
    forced = settings(
        "meta-llama/Llama-2-7b-chat-hf", tgi_gpu_count=2, tgi_multi_gpu_mode="tensor-sharding"
    )
    result = assess(forced, ignore_rules=["multi-gpu-mode"])
    assert result["ok"] is True
    assert result["runs"] is False  # the expert's call; the prediction stays honest
    assert verdict(result, "multi-gpu-mode") == "ignored"
    assert result["refusals"] == []
    assert any(w.startswith("multi-gpu-mode ignored") for w in result["warnings"])
    # Other rules still refuse.
    result = assess(
        {**forced, "tgi_model_id": "mistralai/Mistral-7B-Instruct-v0.2"},
        ignore_rules=["multi-gpu-mode"],
    )
    assert not result["ok"]
    assert [r.split(":")[0] for r in result["refusals"]] == ["flash-attention-required"]


def test_an_unknown_rule_id_is_a_request_refusal_listing_the_valid_ids() -> None:
    result = assess(settings("meta-llama/Llama-2-7b-chat-hf"), ignore_rules=["sharding"])
    assert not result["ok"]
    assert len(result["refusals"]) == 1
    refusal = result["refusals"][0]
    assert refusal.startswith("request: tgi_ignore_rules: unknown rule id(s) 'sharding'")
    assert all(rule in refusal for rule in RULE_IDS)


def test_cpu_makes_the_gpu_rules_not_applicable() -> None:
    result = assess(settings("Qwen/Qwen2.5-0.5B-Instruct", tgi_gpu_count=0))
    assert {entry["verdict"] for entry in result["rules"]} == {"not-applicable"}
    assert result["ok"] and result["runs"] and result["fits"] is None
    assert result["gpu"]["type"] == "cpu" and result["gpu"]["count"] == 0
    assert result["gpu"]["image"] == f"{TGI}:3.3.7-intel-cpu"
    assert result["multi_gpu"]["mode"] == "cpu"
    assert result["sizing"]["precision"] == "float32"
    assert result["memory"]["context_gib"] == 0
    assert result["memory"]["usable_per_gpu_gib"] is None
    assert any("tgi_memory_limit" in warning for warning in result["warnings"])


BAD_REQUESTS = [
    ({"tgi_model_id": None}, "tgi_model_id"),
    ({"tgi_model_id": "has space/x"}, "tgi_model_id"),
    ({"tgi_gpu_type": "gpu-tesla-p100"}, "tgi_gpu_type: 'gpu-tesla-p100'"),
    ({"tgi_gpu_type": "cpu"}, "tgi_gpu_type: 'cpu'"),
    ({"tgi_gpu_count": -1}, "tgi_gpu_count"),
    ({"tgi_gpu_count": "two"}, "tgi_gpu_count"),
    ({"tgi_gpu_count": 8}, "tgi_gpu_count: 8 is more than one gpu-tesla-v100 node has"),
    ({"tgi_dtype": "float32"}, "tgi_dtype"),
    ({"tgi_quantize": "int4"}, "tgi_quantize"),
    (
        {"tgi_dtype": "float16", "tgi_quantize": "awq"},
        "tgi_dtype ('float16') and tgi_quantize ('awq') cannot",
    ),
    ({"tgi_max_total_tokens": 0}, "tgi_max_total_tokens"),
    ({"tgi_cuda_memory_fraction": 1.5}, "tgi_cuda_memory_fraction"),
    ({"tgi_cuda_memory_fraction": True}, "tgi_cuda_memory_fraction"),
    ({"tgi_image": "Not An Image"}, "tgi_image"),
    ({"tgi_multi_gpu_mode": "pipeline"}, "tgi_multi_gpu_mode"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_REQUESTS, ids=[m for _, m in BAD_REQUESTS])
def test_bad_settings_are_refused_without_raising(changes: dict, message: str) -> None:
    result = assess(settings("meta-llama/Llama-2-7b-chat-hf", **changes))
    assert result["ok"] is False
    assert any(r.startswith(f"request: {message}") for r in result["refusals"]), result["refusals"]
    assert all(". Instead: " in refusal for refusal in result["refusals"])
    assert {entry["verdict"] for entry in result["rules"]} == {"unknown"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parameters": "lots"}, "tgi_model_parameters"),
        ({"concurrent_sequences": 1.5}, "concurrent_sequences"),
        ({"ignore_rules": "model-fits"}, "tgi_ignore_rules"),
    ],
)
def test_bad_inputs_of_the_check_itself_are_refused(kwargs: dict, message: str) -> None:
    result = assess(settings("meta-llama/Llama-2-7b-chat-hf"), **kwargs)
    assert any(r.startswith(f"request: {message}") for r in result["refusals"]), result["refusals"]


def test_a_bad_catalog_and_a_non_mapping_request_are_refused_too() -> None:
    result = assess(settings("x/y-7b"), catalog={"gpu-tesla-v100": {"memory_gib": -1}})
    assert any(
        r.startswith("request: icc_gpu_catalog['gpu-tesla-v100']") for r in result["refusals"]
    )
    assert assess(None)["refusals"][0].startswith("request: the settings None are not a mapping")


def test_format_refusal_tells_what_why_and_what_instead() -> None:
    forced = settings(
        "meta-llama/Llama-2-13b-chat-hf", tgi_gpu_count=2, tgi_multi_gpu_mode="tensor-sharding"
    )
    message = format_refusal(assess(forced))
    lines = message.splitlines()
    assert lines[0] == "meta-llama/Llama-2-13b-chat-hf is refused on 2 x gpu-tesla-v100:"
    assert lines[1].startswith("- multi-gpu-mode: TGI shards llama models only")
    assert "Alternatives:" in lines
    assert "tgi_ignore_rules: [multi-gpu-mode" in message
    ok = format_refusal(assess(settings("Qwen/Qwen2.5-1.5B-Instruct")))
    assert ok.splitlines()[0] == "Qwen/Qwen2.5-1.5B-Instruct fits and runs on 1 x gpu-tesla-v100."
    invalid = format_refusal(assess(settings("x/y-7b", tgi_gpu_type="nope")))
    assert "request: tgi_gpu_type: 'nope'" in invalid


def test_an_unknown_architecture_is_judged_where_it_does_not_matter() -> None:
    on_v100 = assess(settings("someone/mystery-model", tgi_gpu_count=2), parameters="7B")
    assert verdict(on_v100, "flash-attention-required") == "unknown"
    assert verdict(on_v100, "multi-gpu-mode") == "unknown"
    on_a100 = assess(
        settings("someone/mystery-model", tgi_gpu_count=2, tgi_gpu_type="gpu-tesla-a100"),
        parameters="7B",
    )
    assert verdict(on_a100, "flash-attention-required") == "pass"
    assert verdict(on_a100, "multi-gpu-mode") == "pass"
    assert not any("not judged" in warning for warning in on_a100["warnings"])


# ---------------------------------------------------------------------------------------------
# context-length: token limits within what the model's config says it attends to (issue 17).
# TinyLlama/TinyLlama-1.1B-Chat-v1.0's config.json says max_position_embeddings: 2048 (its model
# card: "Sequence Length 2048"); tests/unit/data/hub holds that answer.

TINYLLAMA = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"


def tinyllama(**changes: Any) -> dict[str, Any]:
    return assess(settings(TINYLLAMA, **changes), hub=hub_answer(TINYLLAMA))


def test_total_tokens_beyond_the_context_are_refused_naming_both_numbers() -> None:
    result = tinyllama(tgi_max_total_tokens=4096, tgi_max_input_tokens=1024)
    assert not result["ok"]
    assert [refusal.split(":")[0] for refusal in result["refusals"]] == ["context-length"]
    reason = rule_entry(result, "context-length")["reason"]
    assert reason.startswith(
        f"tgi_max_total_tokens 4096 (at most 2048): {TINYLLAMA} attends to at most 2048 tokens "
        "(max_position_embeddings in its config)"
    )
    assert result["fits"] is True  # memory is not the problem
    # The alternative keeps the prompt limit and cuts the total to the context.
    assert (
        "set tgi_max_total_tokens: 2048, tgi_max_input_tokens: 1024)"
        in (rule_entry(result, "context-length")["recommendation"])
    )


def test_an_input_limit_beyond_the_context_is_refused_also_with_the_total_unset() -> None:
    # Unset, the total is sized with TGI's default, the context (2048): the given 3000 counts.
    result = tinyllama(
        tgi_max_total_tokens=None, tgi_max_input_tokens=3000, tgi_max_batch_prefill_tokens=None
    )
    assert verdict(result, "context-length") == "refuse"
    assert rule_entry(result, "context-length")["reason"].startswith(
        "tgi_max_input_tokens 3000 (at most 2047: one for the answer)"
    )
    assert "2048 tokens" in rule_entry(result, "context-length")["reason"]


def test_limits_within_the_context_pass() -> None:
    result = tinyllama(tgi_max_total_tokens=2048, tgi_max_input_tokens=2047)
    assert result["ok"], result["refusals"]
    assert verdict(result, "context-length") == "pass"
    assert verdict(tinyllama(tgi_max_total_tokens=2049), "context-length") == "refuse"


def test_ignore_rules_turns_the_context_refusal_into_a_warning() -> None:
    result = assess(
        settings(TINYLLAMA, tgi_max_total_tokens=4096),
        hub=hub_answer(TINYLLAMA),
        ignore_rules=["context-length"],
    )
    assert result["ok"] and verdict(result, "context-length") == "ignored"
    assert any(w.startswith("context-length ignored") for w in result["warnings"])


def test_without_the_config_the_context_is_not_guessed() -> None:
    result = assess(settings(TINYLLAMA, tgi_max_total_tokens=4096))
    assert result["ok"], result["refusals"]
    assert verdict(result, "context-length") == "not-applicable"
    assert not any("context-length" in warning for warning in result["warnings"])


def test_rope_scaling_stretches_the_context() -> None:
    hub = hub_answer(TINYLLAMA)
    linear = {**hub["config"], "rope_scaling": {"type": "linear", "factor": 2.0}}
    stretched = {**hub, "config": linear}
    asked = settings(TINYLLAMA, tgi_max_total_tokens=4096, tgi_max_input_tokens=4000)
    # 2048 positions x factor 2 = 4096 tokens
    assert verdict(assess(asked, hub=stretched), "context-length") == "pass"
    too_long = {**asked, "tgi_max_total_tokens": 4097}
    assert "at most 4096" in rule_entry(assess(too_long, hub=stretched), "context-length")["reason"]
    # TGI's own RoPE scaling flags: the config no longer bounds the limits.
    flags = {**asked, "tgi_extra_args": ["--rope-scaling", "dynamic", "--rope-factor", "2"]}
    assert verdict(assess(flags, hub=hub), "context-length") == "not-applicable"


def test_the_largest_token_limit_offered_is_never_beyond_the_context() -> None:
    # 60000 prompt tokens do not fit one V100 (without flash attention the scores alone are
    # 32 heads x 60000 x 65536 x 2 bytes = 234 GiB); at 2048 the model fits easily.
    long = settings(
        TINYLLAMA,
        tgi_max_input_tokens=60000,
        tgi_max_total_tokens=65536,
        tgi_max_batch_prefill_tokens=65536,
    )
    for ignored in ([], ["context-length"]):
        result = assess(long, hub=hub_answer(TINYLLAMA), ignore_rules=ignored)
        assert verdict(result, "model-fits") == "refuse"
        fewer = next(o for o in result["recommendations"] if o.startswith("fewer tokens"))
        assert "tgi_max_total_tokens: 2048," in fewer, (ignored, fewer)


def test_settings_the_role_checked_are_judged_without_a_second_check(monkeypatch) -> None:
    # The tgi_server role's check seals the settings (tgi_settings.sealed); the capacity check
    # of a deploy then judges them as they are.
    role_checked = sealed({**settings("Qwen/Qwen2.5-7B-Instruct"), "tgi_api_key_secret": "k"})
    expected = assess(settings("Qwen/Qwen2.5-7B-Instruct"))

    def no_second_check(*_args, **_kwargs):
        raise AssertionError("the model settings were checked a second time")

    monkeypatch.setattr(gpu_rules, "model_settings_errors", no_second_check)
    assert assess(role_checked) == expected
    # Settings changed after the check are no longer the checked ones.
    with pytest.raises(AssertionError, match="a second time"):
        assess({**role_checked, "tgi_gpu_count": 2})

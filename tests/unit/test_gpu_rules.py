"""GPU compatibility rules and their recommendations (module_utils/gpu_rules.py).

Every rule of FACTS.md "TGI on V100" has a refused and a passing case. Memory figures are
written as arithmetic: parameters x bytes per parameter x 1.2 (20% overhead) + KV cache.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.gpu_catalog import TGI_IMAGE_SM70
from ansible_collections.haw.icc.plugins.module_utils.gpu_rules import (
    QUANTIZATION_MIN_COMPUTE_CAPABILITY,
    RULES,
    assess,
    format_refusal,
    image_version,
)
from ansible_collections.haw.icc.plugins.module_utils.model_sizing import GIB, hub_data
from ansible_collections.haw.icc.plugins.module_utils.tgi_settings import QUANTIZE_METHODS

HUB_DATA = Path(__file__).parent / "data" / "hub"
TGI = "ghcr.io/huggingface/text-generation-inference"
FOUR_BIT = 0.5 * 1.06
OVERHEAD = 1.2
RULE_IDS = [
    "tgi-image-cuda",
    "sharding-flash-attention",
    "mistral-flash-attention-v2",
    "quantization-compute-capability",
    "model-fits",
]
H100 = {
    "gpu-h100": {
        "memory_gib": 80,
        "compute_capability": "9.0",
        "gpus_per_node": 8,
        "tgi_image": f"{TGI}:3.3.7",
    }
}


def hub_answer(model_id: str) -> dict[str, Any]:
    folder = HUB_DATA / model_id.replace("/", "__")
    return hub_data(
        json.loads((folder / "model_info.json").read_text()),
        json.loads((folder / "config.json").read_text()),
    )


def verdict(result: dict, rule: str) -> str:
    return next(entry["verdict"] for entry in result["rules"] if entry["id"] == rule)


def rule_entry(result: dict, rule: str) -> dict:
    return next(entry for entry in result["rules"] if entry["id"] == rule)


def test_the_rule_ids_are_the_agreed_ones_in_order() -> None:
    assert list(RULES) == RULE_IDS
    result = assess({"model_id": "Qwen/Qwen2.5-1.5B-Instruct"})
    assert [entry["id"] for entry in result["rules"]] == RULE_IDS
    assert set(result) >= {
        "ok",
        "fits",
        "runs",
        "gpu",
        "sizing",
        "memory",
        "rules",
        "refusals",
        "recommendations",
        "warnings",
    }


def test_the_sandbox_default_model_fits_and_runs_on_one_v100() -> None:
    result = assess({"model_id": "Qwen/Qwen2.5-1.5B-Instruct"})
    assert result["ok"] and result["fits"] and result["runs"]
    assert result["refusals"] == [] and result["recommendations"] == []
    assert result["gpu"] == {
        "type": "gpu-tesla-v100",
        "count": 1,
        "memory_gib": 16,
        "compute_capability": "7.0",
        "image": TGI_IMAGE_SM70,
    }
    need = 1.5e9 * 2 * OVERHEAD / GIB
    assert result["memory"]["per_gpu_gib"] == pytest.approx(need, abs=2e-3)
    assert result["memory"]["usable_per_gpu_gib"] == 16
    assert result["memory"]["headroom_gib"] == pytest.approx(16 - need, abs=2e-3)
    assert any("guessed from its id" in warning for warning in result["warnings"])


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
    request = {"model_id": "Qwen/Qwen2.5-1.5B-Instruct", "gpu_type": gpu_type, "image": image}
    result = assess(request)
    assert verdict(result, "tgi-image-cuda") == expected
    assert result["ok"] == (expected != "refuse")
    if expected == "unknown":
        assert any(warning.startswith("tgi-image-cuda") for warning in result["warnings"])


def test_image_versions_are_read_from_tags_only() -> None:
    assert image_version(f"{TGI}:3.3.7-intel-cpu") == (3, 3, 7)
    assert image_version(f"{TGI}:3.3.0@sha256:{'b' * 64}") == (3, 3, 0)
    assert image_version("localhost:5000/tgi:2.4") == (2, 4, 0)
    assert image_version("localhost:5000/tgi") is None
    assert image_version(None) is None


def test_an_image_refusal_recommends_the_sm70_image_and_gpus_it_runs_on() -> None:
    result = assess({"model_id": "Qwen/Qwen2.5-1.5B-Instruct", "image": f"{TGI}:3.3.7"})
    recommendation = rule_entry(result, "tgi-image-cuda")["recommendation"]
    assert f"set tgi_image to {TGI_IMAGE_SM70}" in recommendation
    # The A100 runs the image asked for; a V100S would need another one, so it is not offered.
    assert "1 x gpu-tesla-a100 (40 GiB)" in recommendation
    assert "v100s" not in recommendation


# ---------------------------------------------------------------------------------------------
# sharding-flash-attention

SHARDING_CASES = [
    ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-v100", 2, "refuse"),
    ("Qwen/Qwen2.5-7B-Instruct", "gpu-tesla-v100s", 2, "refuse"),
    ("google/gemma-7b", "gpu-tesla-v100", 4, "refuse"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "gpu-tesla-v100", 2, "refuse"),
    ("bigscience/bloom-7b1", "gpu-tesla-v100", 2, "pass"),
    ("mosaicml/mpt-7b", "gpu-tesla-v100", 2, "pass"),
    ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-v100", 1, "pass"),
    ("meta-llama/Llama-2-13b-chat-hf", "gpu-tesla-a100", 2, "pass"),
    ("someone/mystery-model-7b", "gpu-tesla-v100", 2, "unknown"),
]


@pytest.mark.parametrize(("model_id", "gpu_type", "count", "expected"), SHARDING_CASES)
def test_sharding_below_compute_capability_8(
    model_id: str, gpu_type: str, count: int, expected: str
) -> None:
    result = assess({"model_id": model_id, "gpu_type": gpu_type, "gpu_count": count})
    assert verdict(result, "sharding-flash-attention") == expected
    if expected == "unknown":
        assert any("sharding-flash-attention not judged" in w for w in result["warnings"])


def test_a_refused_sharding_recommends_one_gpu_with_a_quantization() -> None:
    result = assess({"model_id": "meta-llama/Llama-2-13b-chat-hf", "gpu_count": 2})
    assert not result["ok"] and not result["runs"]
    need = 13e9 * FOUR_BIT * OVERHEAD / GIB  # 7.70 GiB with bitsandbytes-nf4
    assert (
        f"quantize with bitsandbytes-nf4: 1 x gpu-tesla-v100 (16 GiB): needs {need:.1f} of 16 GiB"
        in rule_entry(result, "sharding-flash-attention")["recommendation"]
    )
    assert "tgi_gpu_count: 1" in result["recommendations"][0]


# ---------------------------------------------------------------------------------------------
# mistral-flash-attention-v2

MISTRAL_CASES = [
    ("mistralai/Mistral-7B-Instruct-v0.2", "gpu-tesla-v100", "refuse"),
    ("mistralai/Mixtral-8x7B-Instruct-v0.1", "gpu-tesla-v100s", "refuse"),
    ("mistralai/Mistral-7B-Instruct-v0.2", "gpu-tesla-a100", "pass"),
    ("meta-llama/Llama-2-7b-chat-hf", "gpu-tesla-v100", "pass"),
]


@pytest.mark.parametrize(("model_id", "gpu_type", "expected"), MISTRAL_CASES)
def test_mistral_needs_flash_attention_v2(model_id: str, gpu_type: str, expected: str) -> None:
    result = assess({"model_id": model_id, "gpu_type": gpu_type})
    assert verdict(result, "mistral-flash-attention-v2") == expected


def test_a_refused_mistral_recommends_a_gpu_with_compute_capability_8() -> None:
    result = assess({"model_id": "mistralai/Mistral-7B-Instruct-v0.2"})
    need = 7e9 * 2 * OVERHEAD / GIB  # 15.65 GiB
    assert rule_entry(result, "mistral-flash-attention-v2")["recommendation"] == (
        f"1 x gpu-tesla-a100 (40 GiB): needs {need:.1f} of 40 GiB "
        "(set tgi_gpu_type: gpu-tesla-a100, tgi_gpu_count: 1)"
    )


def test_an_extended_catalog_offers_its_gpus() -> None:
    result = assess({"model_id": "mistralai/Mixtral-8x7B-Instruct-v0.1"}, catalog=H100)
    need = 56e9 * 2 * OVERHEAD / GIB  # 125.2 GiB: 2 x 80 GiB
    assert (
        f"2 x gpu-h100 (80 GiB): needs {need / 2:.1f} of 80 GiB per GPU"
        in (rule_entry(result, "mistral-flash-attention-v2")["recommendation"])
    )


def test_without_any_gpu_that_passes_the_recommendation_says_what_to_change() -> None:
    catalog = {"gpu-tesla-a100": {"compute_capability": "7.0", "tgi_image": TGI_IMAGE_SM70}}
    result = assess({"model_id": "mistralai/Mistral-7B-Instruct-v0.2"}, catalog=catalog)
    assert "another family" in rule_entry(result, "mistral-flash-attention-v2")["recommendation"]


# ---------------------------------------------------------------------------------------------
# quantization-compute-capability

V100_QUANTIZATION = {"bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4"}


@pytest.mark.parametrize("method", QUANTIZE_METHODS)
@pytest.mark.parametrize("gpu_type", ["gpu-tesla-v100", "gpu-tesla-a100"])
def test_quantize_methods_per_gpu(method: str, gpu_type: str) -> None:
    result = assess(
        {"model_id": "meta-llama/Llama-2-7b-chat-hf", "gpu_type": gpu_type, "quantize": method}
    )
    runs_here = gpu_type == "gpu-tesla-a100" or method in V100_QUANTIZATION
    assert verdict(result, "quantization-compute-capability") == ("pass" if runs_here else "refuse")


def test_the_minimum_compute_capabilities() -> None:
    assert set(QUANTIZATION_MIN_COMPUTE_CAPABILITY) == set(QUANTIZE_METHODS)
    assert {m for m, cc in QUANTIZATION_MIN_COMPUTE_CAPABILITY.items() if cc == "7.5"} == {
        "awq",
        "gptq",
        "exl2",
        "eetq",
    }
    assert {m for m, cc in QUANTIZATION_MIN_COMPUTE_CAPABILITY.items() if cc == "8.0"} == {
        "marlin",
        "fp8",
        "compressed-tensors",
    }


def test_a_prequantized_checkpoint_counts_as_its_method_from_the_name() -> None:
    result = assess({"model_id": "TheBloke/Llama-2-13B-chat-GPTQ"})
    entry = rule_entry(result, "quantization-compute-capability")
    assert entry["verdict"] == "refuse"
    assert "suggests a gptq checkpoint" in entry["reason"]
    need = 13e9 * FOUR_BIT * OVERHEAD / GIB
    assert entry["recommendation"].startswith(
        "the unquantized original of this model with 1 x gpu-tesla-v100 (16 GiB): "
        f"needs {need:.1f} of 16 GiB (set tgi_quantize: bitsandbytes-nf4"
    )


def test_a_prequantized_checkpoint_counts_as_its_method_from_the_hub_config() -> None:
    model_id = "TheBloke/Mistral-7B-Instruct-v0.2-AWQ"
    result = assess({"model_id": model_id, "gpu_type": "gpu-tesla-a100"}, hub=hub_answer(model_id))
    assert verdict(result, "quantization-compute-capability") == "pass"
    result = assess({"model_id": model_id}, hub=hub_answer(model_id))
    entry = rule_entry(result, "quantization-compute-capability")
    assert entry["verdict"] == "refuse"
    assert "pre-quantized with awq" in entry["reason"]


def test_bitsandbytes_nf4_passes_on_a_v100() -> None:
    result = assess({"model_id": "meta-llama/Llama-2-13b-chat-hf", "quantize": "bitsandbytes-nf4"})
    assert result["ok"]
    assert result["memory"]["weights_gib"] == pytest.approx(13e9 * FOUR_BIT / GIB, abs=1e-3)


# ---------------------------------------------------------------------------------------------
# model-fits

# request, expected verdict, expected need per GPU in GiB
FIT_CASES = [
    ({"model_id": "meta-llama/Llama-2-13b-chat-hf"}, "refuse", 13e9 * 2 * OVERHEAD / GIB),
    (
        {"model_id": "meta-llama/Llama-2-13b-chat-hf", "gpu_type": "gpu-tesla-v100s"},
        "pass",
        13e9 * 2 * OVERHEAD / GIB,
    ),
    (
        {
            "model_id": "meta-llama/Llama-2-70b-chat-hf",
            "gpu_type": "gpu-tesla-a100",
            "gpu_count": 4,
        },
        "pass",
        70e9 * 2 * OVERHEAD / GIB / 4,
    ),
    (
        {"model_id": "bigscience/bloom-7b1", "cuda_memory_fraction": 0.8},
        "refuse",
        7.1e9 * 2 * OVERHEAD / GIB,
    ),
    ({"model_id": "bigscience/bloom-7b1"}, "pass", 7.1e9 * 2 * OVERHEAD / GIB),
    (
        {"model_id": "meta-llama/Llama-2-7b-chat-hf", "max_total_tokens": 2048},
        "pass",
        7e9 * 2 * OVERHEAD / GIB,
    ),
]


@pytest.mark.parametrize(("request_", "expected", "need"), FIT_CASES)
def test_memory_fit_per_gpu(request_: dict, expected: str, need: float) -> None:
    result = assess(request_)
    assert verdict(result, "model-fits") == expected
    assert result["fits"] == (expected == "pass")
    assert result["memory"]["per_gpu_gib"] == pytest.approx(need, abs=2e-3)


def test_the_kv_cache_from_the_hub_config_can_tip_the_balance() -> None:
    model_id = "meta-llama/Meta-Llama-3-8B-Instruct"
    result = assess({"model_id": model_id}, hub=hub_answer(model_id))
    weights = 8030261248 * 2 / GIB
    kv = 2 * 32 * 8 * 128 * 2 * 4096 / GIB  # 0.5 GiB for 4096 tokens (max_total_tokens unset)
    assert result["memory"]["kv_cache_gib"] == pytest.approx(kv, abs=1e-3)
    assert result["memory"]["per_gpu_gib"] == pytest.approx(weights * OVERHEAD + kv, abs=2e-3)
    assert verdict(result, "model-fits") == "refuse"
    assert (
        f"1 x gpu-tesla-v100s (32 GiB): needs {weights * OVERHEAD + kv:.1f} of 32 GiB"
        in result["recommendations"][0]
    )


def test_a_model_too_big_for_one_v100_gets_all_kinds_of_alternatives() -> None:
    result = assess({"model_id": "meta-llama/Llama-2-13b-chat-hf"})
    need = 13e9 * 2 * OVERHEAD / GIB  # 29.06 GiB
    nf4 = 13e9 * FOUR_BIT * OVERHEAD / GIB  # 7.70 GiB
    largest = 16 * GIB / (2 * OVERHEAD) / 1e9  # 7.16B parameters in float16
    assert result["recommendations"] == [
        f"1 x gpu-tesla-v100s (32 GiB): needs {need:.1f} of 32 GiB "
        "(set tgi_gpu_type: gpu-tesla-v100s, tgi_gpu_count: 1)",
        f"1 x gpu-tesla-a100 (40 GiB): needs {need:.1f} of 40 GiB "
        "(set tgi_gpu_type: gpu-tesla-a100, tgi_gpu_count: 1)",
        f"quantize with bitsandbytes-nf4: 1 x gpu-tesla-v100 (16 GiB): needs {nf4:.1f} of 16 GiB "
        "(set tgi_quantize: bitsandbytes-nf4, tgi_gpu_count: 1)",
        f"a model of up to ~{largest:.1f}B parameters in float16 fits 1 x gpu-tesla-v100 "
        "(16 GiB) (set tgi_model_id to such a model)",
    ]
    assert result["refusals"] == [
        f"model-fits: {rule_entry(result, 'model-fits')['reason']}. Instead: "
        + " or ".join(result["recommendations"][:3])
    ]


def test_more_gpus_of_the_same_type_when_the_architecture_shards() -> None:
    result = assess({"model_id": "bigscience/bloom-7b1", "cuda_memory_fraction": 0.8})
    per_gpu = 7.1e9 * 2 * OVERHEAD / GIB / 2  # 7.93 GiB each on 2 GPUs
    assert (
        f"2 x gpu-tesla-v100 (16 GiB): needs {per_gpu:.1f} of 12.8 usable GiB per GPU "
        "(set tgi_gpu_count: 2)"
    ) in result["recommendations"]


def test_a_size_nobody_knows_is_unknown_not_refused() -> None:
    result = assess({"model_id": "microsoft/phi-2"})
    assert verdict(result, "model-fits") == "unknown"
    assert result["ok"] and result["fits"] is None
    assert result["sizing"] is None and result["memory"] is None
    assert any("tgi_model_parameters" in warning for warning in result["warnings"])
    # The Hub knows it.
    result = assess({"model_id": "microsoft/phi-2"}, hub=hub_answer("microsoft/phi-2"))
    assert result["sizing"]["parameters"] == 2779683840
    assert result["fits"] is True


# ---------------------------------------------------------------------------------------------
# Overrides, CPU, bad requests


def test_ignore_rules_turns_a_refusal_into_a_warning() -> None:
    request = {
        "model_id": "meta-llama/Llama-2-7b-chat-hf",
        "gpu_count": 2,
        "ignore_rules": ["sharding-flash-attention"],
    }
    result = assess(request)
    assert result["ok"] is True
    assert result["runs"] is False  # the expert's call; the prediction stays honest
    assert verdict(result, "sharding-flash-attention") == "ignored"
    assert result["refusals"] == []
    assert any(w.startswith("sharding-flash-attention ignored") for w in result["warnings"])
    # Other rules still refuse.
    request["model_id"] = "mistralai/Mistral-7B-Instruct-v0.2"
    result = assess(request)
    assert not result["ok"]
    assert [r.split(":")[0] for r in result["refusals"]] == ["mistral-flash-attention-v2"]


def test_an_unknown_rule_id_is_a_request_refusal_listing_the_valid_ids() -> None:
    result = assess({"model_id": "meta-llama/Llama-2-7b-chat-hf", "ignore_rules": ["sharding"]})
    assert not result["ok"]
    assert len(result["refusals"]) == 1
    refusal = result["refusals"][0]
    assert refusal.startswith("request: tgi_ignore_rules: unknown rule id(s) 'sharding'")
    assert all(rule in refusal for rule in RULE_IDS)


def test_cpu_makes_the_gpu_rules_not_applicable() -> None:
    result = assess({"model_id": "Qwen/Qwen2.5-0.5B-Instruct", "gpu_count": 0})
    assert {entry["verdict"] for entry in result["rules"]} == {"not-applicable"}
    assert result["ok"] and result["runs"] and result["fits"] is None
    assert result["gpu"]["type"] == "cpu" and result["gpu"]["count"] == 0
    assert result["gpu"]["image"] == f"{TGI}:3.3.7-intel-cpu"
    assert result["sizing"]["precision"] == "float32"
    assert result["memory"]["weights_gib"] == pytest.approx(0.5e9 * 4 / GIB, abs=1e-3)
    assert result["memory"]["usable_per_gpu_gib"] is None
    assert any("tgi_memory_limit" in warning for warning in result["warnings"])


BAD_REQUESTS = [
    ({}, "tgi_model_id"),
    ({"model_id": "has space/x"}, "tgi_model_id"),
    ({"gpu_type": "gpu-tesla-p100"}, "tgi_gpu_type: 'gpu-tesla-p100'"),
    ({"gpu_type": "cpu"}, "tgi_gpu_type: 'cpu'"),
    ({"gpu_count": -1}, "tgi_gpu_count"),
    ({"gpu_count": "two"}, "tgi_gpu_count"),
    ({"gpu_count": 8}, "tgi_gpu_count: 8 is more than one gpu-tesla-v100 node has"),
    ({"dtype": "float32"}, "tgi_dtype"),
    ({"quantize": "int4"}, "tgi_quantize"),
    (
        {"dtype": "float16", "quantize": "awq"},
        "tgi_dtype ('float16') and tgi_quantize ('awq') cannot",
    ),
    ({"parameters": "lots"}, "tgi_model_parameters"),
    ({"max_total_tokens": 0}, "tgi_max_total_tokens"),
    ({"concurrent_sequences": 1.5}, "concurrent_sequences"),
    ({"cuda_memory_fraction": 1.5}, "tgi_cuda_memory_fraction"),
    ({"cuda_memory_fraction": True}, "tgi_cuda_memory_fraction"),
    ({"image": ""}, "tgi_image"),
    ({"ignore_rules": "model-fits"}, "tgi_ignore_rules"),
]


@pytest.mark.parametrize(("changes", "message"), BAD_REQUESTS, ids=[m for _, m in BAD_REQUESTS])
def test_bad_requests_are_refused_without_raising(changes: dict, message: str) -> None:
    request = {"model_id": "meta-llama/Llama-2-7b-chat-hf", **changes}
    if not changes:
        request = {}
    result = assess(request)
    assert result["ok"] is False
    assert any(r.startswith(f"request: {message}") for r in result["refusals"]), result["refusals"]
    assert all(". Instead: " in refusal for refusal in result["refusals"])
    assert {entry["verdict"] for entry in result["rules"]} == {"unknown"}


def test_a_bad_catalog_and_a_non_mapping_request_are_refused_too() -> None:
    result = assess({"model_id": "x/y-7b"}, catalog={"gpu-tesla-v100": {"memory_gib": -1}})
    assert result["refusals"][0].startswith("request: icc_gpu_catalog['gpu-tesla-v100']")
    assert assess(None)["refusals"][0].startswith("request: the request None is not a mapping")


def test_string_gpu_counts_from_templates_are_accepted() -> None:
    assert assess({"model_id": "Qwen/Qwen2.5-1.5B-Instruct", "gpu_count": "1"})["ok"]


def test_format_refusal_tells_what_why_and_what_instead() -> None:
    result = assess({"model_id": "meta-llama/Llama-2-13b-chat-hf", "gpu_count": 2})
    message = format_refusal(result)
    lines = message.splitlines()
    assert lines[0] == "meta-llama/Llama-2-13b-chat-hf is refused on 2 x gpu-tesla-v100:"
    assert lines[1].startswith("- sharding-flash-attention: TGI shards llama models only")
    assert "Alternatives:" in lines
    assert "tgi_ignore_rules: [sharding-flash-attention]" in message
    ok = format_refusal(assess({"model_id": "Qwen/Qwen2.5-1.5B-Instruct"}))
    assert ok.splitlines()[0] == "Qwen/Qwen2.5-1.5B-Instruct fits and runs on 1 x gpu-tesla-v100."
    invalid = format_refusal(assess({"model_id": "x/y-7b", "gpu_type": "nope"}))
    assert "request: tgi_gpu_type: 'nope'" in invalid


def test_an_unknown_architecture_is_judged_where_it_does_not_matter() -> None:
    request = {"model_id": "someone/mystery-model", "parameters": "7B", "gpu_count": 2}
    on_v100 = assess(request)
    assert verdict(on_v100, "mistral-flash-attention-v2") == "unknown"
    assert verdict(on_v100, "sharding-flash-attention") == "unknown"
    on_a100 = assess({**request, "gpu_type": "gpu-tesla-a100"})
    assert verdict(on_a100, "mistral-flash-attention-v2") == "pass"
    assert verdict(on_a100, "sharding-flash-attention") == "pass"
    assert not any("not judged" in warning for warning in on_a100["warnings"])

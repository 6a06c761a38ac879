"""vLLM's capacity verdicts (capacity/vllm_verdicts.py over gpu/vllm_sizing.py) for twelve models
on 1, 2 and 4 V100s (16 GiB) and V100Ss (32 GiB).

The model facts are the published ones (each model's config.json and parameter count on the Hub).
The expected verdicts were worked out by hand from vLLM 0.14.1's accounting, which `hand_kv_gib`
below writes out again on its own: of 0.9 x the GPU (less the 0.25 GiB the driver keeps), the
weights' share, the profiling run's activations and the non-torch memory leave the KV cache, which
must hold one request of max_model_len tokens in blocks of 16.
"""

from __future__ import annotations

import pytest
from ansible_collections.haw.icc.plugins.module_utils.capacity.vllm_verdicts import (
    PASS,
    REFUSE,
    alternatives,
    evaluate,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import CATALOG

GIB = 2**30
V100, V100S = CATALOG["gpu-tesla-v100"], CATALOG["gpu-tesla-v100s"]


def config(layers, heads, kv_heads, hidden, intermediate, vocab, positions, head_dim=None, **extra):
    published = {
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "hidden_size": hidden,
        "intermediate_size": intermediate,
        "vocab_size": vocab,
        "max_position_embeddings": positions,
    }
    if head_dim:
        published["head_dim"] = head_dim
    return published | extra


# model id -> (parameters, config.json), as published on the Hub.
MODELS = {
    "Qwen/Qwen2.5-0.5B-Instruct": (0.494e9, config(24, 14, 2, 896, 4864, 151936, 32768)),
    "Qwen/Qwen2.5-1.5B-Instruct": (1.54e9, config(28, 12, 2, 1536, 8960, 151936, 32768)),
    "meta-llama/Llama-3.2-3B-Instruct": (3.21e9, config(28, 24, 8, 3072, 8192, 128256, 131072)),
    "microsoft/Phi-3-mini-4k-instruct": (3.82e9, config(32, 32, 32, 3072, 8192, 32064, 4096)),
    "mistralai/Mistral-7B-Instruct-v0.3": (7.25e9, config(32, 32, 8, 4096, 14336, 32768, 32768)),
    "Qwen/Qwen2.5-7B-Instruct": (7.62e9, config(28, 28, 4, 3584, 18944, 152064, 32768)),
    "meta-llama/Llama-3.1-8B-Instruct": (8.03e9, config(32, 32, 8, 4096, 14336, 128256, 131072)),
    "google/gemma-2-9b-it": (9.24e9, config(42, 16, 8, 3584, 14336, 256000, 8192, head_dim=256)),
    "meta-llama/Llama-2-13b-chat-hf": (13.0e9, config(40, 40, 40, 5120, 13824, 32000, 4096)),
    "Qwen/Qwen2.5-14B-Instruct": (14.77e9, config(48, 40, 8, 5120, 13824, 152064, 32768)),
    "Qwen/Qwen2.5-32B-Instruct": (32.8e9, config(64, 40, 8, 5120, 27648, 152064, 32768)),
    "meta-llama/Llama-3.1-70B-Instruct": (70.6e9, config(80, 64, 8, 8192, 28672, 128256, 131072)),
}

# (model, GPU) -> verdict on 1, 2, 4 GPUs with max_model_len 4096: "ok", "memory" (vllm-memory
# refuses) or "heads" (the GPU count does not divide the attention heads). By hand, per GPU:
# weights = parameters x 2 bytes / GPUs against 0.9 x 15.75 = 14.18 GiB (V100) or
# 0.9 x 31.75 = 28.58 GiB (V100S), less ~0.4 GiB activations and 0.25 (+0.5 with TP) non-torch.
EXPECTED = {
    # 0.92 GiB of weights; 14 heads do not split over 4.
    ("Qwen/Qwen2.5-0.5B-Instruct", "v100"): ("ok", "ok", "heads"),
    ("Qwen/Qwen2.5-0.5B-Instruct", "v100s"): ("ok", "ok", "heads"),
    ("Qwen/Qwen2.5-1.5B-Instruct", "v100"): ("ok", "ok", "ok"),  # 2.87 GiB; 12 heads
    ("Qwen/Qwen2.5-1.5B-Instruct", "v100s"): ("ok", "ok", "ok"),
    ("meta-llama/Llama-3.2-3B-Instruct", "v100"): ("ok", "ok", "ok"),  # 5.98 GiB
    ("meta-llama/Llama-3.2-3B-Instruct", "v100s"): ("ok", "ok", "ok"),
    ("microsoft/Phi-3-mini-4k-instruct", "v100"): ("ok", "ok", "ok"),  # 7.12 GiB
    ("microsoft/Phi-3-mini-4k-instruct", "v100s"): ("ok", "ok", "ok"),
    # 13.50 GiB: 14.18 - 13.50 - 0.29 - 0.25 = 0.13 GiB = 1,072 tokens of 128 KiB < 4096.
    ("mistralai/Mistral-7B-Instruct-v0.3", "v100"): ("memory", "ok", "ok"),
    ("mistralai/Mistral-7B-Instruct-v0.3", "v100s"): ("ok", "ok", "ok"),
    ("Qwen/Qwen2.5-7B-Instruct", "v100"): ("memory", "ok", "ok"),  # 14.19 GiB > 14.18
    ("Qwen/Qwen2.5-7B-Instruct", "v100s"): ("ok", "ok", "ok"),
    ("meta-llama/Llama-3.1-8B-Instruct", "v100"): ("memory", "ok", "ok"),  # 14.96 GiB
    ("meta-llama/Llama-3.1-8B-Instruct", "v100s"): ("ok", "ok", "ok"),
    ("google/gemma-2-9b-it", "v100"): ("memory", "ok", "ok"),  # 17.21 GiB, 8.61 on two
    ("google/gemma-2-9b-it", "v100s"): ("ok", "ok", "ok"),
    # 24.21 GiB; on two V100s 12.11 + 0.22 + 0.75 leave 1.10 GiB = 1.10 GiB / 400 KiB per token
    # (40 layers x 20 KV heads x 128 x 2 x 2 bytes) = 2,880 tokens < 4096.
    ("meta-llama/Llama-2-13b-chat-hf", "v100"): ("memory", "memory", "ok"),
    ("meta-llama/Llama-2-13b-chat-hf", "v100s"): ("ok", "ok", "ok"),
    ("Qwen/Qwen2.5-14B-Instruct", "v100"): ("memory", "memory", "ok"),  # 27.51, 13.76, 6.88
    # One V100S: 28.58 - 27.51 - 0.53 - 0.25 = 0.29 GiB < 4096 x 192 KiB = 0.75 GiB.
    ("Qwen/Qwen2.5-14B-Instruct", "v100s"): ("memory", "ok", "ok"),
    ("Qwen/Qwen2.5-32B-Instruct", "v100"): ("memory", "memory", "memory"),  # 15.27 on four
    ("Qwen/Qwen2.5-32B-Instruct", "v100s"): ("memory", "memory", "ok"),
    ("meta-llama/Llama-3.1-70B-Instruct", "v100"): ("memory", "memory", "memory"),  # 131.5 GiB
    ("meta-llama/Llama-3.1-70B-Instruct", "v100s"): ("memory", "memory", "memory"),  # 32.9 > 28.6
}
GPUS = {"v100": V100, "v100s": V100S}


def judge(model_id, gpu, count, max_model_len=4096, hub=True, **options):
    parameters, published = MODELS.get(model_id, (None, None))
    known = {"parameters": parameters, "config": published} if hub else None
    return evaluate(
        model_id, gpu=gpu, gpu_count=count, max_model_len=max_model_len, hub=known, **options
    )


def word(result) -> str:
    refused = [rule for rule, (verdict, _) in result["verdicts"].items() if verdict == REFUSE]
    assert len(refused) <= 1, refused
    return {(): "ok", ("vllm-memory",): "memory", ("vllm-tensor-parallel",): "heads"}[
        tuple(refused)
    ]


@pytest.mark.parametrize(("key", "expected"), EXPECTED.items(), ids=str)
def test_the_table_of_verdicts(key, expected):
    model_id, gpu = key
    got = tuple(word(judge(model_id, GPUS[gpu], count)) for count in (1, 2, 4))
    assert got == expected


def hand_kv_gib(parameters, c, gpu_gib, gpus):
    """vLLM 0.14.1's KV cache per GPU, by hand: requested minus weights, activations, non-torch."""
    requested = 0.9 * (gpu_gib - 0.25) * GIB
    weights = parameters * 2 / gpus
    activations = 2048 * 2 * (4 * c["hidden_size"] + 3 * c["intermediate_size"] / gpus)
    sampler = 256 * c["vocab_size"] * 4 * 2
    non_torch = (0.25 + (0.5 if gpus > 1 else 0)) * GIB
    return (requested - weights - activations - sampler - non_torch) / GIB


@pytest.mark.parametrize("model_id", MODELS)
@pytest.mark.parametrize("count", (1, 2, 4))
def test_the_kv_cache_left_is_the_hand_calculation(model_id, count):
    parameters, c = MODELS[model_id]
    for gib, gpu in ((16, V100), (32, V100S)):
        sizing = judge(model_id, gpu, count)["sizing"]
        assert sizing["kv_available_gib"] == pytest.approx(hand_kv_gib(parameters, c, gib, count))


def test_llama_3_1_8b_on_two_v100s_worked_through():
    result = judge("meta-llama/Llama-3.1-8B-Instruct", V100, 2)
    sizing = result["sizing"]
    # weights 8.03e9 x 2 B / 2 = 8.03e9 B = 7.479 GiB per GPU
    assert sizing["weights_per_gpu_gib"] == pytest.approx(8.03e9 / GIB)
    # 2048 x 2 x (4 x 4096 + 3 x 14336 / 2) = 155,189,248 B; 256 x 128256 x 8 = 262,668,288 B
    assert sizing["activations_gib"] == pytest.approx((155_189_248 + 262_668_288) / GIB)
    # 32 layers x (8 KV heads / 2 GPUs) x 128 x 2 (K, V) x 2 bytes = 65,536 B per token
    assert sizing["kv_bytes_per_token"] == 65_536
    available = 0.9 * 15.75 * GIB - 8.03e9 - 155_189_248 - 262_668_288 - 0.75 * GIB
    assert sizing["kv_tokens_available"] == int(available // (65_536 * 16)) * 16
    assert result["verdicts"]["vllm-tensor-parallel"] == (PASS, "32 attention heads, 16 per GPU")
    assert result["attention"] == "TRITON_ATTN"


def test_a_refusal_for_a_long_context_offers_the_largest_max_model_len_that_fits():
    result = judge("meta-llama/Llama-2-13b-chat-hf", V100, 2)
    verdict, reason = result["verdicts"]["vllm-memory"]
    parameters, c = MODELS["meta-llama/Llama-2-13b-chat-hf"]
    per_token = 40 * 20 * 128 * 2 * 2  # 40 heads of KV over 2 GPUs
    fits = int(hand_kv_gib(parameters, c, 16, 2) * GIB // (per_token * 16)) * 16
    assert verdict == REFUSE and f"tgi_max_total_tokens {fits} would fit" in reason
    assert 2048 < fits < 4096
    assert word(judge("meta-llama/Llama-2-13b-chat-hf", V100, 2, max_model_len=fits)) == "ok"
    assert (
        word(judge("meta-llama/Llama-2-13b-chat-hf", V100, 2, max_model_len=fits + 16)) == "memory"
    )


def test_a_v100_runs_float16_and_refuses_an_explicit_bfloat16():
    result = judge("Qwen/Qwen2.5-1.5B-Instruct", V100, 1)
    assert result["verdicts"]["vllm-dtype"] == (
        PASS, "runs in float16 (--dtype half): a V100 has no bfloat16"
    )  # fmt: skip
    verdict, reason = judge("Qwen/Qwen2.5-1.5B-Instruct", V100, 1, dtype="bfloat16")["verdicts"][
        "vllm-dtype"
    ]
    assert verdict == REFUSE and "compute capability of at least 8.0" in reason


def test_awq_needs_7_5_while_gptq_has_kernels_for_a_v100():
    awq = config(
        32, 32, 32, 4096, 11008, 32000, 4096, quantization_config={"quant_method": "awq", "bits": 4}
    )
    gptq = awq | {"quantization_config": {"quant_method": "gptq", "bits": 4}}
    for model_id, published, expected in (
        ("TheBloke/Llama-2-7B-Chat-AWQ", awq, REFUSE),
        ("TheBloke/Llama-2-7B-Chat-GPTQ", gptq, PASS),
    ):
        hub = {"parameters": 6.74e9, "config": published}
        result = evaluate(model_id, gpu=V100, gpu_count=1, max_model_len=4096, hub=hub)
        assert result["verdicts"]["vllm-quantization"][0] == expected, model_id
    hub = {"parameters": 6.74e9, "config": awq}
    reason = evaluate(
        "TheBloke/Llama-2-7B-Chat-AWQ", gpu=V100, gpu_count=1, max_model_len=4096, hub=hub
    )["verdicts"]["vllm-quantization"][1]
    assert "Minimum capability: 75. Current capability: 70." in reason


def test_images_after_the_pinned_release_are_refused_on_a_v100():
    newer = V100 | {"vllm_image": "docker.io/vllm/vllm-openai:v0.15.0"}
    verdict, reason = judge("Qwen/Qwen2.5-1.5B-Instruct", newer, 1)["verdicts"]["vllm-image-cuda"]
    assert verdict == REFUSE and "0.14.1" in reason
    assert judge("Qwen/Qwen2.5-1.5B-Instruct", V100, 1)["verdicts"]["vllm-image-cuda"][0] == PASS
    no_image = {k: v for k, v in V100.items() if k != "vllm_image"}
    assert (
        judge("Qwen/Qwen2.5-1.5B-Instruct", no_image, 1)["verdicts"]["vllm-image-cuda"][0] == REFUSE
    )


@pytest.mark.parametrize("model_id", MODELS)
def test_knowing_less_is_never_kinder(model_id):
    for gpu in (V100, V100S):
        for count in (1, 2, 4):
            known = judge(model_id, gpu, count)
            unknown = judge(model_id, gpu, count, hub=False)  # the model id alone
            if not known["passes"]:
                assert not unknown["passes"], (model_id, gpu["memory_gib"], count)
            if count > 1:  # the heads are unknown without the config
                assert unknown["verdicts"]["vllm-tensor-parallel"][0] == REFUSE


def test_alternatives_name_the_engine_and_tensor_parallelism():
    parameters, published = MODELS["meta-llama/Llama-3.1-8B-Instruct"]
    found = alternatives(
        "meta-llama/Llama-3.1-8B-Instruct",
        catalog=CATALOG,
        max_model_len=4096,
        hub={"parameters": parameters, "config": published},
    )
    # 14.96 GiB of weights: two 16 GiB V100s in tensor parallel, or one V100S.
    assert found[:2] == [
        "vllm on 2 x gpu-tesla-v100, tensor parallel",
        "vllm on 1 x gpu-tesla-v100s",
    ]

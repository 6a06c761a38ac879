"""The sandbox's `vllm serve` simulation (sandbox/icc_sandbox/vllm_serve.py): its flags are the
pinned release's, and its start-up verdicts follow vLLM's accounting, worked by hand here."""

from __future__ import annotations

from icc_sandbox.vllm_serve import EXIT_ERROR, EXIT_USAGE, SERVE_FLAGS, simulate_serve
from test_vllm_server_contract import defined_flags, vllm_source  # noqa: F401 (fixture)

V100 = (7, 0)


def test_the_flags_are_exactly_the_releases(vllm_source):  # noqa: F811
    assert defined_flags(vllm_source) == SERVE_FLAGS


def test_an_unknown_flag_is_refused_like_argparse():
    outcome = simulate_serve(["org/m-1b", "--max-parallel-loading-worker", "2"], {}, 1, 16, V100)
    assert (outcome.ok, outcome.exit_code) == (False, EXIT_USAGE)
    assert outcome.message.endswith(
        "vllm serve: error: unrecognized arguments: --max-parallel-loading-worker 2"
    )


def test_llama_3_1_8b_fits_two_v100s_and_not_one():
    args = ["meta-llama/Llama-3.1-8B-Instruct", "--dtype", "half", "--max-model-len", "4096"]
    one = simulate_serve([*args, "--tensor-parallel-size", "1"], {}, 1, 16, V100)
    # 0.9 x 16160 MiB = 14.20 GiB < 8.03e9 x 2 B = 14.96 GiB of weights: nothing left.
    assert (one.ok, one.exit_code) == (False, EXIT_ERROR)
    assert one.message.startswith("ValueError: No available memory for the cache blocks.")
    two = simulate_serve([*args, "--tensor-parallel-size", "2"], {}, 2, 16, V100)
    assert two.ok
    # 0.9 x 16160 MiB - 8.03e9 B - activations (2048 x 2 x (4 x 4096 + 3 x 14336 / 2) +
    # 256 x 128256 x 8 = 417,857,536 B) - 0.75 GiB; 65,536 B per token in blocks of 16.
    available = 0.9 * 16160 * 2**20 - 8.03e9 - 417_857_536 - 0.75 * 2**30
    assert two.kv_tokens == int(available // (65_536 * 16)) * 16


def test_bfloat16_and_heads_that_do_not_split_are_vllms_value_errors():
    bf16 = simulate_serve(["Qwen/Qwen2.5-1.5B-Instruct", "--dtype", "bfloat16"], {}, 1, 16, V100)
    assert "Bfloat16 is only supported on GPUs with compute capability of at least 8.0" in (
        bf16.message
    )
    heads = simulate_serve(
        ["Qwen/Qwen2.5-0.5B-Instruct", "--tensor-parallel-size", "4"], {}, 4, 16, V100
    )
    assert heads.message == (
        "ValueError: Total number of attention heads (14) must be divisible by tensor parallel "
        "size (4)."
    )

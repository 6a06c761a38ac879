"""The simulated TGI launcher start-up (icc_sandbox.tgi_launcher), one case per rule."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from icc_sandbox.tgi_launcher import (
    DEFAULT_MODEL_ID,
    FLAGS,
    LaunchOutcome,
    parse_parameter_count,
    simulate_launch,
    weight_precision,
)

GIB = 2**30
LLAMA_7B = "meta-llama/Llama-2-7b-chat-hf"
LLAMA_13B = "meta-llama/Llama-2-13b-chat-hf"
LLAMA_70B = "meta-llama/Llama-2-70b-chat-hf"
LLAMA_70B_AWQ = "TheBloke/Llama-2-70B-Chat-AWQ"


@dataclass(frozen=True)
class Case:
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    gpus: int = 1
    gpu_gib: float | None = 16.0
    memory_limit: int | None = None
    compute_capability: tuple[int, int] | None = None  # None: a GPU with flash attention

    def run(self) -> LaunchOutcome:
        return simulate_launch(
            self.args, self.env, self.gpus, self.gpu_gib, self.memory_limit,
            self.compute_capability,
        )  # fmt: skip


# (case, expected model_id, expected num_shard)
STARTS = {
    "7b-fp16-on-one-v100s": (Case(["--model-id", LLAMA_7B], gpu_gib=32), LLAMA_7B, 1),
    "13b-two-shards-on-2x16": (
        Case(["--model-id", LLAMA_13B, "--num-shard", "2"], gpus=2),
        LLAMA_13B,
        2,
    ),
    "env-only": (
        Case(
            [],
            env={
                "MODEL_ID": "mistralai/Mistral-7B-Instruct-v0.2",
                "NUM_SHARD": "1",
                "HOSTNAME": "0.0.0.0",
                "PORT": "8080",
                "USAGE_STATS": "off",
                "API_KEY": "<from-secret>",
                "TRUST_REMOTE_CODE": "false",
            },
            gpu_gib=32,
        ),
        "mistralai/Mistral-7B-Instruct-v0.2",
        1,
    ),
    "cpu-only-small-model": (
        Case(["--model-id", "bigscience/bloom-560m"], gpus=0, gpu_gib=None, memory_limit=8 * GIB),
        "bigscience/bloom-560m",
        1,
    ),
    "cpu-only-no-limit": (Case(["--model-id", LLAMA_70B], gpus=0, gpu_gib=None), LLAMA_70B, 1),
    "default-model": (Case([]), DEFAULT_MODEL_ID, 1),
    "equals-form": (Case([f"--model-id={LLAMA_7B}", "--num-shard=1"], gpu_gib=32), LLAMA_7B, 1),
    "short-flags": (Case(["-p", "8080", "-e", "-g90"]), DEFAULT_MODEL_ID, 1),
    "all-visible-gpus-by-default": (Case(["--model-id", LLAMA_13B], gpus=4), LLAMA_13B, 4),
    "cli-wins-over-env": (
        Case(["--model-id", LLAMA_7B, "--num-shard", "1"], env={"NUM_SHARD": "4"}, gpu_gib=32),
        LLAMA_7B,
        1,
    ),
    "sharded-false-means-one-shard": (
        Case(["--sharded", "false"], gpus=4),
        DEFAULT_MODEL_ID,
        1,
    ),
    "sharded-false-keeps-explicit-num-shard": (
        # TGI's find_num_shards starts num_shard shards even with `sharded false`.
        Case(["--sharded", "false", "--num-shard", "2"], gpus=2),
        DEFAULT_MODEL_ID,
        2,
    ),
    "sharded-true-on-all-gpus": (Case(["--sharded", "true"], gpus=2), DEFAULT_MODEL_ID, 2),
    "70b-awq-by-name-on-4x16": (Case(["--model-id", LLAMA_70B_AWQ], gpus=4), LLAMA_70B_AWQ, 4),
    "70b-awq-flag-on-2x32": (
        Case(
            ["--model-id", LLAMA_70B_AWQ, "--quantize", "awq", "--num-shard", "2"],
            gpus=2,
            gpu_gib=32,
        ),
        LLAMA_70B_AWQ,
        2,
    ),
    "token-budgets-within-defaults": (
        Case(["--max-input-tokens", "3000", "--max-total-tokens", "4096"]),
        DEFAULT_MODEL_ID,
        1,
    ),
    "secret-placeholder-in-typed-env": (
        Case([], env={"NUM_SHARD": "<from-secret>", "QUANTIZE": "<from-secret>"}),
        DEFAULT_MODEL_ID,
        1,
    ),
    "unknown-size-is-accepted": (
        Case(["--model-id", "openai-community/gpt2"]),
        "openai-community/gpt2",
        1,
    ),
}


@pytest.mark.parametrize(("case", "model_id", "num_shard"), STARTS.values(), ids=STARTS.keys())
def test_valid_configurations_start(case: Case, model_id: str, num_shard: int) -> None:
    outcome = case.run()
    assert outcome == LaunchOutcome(True, "", 0, "", model_id, num_shard), outcome.message


# (case, reason, exit code, phrases the message must contain)
FAILURES = {
    # clap: the command line
    "vllm-flag-of-the-original-scripts": (
        Case(
            ["--model-id", LLAMA_13B, "--num-shard", "2", "--max-parallel-loading-workers", "2"],
            gpus=2,
        ),
        "Error",
        2,
        ["error: unexpected argument '--max-parallel-loading-workers' found", "Usage: "],
    ),
    "typo-gets-a-suggestion": (
        Case(["--max-total-token", "2048"]),
        "Error",
        2,
        [
            "unexpected argument '--max-total-token'",
            "a similar argument exists: '--max-total-tokens'",
        ],
    ),
    "positional-argument": (
        Case(["serve", "--model-id", LLAMA_7B]),
        "Error",
        2,
        ["unexpected argument 'serve' found"],
    ),
    "invalid-dtype": (
        Case(["--dtype", "float32"]),
        "Error",
        2,
        ["invalid value 'float32' for '--dtype <DTYPE>'", "[possible values: float16, bfloat16]"],
    ),
    "invalid-quantize-from-env": (
        Case([], env={"QUANTIZE": "int4"}),
        "Error",
        2,
        ["invalid value 'int4' for '--quantize <QUANTIZE>'", "bitsandbytes-nf4"],
    ),
    "invalid-sharded": (
        Case(["--sharded", "yes"]),
        "Error",
        2,
        ["invalid value 'yes' for '--sharded <SHARDED>'", "[possible values: true, false]"],
    ),
    "invalid-usage-stats": (
        Case([], env={"USAGE_STATS": "disabled"}),
        "Error",
        2,
        ["[possible values: on, off, no-stack]"],
    ),
    "integer-flag-given-a-word": (
        Case(["--num-shard", "two"]),
        "Error",
        2,
        ["invalid value 'two' for '--num-shard <NUM_SHARD>': invalid digit found in string"],
    ),
    "negative-integer": (
        Case(["--max-total-tokens=-1"]),
        "Error",
        2,
        ["invalid digit found in string"],
    ),
    "port-out-of-range": (
        Case(["--port", "70000"]),
        "Error",
        2,
        ["number too large to fit in target type"],
    ),
    "float-flag-given-a-word": (
        Case(["--cuda-memory-fraction", "most"]),
        "Error",
        2,
        [
            "invalid value 'most' for '--cuda-memory-fraction <CUDA_MEMORY_FRACTION>'",
            "invalid float literal",
        ],
    ),
    "switch-given-a-value": (
        Case(["--trust-remote-code=true"]),
        "Error",
        2,
        ["unexpected value 'true' for '--trust-remote-code' found; no more were expected"],
    ),
    "switch-followed-by-a-value": (
        Case(["--trust-remote-code", "true"]),
        "Error",
        2,
        ["unexpected argument 'true' found"],
    ),
    "switch-env-not-a-bool": (
        Case([], env={"TRUST_REMOTE_CODE": "1"}),
        "Error",
        2,
        ["invalid value '1' for '--trust-remote-code'", "[possible values: true, false]"],
    ),
    "value-missing-at-end": (
        Case(["--model-id"]),
        "Error",
        2,
        ["a value is required for '--model-id <MODEL_ID>' but none was supplied"],
    ),
    "value-missing-before-next-flag": (
        Case(["--num-shard", "--model-id", LLAMA_7B]),
        "Error",
        2,
        ["a value is required for '--num-shard <NUM_SHARD>' but none was supplied"],
    ),
    "flag-given-twice": (
        Case(["--num-shard", "1", "--num-shard", "2"]),
        "Error",
        2,
        ["the argument '--num-shard <NUM_SHARD>' cannot be used multiple times"],
    ),
    # the launcher's own validation
    "sharded-true-with-one-shard": (
        Case(["--sharded", "true", "--num-shard", "1"], gpus=2),
        "Error",
        1,
        ['Error: ArgumentValidation("`sharded` is true but `num_shard` <= 1")'],
    ),
    "sharded-true-on-one-gpu": (
        Case([], env={"SHARDED": "true"}),
        "Error",
        1,
        ['Error: NotEnoughCUDADevices("`sharded` is true but only found 1 CUDA devices")'],
    ),
    "zero-shards": (
        Case(["--num-shard", "0"]),
        "Error",
        1,
        ["`num_shard` cannot be < 1"],
    ),
    "exl2-cannot-shard": (
        Case(["--quantize", "exl2", "--num-shard", "2"], gpus=2),
        "Error",
        1,
        ["Sharding is currently not supported with `exl2` quantization"],
    ),
    "max-input-tokens-and-legacy-length": (
        Case(["--max-input-tokens", "1000"], env={"MAX_INPUT_LENGTH": "1000"}),
        "Error",
        1,
        ["Both `max_input_tokens` (1000) and `max_input_length` (1000) are set"],
    ),
    "max-input-not-below-max-total": (
        Case(["--max-input-tokens", "4096", "--max-total-tokens", "4096"]),
        "Error",
        1,
        ["`max_input_tokens`(4096) must be < `max_total_tokens`(4096)"],
    ),
    "legacy-max-input-not-below-max-total": (
        Case(["--max-input-length", "2048", "--max-total-tokens", "1024"]),
        "Error",
        1,
        ["`max_input_tokens`(2048) must be < `max_total_tokens`(1024)"],
    ),
    "no-validation-workers": (
        Case(["--validation-workers", "0"]),
        "Error",
        1,
        ["`validation_workers` must be > 0"],
    ),
    "max-total-over-batch-total": (
        Case(["--max-total-tokens", "4096", "--max-batch-total-tokens", "2048"]),
        "Error",
        1,
        ["`max_total_tokens` must be <= `max_batch_total_tokens`. Given: 4096 and 2048"],
    ),
    "ngrok-without-token": (
        Case(["--ngrok"]),
        "Error",
        1,
        ["`ngrok-authtoken` must be set when using ngrok tunneling"],
    ),
    # the shards
    "dtype-with-quantize": (
        Case(["--dtype", "float16", "--quantize", "bitsandbytes"]),
        "Error",
        1,
        ["RuntimeError: Only 1 can be set between `dtype` and `quantize`", "ShardCannotStart"],
    ),
    "dtype-flag-with-quantize-env": (
        Case(["--dtype", "bfloat16"], env={"QUANTIZE": "awq"}),
        "Error",
        1,
        ["Only 1 can be set between `dtype` and `quantize`"],
    ),
    "more-shards-than-gpus": (
        Case(["--model-id", LLAMA_7B, "--num-shard", "4"], gpus=2),
        "Error",
        1,
        ["AssertionError: Each process is one gpu", "Shard 0 failed to start"],
    ),
    "stale-num-shard-env-after-scale-down": (
        Case([], env={"NUM_SHARD": "2"}, gpus=1),
        "Error",
        1,
        ["Each process is one gpu"],
    ),
    "memory-fraction-above-one": (
        Case(["--cuda-memory-fraction", "1.5"]),
        "Error",
        1,
        ["ValueError: Invalid fraction value: 1.5. Allowed range: 0~1"],
    ),
    "memory-fraction-negative": (
        Case(["--cuda-memory-fraction=-0.5"]),
        "Error",
        1,
        ["Invalid fraction value: -0.5"],
    ),
    "memory-fraction-zero-leaves-nothing": (
        Case(["--cuda-memory-fraction", "0"]),
        "OOMKilled",
        137,
        ["CUDA out of memory"],
    ),
    "70b-fp16-on-one-16gib-gpu": (
        Case(["--model-id", LLAMA_70B]),
        "OOMKilled",
        137,
        ["torch.OutOfMemoryError: CUDA out of memory", "total capacity of 16.00 GiB"],
    ),
    "70b-awq-on-one-16gib-gpu": (
        Case(["--model-id", LLAMA_70B_AWQ]),
        "OOMKilled",
        137,
        ["CUDA out of memory", "in 4bit over 1 GPU(s)"],
    ),
    "memory-fraction-makes-7b-not-fit": (
        Case(["--model-id", LLAMA_7B, "--cuda-memory-fraction", "0.4"], gpu_gib=32),
        "OOMKilled",
        137,
        ["12.8 GiB allowed per GPU"],
    ),
    "cpu-only-over-memory-limit": (
        Case(["--model-id", LLAMA_7B], gpus=0, gpu_gib=None, memory_limit=8 * GIB),
        "OOMKilled",
        137,
        ["signal 9", "memory limit of 8.0 GiB"],
    ),
    # the router
    "prefill-below-max-input": (
        Case(
            [
                "--max-input-tokens",
                "2048",
                "--max-total-tokens",
                "4096",
                "--max-batch-prefill-tokens",
                "1024",
            ]
        ),
        "Error",
        1,
        [
            "`max_batch_prefill_tokens` must be >= `max_input_tokens`. Given: 1024 and 2048",
            "Webserver Crashed",
        ],
    ),
    "default-prefill-below-max-input": (
        Case(["--max-input-tokens", "8000", "--max-total-tokens", "8192"]),
        "Error",
        1,
        ["`max_batch_prefill_tokens` must be >= `max_input_tokens`. Given: 4096 and 8000"],
    ),
    # exits 0 without serving
    "help": (Case(["--help"]), "Completed", 0, ["Usage: text-generation-launcher [OPTIONS]"]),
    "version": (Case(["-V"]), "Completed", 0, ["text-generation-launcher 3.3"]),
}


@pytest.mark.parametrize(
    ("case", "reason", "exit_code", "phrases"), FAILURES.values(), ids=FAILURES.keys()
)
def test_failures_end_like_tgi(case: Case, reason: str, exit_code: int, phrases: list[str]) -> None:
    outcome = case.run()
    assert (outcome.ok, outcome.reason, outcome.exit_code) == (False, reason, exit_code)
    for phrase in phrases:
        assert phrase in outcome.message


def test_parse_errors_come_before_validation_and_shards() -> None:
    # Everything else here is wrong too; clap stops first, nothing starts.
    outcome = Case(
        ["--dtype", "float16", "--quantize", "awq", "--sharded", "true", "--bogus"], gpus=1
    ).run()
    assert (outcome.exit_code, outcome.num_shard) == (2, 0)
    assert "'--bogus'" in outcome.message


def test_launcher_validation_comes_before_shards() -> None:
    outcome = Case(
        ["--model-id", LLAMA_70B, "--max-input-tokens", "5000", "--max-total-tokens", "10"]
    ).run()
    assert outcome.reason == "Error"
    assert "must be < `max_total_tokens`" in outcome.message


def test_failure_still_reports_the_model_and_shards() -> None:
    outcome = Case(["--model-id", LLAMA_70B, "--num-shard", "2"], gpus=2).run()
    assert (outcome.reason, outcome.model_id, outcome.num_shard) == ("OOMKilled", LLAMA_70B, 2)


V100 = (7, 0)
# TGI 3.3.7, server/text_generation_server/models/__init__.py (get_model), the text of
# FLASH_ATT_ERROR_MESSAGE (line 81) with the name each branch gives it.
NEEDS_FLASH = "requires Flash Attention enabled models."


def test_on_a_v100_a_sharded_flash_model_crashes_naming_flash_attention() -> None:
    outcome = Case(["--model-id", LLAMA_13B, "--num-shard", "2"], gpus=2,
                   compute_capability=V100).run()  # fmt: skip
    assert (outcome.reason, outcome.exit_code) == ("Error", 1)
    # Llama's branch names the config's model_type as it is: f"Sharded {model_type}" (1017).
    assert f"NotImplementedError: Sharded llama {NEEDS_FLASH}" in outcome.message
    # The same on an A100 (8.0) starts.
    assert Case(["--model-id", LLAMA_13B, "--num-shard", "2"], gpus=2,
                compute_capability=(8, 0)).run().ok  # fmt: skip


@pytest.mark.parametrize(
    ("model_id", "error"),
    [
        ("Qwen/Qwen2.5-7B-Instruct", f"NotImplementedError: Sharded Qwen2 {NEEDS_FLASH}"),  # 1462
        ("google/gemma-2-9b-it", f"NotImplementedError: Sharded Gemma2 {NEEDS_FLASH}"),  # 1131
        (
            "mistralai/Mistral-7B-Instruct-v0.2",
            f"NotImplementedError: Sharded Mistral {NEEDS_FLASH}",
        ),  # 1358
        ("bigcode/starcoder", f"NotImplementedError: Sharded Santacoder {NEEDS_FLASH}"),  # 776
        ("EleutherAI/gpt-j-6b", f"NotImplementedError: Sharded GPT-J {NEEDS_FLASH}"),  # 872
        # A model type without a branch of its own: transformers' AutoModel path (1767).
        (
            "openbmb/MiniCPM-2B-sft-bf16",
            "NotImplementedError: sharded is not supported for AutoModel",
        ),
    ],
    ids=["qwen2", "gemma2", "mistral", "starcoder-v1", "gpt-j", "auto-model"],
)
def test_on_a_v100_a_sharded_model_fails_with_its_branch_s_words(model_id: str, error: str) -> None:
    outcome = Case(["--model-id", model_id, "--num-shard", "2"], gpus=2,
                   compute_capability=V100).run()  # fmt: skip
    assert error in outcome.message.splitlines()
    # Unsharded, each of them loads through CausalLM.fallback.
    assert Case(["--model-id", model_id, "--num-shard", "1"], gpus=2,
                compute_capability=V100).run().ok  # fmt: skip


@pytest.mark.parametrize(
    ("model_id", "gpus"),
    [
        ("bigscience/bloom-7b1", 2),
        ("EleutherAI/pythia-6.9b", 2),
        # 20.6B in float16 is ~46 GiB with the overhead: 4 shards of ~11.5 GiB fit 16 GiB each.
        ("EleutherAI/gpt-neox-20b", 4),
        ("facebook/opt-6.7b", 2),
        ("mosaicml/mpt-7b", 2),
    ],
)
def test_on_a_v100_models_with_sharding_of_their_own_start_sharded(
    model_id: str, gpus: int
) -> None:
    outcome = Case(["--model-id", model_id, "--num-shard", str(gpus)], gpus=gpus,
                   compute_capability=V100).run()  # fmt: skip
    assert outcome.ok, outcome.message
    assert outcome.num_shard == gpus


@pytest.mark.parametrize(
    ("model_id", "error"),
    [
        ("HuggingFaceM4/idefics2-8b", f"NotImplementedError: Idefics {NEEDS_FLASH}"),  # 1637
        (
            "llava-hf/llava-v1.6-mistral-7b-hf",
            f"NotImplementedError: LlavaNext {NEEDS_FLASH}",
        ),  # 1723
        ("Qwen/Qwen2-VL-7B-Instruct", f"NotImplementedError: Qwen2_VL {NEEDS_FLASH}"),  # 1542
        (
            "meta-llama/Llama-3.2-11B-Vision-Instruct",
            f"NotImplementedError: Mllama {NEEDS_FLASH}",
        ),  # 1606
        # phi's branch calls the transformers flash backend without checking it was imported
        # (942-950), and it was not: the name is undefined.
        ("microsoft/phi-2", "NameError: name 'TransformersFlashCausalLM' is not defined"),
    ],
    ids=["idefics2", "llava-next", "qwen2-vl", "mllama", "phi"],
)
def test_on_a_v100_a_flash_only_model_fails_even_on_one_shard(model_id: str, error: str) -> None:
    outcome = Case(["--model-id", model_id, "--num-shard", "1"], gpus=1,
                   compute_capability=V100).run()  # fmt: skip
    assert (outcome.reason, outcome.exit_code) == ("Error", 1)
    assert error in outcome.message.splitlines()
    # With flash attention (an 80 GiB A100) each of them starts.
    assert Case(["--model-id", model_id, "--num-shard", "1"], gpus=1, gpu_gib=80,
                compute_capability=(8, 0)).run().ok  # fmt: skip


def test_on_a_v100_one_shard_spreads_its_layers_over_every_visible_gpu() -> None:
    # 13B in float16 needs more than one 16 GiB V100: over two it fits, as TGI's fallback
    # (device_map="auto") loads it; with flash attention one shard uses one GPU only.
    args = ["--model-id", LLAMA_13B, "--num-shard", "1"]
    assert Case(args, gpus=2, compute_capability=V100).run().ok
    outcome = Case(args, gpus=2, compute_capability=(8, 0)).run()
    assert outcome.reason == "OOMKilled"
    assert "over 1 GPU(s)" in outcome.message
    assert Case(args, gpus=1, compute_capability=V100).run().reason == "OOMKilled"


def test_model_id_from_env_when_parse_fails() -> None:
    outcome = Case(["--nope"], env={"MODEL_ID": LLAMA_7B}).run()
    assert outcome.model_id == LLAMA_7B


@pytest.mark.parametrize(
    ("model_id", "params"),
    [
        (LLAMA_7B, 7e9),
        ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", 1.1e9),
        ("facebook/opt-350m", 350e6),
        ("bigscience/bloom-7b1", 7.1e9),
        ("mistralai/Mixtral-8x7B-Instruct-v0.1", 56e9),
        ("Qwen/Qwen2.5-0.5B-Instruct", 0.5e9),
        ("/data/models/Meta-Llama-3.1-70B-Instruct", 70e9),
        ("openai-community/gpt2", None),
    ],
    ids=["7b", "1.1B", "350m", "7b1", "8x7B", "qwen2.5-0.5B", "local-path", "no-size"],
)
def test_parameter_count_from_name(model_id: str, params: float | None) -> None:
    assert parse_parameter_count(model_id) == pytest.approx(params)


@pytest.mark.parametrize(
    ("model_id", "quantize", "dtype", "gpu", "precision"),
    [
        (LLAMA_7B, None, None, True, "float16"),
        (LLAMA_7B, None, "bfloat16", True, "bfloat16"),
        (LLAMA_7B, None, None, False, "float32"),
        (LLAMA_70B_AWQ, None, None, True, "4bit"),
        ("TheBloke/Llama-2-13B-GPTQ", None, None, True, "4bit"),
        (LLAMA_7B, "bitsandbytes-nf4", None, True, "4bit"),
        (LLAMA_7B, "eetq", None, True, "8bit"),
        (LLAMA_7B, "bitsandbytes", None, True, "8bit"),
    ],
    ids=["fp16", "bf16", "cpu-fp32", "awq-name", "gptq-name", "nf4", "eetq", "bnb8"],
)
def test_weight_precision(
    model_id: str, quantize: str | None, dtype: str | None, gpu: bool, precision: str
) -> None:
    assert weight_precision(model_id, quantize, dtype, gpu) == precision


def test_flag_table_is_consistent() -> None:
    longs = [flag.long for flag in FLAGS]
    envs = [flag.env for flag in FLAGS if flag.env]
    assert len(set(longs)) == len(longs)
    assert len(set(envs)) == len(envs)
    for flag in FLAGS:
        assert bool(flag.choices) == (flag.kind in ("bool", "enum")), flag.long

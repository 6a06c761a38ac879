"""The sandbox's `vllm serve` simulation (sandbox/icc_sandbox/vllm_serve.py): its flags are the
pinned release's, and its start-up verdicts follow vLLM's accounting, worked by hand here."""

from __future__ import annotations

from icc_sandbox.nodes import NodeSpec, Timing
from icc_sandbox.pod_simulation import simulate_pod
from icc_sandbox.vllm_serve import EXIT_ERROR, EXIT_USAGE, SERVE_FLAGS, simulate_serve
from test_vllm_server_contract import defined_flags, vllm_source  # noqa: F401 (fixture)

V100 = (7, 0)
V100_NODE = NodeSpec("icc-gpu-v100-1", 0, "32", "192Gi", "gpu-tesla-v100", "V100", 4, 16, "7.0")
TIMING = Timing(tgi_ready_seconds=5, crash_after_seconds=1, backoff_seconds=10)
START = 1_700_000_000.0


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


def vllm_pod(args: list[str], gpus: int) -> dict:
    container = {
        "name": "tgi",
        "image": "docker.io/vllm/vllm-openai:v0.14.1",
        "args": args,
        "ports": [{"name": "http", "containerPort": 80}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
    }
    meta = {"name": "tgi-1", "namespace": "ns", "uid": "0f1e2d3c-0000-0000-0000-000000000002"}
    return {"metadata": meta, "spec": {"nodeName": V100_NODE.name, "containers": [container]}}


def test_the_node_runs_a_vllm_pod_by_vllms_rules():
    serve = ["Qwen/Qwen2.5-0.5B-Instruct", "--port", "80", "--tensor-parallel-size"]
    ready = simulate_pod(vllm_pod([*serve, "2"], 2), V100_NODE, START, START + 6, TIMING)
    assert {"type": "Ready", "status": "True"} in ready.status["conditions"]
    crashing = simulate_pod(vllm_pod([*serve, "4"], 4), V100_NODE, START, START + 12, TIMING)
    state = crashing.status["containerStatuses"][0]
    assert state["lastState"]["terminated"]["exitCode"] == EXIT_ERROR
    assert (
        "must be divisible by tensor parallel size (4)"
        in (state["lastState"]["terminated"]["message"])
    )

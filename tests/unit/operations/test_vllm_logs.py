"""vLLM's log read by the status and logs playbooks (module_utils/operations/vllm_logs.py), and a
vLLM pod's crash diagnosed in vLLM's words. The log lines are vLLM 0.14.1's format, written out
here (`(process pid=N) LEVEL mm-dd HH:MM:SS [file.py:line] message`, its errors' own texts)."""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils.operations import vllm_logs
from ansible_collections.haw.icc.plugins.module_utils.operations.diagnosis import diagnose
from test_progress import NEW_RS, NOW, deployment, make_pod, scheduled, terminated, waiting

STARTING = [
    "(APIServer pid=1) INFO 12-05 03:10:01 [api_server.py:1272] vLLM API server version 0.14.1",
    "(EngineCore_DP0 pid=187) INFO 12-05 03:10:09 [gpu_model_runner.py:3808] Starting to load "
    "model meta-llama/Llama-3.1-8B-Instruct...",
]
READY = [
    *STARTING,
    "(Worker_TP0 pid=260) INFO 12-05 03:11:40 [gpu_worker.py:358] Available KV cache memory: "
    "5.56 GiB",
    "(EngineCore_DP0 pid=187) INFO 12-05 03:11:41 [kv_cache_utils.py:1305] GPU KV cache size: "
    "91,040 tokens",
    "(APIServer pid=1) INFO 12-05 03:11:50 [api_server.py:1345] Starting vLLM API server 0 on "
    "http://0.0.0.0:80",
    "(APIServer pid=1) INFO:     Application startup complete.",
]
KV_ERROR = (
    "ValueError: No available memory for the cache blocks. Try increasing "
    "`gpu_memory_utilization` when initializing the engine."
)
FAILED = [
    *STARTING,
    "(EngineCore_DP0 pid=187) ERROR 12-05 03:11:40 [core.py:936] EngineCore failed to start.",
    "(EngineCore_DP0 pid=187) Traceback (most recent call last):",
    f"(EngineCore_DP0 pid=187) {KV_ERROR}",
]


def test_the_prefix_comes_off_and_the_phase_follows_the_start_up():
    assert vllm_logs.messages(READY[:1]) == ["vLLM API server version 0.14.1"]
    assert vllm_logs.startup_phase(STARTING) == "loading"
    assert vllm_logs.startup_phase(READY) == "ready"
    assert vllm_logs.startup_phase(FAILED) == "failed"
    assert vllm_logs.startup_phase(FAILED + STARTING[:1]) == "loading"  # a new start after it
    assert vllm_logs.startup_phase(["something else"]) == "unknown"


def test_each_of_vllms_start_up_errors_gets_its_fix():
    said = {
        "vllm serve: error: unrecognized arguments: --max-parallel-loading-worker 2": (
            "unknown-argument",
            "take '--max-parallel-loading-worker 2' out of tgi_extra_args",
        ),
        "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0."
        " Your Tesla V100 GPU has compute capability 7.0.": ("bfloat16-on-v100", "tgi_dtype"),
        "ValueError: Total number of attention heads (14) must be divisible by tensor parallel "
        "size (4).": ("tensor-parallel-heads", "scale.yml -e tgi_gpu_count=<N>"),
        "ValueError: The quantization method awq is not supported for the current GPU. Minimum "
        "capability: 75. Current capability: 70.": ("quantization-unsupported", "gptq"),
        KV_ERROR: ("kv-cache-does-not-fit", "lower tgi_max_total_tokens"),
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB. GPU 0 has a total"
        " capacity of 15.78 GiB of which 0 bytes is free.": ("cuda-out-of-memory", "scale.yml"),
        "ValueError: User-specified max_model_len (65536) is greater than the derived "
        "max_model_len (max_position_embeddings=32768 in model's config.json).": (
            "context-too-long",
            "'65536' is too long",
        ),
        "huggingface_hub.errors.GatedRepoError: 401 Client Error. Cannot access gated repo for "
        "url https://huggingface.co/meta-llama/Llama-3.1-8B-Instruct/resolve/main/config.json.": (
            "gated-model",
            "tgi_hf_token",
        ),
    }
    for line, (kind, fix) in said.items():
        (found,) = vllm_logs.vllm_failures([f"(APIServer pid=1) {line}"])
        assert found["kind"] == kind, line
        assert fix in found["fix"], found["fix"]
        assert found["line"] == line


def vllm_deployment() -> dict:
    container = {
        "name": "tgi",
        "image": "docker.io/vllm/vllm-openai:v0.14.1",
        "args": ["meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size", "1"],
        "env": [{"name": "VLLM_API_KEY", "valueFrom": {"secretKeyRef": {"name": "k", "key": "a"}}}],
        "resources": {"limits": {"nvidia.com/gpu": "1"}},
    }
    return deployment(template={"spec": {"containers": [container]}}, updated=1, available=0)


def diagnosed(pod, logs, engine):
    return diagnose(
        "tgi", vllm_deployment(), [NEW_RS], [pod], [], NOW, "tgi",
        lambda _pod, _previous: list(logs), None, None, "wabc123-default", 4, engine,
    )  # fmt: skip


def test_a_crashing_vllm_pod_is_diagnosed_in_vllms_words():
    crashed = terminated("Error", KV_ERROR, 1)
    pod = make_pod(
        "tgi-new-a",
        owner="tgi-new",
        statuses=[waiting("CrashLoopBackOff", restartCount=2, lastState=crashed)],
        conditions=scheduled(False),
    )
    found = diagnosed(pod, FAILED, "vllm")
    assert found.state == "failed"
    assert found.problem == "pod tgi-new-a: kv-cache-does-not-fit (restart 2)"
    assert found.cause.startswith("after the weights and the profiling run")
    assert "lower tgi_max_total_tokens (vLLM's --max-model-len)" in found.fix[0]
    assert KV_ERROR in found.evidence
    # Read as TGI's, the same log explains nothing: the catalogue is the engine's.
    assert diagnosed(pod, FAILED, "tgi").problem.endswith("Crashed (restart 2)")

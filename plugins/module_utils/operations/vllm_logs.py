# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What vLLM's log says: the start-up phase and known failures with their fix.

`vllm serve` (0.14) logs through Python's logging as `LEVEL mm-dd HH:MM:SS [file.py:line]
message`, each process's lines behind its name (`(APIServer pid=1) `, `(EngineCore_DP0
pid=187) `, `(Worker_TP1 pid=261) `); a start-up that fails ends in a Python traceback whose last
line is the error (`ValueError: ...`, `torch.OutOfMemoryError: ...`), and an unknown flag is
argparse's `vllm serve: error: unrecognized arguments: ...` before any logging. The lines are
read with TGI's reader (tgi_logs.known_failures; vLLM's prefix is taken off first), so that a
timestamp or colour codes in front are handled alike.

The errors and their words are vLLM 0.14.1's (config/model.py, config/parallel.py,
platforms/cuda.py, v1/core/kv_cache_utils.py, the quantization methods' checks); the Hub's
errors (gated, not found, no connection) are the same library's as under TGI, so TGI's entries
are used for them. The fixes name this collection's variables and playbooks.
Pure logic: no Ansible, no network.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ansible_collections.haw.icc.plugins.module_utils.operations import tgi_logs
from ansible_collections.haw.icc.plugins.module_utils.operations.tgi_logs import (
    catalogue_entry,
)

# "(EngineCore_DP0 pid=187) INFO 12-05 02:50:01 [gpu_worker.py:358] " before the message.
_PREFIX = re.compile(
    r"^(?:\(\w+ pid=\d+\)\s+)?(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+"
    r"\d\d-\d\d \d\d:\d\d:\d\d \[[\w./-]+:\d+\]\s)?"
)

_HUB_FAILURES = {failure.kind: failure for failure in tgi_logs.FAILURES}
FAILURES = (
    catalogue_entry(
        "unknown-argument",
        r"vllm serve: error: unrecognized arguments: (?P<arg>.+)$",
        "vllm serve refused its command line and exited before doing anything",
        "vLLM's arguments come from the role's variables (ansible-doc -t role haw.icc.tgi_server);"
        " take {arg} out of tgi_extra_args, then run deploy.yml again",
    ),
    catalogue_entry(
        "bfloat16-on-v100",
        r"Bfloat16 is only supported on GPUs with compute capability of at least 8\.0",
        "vLLM was told to run in bfloat16, which a V100 (compute capability 7.0) does not have",
        "leave tgi_dtype unset (the collection passes --dtype half on a V100) or set "
        "-e tgi_dtype=float16, then run deploy.yml again",
    ),
    catalogue_entry(
        "context-too-long",
        r"User-specified max_model_len \((?P<arg>\d+)\) is greater than the derived max_model_len",
        "tgi_max_total_tokens (vLLM's --max-model-len) is longer than the model's context",
        "lower tgi_max_total_tokens to the model's context ({arg} is too long) and run "
        "deploy.yml again",
    ),
    catalogue_entry(
        "tensor-parallel-heads",
        r"Total number of attention heads \(\d+\) must be divisible by tensor parallel size",
        "the GPU count (vLLM's tensor-parallel size) does not divide the model's attention heads",
        "scale.yml -e tgi_gpu_count=<N> with an N that divides the heads (deploy.yml's capacity "
        "check names the counts that work), or one GPU",
    ),
    catalogue_entry(
        "more-gpus-than-the-pod-has",
        r"World size \(\d+\) is larger than the number of available GPUs",
        "vLLM's tensor-parallel size is larger than the GPUs the pod got (a --tensor-parallel-size"
        " in tgi_extra_args?)",
        "take --tensor-parallel-size out of tgi_extra_args: tgi_gpu_count sets it "
        "(scale.yml -e tgi_gpu_count=<N>)",
    ),
    catalogue_entry(
        "quantization-unsupported",
        r"The quantization method \S+ is not supported for the current GPU",
        "this quantization needs kernels a V100 (compute capability 7.0) does not have in vLLM",
        "use -e tgi_quantize=gptq (for a GPTQ model) or bitsandbytes, or an unquantized model "
        "with change_model.yml -e tgi_model=...",
    ),
    catalogue_entry(
        "kv-cache-does-not-fit",
        r"No available memory for the cache blocks|KV cache is needed, which is larger than the "
        r"available KV cache memory",
        "after the weights and the profiling run, too little of the GPUs' memory is left for the "
        "KV cache of one request of --max-model-len",
        "lower tgi_max_total_tokens (vLLM's --max-model-len), take more GPUs with scale.yml "
        "-e tgi_gpu_count=2 (tensor parallelism splits weights and cache), or a smaller model; "
        "deploy.yml's capacity check prints the longest context that fits",
    ),
    catalogue_entry(
        "cuda-out-of-memory",
        r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory",
        "the model's weights do not fit the GPUs' memory",
        "take more GPUs with scale.yml -e tgi_gpu_count=2 (tensor parallelism splits the "
        "weights), quantize (-e tgi_quantize=gptq or bitsandbytes), or a smaller model with "
        "change_model.yml -e tgi_model=...",
    ),
    catalogue_entry(
        "nccl",
        r"\bNCCL (?:error|WARN)|\bnccl(?:SystemError|InternalError|UnhandledCudaError"
        r"|InvalidUsage|RemoteError)\b|ProcessGroupNCCL|unable to (?:allocate|open) shared memory"
        r"|\bBus error\b|[Cc]ustom all-?reduce",
        "the tensor-parallel workers could not talk to each other over NCCL (often /dev/shm too "
        "small, GPU peer-to-peer not available, or vLLM's custom all-reduce on NVLink V100s)",
        "give each GPU more shared memory (-e tgi_shm_size_per_gpu=2Gi), set NCCL variables "
        "through tgi_nccl_env (for example NCCL_P2P_DISABLE: '1'); the collection already passes "
        "--disable-custom-all-reduce on V100s. Or one GPU: scale.yml -e tgi_gpu_count=1",
    ),
    _HUB_FAILURES["model-not-found"],
    _HUB_FAILURES["gated-model"],
    _HUB_FAILURES["download-failed"],
)

# (phase, what marks it), the later phases first; tgi_logs.PHASES names them.
_PHASE_MARKS = (
    (
        "failed",
        re.compile(
            r"EngineCore failed to start|^Traceback \(most recent call last\)"
            r"|vllm serve: error:|^(?:\w+\.)*\w*(?:Error|Exception): "
        ),
    ),
    ("ready", re.compile(r"^Application startup complete\.|^Starting vLLM API server\b")),
    (
        "loading",
        re.compile(
            r"^Starting to load model\b|^Loading weights took\b|^Model loading took\b"
            r"|^Available KV cache memory\b|^GPU KV cache size\b|^Maximum concurrency for\b"
        ),
    ),
    ("starting", re.compile(r"^vLLM API server version\b|^Initializing a V1 LLM engine\b")),
)
# A new start of vllm serve in the same log.
_SERVER_START = re.compile(r"^vLLM API server version\b")


def messages(lines: str | Iterable[str]) -> list[str]:
    """vLLM's messages, one per line, without the process, level, time and source prefix."""
    return [_PREFIX.sub("", entry.text, count=1) for entry in tgi_logs.log_lines(lines)]


def startup_phase(lines: str | Iterable[str]) -> str:
    """Where vLLM's start is, from its log: `loading` (the API server and engine starting, the
    weights loading, the KV cache sized), `ready` once the API server serves, `failed` after an
    error (kept until the log shows a new start), else `unknown`."""
    phase = "unknown"
    for text in messages(lines):
        if phase == "failed" and not _SERVER_START.match(text):
            continue
        for name, pattern in _PHASE_MARKS:
            if pattern.search(text):
                phase = "loading" if name == "starting" else name
                break
    return phase


def vllm_failures(lines: str | Iterable[str]) -> list[dict[str, str]]:
    """The known failures in vLLM's log, each once (its first line), in order of appearance."""
    return tgi_logs.known_failures(messages(lines), FAILURES)

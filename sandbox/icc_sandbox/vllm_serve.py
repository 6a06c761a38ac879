"""A pure simulation of how `vllm serve` (vLLM 0.14.1, the image vllm/vllm-openai:v0.14.1) starts
in a pod, for the node agent: refuse the command line like argparse (exit 2), refuse the
configuration like vLLM's own checks (a ValueError, exit 1), run out of memory loading the
weights, or find too little room for the KV cache; else start and serve.

The checks run in vLLM's order: the parser; the dtype against the GPU (no bfloat16 below compute
capability 8.0: `--dtype auto` falls back to float16); the tensor-parallel size against the GPUs
the container sees and against the attention heads; the quantization method's minimum compute
capability; loading the weights; the profiling run and the KV cache for one request of
max_model_len. The memory accounting is vLLM's (0.9 of the GPU requested, less weights,
activations of the profiling run and non-torch memory), with the GPU's total as nvidia-smi shows
it. The flag names are the release's own (a contract test compares them with its source); the
model facts are this module's own small table of published configs, else a guess from the id.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

VERSION = "0.14.1"
EXIT_USAGE = 2  # argparse's exit code
EXIT_ERROR = 1  # an uncaught exception in the engine's start-up
REASON_ERROR = "Error"
GIB = 2**30

# Every long flag `vllm serve` 0.14.1 defines (without "--").
_FLAGS_TEXT = """
    additional-config aggregate-engine-logging all2all-backend allow-credentials
    allow-deprecated-quantization allowed-headers allowed-local-media-path
    allowed-media-domains allowed-methods allowed-origins api-key async-scheduling
    attention-backend attention-config block-size calculate-kv-scales chat-template
    chat-template-content-format code-revision collect-detailed-traces compilation-config
    config-format convert cp-kv-cache-interleave-size cpu-offload-gb cudagraph-capture-sizes
    cudagraph-metrics data-parallel-address data-parallel-backend data-parallel-external-lb
    data-parallel-hybrid-lb data-parallel-rank data-parallel-rpc-port data-parallel-size
    data-parallel-size-local data-parallel-start-rank dbo-decode-token-threshold
    dbo-prefill-token-threshold dcp-kv-cache-interleave-size decode-context-parallel-size
    default-chat-template-kwargs default-mm-loras disable-cascade-attn
    disable-chunked-mm-input disable-custom-all-reduce disable-fastapi-docs
    disable-frontend-multiprocessing disable-hybrid-kv-cache-manager disable-log-requests
    disable-log-stats disable-nccl-for-dp-synchronization disable-sliding-window
    disable-uvicorn-access-log distributed-executor-backend download-dir dtype
    ec-transfer-config enable-auto-tool-choice enable-chunked-prefill enable-dbo enable-eplb
    enable-expert-parallel enable-force-include-usage enable-layerwise-nvtx-tracing
    enable-log-deltas enable-log-outputs enable-log-requests
    enable-logging-iteration-details enable-lora enable-mfu-metrics enable-mm-embeds
    enable-offline-docs enable-prefix-caching enable-prompt-embeds
    enable-prompt-tokens-details enable-request-id-headers enable-return-routed-experts
    enable-server-load-tracking enable-sleep-mode enable-ssl-refresh
    enable-tokenizer-info-endpoint enable-tower-connector-lora enforce-eager eplb-config
    exclude-tools-when-tool-choice-none expert-placement-strategy fully-sharded-loras
    generation-config gpu-memory-utilization h11-max-header-count
    h11-max-incomplete-event-size hf-config-path hf-overrides hf-token host ignore-patterns
    interleave-mm-strings io-processor-plugin kv-cache-dtype kv-cache-memory-bytes
    kv-cache-metrics kv-cache-metrics-sample kv-events-config kv-offloading-backend
    kv-offloading-size kv-sharing-fast-prefill kv-transfer-config limit-mm-per-prompt
    load-format log-config-file log-error-stack logits-processor-pattern logits-processors
    logprobs-mode long-prefill-token-threshold lora-dtype lora-modules mamba-block-size
    mamba-cache-dtype mamba-ssm-cache-dtype master-addr master-port max-cpu-loras
    max-cudagraph-capture-size max-log-len max-logprobs max-long-partial-prefills
    max-lora-rank max-loras max-model-len max-num-batched-tokens max-num-partial-prefills
    max-num-seqs max-parallel-loading-workers media-io-kwargs middleware
    mm-encoder-attn-backend mm-encoder-tp-mode mm-processor-cache-gb mm-processor-cache-type
    mm-processor-kwargs mm-shm-cache-max-object-size-mb model model-impl
    model-loader-extra-config nnodes node-rank num-gpu-blocks-override optimization-level
    otlp-traces-endpoint override-attention-dtype override-generation-config
    pipeline-parallel-size pooler-config port prefill-context-parallel-size
    prefix-caching-hash-algo profiler-config pt-load-map-location quantization
    ray-workers-use-nsight reasoning-parser reasoning-parser-plugin response-role
    return-tokens-as-token-ids revision root-path runner safetensors-load-strategy
    scheduler-cls scheduling-policy seed served-model-name show-hidden-metrics-for-version
    skip-mm-profiling skip-tokenizer-init speculative-config ssl-ca-certs ssl-cert-reqs
    ssl-certfile ssl-keyfile stream-interval structured-outputs-config swap-space
    tensor-parallel-size tokenizer tokenizer-mode tokenizer-revision tokens-only
    tool-call-parser tool-parser-plugin tool-server trust-remote-code
    trust-request-chat-template ubatch-size uds use-tqdm-on-load uvicorn-log-level
    video-pruning-rate worker-cls worker-extension-cls
"""
SERVE_FLAGS = frozenset(_FLAGS_TEXT.split())
# Flags that take no value (store_true and the like) among those the collection may pass.
SWITCHES = frozenset({"disable-custom-all-reduce", "enforce-eager", "trust-remote-code"})

# What nvidia-smi shows as the total of a GPU of this many GiB (a V100's and a V100S's).
TOTAL_MIB = {16: 16160, 32: 32510}
BLOCK_SIZE = 16
UTILIZATION = 0.9
MAX_NUM_SEQS = 256
BATCHED_TOKENS = 2048
NON_TORCH_GIB = 0.25
NCCL_GIB = 0.5
MIN_CAPABILITY = {
    "awq": 75,
    "awq_marlin": 75,
    "gptq_marlin": 75,
    "fp8": 75,
    "gptq": 60,
    "bitsandbytes": 70,
}


@dataclass(frozen=True)
class Model:
    parameters: float
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    hidden: int
    intermediate: int
    vocab: int
    positions: int
    bfloat16: bool = True


# Published configs (config.json on the Hub) of the models the sandbox's tests serve.
MODELS = {
    "Qwen/Qwen2.5-0.5B-Instruct": Model(0.494e9, 24, 14, 2, 64, 896, 4864, 151936, 32768),
    "Qwen/Qwen2.5-1.5B-Instruct": Model(1.54e9, 28, 12, 2, 128, 1536, 8960, 151936, 32768),
    "Qwen/Qwen2.5-7B-Instruct": Model(7.62e9, 28, 28, 4, 128, 3584, 18944, 152064, 32768),
    "meta-llama/Llama-3.1-8B-Instruct": Model(8.03e9, 32, 32, 8, 128, 4096, 14336, 128256, 131072),
    "meta-llama/Llama-2-13b-chat-hf": Model(
        13.0e9, 40, 40, 40, 128, 5120, 13824, 32000, 4096, False
    ),
}
_SIZE = re.compile(r"(?<![a-z0-9.])([0-9]+(?:\.[0-9]+)?)b(?![a-z0-9])", re.I)


@dataclass(frozen=True)
class ServeOutcome:
    ok: bool
    reason: str  # "" when ok, else "Error"
    exit_code: int
    message: str  # the last lines the container wrote, as lastState.terminated.message has them
    model: str
    served_name: str
    tensor_parallel: int
    max_model_len: int
    kv_cache_gib: float  # available for the KV cache per GPU ("Available KV cache memory")
    kv_tokens: int  # "GPU KV cache size: N tokens"


def model_facts(model_id: str) -> Model:
    """The published config, else a dense stand-in of the size the id names (7B when none)."""
    if model_id in MODELS:
        return MODELS[model_id]
    match = _SIZE.search(model_id.rsplit("/", 1)[-1])
    parameters = float(match[1]) * 1e9 if match else 7e9
    width = int((parameters * 64 / 12) ** (1 / 3)) // 128 * 128 or 128
    return Model(
        parameters,
        max(width // 64, 1),
        width // 64,
        width // 64,
        64,
        width,
        4 * width,
        256000,
        4096,
    )


def parse(args: Sequence[str]) -> tuple[str | None, dict[str, str | bool], str | None]:
    """(model, {flag: value}, argparse's complaint or None)."""
    model, values, unknown, position = None, {}, [], 0
    args = list(args)
    while position < len(args):
        arg = args[position]
        if arg.startswith("--"):
            name, _, inline = arg[2:].partition("=")
            name = name.replace("_", "-")
            if name not in SERVE_FLAGS:
                unknown.append(arg)
            elif inline or name in SWITCHES:
                values[name] = inline or True
            elif position + 1 < len(args):
                position += 1
                values[name] = args[position]
            else:
                return model, values, f"argument --{name}: expected one argument"
        elif model is None:
            model = arg
        else:
            unknown.append(arg)
        position += 1
    if unknown:
        return model, values, f"unrecognized arguments: {' '.join(unknown)}"
    return model, values, None


def _failed(
    code: int, message: str, model: str, tp: int, length: int, kv_cache_gib: float = 0.0
) -> ServeOutcome:
    return ServeOutcome(
        False, REASON_ERROR, code, message, model, model, tp, length, kv_cache_gib, 0
    )


def simulate_serve(
    args: Sequence[str],
    env: Mapping[str, str],
    gpu_count: int,
    gpu_memory_gib: float | None,
    capability: tuple[int, int] | None,
) -> ServeOutcome:
    """What `vllm serve <args>` does in a container with `gpu_count` GPUs of this memory."""
    model, values, complaint = parse(args)
    if complaint or model is None:
        complaint = complaint or "the following arguments are required: model_tag"
        text = f"usage: vllm serve [model_tag] [options]\nvllm serve: error: {complaint}"
        return _failed(EXIT_USAGE, text, model or "", 1, 0)
    facts = model_facts(model)
    tp = int(values.get("tensor-parallel-size", 1))
    length = int(values.get("max-model-len") or facts.positions)
    cc = capability or (0, 0)
    dtype = str(values.get("dtype", "auto"))
    if dtype == "bfloat16" and cc < (8, 0):
        return _failed(
            EXIT_ERROR,
            (
                "ValueError: Bfloat16 is only supported on GPUs with compute capability of at "
                f"least 8.0. Your Tesla V100 GPU has compute capability {cc[0]}.{cc[1]}. You can "
                "use float16 instead by explicitly setting the `dtype` flag in CLI, for example: "
                "--dtype=half."
            ),
            model,
            tp,
            length,
        )
    if length > facts.positions:
        return _failed(
            EXIT_ERROR,
            (
                f"ValueError: User-specified max_model_len ({length}) is greater than the derived "
                f"max_model_len (max_position_embeddings={facts.positions} in model's config.json)."
            ),
            model,
            tp,
            length,
        )
    if tp > gpu_count:
        return _failed(
            EXIT_ERROR,
            (
                f"ValueError: World size ({tp}) is larger than the number of available GPUs "
                f"({gpu_count}) in this node."
            ),
            model,
            tp,
            length,
        )
    if facts.heads % tp:
        return _failed(
            EXIT_ERROR,
            (
                f"ValueError: Total number of attention heads ({facts.heads}) must be divisible by "
                f"tensor parallel size ({tp})."
            ),
            model,
            tp,
            length,
        )
    method = values.get("quantization")
    if method and cc[0] * 10 + cc[1] < MIN_CAPABILITY.get(str(method), 0):
        least = MIN_CAPABILITY[str(method)]
        return _failed(
            EXIT_ERROR,
            (
                f"ValueError: The quantization method {method} is not supported for the current "
                f"GPU. Minimum capability: {least}. Current capability: {cc[0]}{cc[1]}."
            ),
            model,
            tp,
            length,
        )
    memory_gib = gpu_memory_gib or 16
    total = TOTAL_MIB.get(int(memory_gib), memory_gib * 1024 - 224) / 1024 * GIB
    weights = facts.parameters * 2 / tp
    if weights > total:
        return _failed(
            EXIT_ERROR,
            (
                "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.00 GiB. GPU 0 "
                f"has a total capacity of {total / GIB:.2f} GiB of which 0 bytes is free."
            ),
            model,
            tp,
            length,
        )
    activations = BATCHED_TOKENS * 2 * (4 * facts.hidden + 3 * facts.intermediate / tp)
    activations += MAX_NUM_SEQS * facts.vocab * 8
    non_torch = (NON_TORCH_GIB + (NCCL_GIB if tp > 1 else 0)) * GIB
    available = total * UTILIZATION - weights - activations - non_torch
    per_token = 2 * facts.layers * max(1, math.ceil(facts.kv_heads / tp)) * facts.head_dim * 2
    tokens = max(int(available // (per_token * BLOCK_SIZE)), 0) * BLOCK_SIZE
    if available <= 0:
        return _failed(
            EXIT_ERROR,
            (
                "ValueError: No available memory for the cache blocks. Try increasing "
                "`gpu_memory_utilization` when initializing the engine."
            ),
            model,
            tp,
            length,
            available / GIB,
        )
    needed = math.ceil(length / BLOCK_SIZE) * BLOCK_SIZE * per_token
    if needed > available:
        return _failed(
            EXIT_ERROR,
            (
                "ValueError: To serve at least one request with the models's max seq len "
                f"({length}), ({needed / GIB:.2f} GiB KV cache is needed, which is larger than the "
                f"available KV cache memory ({available / GIB:.2f} GiB). Based on the available "
                f"memory, the estimated maximum model length is {tokens}. Try increasing "
                "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the "
                "engine."
            ),
            model,
            tp,
            length,
            available / GIB,
        )
    served = str(values.get("served-model-name") or model)
    return ServeOutcome(True, "", 0, "", model, served, tp, length, available / GIB, tokens)

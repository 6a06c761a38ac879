# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What vLLM's OpenAI server (`vllm serve` of the pinned release) accepts and does on a GPU: the
flags the collection passes, its defaults that the memory model needs, its V100 rules.

Why 0.14.1 for compute capability 7.0, read in that release's own sdist on PyPI:
- CMakeLists.txt compiles "7.0;7.2;7.5;8.0;..." with CUDA 12.8 to 12.x (only CUDA >= 13 drops
  7.0; later releases drop it from 12.8 on), and docker/Dockerfile builds the image with
  CUDA_VERSION=12.9.1 and TORCH_CUDA_ARCH_LIST '7.0 7.5 8.0 8.9 9.0 10.0 12.0';
- vllm/platforms/cuda.py tries FLASH_ATTN, FLASHINFER, TRITON_ATTN, FLEX_ATTENTION in turn; the
  backends' supports_compute_capability: flash_attn >= 8.0, flashinfer >= 7.5, triton_attn any,
  so a V100 runs TRITON_ATTN (paged attention in Triton kernels);
- the same file's supported_dtypes has no bfloat16 below 8.0: `--dtype auto` falls back to float16
  with a warning, an explicit `--dtype bfloat16` is refused. The collection passes `--dtype half`.
None of this has been run on an ICC V100 yet: the README says what is confirmed and what is read.

Pure data and small functions; imports nothing of the collection. A contract test checks every
flag here against the pinned release's argument definitions when its sdist can be had.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import SINGLE

VLLM_VERSION = "0.14.1"
VLLM_REPOSITORY = "docker.io/vllm/vllm-openai"
VLLM_IMAGE = f"{VLLM_REPOSITORY}:v{VLLM_VERSION}"  # ENTRYPOINT ["vllm", "serve"]

# The flags the collection passes (without "--") -> whether they take a value. The model is
# `vllm serve`'s positional model_tag; the API key goes in by the environment (VLLM_API_KEY, read
# by the API server when --api-key is absent) so that it is not in the pod's arguments.
SERVE_FLAGS: dict[str, bool] = {
    "revision": True,
    "served-model-name": True,
    "dtype": True,
    "max-model-len": True,
    "tensor-parallel-size": True,
    "gpu-memory-utilization": True,
    "max-num-seqs": True,
    "quantization": True,
    "download-dir": True,
    "disable-custom-all-reduce": False,
    "host": True,
    "port": True,
}
API_KEY_ENV = "VLLM_API_KEY"
PORT = 8000  # FrontendArgs.port's default

# Defaults of 0.14.1 the memory model depends on (vllm/config/cache.py, engine/arg_utils.py for a
# GPU under 70 GiB serving the OpenAI API).
GPU_MEMORY_UTILIZATION = 0.9
BLOCK_SIZE = 16  # tokens per KV cache block on CUDA
MAX_NUM_SEQS = 256
MAX_NUM_BATCHED_TOKENS = 2048

# The attention backend 0.14.1 takes by compute capability (see above).
FLASH_ATTN_FROM = (8, 0)
FLASHINFER_FROM = (7, 5)
BFLOAT16_FROM = (8, 0)

# Quantization method -> lowest compute capability (get_min_capability of each method's config in
# vllm/model_executor/layers/quantization/, 0.14.1). GPTQ checkpoints use gptq_marlin from 7.5
# and the older gptq kernels below it.
QUANTIZATION_MIN_COMPUTE_CAPABILITY: dict[str, tuple[int, int]] = {
    "awq": (7, 5),
    "awq_marlin": (7, 5),
    "gptq": (6, 0),
    "gptq_marlin": (7, 5),
    "bitsandbytes": (7, 0),
    "fp8": (7, 5),
}

# The collection's quantize names (TGI's) -> vLLM's method for the same kind of checkpoint.
VLLM_QUANTIZATION = {
    "awq": "awq",
    "gptq": "gptq",
    "marlin": "gptq_marlin",
    "fp8": "fp8",
    "bitsandbytes": "bitsandbytes",
    "bitsandbytes-nf4": "bitsandbytes",
    "bitsandbytes-fp4": "bitsandbytes",
}


# The engines (icc_engine) in words, for what the collection says to users.
ENGINE_LABELS = {"tgi": "TGI", "vllm": "vLLM"}
TENSOR_PARALLEL = "tensor-parallel"  # vLLM's use of several GPUs: every layer split over all


def engine_of(container: Mapping[str, Any]) -> str:
    """The engine a container of the collection's inference Deployment runs: vllm_workload
    gives vLLM its key as VLLM_API_KEY, which a TGI container never has."""
    env = container.get("env") or []
    return "vllm" if any(entry.get("name") == API_KEY_ENV for entry in env) else "tgi"


def parallel_mode(gpu_count: int) -> str:
    """vLLM's multi-GPU mode, in the words of TGI's modes: one GPU, or tensor parallel."""
    return TENSOR_PARALLEL if gpu_count > 1 else SINGLE


def served_model(args: list[str]) -> str | None:
    """The model `vllm serve` was given: its first, positional argument."""
    return args[0] if args and not str(args[0]).startswith("-") else None


def attention_backend(capability: tuple[int, int]) -> str:
    """The attention backend 0.14.1 picks for a GPU of this compute capability."""
    if capability >= FLASH_ATTN_FROM:
        return "FLASH_ATTN"
    if capability >= FLASHINFER_FROM:
        return "FLASHINFER"
    return "TRITON_ATTN"


def dtype_for(capability: tuple[int, int] | None) -> str:
    """What --dtype the collection passes: half where the GPU has no bfloat16, else auto."""
    if capability is not None and capability < BFLOAT16_FROM:
        return "half"
    return "auto"


def heads_error(attention_heads: int, tensor_parallel_size: int) -> str | None:
    """vLLM's refusal (config/model.py verify_with_parallel_config) when the heads do not split."""
    if attention_heads % tensor_parallel_size == 0:
        return None
    return (
        f"Total number of attention heads ({attention_heads}) must be divisible by tensor "
        f"parallel size ({tensor_parallel_size})."
    )


def quantization_error(method: str, capability: tuple[int, int]) -> str | None:
    """vLLM's refusal (config/vllm.py) of a quantization method below its minimum capability."""
    least = QUANTIZATION_MIN_COMPUTE_CAPABILITY.get(method)
    if least is None or capability >= least:
        return None
    return (
        f"The quantization method {method} is not supported for the current GPU. Minimum "
        f"capability: {least[0]}{least[1]}. Current capability: {capability[0]}{capability[1]}."
    )


def serve_args(
    model_id: str,
    *,
    revision: str | None,
    served_model_name: str,
    capability: tuple[int, int] | None,
    dtype: str | None = None,
    max_model_len: int,
    tensor_parallel_size: int,
    download_dir: str,
    port: int = PORT,
    quantization: str | None = None,
    max_num_seqs: int | None = None,
) -> list[str]:
    """`vllm serve`'s arguments for one namespace, every choice explicit (`dtype`: the user's,
    else half where the GPU has no bfloat16)."""
    args = [model_id]
    if revision:
        args += ["--revision", revision]
    args += [
        "--served-model-name", served_model_name,
        "--dtype", dtype or dtype_for(capability),
        "--max-model-len", str(max_model_len),
        "--tensor-parallel-size", str(tensor_parallel_size),
        "--gpu-memory-utilization", str(GPU_MEMORY_UTILIZATION),
        "--download-dir", download_dir,
        "--host", "0.0.0.0",
        "--port", str(port),
    ]  # fmt: skip
    if quantization:
        args += ["--quantization", quantization]
    if max_num_seqs:
        args += ["--max-num-seqs", str(max_num_seqs)]
    if tensor_parallel_size > 1 and capability is not None and capability < FLASH_ATTN_FROM:
        # Reported on NVLink V100 boards: vLLM's custom all-reduce fails; NCCL's works.
        args.append("--disable-custom-all-reduce")
    return args

"""engine/vllm_server.py against the pinned vLLM release's own source: every flag the collection
passes is defined there, the image compiles compute capability 7.0, and the defaults, attention
backends, quantization minimums and error texts the memory model and the rules rely on are the
release's.

The source is the release's sdist on PyPI (20 MB, its sha256 pinned here), fetched once into the
sandbox cache (~/.cache/haw-icc-sandbox, or $ICC_SANDBOX_CACHE) and kept there; only when PyPI
cannot be reached and nothing is cached are these tests skipped, saying so.
"""

from __future__ import annotations

import ast
import hashlib
import io
import os
import re
import tarfile
import urllib.request
from pathlib import Path

import pytest
from ansible_collections.haw.icc.plugins.module_utils.engine import vllm_server
from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import (
    API_KEY_ENV,
    BLOCK_SIZE,
    GPU_MEMORY_UTILIZATION,
    MAX_NUM_BATCHED_TOKENS,
    MAX_NUM_SEQS,
    QUANTIZATION_MIN_COMPUTE_CAPABILITY,
    SERVE_FLAGS,
    VLLM_VERSION,
    heads_error,
    quantization_error,
    serve_args,
)

SDIST_URL = (
    "https://files.pythonhosted.org/packages/f0/67/"
    "ecb9458e58658b0ff47d6342265c3d46d7ba952c59bcffe50f19823be445/vllm-0.14.1.tar.gz"
)
SDIST_SHA256 = "c7c6d0a729d29e70ac10baacbc7186930da24f8ae34f60451330527ff0be84ac"
QUANTIZATION_FILES = {
    "awq": "awq.py",
    "awq_marlin": "awq_marlin.py",
    "gptq": "gptq.py",
    "gptq_marlin": "gptq_marlin.py",
    "bitsandbytes": "bitsandbytes.py",
    "fp8": "fp8.py",
}
FILES = [
    "CMakeLists.txt",
    "docker/Dockerfile",
    "vllm/engine/arg_utils.py",
    "vllm/entrypoints/openai/cli_args.py",
    "vllm/envs.py",
    "vllm/config/cache.py",
    "vllm/config/model.py",
    "vllm/config/vllm.py",
    "vllm/platforms/cuda.py",
    "vllm/v1/core/kv_cache_utils.py",
    "vllm/v1/metrics/loggers.py",
    "vllm/v1/worker/gpu_worker.py",
    "vllm/entrypoints/openai/api_server.py",
    "vllm/entrypoints/openai/protocol.py",
    "vllm/entrypoints/openai/serving_engine.py",
    "vllm/entrypoints/serve/instrumentator/health.py",
    "vllm/v1/attention/backends/flash_attn.py",
    "vllm/v1/attention/backends/flashinfer.py",
    "vllm/v1/attention/backends/triton_attn.py",
    *(f"vllm/model_executor/layers/quantization/{f}" for f in QUANTIZATION_FILES.values()),
]


def _cache_root() -> Path:
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "haw-icc-sandbox"
    return Path(os.environ.get("ICC_SANDBOX_CACHE", default))


@pytest.fixture(scope="session")
def vllm_source() -> Path:
    """The pinned release's files listed in FILES, from its sdist (fetched once, then cached)."""
    assert VLLM_VERSION == "0.14.1", "pin the new release's sdist URL and sha256 here"
    root = _cache_root() / f"vllm-{VLLM_VERSION}-source"
    complete = root / ".complete"  # lists the files extracted: a longer FILES extracts again
    if complete.exists() and set(FILES) <= set(complete.read_text().split()):
        return root
    try:
        with urllib.request.urlopen(SDIST_URL, timeout=120) as answer:
            data = answer.read()
    except OSError as error:
        pytest.skip(f"vLLM {VLLM_VERSION}'s sdist is not cached and PyPI did not answer: {error}")
    assert hashlib.sha256(data).hexdigest() == SDIST_SHA256, "the sdist on PyPI changed"
    with tarfile.open(fileobj=io.BytesIO(data)) as sdist:
        for name in FILES:
            member = sdist.extractfile(f"vllm-{VLLM_VERSION}/{name}")
            assert member is not None, name
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(member.read())
    complete.write_text("\n".join(FILES) + "\n")
    return root


def read(root: Path, name: str) -> str:
    return (root / name).read_text(encoding="utf-8")


def defined_flags(root: Path) -> set[str]:
    """Long flags of `vllm serve`: string literals of add_argument calls in EngineArgs, and the
    FrontendArgs dataclass fields, which cli_args turns into --kebab-case flags."""
    flags = set()
    tree = ast.parse(read(root, "vllm/engine/arg_utils.py"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and str(arg.value).startswith("--"):
                    flags.add(arg.value[2:])
    tree = ast.parse(read(root, "vllm/entrypoints/openai/cli_args.py"))
    frontend = next(
        n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "FrontendArgs"
    )
    for node in frontend.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            flags.add(node.target.id.replace("_", "-"))
    return flags


def test_every_flag_the_collection_passes_is_defined_in_the_release(vllm_source):
    defined = defined_flags(vllm_source)
    assert {
        "max-model-len",
        "tensor-parallel-size",
        "api-key",
        "port",
    } <= defined  # the parser read
    assert sorted(set(SERVE_FLAGS) - defined) == []
    passed = serve_args(
        "org/m",
        revision="main",
        served_model_name="m",
        capability=(7, 0),
        max_model_len=4096,
        tensor_parallel_size=2,
        download_dir="/data/hub",
        quantization="gptq",
        max_num_seqs=8,
    )
    used = {arg[2:] for arg in passed if arg.startswith("--")}
    assert used == set(SERVE_FLAGS)  # every flag of the contract is really passed somewhere
    assert f'"{API_KEY_ENV}": lambda: os.environ.get("{API_KEY_ENV}"' in read(
        vllm_source, "vllm/envs.py"
    )


def test_the_release_and_its_image_compile_compute_capability_7_0(vllm_source):
    cmake = read(vllm_source, "CMakeLists.txt")
    # Below CUDA 13 (the image's 12.9) both architecture lists keep 7.0.
    lists = re.findall(r'set\(CUDA_SUPPORTED_ARCHS "([0-9.;]+)"\)', cmake)
    assert len(lists) == 3 and "7.0" not in lists[0].split(";")
    assert all("7.0" in found.split(";") for found in lists[1:])
    dockerfile = read(vllm_source, "docker/Dockerfile")
    cuda = re.search(r"^ARG CUDA_VERSION=([0-9]+)\.([0-9]+)", dockerfile, re.M)
    assert cuda and int(cuda[1]) == 12 and int(cuda[2]) >= 8
    arches = re.findall(r"^ARG torch_cuda_arch_list='([^']+)'", dockerfile, re.M)
    assert arches and all("7.0" in found.split() for found in arches)
    assert 'ENTRYPOINT ["vllm", "serve"]' in dockerfile


def test_a_v100_gets_triton_attention_and_no_bfloat16(vllm_source):
    backends = "vllm/v1/attention/backends/"
    assert "return capability >= DeviceCapability(8, 0)" in read(
        vllm_source, backends + "flash_attn.py"
    )
    assert "return capability >= DeviceCapability(7, 5)" in read(
        vllm_source, backends + "flashinfer.py"
    )
    triton = read(vllm_source, backends + "triton_attn.py")
    assert re.search(r"def supports_compute_capability\(.*\n\s+return True", triton)
    assert vllm_server.attention_backend((7, 0)) == "TRITON_ATTN"
    cuda = read(vllm_source, "vllm/platforms/cuda.py")
    assert "if self.has_device_capability(80):\n            # Ampere" in cuda
    assert "Pascal, Volta and Turing NVIDIA GPUs, BF16 is not supported" in cuda
    assert "cache_config.block_size = 16" in cuda and BLOCK_SIZE == 16


def test_the_memory_models_defaults_are_the_releases(vllm_source):
    cache = read(vllm_source, "vllm/config/cache.py")
    assert f"gpu_memory_utilization: float = Field(default={GPU_MEMORY_UTILIZATION}" in cache
    args = read(vllm_source, "vllm/engine/arg_utils.py")
    # Below 70 GiB (and on an A100) the OpenAI server's defaults:
    small = args[args.index("# TODO(woosuk): Tune the default values for other hardware.") :][:600]
    assert f"UsageContext.OPENAI_API_SERVER: {MAX_NUM_BATCHED_TOKENS}," in small
    assert f"UsageContext.OPENAI_API_SERVER: {MAX_NUM_SEQS}," in small


@pytest.mark.parametrize("method", QUANTIZATION_FILES)
def test_quantization_minimums_are_the_releases(vllm_source, method):
    text = read(
        vllm_source, f"vllm/model_executor/layers/quantization/{QUANTIZATION_FILES[method]}"
    )
    least = re.search(
        r"def get_min_capability\(cls\) -> int:\n(?:\s+#.*\n)?\s+return ([0-9]+)", text
    )
    major, minor = QUANTIZATION_MIN_COMPUTE_CAPABILITY[method]
    assert least and int(least[1]) == major * 10 + minor


def test_the_refusals_quote_the_releases_words(vllm_source):
    model = read(vllm_source, "vllm/config/model.py")
    assert '" must be divisible by tensor parallel size "' in model
    assert heads_error(14, 4) == (
        "Total number of attention heads (14) must be divisible by tensor parallel size (4)."
    )
    config = read(vllm_source, "vllm/config/vllm.py")
    assert '"is not supported for the current GPU. Minimum "' in config
    assert quantization_error("awq", (7, 0)) == (
        "The quantization method awq is not supported for the current GPU. Minimum capability: "
        "75. Current capability: 70."
    )
    kv = read(vllm_source, "vllm/v1/core/kv_cache_utils.py")
    assert '"No available memory for the cache blocks. "' in kv

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The GPU test of the API smoke test (haw.icc.tgi_api_test): nvidia-smi and `env` run in the TGI
container (the action plugin execs them), and what their output says of the GPUs the pod got,
as a check of api_checks' kind.

Pure functions: no Ansible, no I/O.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.operations.api_checks import (
    GPU,
    Check,
    failed,
    passed,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.nvidia_smi import (
    parse_gpu_csv,
    query_command,
)

GPU_ENV_PREFIXES = ("CUDA_", "NCCL_", "NVIDIA_")
GPU_FIELDS = ("name", "memory.total", "driver_version")


def gpu_query_command() -> list[str]:
    """nvidia-smi's query of each GPU's name, memory and driver, as CSV with a header."""
    return query_command(GPU_FIELDS)


def gpu_env(text: str) -> dict[str, str]:
    """The CUDA_*, NCCL_* and NVIDIA_* variables out of `env`'s output."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.startswith(GPU_ENV_PREFIXES):
            found[name] = value
    return dict(sorted(found.items()))


def check_gpus(
    expected: int, smi: tuple[int, str, str], env: tuple[int, str, str] | None, seconds: float
) -> Check:
    """The GPU test from the exec results (rc, stdout, stderr) of nvidia-smi and env."""
    rc, out, err = smi
    if rc != 0:
        said = (err or out).strip().splitlines()
        return failed(
            GPU,
            f"nvidia-smi failed in the TGI container (exit {rc})"
            + (f": {said[-1]}" if said else ""),
            seconds,
        )
    try:
        gpus = parse_gpu_csv(out)
    except ValueError as error:
        return failed(GPU, f"nvidia-smi's output is not what was asked for: {error}", seconds)
    if len(gpus) != expected:
        return failed(
            GPU, f"the pod requests {expected} GPU(s), nvidia-smi shows {len(gpus)}", seconds
        )
    listed = "; ".join(f"{g['name']} {_memory(g)}" for g in gpus)
    drivers = ", ".join(sorted({str(g["driver_version"]) for g in gpus}))
    detail = f"{len(gpus)} x GPU: {listed}; driver {drivers}"
    variables = gpu_env(env[1]) if env and env[0] == 0 else {}
    if variables:
        detail += "; " + ", ".join(f"{k}={v}" for k, v in variables.items())
    return passed(GPU, detail, seconds)


def _memory(gpu: dict[str, Any]) -> str:
    total, unit = gpu.get("memory.total"), gpu["units"].get("memory.total", "")
    if isinstance(total, float) and total.is_integer():
        total = int(total)
    return f"{total} {unit}".strip() if total is not None else "memory unknown"

# Copyright: haw.icc contributors
# MIT License (see LICENSE)
"""The GPU catalog: what the collection knows about each GPU type of the ICC, as plain data.

A GPU type is the name the ICC uses for a class of GPU nodes: the key of the nodes' taint and
the value pods tolerate. Each entry records the memory of one GPU, its CUDA compute capability,
how many GPUs one pod can get at most (all GPUs of a pod sit on one node), and the TGI and vLLM
images known to run on it (engine/vllm_server.py says why vLLM 0.14.1 for compute capability
7.0). The `cpu` entry describes pods without GPUs and has no vLLM image.

Users extend or override entries through the inventory variable `icc_gpu_catalog`;
`merged_catalog` validates those entries and lays them over the built-in ones.

Pure Python: no Ansible imports, no I/O, so roles (through filters), modules and unit tests
share it.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import IMAGE_REFERENCE
from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import VLLM_IMAGE

CATALOG_VARIABLE = "icc_gpu_catalog"
CPU = "cpu"  # the entry used when a pod asks for no GPU

TGI_REPOSITORY = "ghcr.io/huggingface/text-generation-inference"
# TGI 3.3.1 and later ship a PyTorch built for CUDA 12.8, which dropped compute capability 7.0:
# 3.3.0 is the newest TGI that can start on a V100 (to be confirmed on the cluster).
TGI_IMAGE_SM70 = f"{TGI_REPOSITORY}:3.3.0"
TGI_IMAGE = f"{TGI_REPOSITORY}:3.3.7"
TGI_IMAGE_CPU = f"{TGI_REPOSITORY}:3.3.7-intel-cpu"

# The built-in catalog. Read it through `merged_catalog`, which returns a copy.
CATALOG: dict[str, dict[str, Any]] = {
    "gpu-tesla-v100": {
        "memory_gib": 16,
        "compute_capability": "7.0",
        "gpus_per_node": 4,
        "tgi_image": TGI_IMAGE_SM70,
        "vllm_image": VLLM_IMAGE,
    },
    "gpu-tesla-v100s": {
        "memory_gib": 32,
        "compute_capability": "7.0",
        "gpus_per_node": 4,
        "tgi_image": TGI_IMAGE_SM70,
        "vllm_image": VLLM_IMAGE,
    },
    "gpu-tesla-a100": {
        "memory_gib": 40,
        "compute_capability": "8.0",
        "gpus_per_node": 4,
        "tgi_image": TGI_IMAGE,
        "vllm_image": VLLM_IMAGE,
    },
    CPU: {
        "memory_gib": None,  # no GPU memory: the pod's memory limit is what counts
        "compute_capability": None,
        "gpus_per_node": 0,
        "tgi_image": TGI_IMAGE_CPU,
    },
}

# Field -> what it holds, for error messages. Every entry has these fields.
FIELDS: dict[str, str] = {
    "memory_gib": "memory of one GPU in GiB, a number > 0 (null for the cpu entry)",
    "compute_capability": 'CUDA compute capability as a quoted string like "7.0" '
    "(null for the cpu entry)",
    "gpus_per_node": "most GPUs one pod can get (GPUs of a node), an integer >= 1 "
    "(0 for the cpu entry)",
    "tgi_image": "pinned TGI image reference, repository:tag or repository@sha256:digest, "
    "never :latest",
}
# Fields an entry may leave out: without a vllm_image, vLLM is refused on that GPU type.
OPTIONAL_FIELDS: dict[str, str] = {
    "vllm_image": "pinned vLLM image reference (vllm/vllm-openai), repository:tag or "
    "repository@sha256:digest, never :latest",
}
ALL_FIELDS = {**FIELDS, **OPTIONAL_FIELDS}

# A GPU type is used as a taint key and a label value: keep it to a Kubernetes name segment.
_GPU_TYPE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?")
_COMPUTE_CAPABILITY = re.compile(r"[0-9]{1,2}\.[0-9]")


class ProblemsError(ValueError):
    """Something given is invalid; `errors` lists every problem, the message names WHAT it is."""

    WHAT = "input"

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        super().__init__(f"invalid {self.WHAT}:\n" + "\n".join(f"- {e}" for e in self.errors))


class CatalogError(ProblemsError):
    """The GPU catalog (or `icc_gpu_catalog`) is invalid; `errors` lists every problem."""

    WHAT = "GPU catalog"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _field_errors(where: str, name: str, entry: Mapping[str, Any]) -> list[str]:
    """Problems of one complete entry (all fields present)."""
    errors: list[str] = []
    is_cpu = name == CPU
    memory = entry["memory_gib"]
    if is_cpu and memory is not None:
        errors.append(f"{where}.memory_gib: {memory!r} must be null for the cpu entry")
    elif not is_cpu and not (_is_number(memory) and memory > 0):
        errors.append(f"{where}.memory_gib: {memory!r} is not allowed: {FIELDS['memory_gib']}")

    capability = entry["compute_capability"]
    if is_cpu and capability is not None:
        errors.append(f"{where}.compute_capability: {capability!r} must be null for the cpu entry")
    elif not is_cpu and not (
        isinstance(capability, str) and _COMPUTE_CAPABILITY.fullmatch(capability)
    ):
        hint = " (quote it in YAML)" if _is_number(capability) else ""
        errors.append(
            f"{where}.compute_capability: {capability!r} is not allowed{hint}: "
            f"{FIELDS['compute_capability']}"
        )

    per_node = entry["gpus_per_node"]
    if is_cpu and per_node != 0:
        errors.append(f"{where}.gpus_per_node: {per_node!r} must be 0 for the cpu entry")
    elif not is_cpu and not (_is_int(per_node) and per_node >= 1):
        errors.append(
            f"{where}.gpus_per_node: {per_node!r} is not allowed: {FIELDS['gpus_per_node']}"
        )

    errors.extend(_image_errors(where, "tgi_image", entry["tgi_image"], TGI_IMAGE))
    if entry.get("vllm_image") is not None:
        errors.extend(_image_errors(where, "vllm_image", entry["vllm_image"], VLLM_IMAGE))
    return errors


def _image_errors(where: str, field: str, image: Any, example: str) -> list[str]:
    match = IMAGE_REFERENCE.fullmatch(image) if isinstance(image, str) else None
    if not match or not (match["tag"] or match["digest"]):
        return [f"{where}.{field}: {image!r} is not allowed: {ALL_FIELDS[field]}"]
    if match["tag"] == "latest" and not match["digest"]:
        return [
            f"{where}.{field}: {image!r} is not pinned (:latest changes under you): "
            f"use a version tag like {example!r}"
        ]
    return []


def catalog_errors(extra: Any) -> list[str]:
    """Every problem of the user's catalog entries (`icc_gpu_catalog`), all at once.

    `extra` maps GPU type -> fields. An entry for a built-in type may give only the fields it
    changes; an entry for a new type must give all of them. Unknown fields are refused.
    """
    if extra is None:
        return []
    if not isinstance(extra, Mapping):
        return [
            f"{CATALOG_VARIABLE}: {extra!r} is not a mapping: map each GPU type to its fields "
            f"({', '.join(FIELDS)})"
        ]
    errors: list[str] = []
    for name, fields in extra.items():
        where = f"{CATALOG_VARIABLE}[{name!r}]"
        if not isinstance(name, str) or not _GPU_TYPE.fullmatch(name):
            errors.append(
                f"{CATALOG_VARIABLE}: GPU type {name!r} is not allowed: up to 63 letters, "
                "digits, '-', '_' or '.', starting and ending with a letter or digit "
                "(the key of the GPU nodes' taint, like 'gpu-tesla-v100')"
            )
            continue
        if not isinstance(fields, Mapping):
            errors.append(f"{where}: {fields!r} is not a mapping of fields ({', '.join(FIELDS)})")
            continue
        unknown = sorted(str(key) for key in fields if key not in ALL_FIELDS)
        if unknown:
            errors.append(
                f"{where}: unknown field(s) {', '.join(unknown)}: allowed fields are "
                f"{', '.join(ALL_FIELDS)}"
            )
        base = CATALOG.get(name)
        missing = [key for key in FIELDS if key not in fields]
        if base is None and missing:
            errors.append(f"{where}: a new GPU type needs all fields; missing {', '.join(missing)}")
            continue
        entry = {**(base or {}), **{k: v for k, v in fields.items() if k in ALL_FIELDS}}
        errors.extend(_field_errors(where, name, entry))
    return errors


def merged_catalog(extra: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """The built-in catalog with the user's entries (`icc_gpu_catalog`) laid over it.

    Returns a new dict (changing it changes nothing here). Entries of built-in types are merged
    field by field; new types are added. Raises `CatalogError` listing every problem.
    """
    errors = catalog_errors(extra)
    if errors:
        raise CatalogError(errors)
    merged = copy.deepcopy(CATALOG)
    for name, fields in (extra or {}).items():
        entry = merged.setdefault(str(name), {})
        entry.update({str(key): copy.deepcopy(value) for key, value in fields.items()})
    return merged


def compute_capability(text: Any) -> tuple[int, int] | None:
    """A catalog entry's compute capability ('7.0') as (7, 0); None for anything else."""
    if not isinstance(text, str) or _COMPUTE_CAPABILITY.fullmatch(text) is None:
        return None
    major, minor = text.split(".")
    return int(major), int(minor)


def gpu_types(catalog: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The catalog's GPU types (entries with GPUs), sorted."""
    return sorted(name for name, entry in catalog.items() if entry.get("gpus_per_node"))

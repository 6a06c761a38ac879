"""The GPU catalog and its extension through icc_gpu_catalog (module_utils/gpu/catalog.py)."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    CATALOG,
    CPU,
    FIELDS,
    CatalogError,
    catalog_errors,
    gpu_types,
    merged_catalog,
)

TGI = "ghcr.io/huggingface/text-generation-inference"
H100 = {
    "memory_gib": 80,
    "compute_capability": "9.0",
    "gpus_per_node": 8,
    "tgi_image": f"{TGI}:3.3.7",
}

BUILT_IN = {
    # name: (memory_gib, compute_capability, gpus_per_node, tgi_image)
    "gpu-tesla-v100": (16, "7.0", 4, f"{TGI}:3.3.0"),
    "gpu-tesla-v100s": (32, "7.0", 4, f"{TGI}:3.3.0"),
    "gpu-tesla-a100": (40, "8.0", 4, f"{TGI}:3.3.7"),
    "cpu": (None, None, 0, f"{TGI}:3.3.7-intel-cpu"),
}


@pytest.mark.parametrize(("name", "expected"), BUILT_IN.items(), ids=BUILT_IN.keys())
def test_built_in_entries(name: str, expected: tuple) -> None:
    entry = merged_catalog()[name]
    assert tuple(entry[field] for field in FIELDS) == expected


def test_built_in_catalog_is_exactly_these_entries_and_valid() -> None:
    assert set(CATALOG) == set(BUILT_IN)
    assert catalog_errors(CATALOG) == []
    gpus = set(FIELDS) | {"vllm_image"}
    assert all(
        set(entry) == (gpus if name != CPU else set(FIELDS)) for name, entry in CATALOG.items()
    )


def test_every_gpu_type_gets_vllm_0_14_1_the_last_read_to_compile_sm70() -> None:
    # vllm 0.14.1's sdist: docker/Dockerfile CUDA_VERSION=12.9.1, TORCH_CUDA_ARCH_LIST '7.0 7.5 ...'
    for name in gpu_types(CATALOG):
        assert CATALOG[name]["vllm_image"] == "docker.io/vllm/vllm-openai:v0.14.1", name
    assert "vllm_image" not in CATALOG[CPU]  # vLLM's CPU build is not offered


def test_a_new_gpu_type_may_leave_out_vllm_image_but_not_give_it_unpinned() -> None:
    assert catalog_errors({"gpu-h100": H100}) == []
    assert catalog_errors({"gpu-h100": H100 | {"vllm_image": "vllm/vllm-openai:latest"}}) == [
        "icc_gpu_catalog['gpu-h100'].vllm_image: 'vllm/vllm-openai:latest' is not pinned "
        "(:latest changes under you): use a version tag like 'docker.io/vllm/vllm-openai:v0.14.1'"
    ]


def test_sm70_gpus_get_the_last_tgi_built_for_them() -> None:
    # 3.3.1+ ship torch for CUDA 12.8 without sm_70: the V100s must stay on 3.3.0.
    catalog = merged_catalog()
    for name, entry in catalog.items():
        if entry["compute_capability"] == "7.0":
            assert entry["tgi_image"].endswith(":3.3.0"), name


def test_gpu_types_leave_out_the_cpu_entry() -> None:
    assert gpu_types(merged_catalog()) == ["gpu-tesla-a100", "gpu-tesla-v100", "gpu-tesla-v100s"]
    assert CPU == "cpu"


def test_merged_catalog_is_a_copy() -> None:
    merged = merged_catalog()
    merged["gpu-tesla-v100"]["gpus_per_node"] = 1
    merged.pop("cpu")
    assert CATALOG["gpu-tesla-v100"]["gpus_per_node"] == 4
    assert merged_catalog()["cpu"] == CATALOG["cpu"]


def test_user_entries_are_copied_too() -> None:
    extra = {"gpu-h100": dict(H100)}
    merged_catalog(extra)["gpu-h100"]["memory_gib"] = 1
    assert extra["gpu-h100"]["memory_gib"] == 80


# --- extension: (extra entries, expected changes to the built-in catalog) ----------------------

GOOD = {
    "none": (None, {}),
    "empty": ({}, {}),
    "new-gpu-type": ({"gpu-h100": H100}, {"gpu-h100": H100}),
    "override-one-field": (
        {"gpu-tesla-v100": {"tgi_image": f"{TGI}:3.2.3"}},
        {"gpu-tesla-v100": {**CATALOG["gpu-tesla-v100"], "tgi_image": f"{TGI}:3.2.3"}},
    ),
    "smaller-nodes": (
        {"gpu-tesla-v100s": {"gpus_per_node": 2}},
        {"gpu-tesla-v100s": {**CATALOG["gpu-tesla-v100s"], "gpus_per_node": 2}},
    ),
    "a100-80gb-memory-float": (
        {"gpu-tesla-a100": {"memory_gib": 79.5}},
        {"gpu-tesla-a100": {**CATALOG["gpu-tesla-a100"], "memory_gib": 79.5}},
    ),
    "cpu-image": (
        {"cpu": {"tgi_image": f"{TGI}:3.3.6-intel-cpu"}},
        {"cpu": {**CATALOG["cpu"], "tgi_image": f"{TGI}:3.3.6-intel-cpu"}},
    ),
    "image-by-digest": (
        {"gpu-tesla-v100": {"tgi_image": f"{TGI}@sha256:{'a' * 64}"}},
        {"gpu-tesla-v100": {**CATALOG["gpu-tesla-v100"], "tgi_image": f"{TGI}@sha256:{'a' * 64}"}},
    ),
    "image-from-registry-with-port": (
        {"gpu-tesla-v100": {"tgi_image": "registry.local:5000/tgi:3.3.0"}},
        {
            "gpu-tesla-v100": {
                **CATALOG["gpu-tesla-v100"],
                "tgi_image": "registry.local:5000/tgi:3.3.0",
            }
        },
    ),
    "full-catalog-is-idempotent": (CATALOG, {}),
}


@pytest.mark.parametrize(("extra", "changes"), GOOD.values(), ids=GOOD.keys())
def test_extension(extra: Any, changes: dict) -> None:
    assert catalog_errors(extra) == []
    assert merged_catalog(extra) == {**CATALOG, **changes}


# --- refused entries: (extra entries, words of the message) ------------------------------------

BAD = {
    "not-a-mapping": (["gpu-h100"], ["icc_gpu_catalog:", "not a mapping"]),
    "entry-not-a-mapping": ({"gpu-h100": 80}, ["icc_gpu_catalog['gpu-h100']", "not a mapping"]),
    "bad-gpu-type-name": ({"gpu h100": H100}, ["GPU type 'gpu h100'", "taint"]),
    "new-type-missing-fields": (
        {"gpu-h100": {"memory_gib": 80}},
        ["needs all fields", "compute_capability, gpus_per_node, tgi_image"],
    ),
    "unknown-field": (
        {"gpu-tesla-v100": {"memory_gb": 16}},
        ["unknown field(s) memory_gb", "memory_gib, compute_capability"],
    ),
    "memory-zero": ({"gpu-tesla-v100": {"memory_gib": 0}}, [".memory_gib: 0", "> 0"]),
    "memory-string": ({"gpu-tesla-v100": {"memory_gib": "16Gi"}}, ["'16Gi'", "a number > 0"]),
    "memory-bool": ({"gpu-tesla-v100": {"memory_gib": True}}, ["True", "a number > 0"]),
    "compute-capability-float": (
        {"gpu-tesla-v100": {"compute_capability": 7.0}},
        [".compute_capability: 7.0", "quote it", '"7.0"'],
    ),
    "compute-capability-garbage": (
        {"gpu-tesla-v100": {"compute_capability": "sm_70"}},
        ["'sm_70'", '"7.0"'],
    ),
    "gpus-per-node-zero": ({"gpu-tesla-v100": {"gpus_per_node": 0}}, [".gpus_per_node: 0", ">= 1"]),
    "gpus-per-node-string": (
        {"gpu-tesla-v100": {"gpus_per_node": "4"}},
        ["'4'", "an integer >= 1"],
    ),
    "cpu-with-gpus": ({"cpu": {"gpus_per_node": 1}}, ["['cpu'].gpus_per_node: 1", "must be 0"]),
    "cpu-with-memory": ({"cpu": {"memory_gib": 64}}, ["['cpu'].memory_gib: 64", "null"]),
    "image-latest": (
        {"gpu-tesla-v100": {"tgi_image": f"{TGI}:latest"}},
        ["not pinned", f"{TGI}:3.3.7"],
    ),
    "image-untagged": ({"gpu-tesla-v100": {"tgi_image": TGI}}, ["never :latest", "repository:tag"]),
    "image-not-a-string": ({"gpu-tesla-v100": {"tgi_image": 3.3}}, [".tgi_image: 3.3"]),
}


@pytest.mark.parametrize(("extra", "words"), BAD.values(), ids=BAD.keys())
def test_refused_entries(extra: Any, words: list[str]) -> None:
    errors = catalog_errors(extra)
    assert len(errors) == 1, errors
    assert errors[0].startswith("icc_gpu_catalog")
    for word in words:
        assert word in errors[0]
    with pytest.raises(CatalogError) as raised:
        merged_catalog(extra)
    assert raised.value.errors == errors
    assert isinstance(raised.value, ValueError)


def test_every_problem_at_once() -> None:
    extra = {
        "gpu-tesla-v100": {"memory_gib": -1, "gpus_per_node": 9.5},
        "gpu-h100": {"memory_gib": 80},
        "cpu": {"tgi_image": "tgi"},
    }
    assert len(catalog_errors(extra)) == 4

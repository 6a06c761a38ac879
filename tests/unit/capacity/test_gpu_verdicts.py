"""Each GPU rule's own data (module_utils/capacity/gpu_verdicts.py): the TGI version read from
an image's tag and the quantize methods' minimum compute capabilities. The verdicts themselves
are tested through gpu_rules.assess (test_gpu_rules.py).
"""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils.capacity.gpu_verdicts import (
    QUANTIZATION_MIN_COMPUTE_CAPABILITY,
    image_version,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_launcher import QUANTIZE_METHODS

TGI = "ghcr.io/huggingface/text-generation-inference"


def test_image_versions_are_read_from_tags_only() -> None:
    assert image_version(f"{TGI}:3.3.7-intel-cpu") == (3, 3, 7)
    assert image_version(f"{TGI}:3.3.0@sha256:{'b' * 64}") == (3, 3, 0)
    assert image_version("localhost:5000/tgi:2.4") == (2, 4, 0)
    assert image_version("localhost:5000/tgi") is None
    assert image_version(None) is None


def test_the_minimum_compute_capabilities() -> None:
    assert set(QUANTIZATION_MIN_COMPUTE_CAPABILITY) == set(QUANTIZE_METHODS)
    assert {m for m, cc in QUANTIZATION_MIN_COMPUTE_CAPABILITY.items() if cc == "7.5"} == {
        "awq",
        "gptq",
        "exl2",
        "eetq",
    }
    assert {m for m, cc in QUANTIZATION_MIN_COMPUTE_CAPABILITY.items() if cc == "8.0"} == {
        "marlin",
        "fp8",
        "compressed-tensors",
    }

"""The GPU test of the API smoke test (module_utils/operations/gpu_check.py): nvidia-smi's and
env's output in the TGI container."""

from __future__ import annotations

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations import gpu_check as t

SMI = "name, memory.total [MiB], driver_version\nTesla V100-PCIE-16GB, 16384, 535.129.03\n"
ENV = (
    "PATH=/usr/bin\nCUDA_VISIBLE_DEVICES=0\nNCCL_DEBUG=WARN\nHOSTNAME=0.0.0.0\n"
    "NVIDIA_VISIBLE_DEVICES=GPU-1\n"
)


def test_gpu_check_lists_the_gpus_driver_and_gpu_environment():
    check = t.check_gpus(1, (0, SMI, ""), (0, ENV, ""), 0.3)
    assert check.ok and not check.skipped
    assert check.detail == (
        "1 x GPU: Tesla V100-PCIE-16GB 16384 MiB; driver 535.129.03; "
        "CUDA_VISIBLE_DEVICES=0, NCCL_DEBUG=WARN, NVIDIA_VISIBLE_DEVICES=GPU-1"
    )
    assert t.gpu_query_command()[:2] == [
        "nvidia-smi",
        "--query-gpu=name,memory.total,driver_version",
    ]


@pytest.mark.parametrize(
    ("expected", "smi", "detail"),
    [
        (2, (0, SMI, ""), "the pod requests 2 GPU(s), nvidia-smi shows 1"),
        (
            1,
            (9, "", "NVIDIA-SMI has failed because it couldn't communicate with the driver"),
            "nvidia-smi failed in the TGI container (exit 9): NVIDIA-SMI has failed because it "
            "couldn't communicate with the driver",
        ),
        (1, (0, "Killed\n", ""), "nvidia-smi's output is not what was asked for: "),
    ],
)
def test_gpu_check_failures(expected, smi, detail):
    check = t.check_gpus(expected, smi, None, 0.1)
    assert not check.ok and check.detail.startswith(detail), check.detail

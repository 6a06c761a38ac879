"""nvidia-smi's query CSV -> one dict per GPU, on recorded output (tests/unit/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations.nvidia_smi import (
    GPU_QUERY_FIELDS,
    parse_gpu_csv,
    query_command,
)

DATA = Path(__file__).parents[1] / "data"


def recorded(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def test_query_command_asks_for_every_field_with_header_and_without_units():
    command = query_command()
    assert command[0] == "nvidia-smi"
    assert command[1] == "--query-gpu=" + ",".join(GPU_QUERY_FIELDS)
    assert command[2] == "--format=csv,nounits"
    for field in ("utilization.gpu", "memory.used", "memory.total", "temperature.gpu"):
        assert field in GPU_QUERY_FIELDS
    assert query_command(("index", "power.draw"))[1] == "--query-gpu=index,power.draw"


def test_the_header_names_the_fields_the_command_asked_for():
    """The recorded CSV answers exactly query_command(): the parser's keys are those fields."""
    gpus = parse_gpu_csv(recorded("nvidia_smi_v100.csv"))
    assert [key for key in gpus[0] if key != "units"] == list(GPU_QUERY_FIELDS)


@pytest.mark.parametrize(
    ("sample", "gpu", "expected"),
    [
        (
            "nvidia_smi_v100.csv",
            0,
            {
                "index": 0,
                "name": "Tesla V100-SXM2-16GB",
                "driver_version": "535.183.01",
                "utilization.gpu": 87.0,
                "memory.used": 14813.0,
                "memory.total": 16384.0,
                "temperature.gpu": 47.0,
                "power.draw": 182.35,
                "power.limit": 300.0,
            },
        ),
        (
            "nvidia_smi_v100.csv",
            1,
            {"index": 1, "utilization.gpu": 0.0, "memory.used": 5.0, "power.draw": 41.02},
        ),
        # Without `nounits` the values carry their unit; the numbers are the same.
        (
            "nvidia_smi_v100_units.csv",
            0,
            {
                "name": "Tesla V100-PCIE-16GB",
                "utilization.gpu": 63.0,
                "memory.used": 15021.0,
                "memory.total": 16160.0,
                "power.draw": 131.77,
                "power.limit": 250.0,
            },
        ),
        # What a GPU cannot report is None, and the other fields are still read.
        (
            "nvidia_smi_not_available.csv",
            0,
            {"memory.total": 32768.0, "power.draw": None, "power.limit": None},
        ),
    ],
)
def test_recorded_output(sample, gpu, expected):
    parsed = parse_gpu_csv(recorded(sample))[gpu]
    assert {key: parsed[key] for key in expected} == expected
    assert isinstance(parsed["index"], int)
    assert parsed["uuid"].startswith("GPU-")


def test_units_are_kept_apart_from_the_numbers():
    gpus = parse_gpu_csv(recorded("nvidia_smi_v100.csv"))
    assert len(gpus) == 2
    assert gpus[0]["units"] == {
        "utilization.gpu": "%",
        "memory.used": "MiB",
        "memory.total": "MiB",
        "power.draw": "W",
        "power.limit": "W",
    }
    assert "temperature.gpu" not in gpus[0]["units"]  # nvidia-smi prints no unit for it


def test_header_only_means_no_gpus():
    header = recorded("nvidia_smi_v100.csv").splitlines()[0]
    assert parse_gpu_csv(header + "\n") == []


def test_a_field_the_module_does_not_know_keeps_its_text():
    text = "index, pstate, clocks_event_reasons.active\n0, P0, 0x0000000000000001\n"
    assert parse_gpu_csv(text)[0] == {
        "index": 0,
        "pstate": "P0",
        "clocks_event_reasons.active": "0x0000000000000001",
        "units": {},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "printed nothing"),
        ("\n  \n", "printed nothing"),
        ("sh: 1: nvidia-smi: not found\n", "'sh: 1: nvidia-smi: not found'"),
        ("bash: nvidia-smi: command not found\n", "'bash: nvidia-smi: command not found'"),
        (
            "Failed to initialize NVML: Driver/library version mismatch\n"
            "NVML library version: 550.127\n",
            "'Failed to initialize NVML: Driver/library version mismatch'",
        ),
        (
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make "
            "sure that the latest NVIDIA driver is installed and running.\n",
            "NVIDIA-SMI has failed because",
        ),
        ("No devices were found\n", "'No devices were found'"),
        ("Killed\n", "'Killed'"),
        # --format=csv,noheader: the values alone cannot be matched to fields.
        ("0, Tesla V100-SXM2-16GB, 87, 14813\n", "without noheader"),
        # A row that does not match the header (a GPU name with a comma, a cut line).
        (
            "index, memory.used [MiB]\n0, 14813\n1\n",
            "line 3 of nvidia-smi's CSV has 1 values for 2 fields",
        ),
        ("index, memory.used [MiB]\n0, lots\n", "memory.used is 'lots', not a number"),
    ],
)
def test_what_is_not_the_csv_is_refused_quoting_it(text, message):
    with pytest.raises(ValueError) as raised:
        parse_gpu_csv(text)
    assert message in str(raised.value)

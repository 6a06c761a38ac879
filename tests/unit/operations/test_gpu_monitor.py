"""The monitor's pure parts (gpu_monitor): CSV rows and cells, the line per sample, the local
command, the plot. (How the API
server's exec errors and the exec status channel are read: tests/unit/cluster/test_api.py.)"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations.monitor import (
    COLUMNS,
    csv_row,
    describe,
    gpu_command,
    sample_rows_of,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.monitor_plot import draw_plot
from ansible_collections.haw.icc.plugins.module_utils.operations.nvidia_smi import parse_gpu_csv

DATA = Path(__file__).parents[1] / "data"
NOW = datetime(2026, 3, 2, 10, 15, 0, tzinfo=UTC)
FIGURES = {"queue_size": 3.0, "batch_size": 2.0, "generated_tokens_total": 2283.0}


def test_one_row_per_gpu_with_tgi_figures_on_each():
    gpus = parse_gpu_csv((DATA / "nvidia_smi_v100.csv").read_text())
    rows = [csv_row(row) for row in sample_rows_of(NOW, 5.0, gpus, FIGURES, 41.25)]
    assert [row["gpu"] for row in rows] == ["0", "1"]
    assert rows[0]["time"] == "2026-03-02T10:15:00Z"
    assert rows[0]["seconds"] == "5"
    assert rows[0]["memory_used_mib"] == "14813"
    assert rows[0]["power_w"] == "182.35"
    assert rows[1]["tgi_queue_size"] == "3"
    assert rows[1]["tgi_tokens_per_second"] == "41.25"
    assert rows[1]["tgi_mean_time_per_token_seconds"] == ""  # not in FIGURES
    assert list(rows[0]) == list(COLUMNS)


def test_without_gpus_one_row_with_empty_gpu_columns():
    (row,) = (csv_row(row) for row in sample_rows_of(NOW, 0.0, None, FIGURES, None))
    assert row["gpu"] == row["utilization_percent"] == row["gpu_name"] == ""
    assert row["tgi_generated_tokens_total"] == "2283"
    (row,) = (csv_row(row) for row in sample_rows_of(NOW, 0.0, None, None, None))
    assert row["tgi_queue_size"] == ""


def test_the_line_of_a_sample():
    gpus = parse_gpu_csv((DATA / "nvidia_smi_v100.csv").read_text())
    # By hand from the recorded CSV: 14813 MiB / 1024 = 14.47 GiB, 16384 MiB = 16.0 GiB, 182.35 W
    # rounds to 182; FIGURES has no requests_total (?) and no time per token (left out).
    assert describe(gpus, FIGURES, 12.0) == (
        "GPU0 87% 14.5/16.0 GiB 47 C 182 W; GPU1 0% 0.0/16.0 GiB 36 C 41 W; "
        "TGI queue 3, batch 2, ? requests, 2283 tokens (12.0/s)"
    )
    assert describe(None, None, None) == "no GPU figures; no TGI metrics"


@pytest.mark.parametrize(
    ("value", "cell"),
    [(None, ""), (3, "3"), (3.0, "3"), (0.0297, "0.0297"), (1e-05, "0.00001"), (1 / 3, "0.333333")],
)
def test_cells_are_plain_numbers(value, cell):
    row = csv_row({"seconds": value})
    assert row["seconds"] == cell
    if cell:
        float(cell)


@pytest.mark.parametrize(
    ("value", "argv"),
    [
        (None, None),
        ("", None),
        ([], None),
        ("sh -c 'echo a b'", ["sh", "-c", "echo a b"]),
        (["sh"], ["sh"]),
    ],
)
def test_gpu_command(value, argv):
    assert gpu_command(value) == argv


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("   ", "gpu_command is empty"),
        ({"a": 1}, "gpu_command must be a command line"),
        ("/no/such/nvidia-smi-stand-in", "/no/such/nvidia-smi-stand-in is not an executable"),
    ],
)
def test_bad_gpu_command(value, message):
    with pytest.raises(ValueError, match=message):
        gpu_command(value)


def test_plot_is_a_png(tmp_path):
    gpus = parse_gpu_csv((DATA / "nvidia_smi_v100.csv").read_text())
    rows = sample_rows_of(NOW, 0.0, gpus, FIGURES, None) + sample_rows_of(
        NOW, 5.0, gpus, FIGURES, 12.0
    )
    path = tmp_path / "plot.png"
    draw_plot(str(path), rows, "wabc123-default")
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")

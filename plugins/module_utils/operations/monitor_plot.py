# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The monitor's plot: utilisation and memory per GPU, TGI's tokens per second and queue, over
time, as a PNG, from the rows of the monitor's CSV file (operations/monitor.py).

matplotlib is imported when a plot is drawn, and only its Agg canvas (no pyplot, no display):
without it the monitor writes its CSV file all the same.
"""

from __future__ import annotations

from typing import Any

MIB_PER_GIB = 1024.0


def draw_plot(path: str, rows: list[dict[str, Any]], title: str) -> None:
    """Utilisation and memory per GPU, TGI's tokens per second and queue, over time, as PNG.

    Raises ImportError without matplotlib. Uses the Agg canvas directly (no pyplot, no display).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 9), layout="constrained")
    FigureCanvasAgg(figure)
    usage, memory, server = figure.subplots(3, 1, sharex=True)
    figure.suptitle(title)
    by_gpu: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        if row["gpu"] is not None:
            by_gpu.setdefault(row["gpu"], []).append(row)
    for index, gpu_rows in sorted(by_gpu.items()):
        times = [row["seconds"] for row in gpu_rows]
        usage.plot(
            times, _series(gpu_rows, "utilization_percent"), marker=".", label=f"GPU {index}"
        )
        used = _series(gpu_rows, "memory_used_mib", scale=1 / MIB_PER_GIB)
        line = memory.plot(times, used, marker=".", label=f"GPU {index} used")[0]
        total = _series(gpu_rows, "memory_total_mib", scale=1 / MIB_PER_GIB)
        memory.plot(
            times, total, linestyle="--", color=line.get_color(), label=f"GPU {index} total"
        )
    usage.set_ylabel("GPU utilisation (%)")
    usage.set_ylim(0, 100)
    memory.set_ylabel("GPU memory (GiB)")
    totals = [row["memory_total_mib"] for row in rows if row["memory_total_mib"] is not None]
    memory.set_ylim(0, max(totals) / MIB_PER_GIB * 1.1 if totals else None)
    for axes in (usage, memory):
        if by_gpu:
            axes.legend(loc="best", fontsize="small")
        else:
            axes.text(
                0.5, 0.5, "no GPU figures", ha="center", va="center", transform=axes.transAxes
            )
    tgi_rows = _one_row_per_sample(rows)
    times = [row["seconds"] for row in tgi_rows]
    server.plot(times, _series(tgi_rows, "tgi_tokens_per_second"), marker=".", label="tokens/s")
    server.set_ylabel("generated tokens per second")
    server.set_ylim(bottom=0)
    queue = server.twinx()
    queue.plot(
        times, _series(tgi_rows, "tgi_queue_size"), color="tab:red", marker="x", label="queue"
    )
    queue.set_ylabel("requests in queue")
    queue.set_ylim(bottom=0)
    if all(row["tgi_queue_size"] is None for row in tgi_rows):
        server.text(
            0.5, 0.5, "no TGI metrics", ha="center", va="center", transform=server.transAxes
        )
    else:
        handles = server.get_legend_handles_labels()
        extra = queue.get_legend_handles_labels()
        server.legend(
            handles[0] + extra[0], handles[1] + extra[1], loc="upper left", fontsize="small"
        )
    server.set_xlabel("seconds since the first sample")
    figure.savefig(path, format="png", dpi=100)


def _series(rows: list[dict[str, Any]], column: str, scale: float = 1.0) -> list[float]:
    """A column as numbers for matplotlib; gaps (None) become NaN."""
    return [float("nan") if row[column] is None else row[column] * scale for row in rows]


def _one_row_per_sample(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, result = set(), []
    for row in rows:
        if row["seconds"] not in seen:
            seen.add(row["seconds"])
            result.append(row)
    return result

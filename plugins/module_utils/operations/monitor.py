# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The monitor (haw.icc.gpu_monitor): TGI's GPUs and its own figures sampled over time, into a
CSV file and a plot.

The GPU figures come from nvidia-smi run in the TGI pod (exec through the API server) or from a
local command that prints the same CSV (nvidia_smi reads it); TGI's figures from /metrics through
the API server's service proxy (tgi_metrics reads them), both through ClusterApi. A sample is one
CSV row per GPU (one without GPU figures) with TGI's figures on each; the plot is drawn from the
same rows (monitor_plot).
"""

from __future__ import annotations

import csv
import os
import shlex
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import (
    ApiError,
    ClusterApi,
    proxy_path,
    resource_path,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import ENGINE_LABELS
from ansible_collections.haw.icc.plugins.module_utils.operations.monitor_plot import (
    MIB_PER_GIB,
    draw_plot,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.nvidia_smi import (
    parse_gpu_csv,
    query_command,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.tgi_metrics import (
    read_samples,
    tgi_server_figures,
    vllm_server_figures,
)

# The CSV file's columns: one row per sample and GPU (one row without GPU figures).
GPU_COLUMNS = {
    "utilization_percent": "utilization.gpu",
    "memory_used_mib": "memory.used",
    "memory_total_mib": "memory.total",
    "temperature_c": "temperature.gpu",
    "power_w": "power.draw",
    "power_limit_w": "power.limit",
}
TGI_COLUMNS = {
    "tgi_queue_size": "queue_size",
    "tgi_batch_size": "batch_size",
    "tgi_requests_total": "requests_total",
    "tgi_requests_succeeded": "requests_succeeded",
    "tgi_requests_failed": "requests_failed",
    "tgi_generated_tokens_total": "generated_tokens_total",
    "tgi_tokens_per_second": None,  # from two samples' generated tokens
    "tgi_mean_time_per_token_seconds": "mean_time_per_token_seconds",
}
COLUMNS = ("time", "seconds", "gpu", "gpu_name", *GPU_COLUMNS, *TGI_COLUMNS)
# By engine (icc_engine): how its /metrics become the figures of TGI_COLUMNS (a vLLM
# namespace's tgi_* columns hold vLLM's equivalents: waiting requests as the queue...).
ENGINE_FIGURES = {"tgi": tgi_server_figures, "vllm": vllm_server_figures}
EXEC_TIMEOUT = 30  # seconds nvidia-smi may take in the pod (it usually needs well under one)


class SourceProblem(Exception):
    """A source of figures that did not answer, in words."""


def gpu_command(value: Any) -> list[str] | None:
    """The local GPU command as argv, or None for the exec; ValueError saying what is wrong."""
    if value is None or value in ("", []):
        return None
    if isinstance(value, str):
        argv = shlex.split(value)
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        argv = list(value)
    else:
        raise ValueError("gpu_command must be a command line (a string) or a list of strings")
    if not argv:
        raise ValueError("gpu_command is empty")
    if not shutil.which(argv[0]):
        raise ValueError(f"gpu_command: {argv[0]} is not an executable file or on PATH")
    return argv


class Sampler:
    """Samples one namespace: GPUs and TGI, `samples` times, `interval` seconds apart.

    `show` gets a line per sample, `show_problem` each problem once (the action prints them).
    """

    def __init__(
        self,
        api: ClusterApi,
        args: dict[str, Any],
        command: list[str] | None,
        show: Callable[[str], None],
        show_problem: Callable[[str], None],
    ) -> None:
        self.api = api
        self.args = args
        self.namespace = args["namespace"]
        self.command = command
        self.show, self.show_problem = show, show_problem
        self.problems: list[str] = []
        self.exec_failed: str | None = None
        self.metrics_path = proxy_path(
            self.namespace, args["name"], args["service_port"], "/metrics"
        )
        engine = args.get("engine") or "tgi"
        self.engine, self.read_figures = ENGINE_LABELS[engine], ENGINE_FIGURES[engine]
        self.gpu_source = (
            f"command {shlex.join(command)}" if command else f"exec into the {self.engine} pod"
        )

    def run(self, directory: str) -> dict[str, Any]:
        """Samples into <directory>/<namespace>-<time>.csv, draws the plot beside it; returns
        the task's result (without msg)."""
        started = datetime.now(timezone.utc)  # noqa: UP017
        stem = os.path.join(directory, f"{self.namespace}-{started:%Y%m%dT%H%M%SZ}")
        csv_path, png_path = f"{stem}.csv", f"{stem}.png"
        rows: list[dict[str, Any]] = []
        previous: tuple[float, float] | None = None  # (seconds, generated tokens) before
        gpus_seen = 0
        clock = time.monotonic()
        with open(csv_path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            for number in range(1, self.args["samples"] + 1):
                _sleep_until(clock + (number - 1) * self.args["interval"])
                now = datetime.now(timezone.utc)  # noqa: UP017
                seconds = round((now - started).total_seconds(), 1)
                gpus = self._gpus()
                figures = self._figures()
                rate = None
                tokens = figures.get("generated_tokens_total") if figures else None
                if tokens is not None and previous and tokens >= previous[1]:
                    rate = (tokens - previous[1]) / max(seconds - previous[0], 0.1)
                if tokens is not None:
                    previous = (seconds, tokens)
                sample_rows = sample_rows_of(now, seconds, gpus, figures, rate)
                writer.writerows(csv_row(row) for row in sample_rows)
                handle.flush()
                rows.extend(sample_rows)
                gpus_seen = len(gpus) if gpus else gpus_seen
                line = describe(gpus, figures, rate, self.engine)
                self.show(f"sample {number}/{self.args['samples']}: {line}")
        result = dict(
            changed=True,  # it wrote files
            csv=csv_path,
            png=None,
            columns=list(COLUMNS),
            samples=self.args["samples"],
            gpus=gpus_seen,
            gpu_source=self.exec_failed or self.gpu_source,
            metrics_source=self.metrics_path,
            problems=self.problems,
        )
        if self.args["plot"]:
            try:
                draw_plot(png_path, rows, f"{self.namespace} from {started:%Y-%m-%d %H:%M:%S} UTC")
                result["png"] = png_path
            except ImportError:
                self._problem(
                    "no plot: matplotlib is missing on the controller (pip install matplotlib)"
                )
        return result

    # -- GPU figures -------------------------------------------------------------------------

    def _gpus(self) -> list[dict[str, Any]] | None:
        if self.exec_failed:
            return None
        pod = None
        try:
            if self.command is None:
                pod = self._tgi_pod()
                text = self._exec(pod)
            else:
                text = self._run_command()
            return parse_gpu_csv(text)
        except SourceProblem as problem:
            source = f"exec into pod {pod}" if pod else self.gpu_source
            self.exec_failed = f"{source} failed ({problem}); {self.engine} metrics only"
        except ValueError as error:
            self.exec_failed = (
                f"{self.gpu_source} gave no GPU figures ({error}); {self.engine} metrics only"
            )
        self._problem(f"GPU figures: {self.exec_failed}")
        return None

    def _tgi_pod(self) -> str:
        selector = f"app.kubernetes.io/name=tgi,app.kubernetes.io/instance={self.args['name']}"
        try:
            pods = self.api.list(
                resource_path("v1", "pods", self.namespace), {"labelSelector": selector}
            )
        except ApiError as error:
            raise SourceProblem(f"cannot list pods: {error}") from error
        running = [
            pod
            for pod in pods
            if (pod.get("status") or {}).get("phase") == "Running"
            and not pod["metadata"].get("deletionTimestamp")
        ]
        if not running:
            raise SourceProblem(f"no running {self.engine} pod ({selector})")
        # RFC 3339 times in UTC, as the API server writes them, sort as text.
        newest = max(running, key=lambda pod: pod["metadata"].get("creationTimestamp") or "")
        return newest["metadata"]["name"]

    def _exec(self, pod: str) -> str:
        try:
            done = self.api.exec(
                self.namespace, pod, query_command(), self.args["container"], EXEC_TIMEOUT
            )
        except ApiError as error:  # the API server's or the node's words, or why none came
            raise SourceProblem(error.said) from error
        if done.failure:
            stderr = done.stderr.strip()
            raise SourceProblem(f"{done.failure}{': ' + stderr if stderr else ''}")
        return done.stdout

    def _run_command(self) -> str:
        env = dict(os.environ, ICC_MONITOR_NAMESPACE=self.namespace, ICC_MONITOR_POD="")
        try:
            done = subprocess.run(
                self.command,
                capture_output=True,
                text=True,
                timeout=EXEC_TIMEOUT,
                env=env,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise SourceProblem(str(error)) from error
        if done.returncode != 0:
            first = (done.stderr or done.stdout).strip().splitlines()[:1]
            raise SourceProblem(f"exit status {done.returncode}{': ' + first[0] if first else ''}")
        return done.stdout

    # -- TGI's figures -----------------------------------------------------------------------

    def _figures(self) -> dict[str, Any] | None:
        args = self.args
        try:
            response = self.api.proxy(
                "GET", self.namespace, args["name"], args["service_port"], "/metrics"
            )
            if not response.ok:
                raise self.api.refusal(response)
            text = response.data.decode("utf-8", errors="replace")
            return self.read_figures(read_samples(text))
        except ApiError as error:  # a refusal, a timeout or a dropped connection: next sample
            self._problem(f"{self.engine} metrics: {self.metrics_path}: {error.said}")
        except ValueError as error:
            self._problem(
                f"{self.engine} metrics: {self.metrics_path} is not Prometheus text ({error})"
            )
        return None

    def _problem(self, message: str) -> None:
        """Says a problem once per namespace."""
        if message not in self.problems:
            self.problems.append(message)
            self.show_problem(message)


def _sleep_until(deadline: float) -> None:
    pause = deadline - time.monotonic()
    if pause > 0:
        time.sleep(pause)


def sample_rows_of(
    now: datetime,
    seconds: float,
    gpus: list[dict[str, Any]] | None,
    figures: dict[str, Any] | None,
    rate: float | None,
) -> list[dict[str, Any]]:
    """The CSV rows of one sample: one per GPU (one without GPU figures), TGI's on each."""
    common: dict[str, Any] = {"time": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "seconds": seconds}
    for column, key in TGI_COLUMNS.items():
        common[column] = (figures or {}).get(key) if key else rate
    rows = []
    for gpu in gpus or [None]:
        row = dict(common, gpu=None, gpu_name=None, **dict.fromkeys(GPU_COLUMNS))
        if gpu is not None:
            row.update(gpu=gpu.get("index"), gpu_name=gpu.get("name"))
            row.update({column: gpu.get(field) for column, field in GPU_COLUMNS.items()})
        rows.append(row)
    return rows


def csv_row(row: dict[str, Any]) -> dict[str, str]:
    return {column: _plain(row.get(column)) for column in COLUMNS}


def _plain(value: Any) -> str:
    """A cell: empty for None, numbers without exponent or trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


def describe(
    gpus: list[dict[str, Any]] | None,
    figures: dict[str, Any] | None,
    rate: float | None,
    engine: str = "TGI",
) -> str:
    """One sample in a line: each GPU's figures, then the inference server's (`engine`)."""
    parts = []
    for gpu in gpus or []:
        used, total = gpu.get("memory.used"), gpu.get("memory.total")
        memory = (
            f"{used / MIB_PER_GIB:.1f}/{total / MIB_PER_GIB:.1f} GiB"
            if used is not None and total is not None
            else "memory ?"
        )
        parts.append(
            f"GPU{gpu.get('index')} {_figure(gpu.get('utilization.gpu'), '%')} {memory} "
            f"{_figure(gpu.get('temperature.gpu'), ' C')} {_figure(gpu.get('power.draw'), ' W')}"
        )
    if not gpus:
        parts.append("no GPU figures")
    if figures is None:
        parts.append(f"no {engine} metrics")
    else:
        tokens = figures.get("generated_tokens_total")
        per_token = figures.get("mean_time_per_token_seconds")
        waiting, running = ("queue", "batch") if engine == "TGI" else ("waiting", "running")
        kv_cache = figures.get("kv_cache_usage_percent")
        parts.append(
            f"{engine} {waiting} {_figure(figures.get('queue_size'), '')}, "
            f"{running} {_figure(figures.get('batch_size'), '')}, "
            f"{_figure(figures.get('requests_total'), '')} requests, "
            f"{_figure(tokens, '')} tokens"
            + (f" ({rate:.1f}/s)" if rate is not None else "")
            + (f", {per_token * 1000:.1f} ms/token" if per_token is not None else "")
            + (f", KV cache {kv_cache:.0f}% used" if kv_cache is not None else "")
        )
    return "; ".join(parts)


def _figure(value: Any, unit: str) -> str:
    if value is None:
        return "?"
    return f"{value:.0f}{unit}" if isinstance(value, (int, float)) else f"{value}{unit}"

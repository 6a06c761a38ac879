# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""TGI's and vLLM's /metrics: the figures the monitor needs, out of Prometheus' text exposition
format.

The format is read by prometheus_client's parser (`text_string_to_metric_families`: HELP/TYPE
lines, escaped label values, `+Inf`/`NaN`, timestamps; histograms arrive as their
`_bucket`/`_sum`/`_count` samples). `tgi_server_figures` picks TGI's own figures out of the
samples (metric names from TGI's router: queue, requests, generated tokens, time per token,
batch); `vllm_server_figures` the same figures from vLLM's (0.14 v1/metrics/loggers.py: waiting
and running requests, finished requests, prompt and generation tokens, inter-token latency) and
its KV cache usage. No Ansible, no network.
"""

from __future__ import annotations

import math
from typing import Any

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as error:  # pragma: no cover - meta/ee-requirements.txt has it
    text_string_to_metric_families = None
    PROMETHEUS_CLIENT_ERROR: ImportError | None = error
else:
    PROMETHEUS_CLIENT_ERROR = None


def read_samples(text: str) -> list[Any]:
    """Every sample of a Prometheus text exposition (name, labels, value, timestamp in seconds),
    a counter's under its family's name.

    Raises ValueError saying what is wrong when `text` is not that format (an HTML error page,
    a line without a value...), ImportError without prometheus_client.
    """
    if text_string_to_metric_families is None:
        raise ImportError(
            "prometheus_client is needed on the Ansible controller to read TGI's /metrics "
            f"(pip install prometheus_client): {PROMETHEUS_CLIENT_ERROR}"
        )
    try:
        families = list(text_string_to_metric_families(text or ""))
    except (ValueError, TypeError, IndexError) as error:  # the parser's words, or none
        raise ValueError(str(error) or "a line is not a Prometheus sample") from None
    # The parser names a counter's samples <family>_total even where the text (TGI's) writes the
    # family's name alone: a counter's samples are named after their family here.
    return [
        sample._replace(name=family.name) if family.type == "counter" else sample
        for family in families
        for sample in family.samples
    ]


# Name in the result -> TGI metric whose samples are summed (over label sets, e.g. err=...).
_SUMMED = {
    "queue_size": "tgi_queue_size",
    "batch_size": "tgi_batch_current_size",
    "batch_max_tokens": "tgi_batch_current_max_tokens",
    "requests_total": "tgi_request_count",
    "requests_succeeded": "tgi_request_success",
    "requests_failed": "tgi_request_failure",
    "generated_tokens_total": "tgi_request_generated_tokens_sum",
    "input_tokens_total": "tgi_request_input_length_sum",
}
# Name in the result -> histogram whose mean (sum / count) it is, in the histogram's unit.
_MEANS = {
    "mean_time_per_token_seconds": "tgi_request_mean_time_per_token_duration",
    "mean_request_seconds": "tgi_request_duration",
    "mean_queue_seconds": "tgi_request_queue_duration",
}

TGI_FIGURES: tuple[str, ...] = (*_SUMMED, *_MEANS)


def tgi_server_figures(samples: list[Any]) -> dict[str, Any]:
    """TGI's figures from its /metrics samples; a metric TGI has not exported yet gives None.

    queue_size, batch_size and batch_max_tokens are gauges (now); requests_total,
    requests_succeeded, requests_failed (every `err` label), generated_tokens_total and
    input_tokens_total are counters since TGI started; mean_time_per_token_seconds,
    mean_request_seconds and mean_queue_seconds are means over all requests so far (histogram
    sum / count; None before the first request).
    """
    totals: dict[str, float] = {}
    for sample in samples:
        if not math.isnan(sample.value):
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    figures: dict[str, Any] = {key: totals.get(name) for key, name in _SUMMED.items()}
    for key, name in _MEANS.items():
        total, count = totals.get(f"{name}_sum"), totals.get(f"{name}_count")
        figures[key] = total / count if total is not None and count else None
    return figures


# The same figures from vLLM's metrics (vLLM's scheduler: waiting = TGI's queue, running = the
# batch; vLLM counts finished requests by reason, none of them as failed).
_VLLM_SUMMED = {
    "queue_size": "vllm:num_requests_waiting",
    "batch_size": "vllm:num_requests_running",
    "requests_total": "vllm:request_success",
    "requests_succeeded": "vllm:request_success",
    "generated_tokens_total": "vllm:generation_tokens",
    "input_tokens_total": "vllm:prompt_tokens",
    "kv_cache_usage_percent": "vllm:kv_cache_usage_perc",
}
_VLLM_MEANS = {"mean_time_per_token_seconds": "vllm:inter_token_latency_seconds"}


def vllm_server_figures(samples: list[Any]) -> dict[str, Any]:
    """vLLM's figures under TGI's names (None for a metric not exported yet), and its KV cache
    usage in percent (vLLM exports the fraction used)."""
    totals: dict[str, float] = {}
    for sample in samples:
        if not math.isnan(sample.value):
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    figures: dict[str, Any] = {key: totals.get(name) for key, name in _VLLM_SUMMED.items()}
    if figures["kv_cache_usage_percent"] is not None:
        figures["kv_cache_usage_percent"] *= 100
    for key, name in _VLLM_MEANS.items():
        total, count = totals.get(f"{name}_sum"), totals.get(f"{name}_count")
        figures[key] = total / count if total is not None and count else None
    return figures

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Prometheus' text exposition format, as TGI's /metrics serves it, and the figures monitor needs.

`parse_samples` reads the format (version 0.0.4, and the OpenMetrics `# EOF` line): comments and
HELP/TYPE lines are skipped, label values may hold escaped quotes, backslashes and newlines,
values may be `+Inf`, `-Inf` or `NaN`, and a sample may end with a timestamp. Histograms arrive
as their `_bucket`/`_sum`/`_count` samples. `tgi_server_figures` picks TGI's own figures out of
them (metric names from TGI's router: queue, requests, generated tokens, time per token, batch).
Pure logic: no Ansible, no network.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple


class Sample(NamedTuple):
    """One sample line: metric name, labels, value and the optional timestamp (ms)."""

    name: str
    labels: dict[str, str]
    value: float
    timestamp: int | None = None


_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


def parse_samples(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition, in order.

    Raises ValueError naming the line number and quoting the line when a line is not a sample.
    """
    samples = []
    for number, raw in enumerate((text or "").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            samples.append(_sample(line))
        except ValueError as error:
            raise ValueError(
                f"line {number} is not a Prometheus sample ({error}): {raw!r}"
            ) from None
    return samples


def _sample(line: str) -> Sample:
    match = _NAME.match(line)
    if not match:
        raise ValueError("no metric name")
    name, rest = match.group(), line[match.end() :]
    labels: dict[str, str] = {}
    if rest.startswith("{"):
        labels, rest = _labels(rest[1:])
    parts = rest.split()
    if not rest[:1].isspace() or not 1 <= len(parts) <= 2:
        raise ValueError("expected a value and at most a timestamp after the name")
    try:
        value = float(parts[0])
    except ValueError:
        raise ValueError(f"{parts[0]!r} is not a number") from None
    timestamp = None
    if len(parts) == 2:
        try:
            timestamp = int(float(parts[1]))
        except ValueError:
            raise ValueError(f"{parts[1]!r} is not a timestamp") from None
    return Sample(name, labels, value, timestamp)


def _labels(text: str) -> tuple[dict[str, str], str]:
    """The labels from just after `{`; returns them and the text after the closing `}`."""
    labels: dict[str, str] = {}
    position = 0
    while True:
        while position < len(text) and text[position] in " ,":
            position += 1
        if text[position : position + 1] == "}":
            return labels, text[position + 1 :]
        match = _LABEL_NAME.match(text, position)
        if not match:
            raise ValueError("bad label name")
        position = _skip_spaces(text, match.end())
        equals = text[position : position + 1] == "="
        position = _skip_spaces(text, position + 1) if equals else position
        if not equals or text[position : position + 1] != '"':
            raise ValueError(f'label {match.group()} is not followed by ="')
        value, position = _quoted(text, position + 1)
        labels[match.group()] = value
        position = _skip_spaces(text, position)
        if text[position : position + 1] not in (",", "}"):
            raise ValueError("labels are not separated by commas or closed by }")


def _skip_spaces(text: str, position: int) -> int:
    while text[position : position + 1] == " ":
        position += 1
    return position


def _quoted(text: str, position: int) -> tuple[str, int]:
    """A label value from just after its opening quote; returns it and the index after it."""
    chars = []
    while position < len(text):
        char = text[position]
        if char == '"':
            return "".join(chars), position + 1
        if char == "\\" and position + 1 < len(text):
            following = text[position + 1]
            chars.append(_ESCAPES.get(following, "\\" + following))
            position += 2
            continue
        chars.append(char)
        position += 1
    raise ValueError("unterminated label value")


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


def tgi_server_figures(samples: list[Sample]) -> dict[str, Any]:
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

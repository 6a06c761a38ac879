"""Prometheus text format -> samples (prometheus_client's parser) -> TGI's figures, on recorded
/metrics output."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations.tgi_metrics import (
    TGI_FIGURES,
    read_samples,
    tgi_server_figures,
    vllm_server_figures,
)

DATA = Path(__file__).parents[1] / "data"


class Sample(NamedTuple):
    """What the tests compare of a sample."""

    name: str
    labels: dict[str, str]
    value: float


def recorded(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("tgi_queue_size 3", Sample("tgi_queue_size", {}, 3.0)),
        ("tgi_queue_size 3 1772445600000", Sample("tgi_queue_size", {}, 3.0)),
        (
            'tgi_request_failure{err="validation"} 1',
            Sample("tgi_request_failure", {"err": "validation"}, 1.0),
        ),
        (
            'x_bucket{le="+Inf",method="decode"} 12',
            Sample("x_bucket", {"le": "+Inf", "method": "decode"}, 12.0),
        ),
        ('x{a="1",} 2', Sample("x", {"a": "1"}, 2.0)),  # trailing comma is allowed
        ('x{ a = "1" } 2', Sample("x", {"a": "1"}, 2.0)),
        ("x{} 2", Sample("x", {}, 2.0)),
        (
            r'x{path="C:\\data",msg="say \"hi\"\nbye"} 1',
            Sample("x", {"path": "C:\\data", "msg": 'say "hi"\nbye'}, 1.0),
        ),
        ('x{a="{b=c} ,"} 1', Sample("x", {"a": "{b=c} ,"}, 1.0)),
        ("x +Inf", Sample("x", {}, math.inf)),
        ("x -Inf", Sample("x", {}, -math.inf)),
        ("x 1.5e-3", Sample("x", {}, 0.0015)),
        ("ns:x_total\t7", Sample("ns:x_total", {}, 7.0)),
    ],
)
def test_sample_lines(line, expected):
    assert [Sample(s.name, s.labels, s.value) for s in read_samples(line)] == [expected]


def test_nan_is_a_value():
    (sample,) = read_samples("x NaN")
    assert math.isnan(sample.value)


def test_comments_help_type_blank_lines_and_eof_are_skipped():
    text = (
        "# HELP tgi_queue_size Current queue size\n"
        "# TYPE tgi_queue_size gauge\n"
        "\n"
        "   \n"
        "# just a comment with { and } 1\n"
        "tgi_queue_size 0\n"
        "# EOF\n"
    )
    assert [(s.name, s.value) for s in read_samples(text)] == [("tgi_queue_size", 0.0)]


def test_recorded_tgi_metrics_keep_histograms_as_bucket_sum_count():
    samples = read_samples(recorded("tgi_metrics.txt"))
    names = {sample.name for sample in samples}
    for part in ("_bucket", "_sum", "_count"):
        assert f"tgi_request_generated_tokens{part}" in names
    infinite = [
        s
        for s in samples
        if s.name == "tgi_request_generated_tokens_bucket" and s.labels["le"] == "+Inf"
    ]
    assert [s.value for s in infinite] == [12.0]


@pytest.mark.parametrize(
    "line",
    [
        "tgi_queue_size",
        "tgi_queue_size three",
        "tgi_queue_size 1 soon",
        'x{a="1" 2',
        'x{a="unterminated} 2',
        "x{a=1} 2",
        'x{a "1"} 2',
        'x{1a="b"} 2',
        "<html><body>404 page not found</body></html>",
    ],
)
def test_what_is_not_the_format_is_refused(line):
    with pytest.raises(ValueError, match=r"."):
        read_samples(f"# TYPE x gauge\nok 1\n{line}\n")


def test_a_refusal_without_words_of_the_parser_still_says_what_is_wrong():
    # prometheus_client refuses a line without a name with an empty ValueError.
    with pytest.raises(ValueError, match=r"^a line is not a Prometheus sample$"):
        read_samples("{} 2\n")


def test_figures_from_recorded_tgi_metrics():
    figures = tgi_server_figures(read_samples(recorded("tgi_metrics.txt")))
    assert set(figures) == set(TGI_FIGURES)
    assert figures["queue_size"] == 3
    assert figures["batch_size"] == 2
    assert figures["batch_max_tokens"] == 1184
    assert figures["requests_total"] == 14
    assert figures["requests_succeeded"] == 12
    assert figures["requests_failed"] == 2  # validation + overloaded
    assert figures["generated_tokens_total"] == 2283
    assert figures["input_tokens_total"] == 2718
    assert figures["mean_time_per_token_seconds"] == pytest.approx(0.3564 / 12)
    assert figures["mean_request_seconds"] == pytest.approx(51.96 / 12)
    assert figures["mean_queue_seconds"] == pytest.approx(0.0093 / 12)


def test_a_fresh_server_has_gauges_but_no_counters_or_means_yet():
    figures = tgi_server_figures(read_samples(recorded("tgi_metrics_fresh.txt")))
    assert figures["queue_size"] == 0
    assert figures["batch_size"] == 0
    for key in ("requests_total", "generated_tokens_total", "mean_time_per_token_seconds"):
        assert figures[key] is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        # A histogram with no observation yet: sum 0, count 0 -> no mean (not a division by 0).
        (
            "tgi_request_mean_time_per_token_duration_sum 0\n"
            "tgi_request_mean_time_per_token_duration_count 0\n",
            {"mean_time_per_token_seconds": None},
        ),
        ("tgi_queue_size NaN\n", {"queue_size": None}),
        ("tgi_request_success 4\nother_metric 9\n", {"requests_succeeded": 4.0}),
    ],
)
def test_figures_edge_cases(text, expected):
    figures = tgi_server_figures(read_samples(text))
    wanted = dict.fromkeys(TGI_FIGURES) | expected
    assert figures == wanted


# --- vLLM's /metrics ---------------------------------------------------------------------------

# As vLLM 0.14 exposes them (prometheus_client's text format 0.0.4: a counter's TYPE line and
# samples named <name>_total, its creation time a gauge <name>_created; labels engine and
# model_name), after 3 finished requests with 12 prompt and 30 generated tokens, one
# request running, two waiting, 42.5 % of the KV cache in use and an inter-token latency
# histogram of 27 gaps summing to 1.35 s.
VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="qwen"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="qwen"} 2.0
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="qwen"} 0.425
# TYPE vllm:prompt_tokens_total counter
vllm:prompt_tokens_total{engine="0",model_name="qwen"} 12.0
# TYPE vllm:prompt_tokens_created gauge
vllm:prompt_tokens_created{engine="0",model_name="qwen"} 1.7648e+09
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="qwen"} 30.0
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="qwen"} 2.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="qwen"} 1.0
vllm:request_success_total{engine="0",finished_reason="abort",model_name="qwen"} 0.0
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.1",model_name="qwen"} 27.0
vllm:inter_token_latency_seconds_bucket{engine="0",le="+Inf",model_name="qwen"} 27.0
vllm:inter_token_latency_seconds_count{engine="0",model_name="qwen"} 27.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="qwen"} 1.35
"""


def test_vllms_figures_under_tgis_names():
    figures = vllm_server_figures(read_samples(VLLM_METRICS))
    assert figures == {
        "queue_size": 2.0,
        "batch_size": 1.0,
        "requests_total": 3.0,
        "requests_succeeded": 3.0,
        "generated_tokens_total": 30.0,
        "input_tokens_total": 12.0,
        "kv_cache_usage_percent": 42.5,
        "mean_time_per_token_seconds": pytest.approx(1.35 / 27),
    }


def test_a_fresh_vllm_has_no_figures_yet():
    figures = vllm_server_figures(read_samples(""))
    assert set(figures.values()) == {None}

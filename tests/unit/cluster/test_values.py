"""Kubernetes value checks shared by the roles and playbooks (module_utils/k8s_values)."""

from __future__ import annotations

import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    KINDS,
    duration_seconds,
    is_dns1123_label,
    is_quantity,
    quantity_times,
    quantity_value,
    value_errors,
)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("wabc123-default", True),
        ("a", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("Bad_Namespace", False),
        ("-x", False),
        ("x-", False),
        ("", False),
        ("ok\n", False),  # `$` alone would match before the line break
        (None, False),
    ],
)
def test_dns1123_labels(value, ok):
    assert is_dns1123_label(value) is ok


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("50Gi", True),
        ("500m", True),
        ("2", True),
        ("1.5Gi", True),
        ("1e3", True),
        ("+1Gi", True),
        (2, True),
        ("-5Gi", False),
        ("lots", False),
        ("0", False),
        ("5GB", False),
        ("8Gi\n", False),
        (" 8Gi", False),  # parse_quantity alone accepts it; the API server does not
        ("1_000", False),
        (0, False),
        (True, False),
        (None, False),
    ],
)
def test_quantities(value, ok):
    assert is_quantity(value) is ok


@pytest.mark.parametrize(
    ("text", "amount"),
    [
        # By hand: Ki = 2**10, Mi = 2**20, Gi = 2**30, Ei = 2**60; k = 10**3, G = 10**9, m = 10**-3.
        ("8Gi", Decimal(8 * 2**30)),
        ("1.5Mi", Decimal(3 * 2**19)),
        ("7Ei", Decimal(7 * 2**60)),
        ("2k", Decimal(2000)),
        ("3G", Decimal(3 * 10**9)),
        ("1E", Decimal(10**18)),  # exa, not an exponent
        ("500m", Decimal("0.5")),
        ("1e3", Decimal(1000)),  # an exponent
        ("-2Ki", Decimal(-2048)),
        ("12", Decimal(12)),
        (4, Decimal(4)),
        ("8K", None),  # decimal kilo is k
        ("5ki", None),
    ],
)
def test_quantity_value_scales_by_the_suffix(text, amount):
    assert quantity_value(text) == amount


def test_quantity_times_keeps_the_unit_and_refuses_nonsense():
    assert quantity_times("1Gi", 4) == "4Gi"
    assert quantity_times("1.5Gi", 2) == "3Gi"
    with pytest.raises(ValueError, match="not a positive Kubernetes quantity"):
        quantity_times("lots", 2)


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        ("dns_label", ["wabc123-default"], ["Bad_Namespace", "a" * 64, "x\n"]),
        ("dns1035_label", ["tgi", "open-webui"], ["1tgi", "Tgi", "tgi-"]),
        ("dns_subdomain", ["tgi-api-key", "a.b-c"], ["Tgi", "a..b", "x" * 254, "-a"]),
        (
            "ingress_host",
            ["llm.example.org", "*.example.org", "localhost"],
            ["my host", "LLM.example.org", "10.0.0.1", "a_b.example.org", "x.org\n"],
        ),
        ("port", [1, 80, 65535], [0, 70000, -1, True, "80"]),
        ("secret_value", ["abc123", "hf_XyZ-._~"], ["a b", "key\n", "", "tab\t"]),
        ("password", ["correct horse battery", "p@ss"], ["line\nbreak", ""]),
        (
            "image",
            ["ghcr.io/open-webui/open-webui:v0.11.0", "busybox", "r.io/x@sha256:" + "a" * 64],
            ["Busybox", "img with space", "img:\n"],
        ),
    ],
)
def test_each_kind_accepts_what_kubernetes_accepts(kind, good, bad):
    check, _rule = KINDS[kind]
    assert [value for value in good if not check(value)] == []
    assert [value for value in bad if check(value)] == []


def test_value_errors_name_each_bad_variable_and_hide_secret_values():
    errors = value_errors(
        {
            "icc_namespace": "Bad_Namespace",
            "tgi_name": "tgi",
            "tgi_cache_size": "-5Gi",
            "tgi_api_key": "s3cret value",
            "tgi_ingress_host": None,  # unset: not checked
        },
        {
            "icc_namespace": "dns_label",
            "tgi_name": "dns1035_label",
            "tgi_cache_size": "quantity",
            "tgi_api_key": "secret_value",
            "tgi_ingress_host": "ingress_host",
        },
        secret=frozenset({"tgi_api_key"}),
    )
    assert len(errors) == 3
    assert errors[0].startswith("icc_namespace: 'Bad_Namespace' is not allowed: a DNS-1123 label")
    assert errors[1].startswith("tgi_cache_size: '-5Gi' is not allowed: a positive Kubernetes")
    assert errors[2].startswith("tgi_api_key: its value is not allowed")
    assert "s3cret" not in " ".join(errors)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("15m", 900), ("2h", 7200), ("1h30m", 5400), (" 5m ", 300)],
)
def test_a_duration_in_seconds(text, seconds):
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "15 m", "1d", "-5s", "0", "m"])
def test_what_is_no_duration(text):
    assert duration_seconds(text) is None


@pytest.mark.parametrize(
    "text", ["8Gi", "512Mi", "1.5Gi", "100m", "2", "1e3", "3k", "4M", "0.5", "1Ki", "2Ti", "7E"]
)
def test_quantities_are_read_by_the_kubernetes_library(text):
    from kubernetes.utils import parse_quantity

    assert quantity_value(text) == Decimal(parse_quantity(text))


def test_reading_quantities_does_not_load_the_kubernetes_client():
    # A run refused by the typing of its settings sends no request: it must not pay for the
    # client's import (about 0.3 s of a 0.8 s run; benchmarks/run.py, refused scale).
    collections = Path(__file__).resolve().parents[3] / "playbooks" / "collections"
    script = (
        "import sys\n"
        "from ansible_collections.haw.icc.plugins.module_utils.cluster import values\n"
        "assert values.quantity_value('8Gi') == 8 * 1024**3\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] == 'kubernetes'))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "PYTHONPATH": str(collections)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert run.stdout.strip() == "[]"

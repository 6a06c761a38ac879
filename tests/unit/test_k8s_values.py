"""Kubernetes value checks shared by the roles and playbooks (module_utils/k8s_values)."""

from __future__ import annotations

import pytest
from ansible_collections.haw.icc.plugins.module_utils.k8s_values import (
    is_dns1123_label,
    is_quantity,
    quantity_times,
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
        (2, True),
        ("-5Gi", False),
        ("lots", False),
        ("0", False),
        ("5GB", False),
        (0, False),
        (True, False),
        (None, False),
    ],
)
def test_quantities(value, ok):
    assert is_quantity(value) is ok


def test_quantity_times_keeps_the_unit_and_refuses_nonsense():
    assert quantity_times("1Gi", 4) == "4Gi"
    assert quantity_times("1.5Gi", 2) == "3Gi"
    with pytest.raises(ValueError, match="not a positive Kubernetes quantity"):
        quantity_times("lots", 2)


def test_value_errors_name_each_bad_variable_once():
    errors = value_errors(
        {"icc_namespace": "Bad_Namespace", "tgi_name": "tgi"},
        {"tgi_cache_size": "-5Gi", "tgi_cpu_request": "2"},
    )
    assert len(errors) == 2
    assert errors[0].startswith("icc_namespace: 'Bad_Namespace' is not a DNS-1123 label")
    assert errors[1].startswith("tgi_cache_size: '-5Gi' is not a positive Kubernetes quantity")
    assert value_errors({"icc_namespace": "ok"}) == []

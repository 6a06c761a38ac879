# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filters for Kubernetes values (see plugins/module_utils/k8s_values.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.haw.icc.plugins.module_utils.k8s_values import (
    quantity_times,
    value_errors,
)


def k8s_quantity_times(value, factor):
    try:
        return quantity_times(value, factor)
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from error


def k8s_value_errors(labels, quantities=None):
    return value_errors(labels, quantities)


class FilterModule:
    def filters(self):
        return {"k8s_quantity_times": k8s_quantity_times, "k8s_value_errors": k8s_value_errors}

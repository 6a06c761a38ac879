# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Jinja tests for Kubernetes values (see plugins/module_utils/k8s_values.py)."""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils.k8s_values import (
    is_dns1123_label,
    is_quantity,
)


class TestModule:
    def tests(self):
        return {"dns1123_label": is_dns1123_label, "k8s_quantity": is_quantity}

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filters for Kubernetes values (see plugins/module_utils/cluster/values.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    SECRET_VERSIONS_ANNOTATION,
    duration_seconds,
    secret_versions,
    value_errors,
)


def k8s_value_errors(values, kinds):
    try:
        return value_errors(values, kinds)
    except KeyError as error:
        raise AnsibleFilterError(f"k8s_value_errors: unknown kind {error}") from error


def k8s_secret_versions(versions, names):
    """The pod template annotation that rolls the pods when one of the Secrets `names` changes."""
    return {SECRET_VERSIONS_ANNOTATION: secret_versions(versions or {}, list(names))}


class FilterModule:
    def filters(self):
        return {
            "k8s_value_errors": k8s_value_errors,
            "k8s_secret_versions": k8s_secret_versions,
            "duration_seconds": duration_seconds,
        }

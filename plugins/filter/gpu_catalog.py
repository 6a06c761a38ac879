# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The GPU catalog, with a user's extra entries merged in (see module_utils/gpu/catalog.py)."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import merged_catalog


def gpu_catalog(extra=None):
    try:
        return merged_catalog(extra or None)
    except (TypeError, ValueError) as error:
        raise AnsibleFilterError(str(error)) from error


class FilterModule:
    def filters(self):
        return {"gpu_catalog": gpu_catalog}

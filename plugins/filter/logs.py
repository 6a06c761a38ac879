# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filter of logs.yml: the known failures in TGI's log, with their fix (module_utils/tgi_logs)."""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils import tgi_logs


def tgi_log_failures(lines):
    """One line per known failure: what, why, the fix, and the log line it was seen in."""
    return [
        f"{failure['kind']}: {failure['cause']} Fix: {failure['fix']} "
        f"(seen: {failure['line'].strip()})"
        for failure in tgi_logs.known_failures(list(lines or []))
    ]


class FilterModule:
    def filters(self):
        return {"tgi_log_failures": tgi_log_failures}

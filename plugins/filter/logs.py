# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filters of logs.yml: its options, and the known failures in TGI's log with their fix."""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils import tgi_logs
from ansible_collections.haw.icc.plugins.module_utils.log_options import (
    log_option_errors,
    seconds,
)


def tgi_log_failures(lines):
    return tgi_logs.known_failures(list(lines or []))


def failure_text(failure):
    """One known failure in a line: what, why, the fix, and the log line it was seen in."""
    seen = failure["line"].strip()
    return f"{failure['kind']}: {failure['cause']} Fix: {failure['fix']} (seen: {seen})"


class FilterModule:
    def filters(self):
        return {
            "log_option_errors": log_option_errors,
            "seconds": seconds,
            "tgi_log_failures": tgi_log_failures,
            "failure_text": failure_text,
        }

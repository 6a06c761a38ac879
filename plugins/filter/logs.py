# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filters of logs.yml: the known failures in TGI's, vLLM's and Open WebUI's logs, with their
fix."""

from __future__ import annotations

import json
import re

from ansible_collections.haw.icc.plugins.module_utils.operations import (
    open_webui_logs,
    tgi_logs,
    vllm_logs,
)

# The Status object's message inside the client's exception text: "...HTTP response body:
# {"kind":"Status",...,"message":"previous terminated container ... not found",...}".
_MESSAGE = re.compile(r'"message":\s*("(?:[^"\\]|\\.)*")')


def _described(failures):
    """One line per known failure: what, why, the fix, and the log line it was seen in."""
    return [
        f"{failure['kind']}: {failure['cause']} Fix: {failure['fix']} "
        f"(seen: {failure['line'].strip()})"
        for failure in failures
    ]


def tgi_log_failures(lines):
    return _described(tgi_logs.known_failures(list(lines or [])))


def vllm_log_failures(lines):
    return _described(vllm_logs.vllm_failures(list(lines or [])))


def open_webui_log_failures(lines):
    return _described(open_webui_logs.open_webui_failures(list(lines or [])))


def log_read_problem(result):
    """Why kubernetes.core.k8s_log read nothing, in the API server's words (its Status message),
    for a loop item registered with failed_when: false."""
    text = str(result.get("msg") or "")
    found = _MESSAGE.search(text)
    if found:
        return json.loads(found.group(1))
    if text:
        return text.splitlines()[0]
    return "no pod found (is it deployed? ansible-playbook haw.icc.status)"


class FilterModule:
    def filters(self):
        return {
            "tgi_log_failures": tgi_log_failures,
            "vllm_log_failures": vllm_log_failures,
            "open_webui_log_failures": open_webui_log_failures,
            "log_read_problem": log_read_problem,
        }

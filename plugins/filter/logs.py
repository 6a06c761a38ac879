# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Filter of logs.yml: the known failures in TGI's log, with their fix (module_utils/tgi_logs)."""

from __future__ import annotations

import json
import re

from ansible_collections.haw.icc.plugins.module_utils import tgi_logs

# The Status object's message inside the client's exception text: "...HTTP response body:
# {"kind":"Status",...,"message":"previous terminated container ... not found",...}".
_MESSAGE = re.compile(r'"message":\s*("(?:[^"\\]|\\.)*")')


def tgi_log_failures(lines):
    """One line per known failure: what, why, the fix, and the log line it was seen in."""
    return [
        f"{failure['kind']}: {failure['cause']} Fix: {failure['fix']} "
        f"(seen: {failure['line'].strip()})"
        for failure in tgi_logs.known_failures(list(lines or []))
    ]


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
        return {"tgi_log_failures": tgi_log_failures, "log_read_problem": log_read_problem}

"""Polling with a deadline, for tests that wait on the cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client


def wait_until(
    probe: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.25,
    explain: Callable[[], str] | None = None,
) -> Any:
    """Polls `probe` until it returns something truthy without raising; fails with `what`.

    `explain` adds what the cluster looked like at the time-out, so a failure can be diagnosed.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = probe()
        except client.ApiException as error:
            result, last_error = None, error
        if result:
            return result
        time.sleep(interval)
    detail = f": {last_error}" if last_error else ""
    if explain is not None:
        detail += f"\n{explain()}"
    pytest.fail(f"timed out after {timeout}s waiting for {what}{detail}")

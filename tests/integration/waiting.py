"""Polling with a deadline, for tests that wait on the cluster."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client


def wait_until(probe: Callable[[], Any], timeout: float, what: str, interval: float = 0.25) -> Any:
    """Polls `probe` until it returns something truthy without raising; fails with `what`."""
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
    pytest.fail(
        f"timed out after {timeout}s waiting for {what}" + (f": {last_error}" if last_error else "")
    )

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The base of the collection's action plugins: they all run on the controller only."""

from __future__ import annotations

from typing import Any

from ansible.plugins.action import ActionBase


class ControllerAction(ActionBase):
    """No connection to a host, check mode supported, one failure shape."""

    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True
    _supports_async = False

    @staticmethod
    def _fail(result: dict[str, Any], message: str) -> dict[str, Any]:
        result["failed"] = True
        result["msg"] = message
        return result

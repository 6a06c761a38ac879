# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The options of logs.yml, checked before anything is read: one line per problem."""

from __future__ import annotations

import re
from typing import Any, List, Mapping  # noqa: UP035

APPS = ("tgi", "webui", "open-webui", "both")
BOOLEANS = ("true", "false", "yes", "no", "on", "off", "1", "0")
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def seconds(text: Any) -> int | None:
    """`90`, `90s`, `15m`, `2h`, `1h30m` as seconds; None when it is not such a duration."""
    value = str(text).strip()
    match = _DURATION.match(value)
    if not value or not match or not any(match.groups()):
        return None
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs


def log_option_errors(options: Mapping[str, Any]) -> List[str]:  # noqa: UP006
    errors = []
    if str(options.get("app")) not in APPS:
        errors.append(f"icc_logs_app: {options.get('app')!r} is not one of {', '.join(APPS)}")
    tail = str(options.get("tail")).strip()
    if not tail.isdigit() or int(tail) < 1:
        errors.append(f"icc_logs_tail: {options.get('tail')!r} is not a whole number of lines >= 1")
    since = options.get("since")
    if since not in (None, "") and not seconds(since):
        errors.append(f"icc_logs_since: {since!r} is not a duration such as 90s, 15m, 2h or 1h30m")
    if str(options.get("previous")).strip().lower() not in BOOLEANS:
        errors.append(f"icc_logs_previous: {options.get('previous')!r} is not true or false")
    return errors

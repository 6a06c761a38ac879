# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What the cluster and a container said, reduced to one line: the events about an object (the
newest warning of a kind), the line of a container's output that says what went wrong, and the
conditions and clocks of an object's status. pod_progress builds a pod's line from these.

Pure functions over plain dicts as the Kubernetes API returns them (camelCase keys). No Ansible,
no I/O.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any, Dict  # noqa: UP035

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import parse_time

MAX_LINE = 300
MAX_DETAIL = 4000

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_LOG_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?\s+")
# The last line of a Python traceback: `RuntimeError: ...`, `torch.OutOfMemoryError: ...`.
_PY_EXCEPTION = re.compile(r"^[A-Za-z_][\w.]*(?:Error|Exception|Interrupt)\b:?")

# typing.Dict: this alias is evaluated at import, and modules may run on Python 3.8 targets.
JSON = Dict[str, Any]  # noqa: UP006


def seconds_since(moment: datetime | None, now: datetime) -> float | None:
    return None if moment is None else (now - moment).total_seconds()


def first_useful_line(message: str | None) -> str:
    """The line of a container's last output that says what went wrong.

    The last Python exception of a traceback wins (`RuntimeError: ...`), then a command-line
    parser's `error: ...`, then the first line mentioning an error, then the first line at all.
    ANSI colours and leading log timestamps are removed.
    """
    if not message:
        return ""
    lines = []
    for raw in message.splitlines():
        line = _LOG_TIMESTAMP.sub("", _ANSI.sub("", raw)).strip()
        if line:
            lines.append(line)
    if not lines:
        return ""
    exceptions = [line for line in lines if _PY_EXCEPTION.match(line)]
    if exceptions:
        return clip(exceptions[-1])
    for line in lines:
        if line.startswith("error:"):
            return clip(line)
    for line in lines:
        if re.search(r"\berror\b", line, re.IGNORECASE):
            return clip(line)
    return clip(lines[0])


def clip(text: str, limit: int = MAX_LINE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def clip_detail(text: str) -> str:
    text = _ANSI.sub("", text or "").strip()
    return text if len(text) <= MAX_DETAIL else "…" + text[-(MAX_DETAIL - 1) :]


def status_condition(status: JSON, kind: str) -> JSON:
    for condition in status.get("conditions") or []:
        if condition.get("type") == kind:
            return condition
    return {}


def _event_time(event: JSON) -> datetime | None:
    series = event.get("series") or {}
    for value in (
        series.get("lastObservedTime"),
        event.get("lastTimestamp"),
        event.get("deprecatedLastTimestamp"),
        event.get("eventTime"),
        event.get("firstTimestamp"),
        (event.get("metadata") or {}).get("creationTimestamp"),
    ):
        moment = parse_time(value)
        if moment is not None:
            return moment
    return None


def _about(event: JSON) -> JSON:
    return event.get("involvedObject") or event.get("regarding") or {}


def event_message(event: JSON) -> str:
    return clip(event.get("message") or event.get("note") or "")


def events_for(obj: JSON, events: list[JSON]) -> list[JSON]:
    """The events about one object, oldest first (matched by uid, else by kind and name)."""
    meta = obj.get("metadata") or {}
    uid, name = meta.get("uid"), meta.get("name")
    kind = obj.get("kind") or "Pod"
    mine = []
    for event in events or []:
        about = _about(event)
        if uid and about.get("uid"):
            if about["uid"] == uid:
                mine.append(event)
        elif about.get("name") == name and about.get("kind", kind) == kind:
            mine.append(event)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)  # noqa: UP017
    return sorted(mine, key=lambda event: _event_time(event) or epoch)


def latest_warning(
    events: list[JSON],
    reasons: tuple[str, ...],
    after: datetime | None = None,
    container: str | None = None,
    skip: re.Pattern[str] | None = None,
) -> JSON | None:
    """The newest Warning event with one of `reasons`, not older than `after`.

    Events about another container, or whose message matches `skip`, are passed over.
    """
    for event in reversed(events):
        if event.get("type", "Warning") != "Warning" or event.get("reason") not in reasons:
            continue
        if skip is not None and skip.match(event_message(event)):
            continue
        moment = _event_time(event)
        if after is not None and moment is not None and moment < after:
            continue
        path = _about(event).get("fieldPath") or ""
        if container and path and "{" + container + "}" not in path:
            continue
        return event
    return None

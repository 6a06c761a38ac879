# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""A whole course at a glance: each namespace's status (deployment_status's result, diagnosis
included) as one table row, the aligned table status.yml prints, and the JSON document it writes
(icc_status_file). No Ansible, no I/O.
"""

from __future__ import annotations

from typing import Any, Dict  # noqa: UP035

JSON = Dict[str, Any]  # noqa: UP006
TABLE_COLUMNS = ("NAMESPACE", "TGI", "MODEL", "GPUS", "OPEN WEBUI", "PROBLEM")


def status_row(status: JSON) -> JSON:
    """One namespace's status (the deployment_status module's result) as a table row."""
    if not status.get("tgi"):  # the namespace's play failed before its status was read
        return {
            "namespace": status.get("namespace", "?"),
            "tgi": "unknown",
            "model": "",
            "gpus": "",
            "open_webui": "unknown",
            "problem": status.get("error") or "status not read (see the errors above)",
        }
    tgi, webui = status["tgi"], status.get("open_webui") or {}
    gpu = tgi.get("gpu") or {}
    problem = next(
        (
            f"{app.get('problem')}: {app.get('cause')}"
            for app in (tgi, webui)
            if app and app.get("state") != "ready"
        ),
        "",
    )
    return {
        "namespace": status.get("namespace", "?"),
        "tgi": tgi.get("state", "?"),
        # A vLLM namespace says so beside its model; a TGI namespace's row is as it always was.
        "model": (tgi.get("model") or "") + (" (vLLM)" if tgi.get("engine") == "vllm" else ""),
        "gpus": f"{gpu.get('count')} x {gpu.get('type')}" if gpu.get("count") else "",
        "open_webui": webui.get("state", "?"),
        "problem": problem,
    }


def status_table(statuses: list[JSON], width: int = 60) -> list[str]:
    """Aligned text lines, one per namespace, the problem clipped to `width` characters."""
    rows = [status_row(status) for status in statuses]
    cells = [list(TABLE_COLUMNS)] + [
        [
            row["namespace"],
            row["tgi"],
            row["model"],
            row["gpus"],
            row["open_webui"],
            row["problem"] if len(row["problem"]) <= width else row["problem"][: width - 1] + "…",
        ]
        for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(TABLE_COLUMNS))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in cells
    ]


def status_document(statuses: list[JSON], generated: str) -> JSON:
    """The status of every namespace as one JSON document (icc_status_file)."""
    namespaces = {}
    for status in statuses:
        name = status.get("namespace", "?")
        namespaces[name] = {
            "healthy": bool(status.get("healthy")),
            "row": status_row(status),
            "tgi": status.get("tgi") or None,
            "open_webui": status.get("open_webui") or None,
            "warnings": list(status.get("warnings") or []),
            "error": status.get("error"),
        }
    return {"generated": generated, "namespaces": namespaces}

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""A whole course at a glance: each namespace's status (deployment_status's result, diagnosis
included) as one table row, the aligned table status.yml prints, the JSON document it writes
(icc_status_file) and the self-contained HTML page (icc_status_html). No Ansible, no I/O.
"""

from __future__ import annotations

import html
from typing import Any, Dict  # noqa: UP035

from ansible_collections.haw.icc.plugins.module_utils.operations.diagnosis import HEALTHY_STATES

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
            for app in (tgi, status.get("idle_proxy") or {}, webui)
            if app and app.get("state") not in HEALTHY_STATES
        ),
        f"the last wake failed at {tgi['wake_problem']}" if tgi.get("wake_problem") else "",
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


# --- the course page (icc_status_html) ------------------------------------------------------------

_STATE_COLOURS = {
    "ready": "#1b7f3b",
    "asleep": "#4a5bbf",
    "starting": "#9a6b00",
    "downloading": "#9a6b00",
    "pending": "#b3471d",
    "failed": "#b3261e",
    "absent": "#6b6b6b",
    "unknown": "#6b6b6b",
}
_PAGE_STYLE = """
body{font:15px/1.4 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1c1c1c}
h1{font-size:22px;margin:0 0 4px}p.when{color:#555;margin:0 0 16px}
.totals{display:flex;gap:16px;margin:0 0 18px}.total{border:1px solid #ccc;border-radius:6px;
padding:8px 14px}.total b{display:block;font-size:22px}
table{border-collapse:collapse;width:100%}th,td{border-bottom:1px solid #ddd;padding:6px 8px;
text-align:left;vertical-align:top}th{background:#f3f3f3}
.state{color:#fff;border-radius:4px;padding:1px 7px;font-weight:600;font-size:13px}
.fix{color:#333;font-size:13px}.none{color:#888}
"""


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return html.escape(text) if text else '<span class="none">-</span>'


# States whose pod is on a node and so holds its GPUs (a crash-looping pod keeps them too;
# a pending one has none yet).
HOLDING_STATES = ("ready", "starting", "downloading", "failed")


def course_totals(statuses: list[JSON]) -> JSON:
    """The course's GPUs: held by servers whose pod is on a node, and those given back by
    servers asleep."""
    held = asleep = 0
    for status in statuses:
        tgi = status.get("tgi") or {}
        count = int((tgi.get("gpu") or {}).get("count") or 0)
        if tgi.get("state") == "asleep":
            asleep += count
        elif tgi.get("state") in HOLDING_STATES:
            held += count
    return {"namespaces": len(statuses), "gpus_held": held, "gpus_asleep": asleep}


def course_page(statuses: list[JSON], generated: str) -> str:
    """One self-contained HTML page for the whole course (no script, no stylesheet or font from
    elsewhere): a row per namespace with its state, engine, model, GPUs, node, times, tokens and
    problem with its fix, and the course's GPU totals."""
    totals = course_totals(statuses)
    rows = []
    for status in statuses:
        row, tgi = status_row(status), status.get("tgi") or {}
        state = row["tgi"]
        colour = _STATE_COLOURS.get(state, "#6b6b6b")
        gpu = tgi.get("gpu") or {}
        gpus = f"{gpu.get('count')} x {gpu.get('type')}" if gpu.get("count") else ""
        fixes = next(
            (app.get("fix") or [] for app in (tgi, status.get("open_webui") or {})
             if app and app.get("state") not in HEALTHY_STATES),
            [],
        )  # fmt: skip
        problem = _cell(row["problem"])
        if fixes:
            problem += "".join(f'<div class="fix">fix: {html.escape(fix)}</div>' for fix in fixes)
        rows.append(
            "<tr>"
            f"<td>{_cell(row['namespace'])}</td>"
            f'<td><span class="state" style="background:{colour}">{html.escape(state.upper())}'
            "</span></td>"
            f"<td>{_cell(tgi.get('engine'))}</td>"
            f"<td>{_cell(tgi.get('model'))}</td>"
            f"<td>{_cell(gpus)}</td>"
            f"<td>{_cell(tgi.get('node'))}</td>"
            f"<td>{_cell(tgi.get('asleep_since'))}</td>"
            f"<td>{_cell(tgi.get('last_request'))}</td>"
            f"<td>{_cell(tgi.get('generated_tokens'))}</td>"
            f"<td>{_cell(row['open_webui'])}</td>"
            f"<td>{problem}</td>"
            "</tr>"
        )
    heads = (
        "Namespace", "State", "Engine", "Model", "GPUs", "Node", "Idle since", "Last request",
        "Tokens generated", "Open WebUI", "Problem",
    )  # fmt: skip
    header = "".join(f"<th>{name}</th>" for name in heads)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>haw.icc course status</title>"
        f"<style>{_PAGE_STYLE}</style></head><body>"
        "<h1>Course status</h1>"
        f'<p class="when">{totals["namespaces"]} namespaces, read {html.escape(generated)}</p>'
        '<div class="totals">'
        f'<div class="total" id="gpus-held"><b>{totals["gpus_held"]}</b>GPUs held</div>'
        f'<div class="total" id="gpus-asleep"><b>{totals["gpus_asleep"]}</b>GPUs given back '
        "(asleep)</div></div>"
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "</body></html>\n"
    )

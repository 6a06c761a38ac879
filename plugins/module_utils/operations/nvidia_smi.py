# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""nvidia-smi's query CSV: the command that asks for it and the parser of what it prints.

`nvidia-smi --query-gpu=<fields> --format=csv,nounits` prints a header line naming the fields,
each followed by its unit in brackets when it has one (`memory.used [MiB]`), and one line per GPU
with the values in the same order, separated by ", ". Values nvidia-smi cannot read on a GPU are
`[N/A]` or `[Not Supported]`. Without `nounits` the values carry the unit too (`1234 MiB`); the
parser accepts both. Pure logic: no Ansible, no subprocess.
"""

from __future__ import annotations

import re
from typing import Any

# What monitor.yml samples per GPU, in the order of its CSV columns.
GPU_QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "name",
    "uuid",
    "driver_version",
    "utilization.gpu",
    "memory.used",
    "memory.total",
    "temperature.gpu",
    "power.draw",
    "power.limit",
)

# Fields whose values are text; every other field is a number (or None when not available).
TEXT_FIELDS = frozenset(
    {
        "name",
        "uuid",
        "driver_version",
        "pci.bus_id",
        "serial",
        "vbios_version",
        "pstate",
        "compute_mode",
        "persistence_mode",
        "display_mode",
        "display_active",
        "timestamp",
        "mig.mode.current",
        "mig.mode.pending",
    }
)
# Fields that count things: whole numbers.
INTEGER_FIELDS = frozenset({"index", "count", "fan.speed"})

# What nvidia-smi prints instead of a value it cannot read.
_UNAVAILABLE = frozenset(
    {
        "[n/a]",
        "n/a",
        "[not supported]",
        "not supported",
        "[unknown error]",
        "[gpu requires reset]",
        "[insufficient permissions]",
        "[gpu is lost]",
        "",
    }
)
# One header cell: a field name, optionally followed by its unit in brackets.
_HEADER_CELL = re.compile(r"^(?P<field>[a-z][a-z0-9_.]*)(?:\s+\[(?P<unit>[^\]]+)\])?$")


def query_command(fields: tuple[str, ...] = GPU_QUERY_FIELDS) -> list[str]:
    """The argv that prints `fields` for every GPU as CSV, with a header and without units."""
    return ["nvidia-smi", f"--query-gpu={','.join(fields)}", "--format=csv,nounits"]


def parse_gpu_csv(text: str) -> list[dict[str, Any]]:
    """One dict per GPU from nvidia-smi's query CSV (with header).

    Keys are the header's field names; numbers are int (index, count, fan.speed) or float, text
    fields stay strings, unavailable values are None. Each dict has `units`: field -> unit for
    the fields whose header names one (`{"memory.used": "MiB", "power.draw": "W", ...}`).

    Raises ValueError quoting the first line when `text` is not that CSV (for example
    `nvidia-smi: command not found` or an NVML error), and naming the line when a row does not
    match the header.
    """
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not lines:
        raise ValueError("nvidia-smi printed nothing (expected its CSV with a header line)")
    fields, units = _header(lines[0])
    gpus = []
    for number, line in enumerate(lines[1:], start=2):
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != len(fields):
            raise ValueError(
                f"line {number} of nvidia-smi's CSV has {len(cells)} values for "
                f"{len(fields)} fields: {line!r}"
            )
        gpu: dict[str, Any] = {
            field: _value(field, cell, units.get(field), number)
            for field, cell in zip(fields, cells, strict=True)
        }
        gpu["units"] = dict(units)
        gpus.append(gpu)
    return gpus


def _header(line: str) -> tuple[list[str], dict[str, str]]:
    fields, units = [], {}
    for cell in (cell.strip() for cell in line.split(",")):
        match = _HEADER_CELL.match(cell)
        if not match:
            hint = (
                " (values without the header line: run it without noheader)"
                if cell[:1].isdigit()
                else ""
            )
            raise ValueError(f"not nvidia-smi CSV output with a header{hint}; it begins: {line!r}")
        fields.append(match["field"])
        if match["unit"]:
            units[match["field"]] = match["unit"]
    if len(fields) < 2 and not units:
        # One bare word (`Killed`, `error`) is not a header of a query.
        raise ValueError(f"not nvidia-smi CSV output with a header; it begins: {line!r}")
    return fields, units


def _value(field: str, cell: str, unit: str | None, number: int) -> Any:
    if cell.lower() in _UNAVAILABLE:
        return None
    if field in TEXT_FIELDS:
        return cell
    text = cell
    if unit and text.endswith(unit):  # printed without `nounits`: "1234 MiB"
        text = text[: -len(unit)].strip()
    try:
        value = float(text)
    except ValueError:
        if field not in _NUMERIC_QUERY_FIELDS:
            return cell  # a field this module does not know: keep its text
        raise ValueError(
            f"line {number} of nvidia-smi's CSV: {field} is {cell!r}, not a number"
        ) from None
    if field in INTEGER_FIELDS and value.is_integer():
        return int(value)
    return value


_NUMERIC_QUERY_FIELDS = frozenset(GPU_QUERY_FIELDS) - TEXT_FIELDS

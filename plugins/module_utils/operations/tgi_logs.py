# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What TGI's log says: download progress, the start-up phase and known failures with their fix.

TGI's launcher (`text-generation-launcher`) logs through Rust's tracing in its compact form,
`<time>  INFO download: text_generation_launcher: Download file: model.safetensors`, or as one
JSON object a line with `--json-output` (`{"level":"INFO","fields":{"message":...},...}`). It
re-emits what its Python download and shard processes log, so their lines arrive in the same
two forms; the router logs `Connected` when it serves. Colour codes (a terminal), a timestamp
prefix (`kubectl logs --timestamps`) and tracebacks as plain lines are all handled here.

The catalogue of failures names the fix in this collection's terms: its variables
(`tgi_hf_token`, `tgi_gpu_count`, ...) and playbooks (`scale.yml`, `change_model.yml`).
Pure logic: no Ansible, no network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

PHASES = ("downloading", "loading", "ready", "failed", "unknown")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TIMESTAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)?"
# Timestamps before the line (kubectl --timestamps, docker logs -t), possibly several.
_LEADING_TIMESTAMPS = re.compile(rf"^(?:{_TIMESTAMP}\s+)+")
# tracing's compact form after the timestamp: LEVEL, spans, target, optionally file:line.
_TRACING = re.compile(
    r"^(?P<level>TRACE|DEBUG|INFO|WARN|ERROR)\s+"
    r"(?:[\w-]+(?:\{[^}]*\})?(?::[\w-]+(?:\{[^}]*\})?)*:\s)?"  # spans: download:, shard-manager:
    r"(?:[a-z_][\w]*(?:::[\w]+)*:\s)"  # target: text_generation_launcher:
    r"(?:[\w./-]+\.rs:\d+:\s)?"  # router/src/server.rs:2302:
    r"(?P<message>.*)$"
)


class LogLine(NamedTuple):
    """One line of TGI's own text: its level (None for raw lines) and the text."""

    level: str | None
    text: str


def log_lines(lines: str | Iterable[str]) -> Iterator[LogLine]:
    """TGI's messages, one per line: JSON and compact tracing lines unwrapped, colours removed.

    A JSON message of several lines (a traceback re-emitted by the launcher) gives one LogLine
    per line, all with the message's level.
    """
    if isinstance(lines, str):
        lines = lines.splitlines()
    for raw in lines:
        for physical in str(raw).splitlines() or [""]:
            yield from _unwrap(physical)


def _unwrap(raw: str) -> Iterator[LogLine]:
    line = _LEADING_TIMESTAMPS.sub("", _ANSI.sub("", raw).rstrip())
    if line.startswith("{"):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("fields"), dict):
            level = str(record.get("level") or "") or None
            message = str(record["fields"].get("message", ""))
            for part in message.splitlines() or [""]:
                yield LogLine(level, part.rstrip())
            return
    match = _TRACING.match(line)
    if match:
        yield LogLine(match["level"], match["message"].rstrip())
    else:
        yield LogLine(None, line)


# ---------------------------------------------------------------------------- download progress

# TGI's server/text_generation_server/utils/hub.py and launcher/src/main.rs.
_DOWNLOAD_START = re.compile(r"^Starting (?:check and )?download process\b")
_DOWNLOAD_FILE = re.compile(r"^Download file: (?P<name>\S+)")
_DOWNLOADED = re.compile(r"^Downloaded (?P<path>\S+) in (?P<took>[^.]+(?:\.\d+)?)\.?$")
_CACHED = re.compile(r"^File (?P<name>\S+) already present in cache\.")
_COUNT = re.compile(r"^Download: \[(?P<done>\d+)/(?P<total>\d+)\] -- ETA: (?P<eta>.+?)\s*$")
_DOWNLOAD_DONE = re.compile(
    r"^Successfully downloaded weights\b|^Files are already present on the host\b"
)
# Python's str(timedelta): "0:01:02", "0:00:41.500000", "1 day, 2:03:04"; "0" when done.
_DURATION = re.compile(
    r"^(?:(?P<days>\d+) days?, )?(?P<hours>\d+):(?P<minutes>\d\d):(?P<seconds>\d\d(?:\.\d+)?)$"
)


def parse_duration(text: str) -> float | None:
    """Seconds of a Python timedelta as TGI prints it (`0:01:02`, `1 day, 2:03:04`, `0`)."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    match = _DURATION.match(text)
    if not match:
        return None
    days = int(match["days"] or 0)
    return (
        days * 86400
        + int(match["hours"]) * 3600
        + int(match["minutes"]) * 60
        + float(match["seconds"])
    )


def download_progress(
    lines: str | Iterable[str], total_bytes: int | None = None
) -> dict[str, Any] | None:
    """How far TGI's download of the model's weight files is, from its log; None without one.

    Returns files_done, files_total (None until TGI's first `Download: [i/n]` line), percent,
    eta_seconds (TGI's estimate), current_file (being downloaded, else None), finished, and
    bytes_done/bytes_total: with `total_bytes` (the model's size on the Hub) an estimate from
    the files done (the files of a sharded checkpoint are about equal), else None. A second
    start in the same log (a restarted download) starts the count afresh.
    """
    state: dict[str, Any] | None = None
    for entry in log_lines(lines):
        text = entry.text
        if _DOWNLOAD_START.match(text):
            state = _fresh_download()
            continue
        match = _DOWNLOAD_FILE.match(text)
        if match:
            state = state or _fresh_download()
            state["current_file"] = match["name"]
            continue
        match = _DOWNLOADED.match(text) or _CACHED.match(text)
        if match:
            state = state or _fresh_download()
            state["downloaded"] += 1
            state["current_file"] = None
            continue
        match = _COUNT.match(text)
        if match:
            state = state or _fresh_download()
            state["files_done"] = int(match["done"])
            state["files_total"] = int(match["total"])
            state["eta_seconds"] = parse_duration(match["eta"])
            continue
        if state is not None and _DOWNLOAD_DONE.match(text):
            state["finished"] = True
            state["current_file"] = None
    if state is None or not (state["files_total"] or state["downloaded"] or state["finished"]):
        return None
    return _progress(state, total_bytes)


def _fresh_download() -> dict[str, Any]:
    return {
        "downloaded": 0,
        "files_done": None,
        "files_total": None,
        "eta_seconds": None,
        "current_file": None,
        "finished": False,
    }


def _progress(state: dict[str, Any], total_bytes: int | None) -> dict[str, Any]:
    total = state["files_total"]
    done = state["files_done"] if state["files_done"] is not None else state["downloaded"]
    if state["finished"] and total:
        done = total
    percent = None
    if total:
        percent = round(100.0 * done / total, 1)
    elif state["finished"]:
        percent = 100.0
    bytes_done = bytes_total = None
    if total_bytes is not None and total_bytes >= 0 and percent is not None:
        bytes_total = int(total_bytes)
        bytes_done = round(bytes_total * percent / 100.0)
    return {
        "files_done": done,
        "files_total": total,
        "percent": percent,
        "eta_seconds": 0.0 if state["finished"] else state["eta_seconds"],
        "current_file": state["current_file"],
        "finished": state["finished"],
        "bytes_done": bytes_done,
        "bytes_total": bytes_total,
    }


# ---------------------------------------------------------------------------- start-up phase

# In the order TGI's launcher goes through them (launcher/src/main.rs, router/src/server.rs).
_PHASE_MARKS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "failed",
        re.compile(
            r"^Download encountered an error\b|^Download process was signaled\b"
            r"|^Shard \d+ failed to start\b|^Shard \d+ crashed\b|^Shard complete standard error"
            r"|^Webserver Crashed\b|^Failed to start webserver\b|^Error: [A-Z]\w+$"
            r"|^error: (?:unexpected argument|invalid value|the argument|a value is required)"
            r"|^Shard process was signaled to shutdown\b"
        ),
    ),
    ("ready", re.compile(r"^Connected$")),
    (
        "loading",
        re.compile(
            r"^Successfully downloaded weights\b|^Files are already present on the host\b"
            r"|^Starting shard\b|^Waiting for shard to be ready\b|^Shard ready in\b"
            r"|^Starting Webserver\b|^Warming up model\b|^Setting max batch total tokens\b"
            r"|^Server started at\b"
        ),
    ),
    (
        "downloading",
        re.compile(
            r"^Starting (?:check and )?download process\b|^Download file: |^Download: \["
            r"|^Downloaded \S+ in |^Retrying in \d+ seconds"
        ),
    ),
)
# A new start of the launcher in the same log (the line with its arguments).
_LAUNCHER_START = re.compile(r"^Args \{|^Starting (?:check and )?download process\b")


def startup_phase(lines: str | Iterable[str]) -> str:
    """Where TGI's start is, from its log: one of PHASES.

    `downloading` the weights, `loading` them into the shards (and warming up), `ready` once the
    router has connected, `failed` after a launcher error (kept until the log shows a new start),
    `unknown` when no line says.
    """
    phase = "unknown"
    for entry in log_lines(lines):
        if phase == "failed" and not _LAUNCHER_START.match(entry.text):
            continue
        for name, pattern in _PHASE_MARKS:
            if pattern.search(entry.text):
                phase = name
                break
        else:
            if _LAUNCHER_START.match(entry.text):
                phase = "unknown"
    return phase


# ---------------------------------------------------------------------------- known failures


class Failure(NamedTuple):
    """A failure TGI's log shows: kind, what matches it, the cause and the fix."""

    kind: str
    pattern: re.Pattern[str]
    cause: str
    fix: str
    # Kinds that explain the same problem better: when one of them is found, this is not shown.
    unless: tuple[str, ...] = ()


def catalogue_entry(kind: str, pattern: str, cause: str, fix: str, unless: tuple[str, ...] = ()):
    return Failure(kind, re.compile(pattern), cause, fix, unless)


FAILURES: tuple[Failure, ...] = (
    catalogue_entry(
        "unknown-argument",
        r"^error: (?:unexpected argument '(?P<arg>[^']+)'"
        r"|invalid value '[^']*' for '(?P<flag>[^']+)'"
        r"|the argument '(?P<one>[^']+)' cannot be used with"
        r"|a value is required for '(?P<need>[^']+)')",
        "text-generation-launcher refused its command line and exited before doing anything",
        "TGI's arguments come from the role's variables (ansible-doc -t role haw.icc.tgi_server); "
        "take {arg} out of tgi_extra_args or set the matching tgi_* variable instead, then run "
        "deploy.yml again",
    ),
    catalogue_entry(
        "flash-attention-required",
        r"requires Flash Attention enabled models|sharded is not supported for this model"
        r"|FlashAttention only supports Ampere",
        "this model (or its tensor sharding, --num-shard > 1) needs flash attention, which a "
        "V100 (compute capability 7.0) does not have",
        "use one shard that spreads the layers over the GPUs: scale.yml -e tgi_gpu_count=<N> "
        "-e tgi_multi_gpu_mode=layer-split (or tgi_multi_gpu_mode=auto), or one GPU with "
        "scale.yml -e tgi_gpu_count=1 and a smaller model (change_model.yml -e tgi_model=...)",
    ),
    catalogue_entry(
        "cuda-out-of-memory",
        r"CUDA out of memory|OutOfMemoryError|CUDA error: out of memory"
        r"|Not enough memory to handle",
        "the model's weights plus its KV cache and activations do not fit the GPU memory",
        "lower tgi_max_total_tokens (and tgi_max_input_tokens, tgi_max_batch_prefill_tokens), "
        "quantize with -e tgi_quantize=bitsandbytes-nf4, take more GPUs with scale.yml "
        "-e tgi_gpu_count=2, or a smaller model with change_model.yml -e tgi_model=...; the "
        "capacity check (deploy.yml) prints what fits",
    ),
    catalogue_entry(
        "nccl",
        r"\bNCCL (?:error|WARN)|\bnccl(?:SystemError|InternalError|UnhandledCudaError"
        r"|InvalidUsage|RemoteError)\b|ProcessGroupNCCL|unable to (?:allocate|open) shared memory"
        r"|\bBus error\b",
        "the shards could not talk to each other over NCCL (often /dev/shm too small, or GPU "
        "peer-to-peer not available)",
        "give each GPU more shared memory (-e tgi_shm_size_per_gpu=2Gi), set NCCL variables "
        "through tgi_nccl_env (for example NCCL_P2P_DISABLE: '1'), or avoid NCCL with "
        "-e tgi_multi_gpu_mode=layer-split or one GPU (scale.yml -e tgi_gpu_count=1)",
    ),
    catalogue_entry(
        "quantization-unsupported",
        r"quantization is not supported for AutoModel|\b(?:awq|gptq|marlin|exllama|fp8)\b.*"
        r"(?:requires|needs|only supported).*(?:capability|Ampere|sm_?[78]\d)",
        "this quantization needs kernels a V100 (compute capability 7.0) does not have",
        "use -e tgi_quantize=bitsandbytes-nf4 (or bitsandbytes), or an unquantized model with "
        "change_model.yml -e tgi_model=...",
    ),
    catalogue_entry(
        "model-not-found",
        r"RepositoryNotFoundError|Repository Not Found|RevisionNotFoundError"
        r"|(?<!Local)EntryNotFoundError|\b404 Client Error|is not a valid model identifier"
        r"|No safetensors weights found|No \.bin weights found",
        "the Hub has no such model, revision or weight file (a typo in the id, a private "
        "repository, or a model without weights TGI can load)",
        "check the id on huggingface.co and switch with change_model.yml -e tgi_model=<org/name> "
        "(and -e tgi_revision=... for a branch or commit); a private model also needs "
        "-e tgi_hf_token=hf_...",
    ),
    catalogue_entry(
        "gated-model",
        r"GatedRepoError|Cannot access gated repo|Access to model \S+ is restricted"
        r"|Invalid user token|Invalid credentials in Authorization header",
        "the model is gated on the Hugging Face Hub: its download needs a valid token of an "
        "account that accepted the model's licence, and TGI had none or one without access",
        "accept the licence on the model's page at huggingface.co, create a read token, and run "
        "deploy.yml -e tgi_hf_token=hf_... (kept in the Secret tgi_hf_token_secret)",
    ),
    catalogue_entry(
        "download-failed",
        r"^Download encountered an error|LocalEntryNotFoundError|ConnectionError"
        r"|Max retries exceeded|Temporary failure in name resolution|Name or service not known"
        r"|Connection (?:refused|reset)|Read timed out|ReadTimeout",
        "the weights could not be downloaded from the Hugging Face Hub (no connection from the "
        "pod, a proxy, or the Hub refused)",
        "check that pods in the namespace reach huggingface.co (proxy settings, network policy), "
        "then run deploy.yml again: files already downloaded stay on the cache volume",
        unless=("gated-model", "model-not-found"),
    ),
)


def known_failures(
    lines: str | Iterable[str], catalogue: tuple[Failure, ...] | None = None
) -> list[dict[str, str]]:
    """The known failures in TGI's log (or another `catalogue`'s application's), each once (its
    first line), in order of appearance.

    Each is {"kind", "line", "cause", "fix"}; `fix` names this collection's variables and
    playbooks. A generic kind is left out when a more specific one explains the same problem
    (a download error that is a gated model is reported as `gated-model` only).
    """
    catalogue = FAILURES if catalogue is None else catalogue
    found: dict[str, dict[str, str]] = {}
    for entry in log_lines(lines):
        for failure in catalogue:
            if failure.kind in found:
                continue
            match = failure.pattern.search(entry.text)
            if match:
                found[failure.kind] = {
                    "kind": failure.kind,
                    "line": entry.text.strip(),
                    "cause": failure.cause,
                    "fix": _fix(failure.fix, match),
                }
                break
    by_kind = {failure.kind: failure for failure in catalogue}
    return [
        item
        for kind, item in found.items()
        if not any(other in found for other in by_kind[kind].unless)
    ]


def _fix(template: str, match: re.Match[str]) -> str:
    groups = {name: value for name, value in match.groupdict().items() if value}
    argument = next(iter(groups.values()), None)
    return template.replace("{arg}", f"{argument!r}" if argument else "the argument TGI names")

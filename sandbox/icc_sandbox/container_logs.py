"""What the simulated containers write to their logs, and the kubelet's log query on top of it.

Like the status simulation, every line is derived from the pod spec, the node and the time since
the container (run) started: an agent restart gives the same logs. A TGI container logs what
`text-generation-launcher` 3.x logs for the same start-up: its argument dump, the weights download
file by file, the shards starting, the router connecting, or the failure `simulate_launch` (or a
gated repository) ends the run with. Open WebUI logs a few start-up lines; other images nothing.

The message texts are TGI's (tag v3.3.7). Where each form comes from:
- launcher lines: tracing-subscriber's compact format, `<RFC 3339 µs>Z <LEVEL:>5> [span: ]
  text_generation_launcher: <message>[ span fields]` (launcher/src/main.rs `main`: `.compact()`);
  the span `download` (download_convert_model), `shard-manager` with the field `rank`
  (shard_manager). The Python server's own lines reach the log through the launcher's `log_lines`
  thread, which has no span;
- `Args {...}`: `tracing::info!("{:#?}", args)` in main, Rust's pretty Debug of `struct Args`;
- `Using attention {attention} - Prefix caching {prefix_caching}`, `Sharding model on {n}
  processes`, ``Default `max_batch_prefill_tokens` to {value}``, `Using default cuda graphs
  [1, 2, 4, 8, 16, 32]`, the bitsandbytes and trust_remote_code warnings: main;
- `Starting check and download process for {model_id}`, `Successfully downloaded weights for
  {model_id}`, `Download encountered an error: {err}`: download_convert_model;
- `Download file: {fname}`, `Downloaded {local_file} in {timedelta}.`, `Download: [{i}/{n}] --
  ETA: {eta}` with eta = elapsed / i * remaining (0 for the last file): server/
  text_generation_server/utils/hub.py download_weights; `Files are already present on the host.
  Skipping download.`: server/text_generation_server/cli.py download_weights;
- `Starting shard`, `Waiting for shard to be ready...` (every 10 s), `Shard ready in {:?}`
  (Rust's Debug of a Duration), `Shard complete standard error output:`: shard_manager;
  `Server started at {unix socket}`: server/text_generation_server/server.py serve_inner;
  `Using prefix caching = ...`, `Using Attention = ...`: server/.../models/globals.py;
  `Could not import Flash Attention enabled models: GPU with CUDA capability 7 0 is not
  supported`: server/.../models/__init__.py with layers/attention/cuda.py below capability 8.0;
- `Starting Webserver`: main's spawn_webserver. The router prints through the launcher in its own
  format (router/src/logging.rs: with file and line): `Warming up model` (backends/v3/src/lib.rs:
  125), `Model does not support automatic max batch total tokens` (lib.rs:79, the non-flash
  models), `Setting max batch total tokens to {n}` (lib.rs:137), `Maximum input/total tokens
  defaulted to {n}` (backends/v3/src/main.rs:168/174), `Connected` (router/src/server.rs:2302);
- failures: the message of tgi_launcher's outcome (clap's error text, `Error: <Variant>(...)`,
  the shard's traceback tail with `torch.OutOfMemoryError: CUDA out of memory. ...` and `Shard 0
  failed to start`, `Webserver Crashed`), its `LEVEL target: message` lines given timestamps.
Deliberate differences: the router's ANSI colours are left out, and `api_key` in the argument
dump is masked (TGI prints it).
"""

from __future__ import annotations

import datetime
import hashlib
import math
import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from icc_sandbox.container_spec import (
    ENGINES,
    app_for,
    gated_without_token,
    launch_outcome,
    launcher_args,
    plain_env,
    serve_outcome,
    token_limits,
)
from icc_sandbox.nodes import JSON, NodeSpec, Timing
from icc_sandbox.pod_simulation import crash_loop, failing_run_seconds, ready_delay
from icc_sandbox.tgi_launcher import (
    BYTES_PER_PARAM,
    DEFAULT_MAX_BATCH_PREFILL_TOKENS,
    EXIT_USAGE,
    FLAGS,
    FLASH_ATTENTION_FROM,
    NAME_PRECISION_HINTS,
    REASON_COMPLETED,
    launcher_values,
    parse_parameter_count,
)
from icc_sandbox.vllm_serve import EXIT_USAGE as VLLM_EXIT_USAGE
from icc_sandbox.vllm_serve import VERSION as VLLM_SERVE_VERSION

# The TGI image's own environment (its Dockerfile) and what Kubernetes injects.
IMAGE_ENV = {"HF_HOME": "/data", "HF_HUB_ENABLE_HF_TRANSFER": "1", "PORT": "80"}
SHARD_BYTES = 5e9  # checkpoints on the Hub come in shards of about 5 GB
DOWNLOAD_SHARE = 0.8  # of the time to Ready: the download, the rest is loading
WAIT_LOG_SECONDS = 10.1  # shard_manager logs "Waiting..." once more than 10 s passed
DEFAULT_CUDA_GRAPHS = [1, 2, 4, 8, 16, 32]
MASKED = "<masked by the sandbox>"
_ENUM_NAMES = {"bfloat16": "BFloat16", "fp8_e4m3fn": "Fp8e4m3fn", "fp8_e5m2": "Fp8e5m2"}
_LEVEL_LINE = re.compile(r"^(ERROR|WARN|INFO) (.*)$")


@dataclass(frozen=True)
class LogLine:
    at: float  # Unix time the line was written
    text: str


@dataclass(frozen=True)
class Run:
    """One run of a container: the first (index 0), then one per restart."""

    index: int
    start: float
    end: float | None  # when it ended; None while it runs


class LogsUnavailable(Exception):
    """What the kubelet answers instead of logs: an HTTP status and its message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


# --- which run ------------------------------------------------------------------------------------


def container_run(
    pod: JSON,
    container: JSON,
    node: NodeSpec,
    started: float,
    now: float,
    timing: Timing,
    previous: bool = False,
) -> Run:
    """The run whose logs the kubelet shows: the current one (in a crash loop's back-off, the one
    that just ended), or with `previous` the last one that ended (kubelet's
    validateContainerLogStatus)."""
    app = app_for(container)
    outcome = launch_outcome(container, node, pod) if app.kind in ENGINES else None
    where = f'container "{container["name"]}" in pod "{pod["metadata"]["name"]}"'
    if outcome is None or outcome.ok:
        if previous:
            raise LogsUnavailable(400, f"previous terminated {where} not found")
        return Run(0, started, None)
    run_for = failing_run_seconds(pod, app, outcome, timing)
    loop = crash_loop(now - started, run_for, timing.backoff_seconds)
    if loop.running and not previous:
        return Run(loop.restart_count, started + loop.started_at, None)
    if loop.finished_at is None:
        raise LogsUnavailable(400, f"previous terminated {where} not found")
    index = loop.restart_count - 1 if loop.running else loop.restart_count
    return Run(index, started + loop.finished_at - run_for, started + loop.finished_at)


def container_lines(
    pod: JSON, container: JSON, node: NodeSpec, run: Run, now: float, timing: Timing
) -> list[LogLine]:
    """The lines this run has written by `now`."""
    kind = app_for(container).kind
    if kind == "tgi":
        lines = tgi_run_lines(pod, container, node, run, timing)
    elif kind == "vllm":
        lines = vllm_run_lines(pod, container, node, run, timing)
    elif kind == "open-webui":
        lines = webui_lines(pod, container, run)
    else:
        lines = []
    return [line for line in lines if line.at <= now]


# --- writing lines ------------------------------------------------------------------------------


def stamp(at: float) -> str:
    """tracing-subscriber's timestamp: RFC 3339, microseconds, UTC."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Writer:
    """Collects a run's lines at offsets from its start, with a small derived jitter."""

    def __init__(
        self, start: float, seed: str, end: float | None = None, stamp: Any = stamp
    ) -> None:
        self.start, self.seed, self.end, self.lines = start, seed, end, []
        self.stamp = stamp

    def raw(self, offset: float, text: str) -> None:
        jitter = zlib.crc32(f"{self.seed}/{len(self.lines)}".encode()) % 997 / 1e6
        at = self.start + offset + jitter
        if self.lines:
            at = max(at, self.lines[-1].at)
        if self.end is not None:  # a dead process writes nothing: its last words come by its end
            at = min(at, self.end)
        for part in text.split("\n"):
            self.lines.append(LogLine(at, part))

    def launcher(self, offset: float, message: str, level: str = "INFO", span: str = "") -> None:
        prefix = f"{span}: " if span else ""
        self.raw(offset, f"{{t}} {level:>5} {prefix}text_generation_launcher: {message}")

    def shard(self, offset: float, message: str, rank: int, level: str = "INFO") -> None:
        self.launcher(offset, f"{message} rank={rank}", level, "shard-manager")

    def router(self, offset: float, target: str, where: str, message: str, level="INFO") -> None:
        self.raw(offset, f"{{t}} {level:>5} {target}: {where}: {message}")

    def result(self) -> list[LogLine]:
        # The first line of a message carries the time; continuation lines come bare.
        return [
            LogLine(line.at, line.text.replace("{t}", self.stamp(line.at), 1))
            for line in self.lines
        ]


def _outcome_lines(writer: _Writer, offset: float, message: str) -> None:
    """A launch outcome's message as log lines: `LEVEL target: text` lines get their time."""
    for line in message.split("\n"):
        if line.startswith("(sandbox estimate"):
            continue  # the status message's explanation, not something TGI prints
        match = _LEVEL_LINE.match(line)
        if match:
            writer.raw(offset, f"{{t}} {match[1]:>5} {match[2]}")
        else:
            writer.raw(offset, line)


# --- TGI -----------------------------------------------------------------------------------------


def tgi_run_lines(
    pod: JSON, container: JSON, node: NodeSpec, run: Run, timing: Timing
) -> list[LogLine]:
    """Every line one run of text-generation-launcher writes, to its end or to Ready."""
    outcome = launch_outcome(container, node, pod)
    seed = f"{pod['metadata']['uid']}/{container['name']}/{run.index}"
    writer = _Writer(run.start, seed, run.end)
    if outcome.exit_code == EXIT_USAGE or outcome.reason == REASON_COMPLETED:
        writer.raw(0.01, outcome.message)  # clap prints to stderr before any logging
        return writer.result()
    env = IMAGE_ENV | {"HOSTNAME": pod["metadata"]["name"]} | plain_env(container)
    values = launcher_values(launcher_args(container), env) or {}
    writer.launcher(0.01, args_debug(values))
    writer.launcher(0.02, "Using attention flashinfer - Prefix caching true")
    if outcome.message.startswith("Error: "):  # refused by main's own checks, before any shard
        writer.raw(0.03, outcome.message)
        return writer.result()
    model_id = outcome.model_id
    _launcher_settings(writer, values, outcome.num_shard)
    app = app_for(container)
    horizon = (run.end - run.start) if run.end is not None else ready_delay(pod, app, timing)
    horizon = max(horizon, 0.2)
    writer.launcher(0.04, f"Starting check and download process for {model_id}", span="download")
    if gated_without_token(pod, container):
        _outcome_lines(writer, min(0.5, horizon), outcome.message)
        return writer.result()
    loaded_from = _download(writer, values, model_id, run, horizon, env)
    writer.launcher(loaded_from, f"Successfully downloaded weights for {model_id}", span="download")
    shards = range(max(outcome.num_shard, 1))
    for rank in shards:
        writer.shard(loaded_from + 0.01, "Starting shard", rank)
    writer.launcher(loaded_from + 0.5, "Using prefix caching = True")
    writer.launcher(loaded_from + 0.5, "Using Attention = flashinfer")
    capability = _capability(node)
    flash = capability is None or capability >= FLASH_ATTENTION_FROM
    if not flash:
        writer.launcher(
            loaded_from + 0.6,
            "Could not import Flash Attention enabled models: GPU with CUDA capability "
            f"{capability[0]} {capability[1]} is not supported",
            "WARN",
        )
    waited = loaded_from + 0.01 + WAIT_LOG_SECONDS
    while waited < horizon - 0.5:
        for rank in shards:
            writer.shard(waited, "Waiting for shard to be ready...", rank)
        waited += WAIT_LOG_SECONDS
    if not outcome.ok and "Webserver Crashed" not in outcome.message:
        _outcome_lines(writer, horizon, outcome.message)  # a shard died loading the model
        return writer.result()
    uds = str(values.get("shard-uds-path") or "/tmp/text-generation-server")
    for rank in shards:
        writer.launcher(horizon - 0.4, f"Server started at unix://{uds}-{rank}")
    for rank in shards:
        nanos = zlib.crc32(f"{writer.seed}/ready/{rank}".encode()) % 10**6 / 1e9
        took = _rust_duration(max(horizon - 0.3 - (loaded_from + 0.01), 0.001) + nanos)
        writer.shard(horizon - 0.3, f"Shard ready in {took}", rank)
    writer.launcher(horizon - 0.25, "Starting Webserver")
    _router(writer, container, values, horizon, flash)
    if not outcome.ok:
        _outcome_lines(writer, horizon, outcome.message)
        return writer.result()
    writer.router(
        horizon, "text_generation_router::server", "router/src/server.rs:2302", "Connected"
    )
    return writer.result()


def _capability(node: NodeSpec) -> tuple[int, int] | None:
    if not node.gpu_compute_capability:
        return None
    major, minor = node.gpu_compute_capability.split(".")
    return int(major), int(minor)


def _launcher_settings(writer: _Writer, values: Mapping[str, Any], num_shard: int) -> None:
    """main's lines between the argument dump and the download."""
    if num_shard > 1:
        writer.launcher(0.03, f"Sharding model on {num_shard} processes")
    if values.get("max-batch-prefill-tokens") is None:
        writer.launcher(
            0.03, f"Default `max_batch_prefill_tokens` to {DEFAULT_MAX_BATCH_PREFILL_TOKENS}"
        )
    quantize = values.get("quantize")
    if quantize == "bitsandbytes":
        writer.launcher(
            0.03,
            "Bitsandbytes is deprecated, use `eetq` instead, which provides better latencies "
            "overall and is drop-in in most cases.",
            "WARN",
        )
    if values.get("cuda-graphs") is not None:
        pass
    elif quantize == "bitsandbytes":
        writer.launcher(
            0.03, "Bitsandbytes doesn't work with cuda graphs, deactivating them", "WARN"
        )
    elif quantize == "exl2":
        writer.launcher(0.03, "Exl2 doesn't work with cuda graphs, deactivating them", "WARN")
    else:
        writer.launcher(0.03, f"Using default cuda graphs {DEFAULT_CUDA_GRAPHS}")
    if values.get("trust-remote-code"):
        writer.launcher(
            0.03,
            f"`trust_remote_code` is set. Trusting that model `{values.get('model-id')}` do not "
            "contain malicious code.",
            "WARN",
        )


def weight_files(model_id: str) -> list[str]:
    """The model's safetensors files on the Hub: shards of about 5 GB, by its size."""
    params = parse_parameter_count(model_id)
    if params is None:
        return ["model.safetensors"]
    tokens = set(re.split(r"[-_./]", model_id.lower()))
    precision = next(
        (p for p, hints in NAME_PRECISION_HINTS.items() if tokens.intersection(hints)), "bfloat16"
    )
    count = max(1, math.ceil(params * BYTES_PER_PARAM[precision] / SHARD_BYTES))
    if count == 1:
        return ["model.safetensors"]
    return [f"model-{i:05d}-of-{count:05d}.safetensors" for i in range(1, count + 1)]


def snapshot_dir(model_id: str, revision: str | None, env: Mapping[str, str]) -> str:
    """Where huggingface_hub puts the files: <hub cache>/models--org--name/snapshots/<commit>."""
    cache = (
        env.get("HUGGINGFACE_HUB_CACHE")
        or env.get("HF_HUB_CACHE")
        or f"{env.get('HF_HOME', '/data').rstrip('/')}/hub"
    )
    if revision and re.fullmatch(r"[0-9a-f]{40}", revision):
        commit = revision
    else:
        commit = hashlib.sha1(f"{model_id}@{revision or 'main'}".encode()).hexdigest()
    return f"{cache.rstrip('/')}/models--{model_id.replace('/', '--')}/snapshots/{commit}"


def _download(
    writer: _Writer,
    values: Mapping[str, Any],
    model_id: str,
    run: Run,
    horizon: float,
    env: Mapping[str, str],
) -> float:
    """The weights download of the run; returns when it ended (offset from the run's start).

    The first run downloads, spread over DOWNLOAD_SHARE of the time to Ready (or to the crash);
    restarts find the files in the cache volume."""
    if run.index > 0:
        writer.launcher(0.3, "Files are already present on the host. Skipping download.")
        return 0.35
    cache = values.get("huggingface-hub-cache")
    if cache:
        env = {**env, "HUGGINGFACE_HUB_CACHE": str(cache)}
    folder = snapshot_dir(model_id, values.get("revision"), env)
    files = weight_files(model_id)
    begin, end = min(1.0, 0.05 * horizon), DOWNLOAD_SHARE * horizon
    each = (end - begin) / len(files)
    for i, name in enumerate(files):
        started, finished = begin + i * each, begin + (i + 1) * each
        writer.launcher(started, f"Download file: {name}")
        took = datetime.timedelta(seconds=int(finished - started))
        writer.launcher(finished, f"Downloaded {folder}/{name} in {took}.")
        elapsed = datetime.timedelta(seconds=int(finished - begin))
        remaining = len(files) - (i + 1)
        eta = (elapsed / (i + 1)) * remaining if remaining > 0 else 0
        writer.launcher(finished, f"Download: [{i + 1}/{len(files)}] -- ETA: {eta}")
    return end


def _router(
    writer: _Writer, container: JSON, values: Mapping[str, Any], horizon: float, flash: bool
) -> None:
    backend = "text_generation_router_v3"
    writer.router(horizon - 0.2, backend, "backends/v3/src/lib.rs:125", "Warming up model")
    max_input, max_total = token_limits(container)
    prefill = values.get("max-batch-prefill-tokens")
    prefill = prefill if isinstance(prefill, int) else DEFAULT_MAX_BATCH_PREFILL_TOKENS
    if not flash:
        writer.router(
            horizon - 0.1,
            backend,
            "backends/v3/src/lib.rs:79",
            "Model does not support automatic max batch total tokens",
            "WARN",
        )
    # check_max_batch_total_tokens for models without it (the non-flash path of a V100); flash
    # models would report what their memory allows, which this simulation does not know.
    batch_total = values.get("max-batch-total-tokens")
    if not isinstance(batch_total, int):
        batch_total = max(16000, max_total, prefill)
    where = "backends/v3/src/lib.rs:137"
    writer.router(horizon - 0.1, backend, where, f"Setting max batch total tokens to {batch_total}")
    if values.get("max-input-tokens") is None and values.get("max-input-length") is None:
        message = f"Maximum input tokens defaulted to {max_input}"
        writer.router(horizon - 0.05, backend, "backends/v3/src/main.rs:168", message)
    if values.get("max-total-tokens") is None:
        message = f"Maximum total tokens defaulted to {max_total}"
        writer.router(horizon - 0.05, backend, "backends/v3/src/main.rs:174", message)


def _rust_duration(seconds: float) -> str:
    """Rust's `{:?}` of a Duration: `12.345678901s`, `345.678ms` (no trailing zeros)."""
    if seconds >= 1:
        return f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    return f"{seconds * 1000:.6f}".rstrip("0").rstrip(".") + "ms"


# --- the launcher's argument dump ---------------------------------------------------------------


def args_debug(values: Mapping[str, Any]) -> str:
    """`{:#?}` of the launcher's `Args` (one field per flag, in the struct's order)."""
    lines = ["Args {"]
    for flag in FLAGS:
        if flag.long in ("help", "version"):
            continue
        value = values.get(flag.long)
        if flag.long == "api-key" and value is not None:
            value = MASKED
        lines.append(f"    {flag.long.replace('-', '_')}: {_debug(flag, value, 1)},")
    lines.append("}")
    return "\n".join(lines)


def _debug(flag, value: Any, depth: int) -> str:
    optional = flag.default is None and flag.kind != "switch" and not flag.repeatable
    if flag.kind == "switch":
        return "true" if value else "false"
    if flag.repeatable:
        return _debug_list([_rust_str(v) for v in value or []], depth)
    if optional and value is None:
        return "None"
    if flag.kind == "usize-list":
        inner = _debug_list([str(v) for v in value], depth + 1)
    elif flag.kind == "str":
        inner = _rust_str(value)
    elif flag.kind == "enum":
        inner = _ENUM_NAMES.get(value) or "".join(part.capitalize() for part in value.split("-"))
    elif flag.kind == "bool":
        inner = "true" if value else "false"
    elif flag.kind == "f32":
        inner = repr(float(value)) if not isinstance(value, str) else value
    else:
        inner = str(value)
    if not optional:
        return inner
    pad = "    " * depth
    return f"Some(\n{pad}    {inner},\n{pad})"


def _debug_list(items: list[str], depth: int) -> str:
    if not items:
        return "[]"
    pad = "    " * depth
    return "[\n" + "".join(f"{pad}    {item},\n" for item in items) + f"{pad}]"


def _rust_str(value: Any) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- Open WebUI ----------------------------------------------------------------------------------


# --- vLLM ----------------------------------------------------------------------------------------


def vllm_stamp(at: float) -> str:
    """vLLM's logging date format (vllm/logger.py): month-day and time, UTC in a container."""
    return datetime.datetime.fromtimestamp(at, datetime.UTC).strftime("%m-%d %H:%M:%S")


def vllm_run_lines(
    pod: JSON, container: JSON, node: NodeSpec, run: Run, timing: Timing
) -> list[LogLine]:
    """What one run of `vllm serve` 0.14.1 writes, to its end or to Ready: the API server's and
    the engine's lines with their process prefix (utils/system_utils.py decorate_logs) and
    vLLM's format `LEVEL mm-dd HH:MM:SS [file.py:line] message` (logger.py), the KV cache
    figures of the start-up (gpu_worker.py, kv_cache_utils.py), then uvicorn's start; or the
    error the start-up ended with, where vLLM raises it."""
    outcome = serve_outcome(container, node)
    seed = f"{pod['metadata']['uid']}/{container['name']}/{run.index}"
    writer = _Writer(run.start, seed, run.end, vllm_stamp)
    if outcome.exit_code == VLLM_EXIT_USAGE:
        writer.raw(0.01, outcome.message)  # argparse, before any logging
        return writer.result()
    api, engine = "(APIServer pid=1)", "(EngineCore_DP0 pid=187)"
    workers = (
        [f"(Worker_TP{rank} pid={260 + rank})" for rank in range(outcome.tensor_parallel)]
        if outcome.tensor_parallel > 1
        else [engine]
    )

    def log(offset: float, who: str, where: str, message: str, level: str = "INFO") -> None:
        writer.raw(offset, f"{who} {level} {{t}} [{where}] {message}")

    app = app_for(container)
    horizon = (run.end - run.start) if run.end is not None else ready_delay(pod, app, timing)
    horizon = max(horizon, 0.2)
    log(0.01, api, "api_server.py:1272", f"vLLM API server version {VLLM_SERVE_VERSION}")
    log(0.02, api, "utils.py:263", f"non-default args: {_vllm_args_text(container)}")
    stage = _vllm_failure_stage(outcome.message) if not outcome.ok else None
    if stage == "config":  # vLLM's checks of the configuration, in the API server
        _vllm_failure(writer, min(0.05, horizon), api, outcome.message)
        return writer.result()
    log(0.03, api, "model.py:1545", f"Using max model len {outcome.max_model_len}")
    config = (
        f"model='{outcome.model}', max_seq_len={outcome.max_model_len}, "
        f"tensor_parallel_size={outcome.tensor_parallel}"
    )
    log(
        0.05,
        engine,
        "core.py:97",
        f"Initializing a V1 LLM engine (v{VLLM_SERVE_VERSION}) with config: {config}",
    )
    for who in workers:
        log(
            0.1 * horizon,
            who,
            "gpu_model_runner.py:3808",
            f"Starting to load model {outcome.model}...",
        )
    if stage == "load":
        _vllm_failure(writer, horizon, workers[0], outcome.message)
        return writer.result()
    loaded = 0.8 * horizon
    for who in workers:
        log(
            loaded,
            who,
            "default_loader.py:290",
            f"Loading weights took {0.7 * horizon:.2f} seconds",
        )
    for who in workers:
        log(
            loaded + 0.01,
            who,
            "gpu_worker.py:358",
            f"Available KV cache memory: {outcome.kv_cache_gib:.2f} GiB",
        )
    if stage == "kv-cache":
        _vllm_failure(writer, horizon, engine, outcome.message)
        return writer.result()
    log(
        loaded + 0.02,
        engine,
        "kv_cache_utils.py:1305",
        f"GPU KV cache size: {outcome.kv_tokens:,} tokens",
    )
    concurrency = outcome.kv_tokens / outcome.max_model_len
    log(
        loaded + 0.02,
        engine,
        "kv_cache_utils.py:1310",
        f"Maximum concurrency for {outcome.max_model_len:,} tokens per request: {concurrency:.2f}x",
    )
    log(
        horizon - 0.1,
        api,
        "api_server.py:1345",
        f"Starting vLLM API server 0 on http://0.0.0.0:{app.port}",
    )
    for text in (
        "Started server process [1]",
        "Waiting for application startup.",
        "Application startup complete.",
    ):
        writer.raw(horizon - 0.05, f"{api} INFO:     {text}")
    return writer.result()


def _vllm_failure_stage(message: str) -> str:
    """Where a start-up that failed raised: loading the weights, sizing the KV cache after the
    profiling run, or (before the engine starts) the configuration's checks."""
    if message.startswith("torch.OutOfMemoryError"):
        return "load"
    if "cache blocks" in message or "KV cache is needed" in message:
        return "kv-cache"
    return "config"


def _vllm_args_text(container: JSON) -> str:
    """The non-default arguments as vLLM prints them: a dict of the parsed names."""
    args, values = list(container.get("args", [])), {}
    if args and not args[0].startswith("-"):
        values["model_tag"] = args.pop(0)
    while args:
        flag = args.pop(0).removeprefix("--")
        name, _, value = flag.partition("=")
        if not value and args and not args[0].startswith("--"):
            value = args.pop(0)
        values[name.replace("-", "_")] = value or True
    return repr(values)


def _vllm_failure(writer: _Writer, offset: float, who: str, message: str) -> None:
    """The end of a start-up that raised: the traceback's header and its last line."""
    writer.raw(offset, f"{who} ERROR {{t}} [core.py:936] EngineCore failed to start.")
    writer.raw(offset, f"{who} Traceback (most recent call last):")
    for line in message.split("\n"):
        writer.raw(offset, f"{who} {line}")


def webui_lines(pod: JSON, container: JSON, run: Run) -> list[LogLine]:
    """A few of Open WebUI's start-up lines: the database migrations' and uvicorn's."""
    port = app_for(container).port
    writer = _Writer(run.start, f"{pod['metadata']['uid']}/{container['name']}/{run.index}")
    for offset, text in (
        (0.2, "INFO  [alembic.runtime.migration] Context impl SQLiteImpl."),
        (0.2, "INFO  [alembic.runtime.migration] Will assume non-transactional DDL."),
        (0.6, "INFO:     Started server process [1]"),
        (0.6, "INFO:     Waiting for application startup."),
        (0.9, "INFO:     Application startup complete."),
        (0.9, f"INFO:     Uvicorn running on http://0.0.0.0:{port} (Press CTRL+C to quit)"),
    ):
        writer.raw(offset, text)
    return writer.result()


# --- the kubelet's query --------------------------------------------------------------------------


@dataclass(frozen=True)
class LogQuery:
    """The query parameters the API server passes to the kubelet's /containerLogs."""

    previous: bool = False
    timestamps: bool = False
    follow: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time: float | None = None
    limit_bytes: int | None = None

    @classmethod
    def parse(cls, query: str) -> LogQuery:
        """Raises ValueError, with the kubelet's kind of message, for a value it refuses."""
        params = {key: values[-1] for key, values in parse_qs(query).items()}

        def flag(name: str) -> bool:
            return params.get(name, "false").lower() in ("true", "1")

        def number(name: str) -> int | None:
            if name not in params:
                return None
            try:
                value = int(params[name])
            except ValueError:
                raise ValueError(f"{name}: invalid integer {params[name]!r}") from None
            if value < 0:
                raise ValueError(f"{name}: must be non-negative, got {value}")
            return value

        since_time = None
        if "sinceTime" in params:
            try:
                moment = datetime.datetime.fromisoformat(params["sinceTime"].replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(
                    f"sinceTime: not an RFC 3339 time: {params['sinceTime']!r}"
                ) from None
            since_time = moment.timestamp()
        return cls(
            previous=flag("previous"),
            timestamps=flag("timestamps"),
            follow=flag("follow"),
            tail_lines=number("tailLines"),
            since_seconds=number("sinceSeconds"),
            since_time=since_time,
            limit_bytes=number("limitBytes"),
        )


def rfc3339_nano(at: float) -> str:
    """The kubelet's timestamp prefix (RFC 3339 with up to nanoseconds, no trailing zeros)."""
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    fraction = f"{moment.microsecond:06d}000".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def render(lines: list[LogLine], query: LogQuery, now: float) -> bytes:
    """The response body: lines since the given time, the last `tailLines`, at most
    `limitBytes`, each with its timestamp when asked."""
    since = None
    if query.since_seconds is not None:
        since = now - query.since_seconds
    if query.since_time is not None:
        since = query.since_time if since is None else max(since, query.since_time)
    chosen = [line for line in lines if since is None or line.at >= since]
    if query.tail_lines is not None:
        chosen = chosen[len(chosen) - query.tail_lines :] if query.tail_lines else []
    text = "".join(
        (f"{rfc3339_nano(line.at)} " if query.timestamps else "") + line.text + "\n"
        for line in chosen
    )
    body = text.encode()
    return body if query.limit_bytes is None else body[: query.limit_bytes]

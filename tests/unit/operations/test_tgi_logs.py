"""TGI's log -> download progress, start-up phase and known failures (tests/unit/data/README.md)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations.tgi_logs import (
    FAILURES,
    PHASES,
    LogLine,
    download_progress,
    known_failures,
    log_lines,
    parse_duration,
    startup_phase,
)

DATA = Path(__file__).parents[1] / "data"
ROLE_SPEC = Path(__file__).parents[3] / "roles" / "tgi_server" / "meta" / "argument_specs.yml"
PLAYBOOKS = Path(__file__).parents[3] / "playbooks"


def recorded(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def launcher_json(message: str, level: str = "INFO") -> str:
    """A line as text-generation-launcher --json-output prints it."""
    return json.dumps(
        {
            "timestamp": "2026-03-02T10:00:00.000000Z",
            "level": level,
            "fields": {"message": message},
            "target": "text_generation_launcher",
        }
    )


# ------------------------------------------------------------------------------ log lines


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "2026-03-02T10:14:11.730588Z  INFO text_generation_launcher: Download file: a.st",
            [LogLine("INFO", "Download file: a.st")],
        ),
        (
            "2026-03-02T10:14:07.902402Z  INFO download: text_generation_launcher: Starting x",
            [LogLine("INFO", "Starting x")],
        ),
        (
            "2026-03-02T10:14:07.902402Z ERROR shard-manager: text_generation_launcher: Shard "
            "complete standard error output:",
            [LogLine("ERROR", "Shard complete standard error output:")],
        ),
        (
            "2026-03-02T10:14:07.902402Z  INFO text_generation_router::server: "
            "router/src/server.rs:2302: Connected",
            [LogLine("INFO", "Connected")],
        ),
        (
            "2023-12-18T02:36:47.730476Z ERROR batch{batch_size=1}:prefill:prefill{id=7570 "
            "size=1}: text_generation_client: router/client/src/lib.rs:33: Server error: x",
            [LogLine("ERROR", "Server error: x")],
        ),
        # kubectl logs --timestamps puts its own time in front.
        (
            "2026-03-02T10:14:05.118391506Z 2026-03-02T10:14:05.118391Z  WARN "
            "text_generation_launcher: careful",
            [LogLine("WARN", "careful")],
        ),
        (
            launcher_json("Download file: b.safetensors"),
            [LogLine("INFO", "Download file: b.safetensors")],
        ),
        (
            launcher_json("Shard complete standard error output:\n\nboom\n", "ERROR"),
            [
                LogLine("ERROR", "Shard complete standard error output:"),
                LogLine("ERROR", ""),
                LogLine("ERROR", "boom"),
            ],
        ),
        (
            "\x1b[2m2026-03-02T12:20:01Z\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mt\x1b[0m: hi",
            [LogLine("INFO", "hi")],
        ),
        (
            '  File "x.py", line 3, in <module>',
            [LogLine(None, '  File "x.py", line 3, in <module>')],
        ),
        ("{not json", [LogLine(None, "{not json")]),
        ('{"a": 1}', [LogLine(None, '{"a": 1}')]),
        ("", [LogLine(None, "")]),
    ],
)
def test_log_lines_unwraps_both_forms(raw, expected):
    assert list(log_lines([raw])) == expected


def test_log_lines_takes_a_whole_text_or_lines_alike():
    text = recorded("tgi_download.log")
    assert list(log_lines(text)) == list(log_lines(text.splitlines()))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:02:51", 171.0),
        ("0:00:41.500000", 41.5),
        ("1:00:00", 3600.0),
        ("1 day, 2:03:04", 93784.0),
        ("2 days, 0:00:01", 172801.0),
        ("0", 0.0),
        ("soon", None),
        ("12:3", None),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


# ------------------------------------------------------------------------------ download


def test_download_in_progress_plain_text():
    progress = download_progress(recorded("tgi_download.log"), total_bytes=15_231_233_024)
    assert progress == {
        "files_done": 2,
        "files_total": 4,
        "percent": 50.0,
        "eta_seconds": 113.0,
        "current_file": "model-00003-of-00004.safetensors",
        "finished": False,
        "bytes_done": 7_615_616_512,
        "bytes_total": 15_231_233_024,
    }


def test_download_finished_json_output():
    progress = download_progress(recorded("tgi_download_json.log"))
    assert progress["files_done"] == progress["files_total"] == 2
    assert progress["percent"] == 100.0
    assert progress["finished"] is True
    assert progress["eta_seconds"] == 0.0
    assert progress["current_file"] is None
    assert progress["bytes_done"] is None and progress["bytes_total"] is None


def test_cached_weights_count_as_done_even_with_colour_codes():
    progress = download_progress(recorded("tgi_ready_ansi.log"), total_bytes=3_087_467_144)
    assert progress["files_done"] == progress["files_total"] == 1
    assert progress["bytes_done"] == 3_087_467_144


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # Before TGI's first count line, only the files downloaded so far are known.
        (
            ["Download file: a.safetensors"],
            None,
        ),
        (
            [
                "Starting check and download process for x/y",
                "Download file: a.safetensors",
                "Downloaded /data/hub/a.safetensors in 0:00:03.",
                "Download file: b.safetensors",
            ],
            {
                "files_done": 1,
                "files_total": None,
                "percent": None,
                "current_file": "b.safetensors",
            },
        ),
        # Already on the volume: only the final line.
        (
            [
                "Starting download process.",
                "Files are already present on the host. Skipping download.",
            ],
            {"files_done": 0, "files_total": None, "percent": 100.0, "finished": True},
        ),
        # A restarted download counts afresh.
        (
            [
                "Download: [3/4] -- ETA: 0:00:10",
                "Starting check and download process for x/y",
                "Download: [1/4] -- ETA: 0:01:30",
            ],
            {"files_done": 1, "files_total": 4, "percent": 25.0, "eta_seconds": 90.0},
        ),
        (["Download: [1/3] -- ETA: 0:00:41.500000"], {"percent": 33.3, "eta_seconds": 41.5}),
        (["Download: [1/3] -- ETA: whenever"], {"percent": 33.3, "eta_seconds": None}),
        # No download lines at all.
        (["Starting shard", "Connected"], None),
        ([], None),
        ("", None),
    ],
)
def test_download_progress_cases(lines, expected):
    progress = download_progress(lines)
    if expected is None:
        assert progress is None
    else:
        assert {key: progress[key] for key in expected} == expected


def test_bytes_need_a_known_share():
    lines = ["Download file: a.safetensors", "Downloaded /x/a.safetensors in 0:00:03."]
    assert download_progress(lines, total_bytes=1000)["bytes_done"] is None
    lines.append("Download: [1/4] -- ETA: 0:00:09")
    assert download_progress(lines, total_bytes=1000)["bytes_done"] == 250


# ------------------------------------------------------------------------------ phase


@pytest.mark.parametrize(
    ("sample", "phase"),
    [
        ("tgi_download.log", "downloading"),
        ("tgi_download_json.log", "ready"),
        ("tgi_ready_ansi.log", "ready"),
        ("tgi_oom.log", "failed"),
        ("tgi_flash_attention.log", "failed"),
        ("tgi_gated_json.log", "failed"),
        ("tgi_not_found.log", "failed"),
        ("tgi_nccl.log", "failed"),
        ("tgi_unknown_argument.log", "failed"),
    ],
)
def test_phase_of_recorded_logs(sample, phase):
    assert startup_phase(recorded(sample)) == phase


@pytest.mark.parametrize(
    ("lines", "phase"),
    [
        ([], "unknown"),
        (["some unrelated line"], "unknown"),
        (["Starting check and download process for x"], "downloading"),
        (["Download: [1/2] -- ETA: 0:00:10", "Successfully downloaded weights for x"], "loading"),
        (["Starting shard", "Waiting for shard to be ready...", "Shard ready in 9.1s"], "loading"),
        (["Shard ready in 9.1s", "Starting Webserver", "Warming up model"], "loading"),
        (["Starting Webserver", "Connected"], "ready"),
        # A crash after it served.
        (["Connected", "Shard 0 crashed"], "failed"),
        # Failed stays failed, whatever follows, until the launcher starts again.
        (["Shard 0 failed to start", "Shutting down shards", "Connected"], "failed"),
        (["Error: ShardCannotStart", 'Args { model_id: "x" }'], "unknown"),
        (["Error: DownloadError", "Starting check and download process for x"], "downloading"),
        # A request failing at run time (logged by the router) is not a failed start.
        (["Connected", "Server error: CUDA out of memory. Tried to allocate 16.00 MiB"], "ready"),
        ([launcher_json("Connected")], "ready"),
    ],
)
def test_phase_cases(lines, phase):
    assert phase in PHASES
    assert startup_phase(lines) == phase


# ------------------------------------------------------------------------------ failures


@pytest.mark.parametrize(
    ("sample", "kind", "line"),
    [
        ("tgi_oom.log", "cuda-out-of-memory", "torch.OutOfMemoryError: CUDA out of memory."),
        (
            "tgi_flash_attention.log",
            "flash-attention-required",
            "NotImplementedError: Sharded Qwen2 requires Flash Attention enabled models.",
        ),
        ("tgi_gated_json.log", "gated-model", "huggingface_hub.errors.GatedRepoError: 401"),
        ("tgi_not_found.log", "model-not-found", "huggingface_hub.errors.RepositoryNotFoundError"),
        ("tgi_nccl.log", "nccl", "torch.distributed.DistBackendError: NCCL error in:"),
        (
            "tgi_unknown_argument.log",
            "unknown-argument",
            "error: unexpected argument '--max-parallel-loading-workers' found",
        ),
    ],
)
def test_recorded_failures_are_reported_once_with_their_line(sample, kind, line):
    failures = known_failures(recorded(sample))
    assert [failure["kind"] for failure in failures] == [kind]
    assert failures[0]["line"].startswith(line)
    assert failures[0]["cause"] and failures[0]["fix"]


@pytest.mark.parametrize(
    "sample", ["tgi_download.log", "tgi_download_json.log", "tgi_ready_ansi.log"]
)
def test_healthy_logs_have_no_failures(sample):
    """V100's warning that flash attention cannot be imported is not a failure by itself."""
    assert known_failures(recorded(sample)) == []


def test_the_unknown_argument_fix_names_the_flag():
    (failure,) = known_failures(recorded("tgi_unknown_argument.log"))
    assert "'--max-parallel-loading-workers'" in failure["fix"]
    assert "tgi_extra_args" in failure["fix"]


@pytest.mark.parametrize(
    ("lines", "kinds"),
    [
        (["error: invalid value 'two' for '--num-shard <NUM_SHARD>'"], ["unknown-argument"]),
        (
            ["error: the argument '--dtype <DTYPE>' cannot be used with '--quantize <QUANTIZE>'"],
            ["unknown-argument"],
        ),
        (["RuntimeError: CUDA error: out of memory"], ["cuda-out-of-memory"]),
        (["ncclInternalError: Internal check failed."], ["nccl"]),
        (
            ["NotImplementedError: awq quantization is not supported for AutoModel"],
            ["quantization-unsupported"],
        ),
        (
            ["NotImplementedError: Mistral model requires Flash Attention enabled models."],
            ["flash-attention-required"],
        ),
        (["huggingface_hub.errors.RevisionNotFoundError: 404 Client Error."], ["model-not-found"]),
        (
            ["huggingface_hub.errors.LocalEntryNotFoundError: Cannot find the requested files"],
            ["download-failed"],
        ),
        (
            [
                "Download encountered an error: ",
                "requests.exceptions.ConnectionError: HTTPSConnectionPool(host='huggingface.co', "
                "port=443): Max retries exceeded with url: /api/models/x/y",
            ],
            ["download-failed"],
        ),
        (
            ["401 Client Error: Unauthorized", "Invalid credentials in Authorization header"],
            ["gated-model"],
        ),
        # Order of appearance, each kind once.
        (
            [
                "NotImplementedError: Sharded Llama requires Flash Attention enabled models.",
                "torch.OutOfMemoryError: CUDA out of memory.",
                "NotImplementedError: Sharded Llama requires Flash Attention enabled models.",
            ],
            ["flash-attention-required", "cuda-out-of-memory"],
        ),
        (
            [
                "Could not import Flash Attention enabled models: "
                "GPU with CUDA capability 7 0 is not supported"
            ],
            [],
        ),
        (
            [
                "If you are trying to access a private or gated repo, "
                "make sure you are authenticated."
            ],
            [],
        ),
    ],
)
def test_failure_cases(lines, kinds):
    assert [failure["kind"] for failure in known_failures(lines)] == kinds


def test_every_fix_names_only_variables_and_playbooks_that_exist():
    spec = ROLE_SPEC.read_text(encoding="utf-8")
    playbook_vars = {"tgi_model", "tgi_revision"}  # change_model.yml's own -e names
    for failure in FAILURES:
        for name in set(re.findall(r"(?<![.\w])(?:tgi|icc)_[a-z_]+", failure.fix)):
            assert name in playbook_vars or re.search(rf"^\s+{name}:", spec, re.M), (
                failure.kind,
                name,
            )
        for playbook in re.findall(r"\b(\w+)\.yml\b", failure.fix):
            assert (PLAYBOOKS / f"{playbook}.yml").is_file(), (failure.kind, playbook)


def test_failure_kinds_are_unique_and_their_exceptions_name_known_kinds():
    kinds = [failure.kind for failure in FAILURES]
    assert len(kinds) == len(set(kinds))
    for failure in FAILURES:
        assert set(failure.unless) <= set(kinds)

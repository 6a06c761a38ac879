"""logs.yml reads TGI's and Open WebUI's logs through the API server, as the student, and names
the known failures in them with the fix."""

from __future__ import annotations

import pytest
from views import FAST, TOO_BIG_MODEL

from playbooks import run_playbook, write_inventory


@pytest.fixture
def inventory(tmp_path, namespace, sandbox):
    return write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)


@pytest.mark.sandbox
def test_the_logs_of_both_apps_come_through_the_api_and_can_be_saved(
    inventory, namespace, tmp_path, sandbox
):
    assert run_playbook("deploy.yml", inventory).rc == 0
    saved = tmp_path / "logs"
    writes_before = len(sandbox.student_writes(namespace))

    run = run_playbook("logs.yml", inventory, extra_vars={"icc_logs_dir": str(saved)})

    assert run.rc == 0, run.output
    assert "--- tgi (" in run.output and "--- open-webui (" in run.output
    assert "Starting check and download process for Qwen/Qwen2.5-1.5B-Instruct" in run.output
    assert "Connected" in run.output  # TGI's router serves
    assert "No known failure line in the log of tgi." in run.output
    tgi_log = (saved / f"{namespace}-tgi.log").read_text()
    assert "Connected" in tgi_log
    assert (saved / f"{namespace}-open-webui.log").stat().st_size > 0
    assert len(sandbox.student_writes(namespace)) == writes_before  # logs.yml only reads


@pytest.mark.sandbox
def test_an_oom_kill_is_summarised_with_the_fix(inventory, namespace):
    too_big = {"tgi_model_id": TOO_BIG_MODEL, "tgi_ignore_rules": "model-fits"}
    assert run_playbook("deploy.yml", inventory, extra_vars=too_big).rc != 0

    run = run_playbook(
        "logs.yml",
        inventory,
        extra_vars={
            **too_big,
            "icc_logs_app": "tgi",
            "icc_logs_previous": True,
            "icc_logs_tail": 50,
        },
    )

    assert run.rc == 0, run.output
    assert "CUDA out of memory" in run.output
    summary = run.output.split("Summarize the known failures", 1)[1]
    assert "cuda-out-of-memory: " in summary
    assert "Fix:" in summary and ("tgi_gpu_count" in summary or "tgi_quantize" in summary)


@pytest.mark.sandbox
def test_an_app_without_a_previous_run_does_not_hide_the_other(inventory, namespace, tmp_path):
    assert run_playbook("deploy.yml", inventory).rc == 0

    run = run_playbook("logs.yml", inventory, extra_vars={"icc_logs_previous": True}, cwd=tmp_path)

    assert run.rc != 0  # nothing could be read: no container restarted
    assert 'tgi: not read: previous terminated container \\"tgi\\"' in run.output
    assert "open-webui: not read: previous terminated container" in run.output
    assert "Traceback" not in run.output and "HTTP response headers" not in run.output

    run = run_playbook("logs.yml", inventory, extra_vars={"icc_logs_dir": "saved"}, cwd=tmp_path)
    assert run.rc == 0, run.output
    assert (tmp_path / "saved" / f"{namespace}-tgi.log").exists()  # relative to where it ran


@pytest.mark.sandbox
def test_bad_options_are_refused_before_anything_is_read(inventory, namespace, sandbox):
    run = run_playbook(
        "logs.yml",
        inventory,
        extra_vars={"icc_logs_app": "db", "icc_logs_tail": "x", "icc_logs_since": "soon"},
    )
    assert run.rc != 0
    for line in (
        "- icc_logs_app: 'db' is not allowed: one of tgi, webui, open-webui, both",
        "- icc_logs_tail: 'x' is not an integer",
        "- icc_logs_since: 'soon' is not allowed: a duration such as 90s, 15m, 2h or 1h30m",
    ):
        assert line in run.output.splitlines(), run.output
    assert "Read the logs" not in run.output
    assert sandbox.student_writes(namespace) == []

"""access.yml: the port-forward commands it prints, and the background port-forwards it starts,
shows and stops.

Printing needs no cluster. The sandbox has no kubelet, so a real `kubectl port-forward` cannot
work there: start/stop are tested with a kubectl stand-in put first on PATH (the seam), which
records its arguments and waits like a port-forward until it is stopped.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from playbooks import run_playbook, write_inventory

NAMESPACE = "wabc123-default"

KUBECTL_STANDIN = f"""#!{sys.executable}
import os, signal, sys, time
with open(os.environ["KUBECTL_RECORD"], "a") as record:
    record.write(" ".join(sys.argv[1:]) + "\\n")
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("Forwarding from 127.0.0.1 (kubectl stand-in)", flush=True)
time.sleep(float(os.environ.get("KUBECTL_SLEEP", "600")))
"""


@pytest.fixture
def inventory(tmp_path) -> Path:
    # Not read by print, passed to kubectl by start: no cluster is contacted in these tests.
    return write_inventory(tmp_path, [NAMESPACE], tmp_path / "student.kubeconfig")


@pytest.fixture
def kubectl(tmp_path) -> dict[str, str]:
    """The environment that puts the kubectl stand-in first on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(KUBECTL_STANDIN)
    (bin_dir / "kubectl").chmod(0o755)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"
        f"{os.environ['PATH']}",
        "KUBECTL_RECORD": str(tmp_path / "kubectl.args"),
    }


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has ended too; it is reaped by init once its shell parent is gone.
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def test_print_shows_both_port_forwards_the_urls_and_the_ingress(inventory):
    run = run_playbook(
        "access.yml",
        inventory,
        extra_vars={
            "tgi_ingress_enabled": True,
            "tgi_ingress_host": "llm.example.org",
            "tgi_ingress_tls_secret": "llm-tls",
            "open_webui_ingress_enabled": True,
            "open_webui_ingress_host": "chat.example.org",
        },
    )
    assert run.rc == 0, run.output[-3000:]
    for line in (
        f"TGI API: kubectl -n {NAMESPACE} port-forward svc/tgi 3333:3333 → "
        "http://127.0.0.1:3333/v1",
        f"Open WebUI: kubectl -n {NAMESPACE} port-forward svc/open-webui 8080:8080 → "
        "http://127.0.0.1:8080",
        "TGI API through its Ingress: https://llm.example.org/v1",  # with TLS
        "Open WebUI through its Ingress: http://chat.example.org",  # without
        f"playbooks/test.yml -l {NAMESPACE} (it opens port-forwards of its own); through these "
        "instead: -e icc_test_tgi_url=http://127.0.0.1:3333 "
        "-e icc_test_open_webui_url=http://127.0.0.1:8080",
    ):
        assert line in run.output, run.output[-3000:]
    assert run.total_changed() == 0


def test_check_mode_starts_and_stops_nothing_but_still_wants_kubectl(inventory, kubectl, tmp_path):
    folder = tmp_path / "not-there-yet"
    settings = {"icc_port_forward_dir": str(folder)}
    run = run_playbook(
        "access.yml",
        inventory,
        "--check",
        extra_vars={**settings, "icc_port_forward": "start"},
        env=kubectl,
    )
    assert run.rc == 0, run.output[-3000:]
    assert "check mode: would start TGI API and Open WebUI" in run.output
    assert not folder.exists()
    run = run_playbook(
        "access.yml", inventory, "--check", extra_vars={**settings, "icc_port_forward": "stop"}
    )
    assert run.rc == 0, run.output[-3000:]
    missing = run_playbook(
        "access.yml",
        inventory,
        "--check",
        extra_vars={**settings, "icc_port_forward": "start", "icc_kubectl": str(tmp_path / "no")},
    )
    assert missing.rc != 0 and "is not an executable" in missing.output


def test_bad_settings_are_refused_one_line_each(inventory):
    run = run_playbook(
        "access.yml",
        inventory,
        extra_vars={
            "icc_port_forward": "begin",
            "icc_port_forward_tgi_port": "70000",
            "icc_port_forward_webui_port": "x",
        },
    )
    assert run.rc != 0
    for line in (
        "- icc_port_forward: 'begin' is not allowed: one of print, start, status, stop",
        "- icc_port_forward_tgi_port: 70000 is not allowed: a port number, an integer in 1..65535",
        "- icc_port_forward_webui_port: 'x' is not an integer",
    ):
        assert line in run.output, run.output[-3000:]

    same = {"icc_port_forward_tgi_port": "4000", "icc_port_forward_webui_port": "4000"}
    run = run_playbook("access.yml", inventory, extra_vars=same)
    assert run.rc != 0
    assert "icc_port_forward_webui_port must differ (both are 4000)" in run.output


def test_start_status_stop_run_exactly_the_recorded_processes(inventory, kubectl, tmp_path):
    folder = tmp_path / "forwards"
    settings = {"icc_port_forward_dir": str(folder), "icc_port_forward_tgi_port": 13333}
    pids: list[int] = []

    def forward(action: str):
        extra = {**settings, "icc_port_forward": action}
        return run_playbook("access.yml", inventory, extra_vars=extra, env=kubectl)

    try:
        started = forward("start")
        assert started.rc == 0, started.output[-3000:]
        assert started.changed(NAMESPACE) == 2
        pids = [
            int((folder / f"{NAMESPACE}-{name}.pid").read_text()) for name in ("tgi", "open-webui")
        ]
        assert all(alive(pid) for pid in pids)
        recorded = Path(kubectl["KUBECTL_RECORD"]).read_text().splitlines()
        kubeconfig = tmp_path / "student.kubeconfig"
        assert recorded == [
            f"--kubeconfig {kubeconfig} -n {NAMESPACE} port-forward svc/tgi 13333:3333",
            f"--kubeconfig {kubeconfig} -n {NAMESPACE} port-forward svc/open-webui 8080:8080",
        ]
        assert "(kubectl stand-in)" in (folder / f"{NAMESPACE}-tgi.log").read_text()
        assert f"TGI API: running (pid {pids[0]}) → http://127.0.0.1:13333/v1" in started.output

        again = forward("start")
        assert again.rc == 0 and again.changed(NAMESPACE) == 0, again.output[-3000:]
        assert len(Path(kubectl["KUBECTL_RECORD"]).read_text().splitlines()) == 2

        status = forward("status")
        assert f"Open WebUI: running (pid {pids[1]}) → http://127.0.0.1:8080" in status.output

        stopped = forward("stop")
        assert stopped.rc == 0, stopped.output[-3000:]
        assert f"TGI API: stopped (pid {pids[0]})" in stopped.output
        deadline = time.monotonic() + 10
        while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(alive(pid) for pid in pids)
        assert not list(folder.glob("*.pid"))
    finally:
        for pid in pids:  # only the stand-ins this test started, by PID
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_stop_leaves_a_process_alone_whose_pid_is_not_a_port_forward(inventory, tmp_path):
    folder = tmp_path / "forwards"
    folder.mkdir()
    # A PID file pointing at this test's own process (say the PID was reused): not killed.
    (folder / f"{NAMESPACE}-tgi.pid").write_text(f"{os.getpid()}\n")
    run = run_playbook(
        "access.yml",
        inventory,
        extra_vars={"icc_port_forward_dir": str(folder), "icc_port_forward": "stop"},
    )
    assert run.rc == 0, run.output[-3000:]
    assert f"TGI API: had already ended (pid {os.getpid()})" in run.output
    assert "Open WebUI: not started" in run.output
    assert not (folder / f"{NAMESPACE}-tgi.pid").exists()


def test_start_without_kubectl_says_what_to_do(inventory, tmp_path):
    missing = tmp_path / "no" / "kubectl"
    run = run_playbook(
        "access.yml",
        inventory,
        extra_vars={
            "icc_port_forward": "start",
            "icc_kubectl": str(missing),
            "icc_port_forward_dir": str(tmp_path / "forwards"),
        },
    )
    assert run.rc != 0
    assert f"Cannot start the port-forwards: {missing} is not an executable. Install kubectl" in (
        run.output
    )
    assert "-e icc_kubectl=/path/to/kubectl" in run.output


def test_a_port_forward_that_exits_at_once_fails_with_its_output(inventory, tmp_path):
    failing = tmp_path / "kubectl-fails"
    failing.write_text(
        "#!/bin/sh\necho 'error: unable to forward port because pod is not running' >&2\nexit 1\n"
    )
    failing.chmod(0o755)
    folder = tmp_path / "forwards"
    run = run_playbook(
        "access.yml",
        inventory,
        extra_vars={
            "icc_port_forward": "start",
            "icc_kubectl": str(failing),
            "icc_port_forward_dir": str(folder),
        },
    )
    assert run.rc != 0
    assert "kubectl port-forward exited at once" in run.output
    assert "unable to forward port because pod is not running" in run.output
    assert not list(folder.glob("*.pid"))

"""Starting and stopping a sandbox leaves nothing behind; the Kubernetes build is cached."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
from icc_sandbox import cluster


def port_is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def process_state(pid: int) -> str | None:
    """The process's state letter and command line, or None when the PID is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return f"{stat.rsplit(')', 1)[1].split()[0]} {cmdline[:120]}"


@pytest.mark.sandbox
def test_a_second_sandbox_starts_beside_the_first_and_stops_without_a_trace(sandbox):
    second = cluster.start()
    try:
        assert second.is_alive()
        assert second.server != sandbox.server
        pids = dict(second.pids)
        assert set(pids) == {
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "node-agent",
        }
        api_port = urlparse(second.server).port
        assert port_is_listening(api_port)
    finally:
        cluster.stop(second)
    left = {name: process_state(pid) for name, pid in pids.items() if process_state(pid)}
    assert not left, left
    assert not port_is_listening(api_port)
    assert not second.run_dir.exists()
    assert sandbox.is_alive(), "stopping one sandbox must not touch another"


@pytest.mark.sandbox
def test_the_kubernetes_build_is_reused(sandbox):
    """The session's sandbox built (or found) the binaries: asking again must not rebuild."""
    script = cluster.INSTALL_SCRIPT
    result = subprocess.run(
        ["bash", str(script)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ | {"LC_ALL": "C"},
    )
    bin_dir = Path(result.stdout.strip().splitlines()[-1])
    assert "already built" in result.stderr
    assert "building" not in result.stderr
    for binary in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
        assert os.access(bin_dir / binary, os.X_OK)

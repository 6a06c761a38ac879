"""Starting and stopping a sandbox leaves nothing behind (no process, no port, no route of the
machine's changed before, during or after); the Kubernetes build is cached."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest
from icc_sandbox import cluster, pod_network
from waiting import wait_until


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


def serving_pod() -> dict:
    """A pod the node agent serves (its Open WebUI health stand-in on 8080) and a Service."""
    return {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "containers": [
                {
                    "name": "open-webui",
                    "image": "ghcr.io/open-webui/open-webui:v0.11.0",
                    "ports": [{"name": "http", "containerPort": 8080}],
                }
            ]
        },
    }


def get_health(address: tuple[str, int]) -> int:
    with urllib.request.urlopen(f"http://{address[0]}:{address[1]}/health", timeout=5) as reply:
        return reply.status


@pytest.mark.sandbox
def test_a_second_sandbox_starts_beside_the_first_and_stops_without_a_trace(sandbox):
    if os.geteuid() != 0:
        pytest.skip("not root: the sandbox runs without a network namespace of its own")
    routes_before = pod_network.machine_routes()
    second = cluster.start()
    try:
        assert second.is_alive()
        assert second.server != sandbox.server
        pids = dict(second.pids)
        assert set(pids) == {
            "network",
            "gateway",
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "node-agent",
        }
        api_port = urlparse(second.server).port
        assert port_is_listening(api_port)  # the gateway's, on this machine's 127.0.0.1
        # Both sandboxes use the same pod network, each in a namespace of its own.
        assert second.pod_network == sandbox.pod_network == pod_network.POD_NETWORK
        assert second.network_namespace != sandbox.network_namespace

        # A pod and its Service are up; this machine reaches the Service through the gateway
        # alone, and its routes are still the ones it had before the sandbox started.
        api = second.admin_api()
        namespace = second.student_namespace
        api.create(f"/api/v1/namespaces/{namespace}/pods", serving_pod())
        api.create(
            f"/api/v1/namespaces/{namespace}/services",
            {
                "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80,
                         "targetPort": "http"}]},
            },
        )  # fmt: skip
        address = second.service_address(namespace, "web", 80)
        wait_until(lambda: _answers(address), 60, "the Service through the gateway")
        pod_ip = api.get(f"/api/v1/namespaces/{namespace}/pods/web")["status"]["podIP"]
        assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(pod_network.POD_NETWORK)
        routes_during = pod_network.machine_routes()
    finally:
        cluster.stop(second)
    left = {name: process_state(pid) for name, pid in pids.items() if process_state(pid)}
    assert not left, left
    assert not port_is_listening(api_port)
    assert not second.run_dir.exists()
    assert sandbox.is_alive(), "stopping one sandbox must not touch another"
    assert routes_during == routes_before
    assert pod_network.machine_routes() == routes_before


def _answers(address: tuple[str, int]) -> bool:
    try:
        return get_health(address) == 200
    except OSError:
        return False


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

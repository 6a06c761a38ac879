"""The sandbox's network: a Linux network namespace of its own, made and removed with the sandbox.

Everything that holds a pod's or a Service's address runs inside it: etcd, the control plane and
the node agent (its pods' stand-ins, the real Open WebUI, kube-proxy, the kubelets). Its loopback
device carries the pod network, a private /16 routed `local` there: every address in the range
is bindable and delivered to the namespace itself. The machine's own namespace routes nothing new
before, during or after a run, so a client that outlives the sandbox can never send to those
addresses through the machine's default route. As each sandbox has a namespace of its own, all
use the same range.

The namespace lives as long as its holder, a process started with `unshare --net` that brings lo
up, adds the route and waits; the others join it through /proc/<holder>/ns/net (nsenter). From
the machine, the API server and the Services are reached through the gateway's ports on
127.0.0.1 (icc_sandbox.gateway); `nsenter --net=/proc/<holder>/ns/net CMD` runs a command inside.

Needs root (CAP_SYS_ADMIN), iproute2 and util-linux's unshare and nsenter; without them the
sandbox runs in the machine's namespace with loopback pod IPs.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

POD_NETWORK = "10.200.0.0/16"
_CLONE_NEWNET = 0x40000000  # <sched.h>
T = TypeVar("T")


def unavailable_reason() -> str | None:
    """Why this machine cannot give the sandbox a network namespace, or None when it can."""
    if os.geteuid() != 0:
        return "not running as root: a network namespace needs CAP_SYS_ADMIN"
    tools = (("ip", "iproute2"), ("unshare", "util-linux"), ("nsenter", "util-linux"))
    for command, package in tools:
        if shutil.which(command) is None:
            return f"the `{command}` command (Debian package {package}) is not installed"
    return None


def holder_argv(ready_file: Path) -> list[str]:
    """The command that makes the namespace and holds it until SIGTERM."""
    return ["unshare", "--net", "--", sys.executable, "-m", "icc_sandbox.pod_network",
            "hold", POD_NETWORK, str(ready_file)]  # fmt: skip


def namespace_file(holder_pid: int) -> str:
    return f"/proc/{holder_pid}/ns/net"


def inside(namespace: str, argv: list[str]) -> list[str]:
    """`argv` run inside the namespace: nsenter joins it, then execs, so the PID stays argv's."""
    return ["nsenter", f"--net={namespace}", "--", *argv]


def call_inside(namespace: str, function: Callable[[], T]) -> T:
    """Calls `function` on a thread of its own that joined the namespace: the sockets it creates
    belong there and keep their namespace wherever they are used later. The caller's own
    threads stay where they are (a network namespace is a per-thread attribute)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            _enter(namespace)
            outcome["value"] = function()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="inside-sandbox-network", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]


def connector(namespace: str) -> Callable[[tuple[str, int]], object]:
    """A `tcp_relay.Connect` that opens its connections inside the namespace."""

    def connect(backend: tuple[str, int]):
        import socket

        return call_inside(namespace, lambda: socket.create_connection(backend, timeout=5))

    return connect


def _enter(namespace: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(namespace, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if libc.setns(fd, _CLONE_NEWNET) != 0:
            error = ctypes.get_errno()
            raise OSError(error, f"setns({namespace}): {os.strerror(error)}")
    finally:
        os.close(fd)


def machine_routes() -> list[dict]:
    """Every IPv4 and IPv6 route of every table of the calling thread's namespace, as
    `ip -json` shows them (for the checks that the machine's routes stay as they were)."""
    routes = []
    for family in ("-4", "-6"):
        shown = subprocess.run(
            ["ip", family, "-json", "route", "show", "table", "all"],
            capture_output=True,
            text=True,
            check=True,
        )
        routes += json.loads(shown.stdout or "[]")
    return routes


def _hold(pod_network: str, ready_file: str) -> int:
    """Inside the new namespace: loopback up, the pod network on it, then wait for SIGTERM."""
    for command in (
        ["ip", "link", "set", "lo", "up"],
        ["ip", "route", "add", "local", pod_network, "dev", "lo"],
    ):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{' '.join(command)}: {done.stderr.strip()}", file=sys.stderr)
            return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    Path(ready_file).write_text(pod_network)
    while not stop.wait(3600):
        pass
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "hold":
        sys.exit(_hold(sys.argv[2], sys.argv[3]))
    print("usage: python -m icc_sandbox.pod_network hold NETWORK READY_FILE", file=sys.stderr)
    sys.exit(2)

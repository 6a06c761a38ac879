"""The kubelets' read API for the simulated nodes: container logs, over HTTPS, for the API server.

Each node serves on its own address (127.0.1.x) and a port chosen free at start; the node status
reports it in `daemonEndpoints.kubeletEndpoint.Port`, and the API server (started with
`--kubelet-preferred-address-types=InternalIP`) dials it for `pods/log`. The certificate is
self-signed: without `--kubelet-certificate-authority` the API server does not verify it (seen on
the sandbox's 1.20 API server, whose kubelet client skips verification when it has no CA).

Served: `GET /containerLogs/{namespace}/{pod}/{container}` with the API server's query
(tailLines, sinceSeconds, sinceTime, timestamps, previous, limitBytes, follow: with follow the
lines so far are sent and the response ends), `GET`/`POST /exec/{namespace}/{pod}/{container}`
over a WebSocket (icc_sandbox.exec_stream: the protocol; icc_sandbox.container_exec: what
nvidia-smi and env print) and `GET /healthz`. The API server forwards an exec's upgrade request
as it came (the client's Upgrade, Connection and Sec-WebSocket-* headers) and then pipes the
bytes; what the kubelet answers instead of 101 reaches the client as the handshake's status and
body. Exec over SPDY (kubectl of these versions) is refused with a 400. Not served: attach,
port-forward, stats.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from icc_sandbox import pki
from icc_sandbox.container_exec import (
    BUSY_SECONDS,
    ContainerView,
    container_env,
    gpu_slots,
    run_command,
)
from icc_sandbox.container_logs import (
    LogLine,
    LogQuery,
    LogsUnavailable,
    container_lines,
    container_run,
    render,
)
from icc_sandbox.exec_stream import (
    OP_CLOSE,
    ExecRefused,
    ExecRequest,
    choose_protocol,
    handshake_response,
    is_websocket_upgrade,
    offered_protocols,
    read_frame,
    session_frames,
)
from icc_sandbox.kubeapi import ApiError, KubeApi
from icc_sandbox.node_agent import JSON, NodeSpec, Timing, parse_iso

log = logging.getLogger("kubelet")
# (pod uid, container, now, seconds) -> whether its TGI stand-in is serving (NodeAgent's StandIns)
Busy = Callable[[str, str, float, float], bool]
# (pod uid, pod name, container, previous) -> a really running container's log lines, else None
RealLogs = Callable[[str, str, str, bool], "list[LogLine] | None"]
_LOGS_PATH = re.compile(r"^/containerLogs/([^/]+)/([^/]+)/([^/]+)$")


def pod_logs(
    api: KubeApi,
    node: NodeSpec,
    timing: Timing,
    path: str,
    query: str,
    now: float,
    real_logs: RealLogs = lambda *_: None,
) -> bytes:
    """The body of GET /containerLogs/...; raises LogsUnavailable with the kubelet's answer.
    `real_logs` gives the lines of containers that really run (the real Open WebUI)."""
    match = _LOGS_PATH.match(path)
    if match is None:
        raise LogsUnavailable(404, "404 page not found")
    namespace, name, container_name = (unquote(part) for part in match.groups())
    try:
        options = LogQuery.parse(query)
    except ValueError as error:
        raise LogsUnavailable(400, str(error)) from None
    try:
        pod: JSON = api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    except ApiError as error:
        if error.status != 404:
            raise LogsUnavailable(503, f"cannot read pod {namespace}/{name}: {error}") from None
        pod = {}
    if not pod or pod.get("spec", {}).get("nodeName") != node.name:
        raise LogsUnavailable(404, f'pod "{namespace}/{name}" does not exist on node {node.name}')
    container = next((c for c in pod["spec"]["containers"] if c["name"] == container_name), None)
    if container is None:
        raise LogsUnavailable(
            404, f'container "{container_name}" not found in pod "{namespace}/{name}"'
        )
    start_time = pod.get("status", {}).get("startTime")
    if not start_time:
        raise LogsUnavailable(
            400,
            f'container "{container_name}" in pod "{name}" is waiting to start: ContainerCreating',
        )
    live = real_logs(pod["metadata"]["uid"], name, container_name, options.previous)
    if live is not None:  # a container that really runs here: its own output
        return render(live, options, now)
    started = parse_iso(start_time)
    run = container_run(pod, container, node, started, now, timing, previous=options.previous)
    return render(container_lines(pod, container, node, run, now, timing), options, now)


def exec_view(
    api: KubeApi, node: NodeSpec, timing: Timing, request: ExecRequest, now: float, busy: Busy
) -> ContainerView:
    """The container an exec runs in, looked up through the API as the kubelet knows it;
    ExecRefused with the kubelet's status and words when there is none to run in."""
    path = f"/api/v1/namespaces/{request.namespace}/pods/{request.pod}"
    try:
        pod: JSON = api.get(path)
    except ApiError as error:
        if error.status != 404:
            where = f"{request.namespace}/{request.pod}"
            raise ExecRefused(503, f"cannot read pod {where}: {error}") from None
        pod = {}
    if not pod or pod.get("spec", {}).get("nodeName") != node.name:
        raise ExecRefused(404, "pod does not exist")
    container = next((c for c in pod["spec"]["containers"] if c["name"] == request.container), None)
    statuses = {s["name"]: s for s in pod.get("status", {}).get("containerStatuses") or []}
    running = "running" in (statuses.get(request.container, {}).get("state") or {})
    start_time = pod.get("status", {}).get("startTime")
    if container is None or not running or not start_time:
        # kubelet's GetExec finds no running container of that name
        raise ExecRefused(500, f'container not found ("{request.container}")')
    try:
        neighbours = api.get(f"/api/v1/pods?fieldSelector=spec.nodeName%3D{node.name}").get(
            "items", []
        )
    except ApiError as error:
        raise ExecRefused(503, f"cannot list the pods of node {node.name}: {error}") from None
    slots = gpu_slots(neighbours, node).get((pod["metadata"]["uid"], container["name"]), ())
    return ContainerView(
        pod=pod,
        container=container,
        node=node,
        started=parse_iso(start_time),
        now=now,
        timing=timing,
        gpu_slots=slots,
        env=container_env(pod, container, node, slots, object_lookup(api), _kubernetes_ip(api)),
        busy=busy(pod["metadata"]["uid"], container["name"], now, BUSY_SECONDS),
    )


def object_lookup(api: KubeApi):
    """Secrets' and ConfigMaps' data by (kind, namespace, name), as env references need it."""

    def lookup(kind: str, namespace: str, name: str) -> dict[str, str] | None:
        plural = "secrets" if kind == "secret" else "configmaps"
        try:
            found = api.get(f"/api/v1/namespaces/{namespace}/{plural}/{name}")
        except ApiError:
            return None
        data = dict(found.get("data") or {})
        if kind != "secret":
            return data
        decoded = {}
        for key, value in data.items():
            try:
                decoded[key] = base64.b64decode(value, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue  # not text: a real env would hold the raw bytes
        return decoded

    return lookup


def _kubernetes_ip(api: KubeApi) -> str | None:
    try:
        return api.get("/api/v1/namespaces/default/services/kubernetes")["spec"]["clusterIP"]
    except (ApiError, KeyError):
        return None


def _no_real_logs(_uid: str, _pod: str, _container: str, _previous: bool) -> None:
    return None


def _never_busy(_uid: str, _container: str, _now: float, _recent: float) -> bool:
    return False


class _Handler(BaseHTTPRequestHandler):
    server: _KubeletServer

    def do_POST(self) -> None:
        if self.path.startswith("/exec/"):
            self._exec()
            return
        self._send(404, b"404 page not found")

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith("/exec/"):
            self._exec()
            return
        if path == "/healthz":
            self._send(200, b"ok")
            return
        kubelet = self.server
        try:
            body = pod_logs(
                kubelet.api,
                kubelet.node,
                kubelet.timing,
                path,
                query,
                time.time(),
                kubelet.real_logs(),
            )
        except LogsUnavailable as error:
            self._send(error.status, str(error).encode())
            return
        self._send(200, body)

    def _exec(self) -> None:
        kubelet = self.server
        path, _, query = self.path.partition("?")
        try:
            request = ExecRequest.parse(path, query)
            view = exec_view(
                kubelet.api, kubelet.node, kubelet.timing, request, time.time(), kubelet.busy()
            )
            if not is_websocket_upgrade(self.headers):
                raise ExecRefused(
                    400, "the sandbox's kubelet serves exec over WebSocket only, not over SPDY"
                )
            offered = offered_protocols(self.headers.get_all("Sec-WebSocket-Protocol") or [])
            protocol = choose_protocol(offered)
            key = self.headers.get("Sec-WebSocket-Key")
            if not key:
                raise ExecRefused(400, "missing Sec-WebSocket-Key")
        except ExecRefused as error:
            self._send(error.status, str(error).encode())
            return
        output = run_command(list(request.command), view)
        log.info(
            "%s: exec %s in %s/%s/%s (%s): %s",
            kubelet.node.name,
            list(request.command),
            request.namespace,
            request.pod,
            request.container,
            protocol or "no subprotocol",
            output.runtime_error or f"exit {output.exit_code}",
        )
        self.close_connection = True
        self.wfile.write(handshake_response(key, protocol))
        for frame in session_frames(protocol, request, output):
            self.wfile.write(frame)
        self.wfile.flush()
        # The client answers the close frame with its own; then the connection ends.
        self.connection.settimeout(5)
        try:
            while read_frame(self.rfile.read).opcode != OP_CLOSE:
                pass
        except (EOFError, OSError, ValueError):
            pass

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.server.node.name, *args)


class _KubeletServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, node: NodeSpec, api: KubeApi, timing: Timing, tls: ssl.SSLContext):
        super().__init__((node.address, 0), _Handler)
        self.node, self.api, self.timing = node, api, timing
        self.busy: Callable[[], Busy] = lambda: _never_busy
        self.real_logs: Callable[[], RealLogs] = lambda: _no_real_logs
        self.socket = tls.wrap_socket(self.socket, server_side=True)


class Kubelets:
    """One kubelet endpoint per node; `ports` says where (node name -> port)."""

    def __init__(self, api: KubeApi, nodes: Iterable[NodeSpec], timing: Timing) -> None:
        self.api, self.nodes, self.timing = api, list(nodes), timing
        # Whether a container's TGI stand-in is serving: set by the node agent once it runs.
        self.busy: Busy = _never_busy
        # The real Open WebUI's logs: set by the node agent when it runs it.
        self.real_logs: RealLogs = _no_real_logs
        self.servers: list[_KubeletServer] = []
        self.threads: list[threading.Thread] = []
        self._certs: tempfile.TemporaryDirectory | None = None

    @property
    def ports(self) -> dict[str, int]:
        return {server.node.name: server.server_address[1] for server in self.servers}

    def start(self) -> Kubelets:
        self._certs = tempfile.TemporaryDirectory(prefix="haw-icc-kubelet-")
        folder = Path(self._certs.name)
        key = pki.rsa_key()
        cert = pki.certificate(
            "haw-icc-sandbox-kubelet", key, ips=[node.address for node in self.nodes]
        )
        pki.write_pem(folder / "kubelet.crt", cert)
        pki.write_pem(folder / "kubelet.key", key)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(folder / "kubelet.crt", folder / "kubelet.key")
        try:
            for node in self.nodes:
                server = _KubeletServer(node, self.api, self.timing, tls)
                server.busy = lambda: self.busy
                server.real_logs = lambda: self.real_logs
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    name=f"kubelet-{node.name}",
                    daemon=True,
                )
                thread.start()
                self.servers.append(server)
                self.threads.append(thread)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()
        for thread in self.threads:
            thread.join(timeout=10)
        self.servers, self.threads = [], []
        if self._certs is not None:
            self._certs.cleanup()
            self._certs = None

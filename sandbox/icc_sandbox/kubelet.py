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
body. Exec over SPDY (kubectl of these versions) is refused with a 400. `GET`/`POST
/portForward/{namespace}/{pod}?port=...` over a WebSocket (icc_sandbox.portforward_stream: the
protocol) connects to the pod's IP and each port, where the node agent's stand-ins or the real
Open WebUI listen (a real runtime dials localhost in the pod's network namespace: the same
listener), and relays the bytes; a port nothing listens on gets the runtime's error on its error
channel. Port-forward over SPDY (kubectl before 1.31) is refused with a 400 too. Not served:
attach, stats.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import io
import logging
import re
import select
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
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
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    ExecRefused,
    ExecRequest,
    Frame,
    choose_protocol,
    close_frame,
    encode_frame,
    handshake_response,
    is_websocket_upgrade,
    offered_protocols,
    read_frame,
    session_frames,
)
from icc_sandbox.kubeapi import ApiError, KubeApi
from icc_sandbox.nodes import JSON, NodeSpec, Timing, parse_iso
from icc_sandbox.portforward_stream import (
    HALF_CLOSED_SECONDS,
    ForwardRefused,
    ForwardRequest,
    choose,
    client_data,
    data_channel,
    error_channel,
    forward_error,
    message,
    opening_frames,
    pod_not_found,
)

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


def node_pod(api: KubeApi, node: NodeSpec, namespace: str, name: str) -> JSON:
    """A pod of this node, as the kubelet's pod manager has it; ExecRefused (the kubelet's
    refusal of exec and port-forward alike) 404 "pod does not exist" when it is not one."""
    try:
        pod: JSON = api.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
    except ApiError as error:
        if error.status != 404:
            raise ExecRefused(503, f"cannot read pod {namespace}/{name}: {error}") from None
        pod = {}
    if not pod or pod.get("spec", {}).get("nodeName") != node.name:
        raise ExecRefused(404, "pod does not exist")
    return pod


def exec_view(
    api: KubeApi, node: NodeSpec, timing: Timing, request: ExecRequest, now: float, busy: Busy
) -> ContainerView:
    """The container an exec runs in, looked up through the API as the kubelet knows it;
    ExecRefused with the kubelet's status and words when there is none to run in."""
    pod = node_pod(api, node, request.namespace, request.pod)
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
        env=container_env(
            pod, container, node, slots, object_lookup(api), kubernetes_service_ip(api)
        ),
        busy=busy(pod["metadata"]["uid"], container["name"], now, BUSY_SECONDS),
    )


@dataclass(frozen=True)
class ForwardTarget:
    """The pod a port-forward reaches: its IP (where its listeners are) and what the runtime's
    error names."""

    pod_ip: str
    uid: str
    host_network: bool = False


def forward_target(api: KubeApi, node: NodeSpec, request: ForwardRequest) -> ForwardTarget:
    """The pod of a port-forward, looked up as the kubelet knows it; ForwardRefused with the
    kubelet's status and words when it has none to forward to."""
    pod = node_pod(api, node, request.namespace, request.pod)
    uid = pod["metadata"]["uid"]
    if request.uid and request.uid != uid:
        raise ForwardRefused(404, "pod not found")
    status = pod.get("status") or {}
    if (
        not status.get("podIP")
        or not status.get("startTime")
        or status.get("phase") in ("Succeeded", "Failed")
    ):  # no running sandbox: the runtime's pod list does not have it
        raise pod_not_found(request.namespace, request.pod)
    return ForwardTarget(status["podIP"], uid, bool(pod["spec"].get("hostNetwork")))


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


def kubernetes_service_ip(api: KubeApi) -> str | None:
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
        if self.path.startswith("/portForward/"):
            self._port_forward()
            return
        self._send(404, b"404 page not found")

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith("/exec/"):
            self._exec()
            return
        if path.startswith("/portForward/"):
            self._port_forward()
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

    def _port_forward(self) -> None:
        kubelet = self.server
        path, _, query = self.path.partition("?")
        try:
            if not is_websocket_upgrade(self.headers):
                raise ForwardRefused(
                    400,
                    "the sandbox's kubelet serves port-forward over WebSocket only, not over SPDY",
                )
            request = ForwardRequest.parse(path, query)
            target = forward_target(kubelet.api, kubelet.node, request)
            key = self.headers.get("Sec-WebSocket-Key")
            if not key:
                raise ForwardRefused(400, "missing Sec-WebSocket-Key")
        except ForwardRefused as error:
            self._send(error.status, str(error).encode())
            return
        offered = offered_protocols(self.headers.get_all("Sec-WebSocket-Protocol") or [])
        try:
            protocol = choose(offered)
        except ForwardRefused as error:
            log.info("%s: port-forward refused: %s", kubelet.node.name, error)
            # The Go handshake answers 403 without a body.
            self.wfile.write(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            self.close_connection = True
            return
        log.info(
            "%s: port-forward to %s/%s ports %s (%s)",
            kubelet.node.name,
            request.namespace,
            request.pod,
            ",".join(map(str, request.ports)),
            protocol or "no subprotocol",
        )
        self.close_connection = True
        self.wfile.write(handshake_response(key, protocol))
        _Forwarding(self.connection, protocol, request.ports, target).run()

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s: " + format, self.server.node.name, *args)


class _Forwarding:
    """One port-forward connection after the handshake, on one thread: the kubelet's messages
    out, the client's data to the pod's ports, the pods' bytes back, until every port is done
    (then a close frame) or the client closes.

    A port is done when the pod refused it (its error on the error channel) or a second
    (HALF_CLOSED_SECONDS) after the pod ended its side, as containerd's copy waits for the
    other direction."""

    MAX_FRAME = 16 << 20  # the Python client sends up to 1 MiB of data per message
    CHUNK = 32 << 10  # what Go's io.Copy reads at a time

    def __init__(
        self,
        connection: socket.socket,
        protocol: str,
        ports: tuple[int, ...],
        target: ForwardTarget,
    ) -> None:
        self.connection, self.protocol = connection, protocol
        self.ports, self.target = ports, target
        self.upstreams: list[socket.socket | None] = []
        self.done_at: list[float | None] = []  # when each port is done (None: still going)
        self.received = b""
        self.fragments: list[bytes] = []

    def run(self) -> None:
        self.connection.settimeout(None)
        try:
            for frame in opening_frames(self.protocol, self.ports):
                self.connection.sendall(frame)
            for index, port in enumerate(self.ports):
                self._dial(index, port)
            while self._step():
                pass
            self.connection.sendall(close_frame())
        except OSError:
            pass  # the client went away
        finally:
            for upstream in self.upstreams:
                if upstream is not None:
                    upstream.close()

    def _dial(self, index: int, port: int) -> None:
        try:
            upstream = socket.create_connection((self.target.pod_ip, port), timeout=5)
        except OSError as error:
            reason = error.strerror or str(error)
            said = forward_error(port, self.target.uid, reason, self.target.host_network)
            log.info("port-forward: %s", said)
            self.connection.sendall(message(self.protocol, error_channel(index), said.encode()))
            self.upstreams.append(None)
            self.done_at.append(time.monotonic())
            return
        upstream.settimeout(None)
        self.upstreams.append(upstream)
        self.done_at.append(None)

    def _step(self) -> bool:
        """One round of the loop; False when the connection is to end."""
        now = time.monotonic()
        if all(at is not None and at <= now for at in self.done_at):
            return False
        open_ = [u for u, at in zip(self.upstreams, self.done_at, strict=True) if u and at is None]
        waits = [at - now for at in self.done_at if at is not None and at > now]
        pending = isinstance(self.connection, ssl.SSLSocket) and self.connection.pending()
        readable, _, _ = select.select(
            [self.connection, *open_], [], [], 0 if pending else min([1.0, *waits])
        )
        if pending and self.connection not in readable:
            readable.append(self.connection)
        for source in readable:
            if source is self.connection:
                if not self._from_client():
                    return False
            else:
                self._from_pod(self.upstreams.index(source))
        return True

    def _from_pod(self, index: int) -> None:
        upstream = self.upstreams[index]
        assert upstream is not None
        try:
            data = upstream.recv(self.CHUNK)
        except OSError:
            data = b""
        if data:
            self.connection.sendall(message(self.protocol, data_channel(index), data))
        else:  # the pod ended its side: the other direction gets a second more
            self.done_at[index] = time.monotonic() + HALF_CLOSED_SECONDS

    def _from_client(self) -> bool:
        """Reads what arrived and acts on every complete frame; False at the client's close."""
        chunk = self.connection.recv(65536)
        if not chunk:
            return False
        self.received += chunk
        while True:
            reader = io.BytesIO(self.received)
            try:
                frame = read_frame(reader.read, self.MAX_FRAME)
            except EOFError:  # not all there yet
                return True
            except ValueError:  # too big: the connection ends, as Go's reader fails
                return False
            self.received = self.received[reader.tell() :]
            if not self._on_frame(frame):
                return False

    def _on_frame(self, frame: Frame) -> bool:
        if frame.opcode == OP_CLOSE:
            return False
        if frame.opcode == OP_PING:
            self.connection.sendall(encode_frame(OP_PONG, frame.payload))
            return True
        if frame.opcode not in (OP_BINARY, OP_TEXT, OP_CONTINUATION):
            return True
        self.fragments.append(frame.payload)
        if not frame.fin:
            return True
        payload, self.fragments = b"".join(self.fragments), []
        found = client_data(self.protocol, payload, len(self.ports))
        if found is not None:
            index, data = found
            upstream = self.upstreams[index]
            if upstream is not None and self.done_at[index] is None:
                with contextlib.suppress(OSError):  # the pod closed: its side ends the port
                    upstream.sendall(data)
        return True


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

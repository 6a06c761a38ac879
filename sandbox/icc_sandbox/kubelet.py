"""The kubelets' read API for the simulated nodes: container logs, over HTTPS, for the API server.

Each node serves on its own address (127.0.1.x) and a port chosen free at start; the node status
reports it in `daemonEndpoints.kubeletEndpoint.Port`, and the API server (started with
`--kubelet-preferred-address-types=InternalIP`) dials it for `pods/log`. The certificate is
self-signed: without `--kubelet-certificate-authority` the API server does not verify it (seen on
the sandbox's 1.20 API server, whose kubelet client skips verification when it has no CA).

Served: `GET /containerLogs/{namespace}/{pod}/{container}` with the API server's query
(tailLines, sinceSeconds, sinceTime, timestamps, previous, limitBytes, follow: with follow the
lines so far are sent and the response ends) and `GET /healthz`. Not served: exec, attach,
port-forward, stats.
"""

from __future__ import annotations

import logging
import re
import ssl
import tempfile
import threading
import time
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from icc_sandbox import pki
from icc_sandbox.container_logs import (
    LogQuery,
    LogsUnavailable,
    container_lines,
    container_run,
    render,
)
from icc_sandbox.kubeapi import ApiError, KubeApi
from icc_sandbox.node_agent import JSON, NodeSpec, Timing, parse_iso

log = logging.getLogger("kubelet")
_LOGS_PATH = re.compile(r"^/containerLogs/([^/]+)/([^/]+)/([^/]+)$")


def pod_logs(
    api: KubeApi, node: NodeSpec, timing: Timing, path: str, query: str, now: float
) -> bytes:
    """The body of GET /containerLogs/...; raises LogsUnavailable with the kubelet's answer."""
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
    started = parse_iso(start_time)
    run = container_run(pod, container, node, started, now, timing, previous=options.previous)
    return render(container_lines(pod, container, node, run, now, timing), options, now)


class _Handler(BaseHTTPRequestHandler):
    server: _KubeletServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/healthz":
            self._send(200, b"ok")
            return
        kubelet = self.server
        try:
            body = pod_logs(kubelet.api, kubelet.node, kubelet.timing, path, query, time.time())
        except LogsUnavailable as error:
            self._send(error.status, str(error).encode())
            return
        self._send(200, body)

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
        self.socket = tls.wrap_socket(self.socket, server_side=True)


class Kubelets:
    """One kubelet endpoint per node; `ports` says where (node name -> port)."""

    def __init__(self, api: KubeApi, nodes: Iterable[NodeSpec], timing: Timing) -> None:
        self.api, self.nodes, self.timing = api, list(nodes), timing
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

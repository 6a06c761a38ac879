"""A minimal stand-in for Open WebUI's health routes, on a pod IP of the sandbox.

Open WebUI (FastAPI) answers `GET /health` and `GET /health/db` with `{"status": true}` once it
runs; unknown routes get FastAPI's `{"detail": "Not Found"}` with 404. That is all this serves:
enough for a health check through the API server's service proxy, in the namespaces that do not
run the real Open WebUI (icc_sandbox.process_runtime: about 0.8 GB and 10-30 s a pod).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from icc_sandbox.tgi_standin import BackgroundServer, listen_address

HEALTH_PATHS = frozenset({"/health", "/health/db"})


class _Handler(BaseHTTPRequestHandler):
    server_version = "uvicorn"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in HEALTH_PATHS:
            self._send(200, {"status": True})
        else:
            self._send(404, {"detail": "Not Found"})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet, like a test server
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class WebUiStandIn(BackgroundServer):
    """Open WebUI's /health on host:port; start()/stop() or a context manager."""

    def __init__(self, host: str, port: int, local_networks: Iterable[str] = ()) -> None:
        self._ip = listen_address(host, local_networks)
        self._port = port

    def start(self) -> WebUiStandIn:
        if self._ip.version == 6:
            raise ValueError("the Open WebUI stand-in listens on IPv4 pod addresses only")
        server = _Server((str(self._ip), self._port), _Handler)
        self._serve(server, f"webui-standin-{server.server_address[1]}")
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("not started")
        return f"http://{self._ip}:{self._server.server_address[1]}"

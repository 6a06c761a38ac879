"""A Hugging Face Hub on this machine that answers from the recordings in tests/unit/data/hub
(each model's model_info.json and config.json), for the playbooks' Hub lookup: the sandbox has
no internet, and huggingface_hub goes wherever HF_ENDPOINT, its own setting for a mirror, says.
Any other request gets 404, as the Hub answers an unknown model.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from playbooks import REPO_ROOT

RECORDED_HUB = REPO_ROOT / "tests" / "unit" / "data" / "hub"
_INFO = re.compile(r"^/api/models/(?P<model>[^/?]+/[^/?]+)\?")
_CONFIG = re.compile(r"^/(?P<model>[^/]+/[^/]+)/resolve/main/config\.json$")


class _RecordedHub(BaseHTTPRequestHandler):
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        info, config = _INFO.match(self.path), _CONFIG.match(self.path)
        found = info or config
        name = "model_info.json" if info else "config.json"
        path = RECORDED_HUB / found["model"].replace("/", "__") / name if found else None
        if path is None or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@contextmanager
def recorded_hub() -> Iterator[tuple[dict[str, str], list[str]]]:
    """(the environment that sends huggingface_hub to the recordings, the paths asked)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordedHub)
    _RecordedHub.asked = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        env = {"HF_ENDPOINT": f"http://127.0.0.1:{server.server_port}", "HF_HUB_OFFLINE": "0"}
        yield env, _RecordedHub.asked
    finally:
        server.shutdown()
        server.server_close()

"""What the idle proxy (roles/tgi_server/files/idle_proxy.py, icc_idle_minutes) costs a request,
and its memory: the role's script run as its own process, as in its pod, in front of the
sandbox's TGI stand-in on loopback, with a small HTTP stand-in for the Kubernetes API (the
proxy reads its Deployment's replicas at start and nothing else while awake).

    .venv/bin/python benchmarks/idle_proxy.py        # the figures, and benchmarks/idle_proxy.json
    .venv/bin/python benchmarks/idle_proxy.py --requests 400

The same chat (8 tokens, not streamed) is sent alternately straight to the stand-in and through
the proxy, so both see the same machine load; the overhead is the difference of the medians
(and of the 95th percentiles) measured in one run. The memory is the proxy process's resident
set (VmRSS) after the requests, and its peak (VmHWM), from /proc. The wake time (first request
to answer while asleep) is not measured here: it is the server's start-up plus at most one poll
of the proxy (1 s); tests/integration/test_idle_sleep.py measures it in the sandbox.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "sandbox"))
from icc_sandbox.tgi_standin import TgiStandIn  # noqa: E402

SCRIPT = REPO / "roles" / "tgi_server" / "files" / "idle_proxy.py"
MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
KEY = "a-benchmark-key-of-24-ch"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class KubernetesStandIn(BaseHTTPRequestHandler):
    """The one Deployment the proxy asks about, awake."""

    def do_GET(self):
        body = json.dumps({"spec": {"replicas": 1}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chat_seconds(url: str) -> float:
    request = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(CHAT).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    began = time.perf_counter()
    with DIRECT.open(request, timeout=30) as answer:
        answer.read()
        assert answer.status == 200
    return time.perf_counter() - began


def memory_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def milliseconds(seconds: list[float]) -> dict[str, float]:
    return {"median": statistics.median(seconds) * 1e3, "p95": percentile(seconds, 0.95) * 1e3}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="chats each way")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "idle_proxy.json")
    args = parser.parse_args()

    api = ThreadingHTTPServer(("127.0.0.1", 0), KubernetesStandIn)
    threading.Thread(target=api.serve_forever, daemon=True).start()
    port = free_port()
    with TgiStandIn(MODEL, api_key=KEY) as server:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "UPSTREAM": server.url,
            "DEPLOYMENT": "tgi",
            "NAMESPACE": "bench",
            "IDLE_SECONDS": "3600",
            "PORT": str(port),
            "KUBERNETES_API": f"http://127.0.0.1:{api.server_address[1]}",
        }
        # The machine's python3 stands for the stock image's (standard library only).
        proxy = subprocess.Popen(["/usr/bin/python3", "-u", str(SCRIPT)], env=env,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            through = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 10
            while True:
                try:
                    chat_seconds(through)
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
            for _ in range(20):  # warm both ways
                chat_seconds(server.url), chat_seconds(through)
            direct, proxied = [], []
            for _ in range(args.requests):
                direct.append(chat_seconds(server.url))
                proxied.append(chat_seconds(through))
            memory = memory_kib(proxy.pid)
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
    api.shutdown()
    figures = {
        "requests": args.requests,
        "direct_ms": milliseconds(direct),
        "proxied_ms": milliseconds(proxied),
        "proxy_rss_mib": memory["VmRSS"] / 1024,
        "proxy_peak_rss_mib": memory["VmHWM"] / 1024,
    }  # fmt: skip
    figures["overhead_ms"] = {
        key: figures["proxied_ms"][key] - figures["direct_ms"][key] for key in ("median", "p95")
    }
    rounded = json.loads(json.dumps(figures), parse_float=lambda text: round(float(text), 2))
    args.out.write_text(json.dumps(rounded, indent=2) + "\n")
    print(
        f"{args.requests} chats each way: direct median {rounded['direct_ms']['median']} ms, "
        f"through the proxy {rounded['proxied_ms']['median']} ms (overhead "
        f"{rounded['overhead_ms']['median']} ms median, {rounded['overhead_ms']['p95']} ms p95); "
        f"proxy memory {rounded['proxy_rss_mib']} MiB resident, peak "
        f"{rounded['proxy_peak_rss_mib']} MiB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Behaviour of the TGI stand-in (icc_sandbox.tgi_standin). Loopback only; no reference data."""

from __future__ import annotations

import http.client
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from icc_sandbox.tgi_standin import PROTECTED_ROUTES, ROUTES, TgiStandIn

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL = "example-org/tiny-chat"
KEY = "s3cret-Key-42"
CHAT = {
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello stand-in world"},
    ]
}
# Pinned here, not derived from the module: TGI 3.x router/src/server.rs puts its auth layer on
# `base_routes` only; `info_routes` (including POST /chat_tokenize) stay open.
NEEDS_KEY = {
    ("POST", p)
    for p in (
        "/",
        "/generate",
        "/generate_stream",
        "/v1/chat/completions",
        "/v1/completions",
        "/invocations",
        "/tokenize",
    )
}
OPEN = {
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/ping"),
    ("GET", "/info"),
    ("GET", "/v1/models"),
    ("GET", "/metrics"),
    ("POST", "/chat_tokenize"),
}
# A valid body for every POST route, so auth is the only thing that can refuse it.
BODIES: dict[str, dict[str, Any]] = {
    "/": {"inputs": "hi there"},
    "/generate": {"inputs": "hi there"},
    "/generate_stream": {"inputs": "hi there"},
    "/v1/chat/completions": CHAT,
    "/v1/completions": {"prompt": "once upon"},
    "/invocations": CHAT,
    "/tokenize": {"inputs": "hi there"},
    "/chat_tokenize": CHAT,
}


def call(
    target: TgiStandIn | tuple[str, int],
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    """One request; returns (status, headers, body) for any status, 4xx included."""
    host, port = (target.host, target.port) if isinstance(target, TgiStandIn) else target
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json"} if data is not None else {}
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=data, headers={**hdrs, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        conn.close()


def bearer(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def sse_data(body: bytes) -> list[str]:
    """The data of each server-sent event (one optional space after "data:" is not data)."""
    out = []
    for line in body.decode().splitlines():
        if line.startswith("data:"):
            value = line[len("data:") :]
            out.append(value[1:] if value.startswith(" ") else value)
    return out


def metric(s: TgiStandIn, name: str) -> float:
    _, _, body = call(s, "GET", "/metrics")
    found = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.MULTILINE)
    assert found, f"{name} missing from /metrics"
    return float(found.group(1))


@pytest.fixture
def make_standin() -> Iterator[Callable[..., TgiStandIn]]:
    """Start stand-ins on free ports; every one is stopped at teardown."""
    started: list[TgiStandIn] = []

    def make(**kwargs: Any) -> TgiStandIn:
        standin = TgiStandIn(MODEL, **kwargs).start()
        started.append(standin)
        return standin

    yield make
    for standin in started:
        standin.stop()


@pytest.fixture
def standin(make_standin: Callable[..., TgiStandIn]) -> TgiStandIn:
    return make_standin()


@pytest.fixture
def keyed(make_standin: Callable[..., TgiStandIn]) -> TgiStandIn:
    return make_standin(api_key=KEY)


def test_health_follows_readiness(make_standin: Callable[..., TgiStandIn]) -> None:
    s = make_standin(ready=False)
    status, headers, body = call(s, "GET", "/health")
    assert status == 503
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": "unhealthy", "error_type": "healthcheck"}
    s.set_ready(True)
    assert call(s, "GET", "/health")[::2] == (200, b"")
    s.set_ready(False)
    assert call(s, "GET", "/health")[0] == 503


def test_info_and_models_report_the_model(make_standin: Callable[..., TgiStandIn]) -> None:
    s = make_standin(max_input_tokens=1000, max_total_tokens=2048)
    status, _, body = call(s, "GET", "/info")
    info = json.loads(body)
    assert status == 200
    assert info["model_id"] == MODEL
    assert (info["max_input_tokens"], info["max_total_tokens"]) == (1000, 2048)
    assert info["router"] == "text-generation-router"
    assert info["version"].startswith("3.3.")
    status, _, body = call(s, "GET", "/v1/models")
    assert status == 200
    models = json.loads(body)
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [MODEL]
    assert s.url == f"http://127.0.0.1:{s.port}"


def test_chat_completion_echoes_with_consistent_usage(standin: TgiStandIn) -> None:
    status, _, body = call(standin, "POST", "/v1/chat/completions", CHAT)
    assert status == 200
    reply = json.loads(body)
    assert reply["object"] == "chat.completion"
    assert reply["model"] == MODEL
    choice = reply["choices"][0]
    assert choice["message"] == {"role": "assistant", "content": "Echo: hello stand-in world"}
    assert choice["finish_reason"] == "stop"
    usage = reply["usage"]
    assert usage["completion_tokens"] == 4
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # max_tokens cuts the reply and says so, as TGI does.
    short = json.loads(call(standin, "POST", "/v1/chat/completions", {**CHAT, "max_tokens": 2})[2])
    assert short["choices"][0]["message"]["content"] == "Echo: hello"
    assert short["choices"][0]["finish_reason"] == "length"
    assert short["usage"]["completion_tokens"] == 2


def test_chat_needs_the_right_key(keyed: TgiStandIn) -> None:
    path = "/v1/chat/completions"
    for headers in (
        {},
        bearer("wrong"),
        {"Authorization": KEY},
        {"Authorization": f"Token {KEY}"},
        {"Authorization": f"Bearer  {KEY}"},
        bearer(KEY + "x"),
    ):
        status, resp_headers, body = call(keyed, "POST", path, CHAT, headers)
        assert (status, body) == (401, b""), headers  # TGI: bare 401, empty body
        assert resp_headers["Content-Type"] is None
    assert call(keyed, "POST", path, CHAT, bearer())[0] == 200
    # TGI lower-cases the whole header and "Bearer <key>" before comparing them.
    assert call(keyed, "POST", path, CHAT, {"Authorization": f"bearer {KEY.lower()}"})[0] == 200
    assert call(keyed, "POST", path, CHAT, {"Authorization": f"BEARER {KEY.upper()}"})[0] == 200


def test_route_table_matches_tgi() -> None:
    assert set(PROTECTED_ROUTES) == NEEDS_KEY
    assert set(ROUTES) == NEEDS_KEY | OPEN


def test_non_ascii_authorization_is_refused(make_standin: Callable[..., TgiStandIn]) -> None:
    # hyper's HeaderValue::to_str() rejects non-visible-ASCII bytes, so TGI can never accept
    # such a key. http.client sends this header as latin-1, i.e. the very bytes of "clé".
    s = make_standin(api_key="clé")
    assert call(s, "POST", "/generate", {"inputs": "x"}, bearer("clé"))[0] == 401


@pytest.mark.parametrize(("method", "path"), sorted(NEEDS_KEY))
def test_every_generation_route_needs_the_key(keyed: TgiStandIn, method: str, path: str) -> None:
    assert call(keyed, method, path, BODIES[path])[0] == 401
    assert call(keyed, method, path, BODIES[path], bearer())[0] == 200


def test_open_routes_stay_open_with_a_key(keyed: TgiStandIn) -> None:
    for method, path in sorted(OPEN):
        status, _, _ = call(keyed, method, path, BODIES.get(path) if method == "POST" else None)
        assert status == 200, (method, path)


def test_chat_stream_ends_with_done(standin: TgiStandIn) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    status, headers, raw = call(standin, "POST", "/v1/chat/completions", body)
    assert status == 200
    assert headers["Content-Type"] == "text/event-stream"
    data = sse_data(raw)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    text = "".join(c["choices"][0]["delta"]["content"] for c in chunks if c["choices"])
    assert text == "Echo: hello stand-in world"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_generate_routes(standin: TgiStandIn) -> None:
    status, _, body = call(
        standin, "POST", "/generate", {"inputs": "a b c", "parameters": {"details": True}}
    )
    reply = json.loads(body)
    assert status == 200
    assert reply["generated_text"] == "Echo: a b c"
    assert reply["details"]["generated_tokens"] == len(reply["details"]["tokens"]) == 4
    assert reply["details"]["finish_reason"] == "eos_token"
    assert "details" not in json.loads(call(standin, "POST", "/generate", {"inputs": "x"})[2])
    # POST / wraps the reply in a list and returns the full text, as TGI's compat route does.
    assert json.loads(call(standin, "POST", "/", {"inputs": "a b"})[2]) == [
        {"generated_text": "a bEcho: a b"}
    ]
    events = [
        json.loads(d)
        for d in sse_data(call(standin, "POST", "/generate_stream", {"inputs": "a b"})[2])
    ]
    assert [e["token"]["text"] for e in events] == ["Echo:", " a", " b"]
    assert events[-1]["generated_text"] == "Echo: a b"
    assert all(e["generated_text"] is None for e in events[:-1])
    status, _, body = call(standin, "POST", "/v1/completions", {"prompt": ["one", "two"]})
    reply = json.loads(body)
    assert [c["text"] for c in reply["choices"]] == ["Echo: one", "Echo: two"]
    assert reply["usage"] == {"prompt_tokens": 2, "completion_tokens": 4, "total_tokens": 6}


def test_metrics_count_requests(keyed: TgiStandIn) -> None:
    assert metric(keyed, "tgi_request_count") == 0
    for _ in range(3):
        call(keyed, "POST", "/v1/chat/completions", CHAT, bearer())
    call(keyed, "POST", "/generate", {"inputs": "x"}, bearer())
    call(keyed, "POST", "/v1/chat/completions", CHAT)  # refused by auth: never reaches TGI
    call(keyed, "POST", "/generate", {"inputs": ""}, bearer())  # a validation failure
    assert metric(keyed, "tgi_request_count") == 5
    assert metric(keyed, "tgi_request_success") == 4
    assert metric(keyed, 'tgi_request_failure{err="validation"}') == 1
    assert metric(keyed, "tgi_request_generated_tokens_count") == 4
    assert metric(keyed, "tgi_queue_size") == 0
    assert metric(keyed, "tgi_batch_current_size") == 0


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/chat/completions", b"{not json"),
        ("/v1/chat/completions", b'{"model": "x"}'),
        ("/v1/chat/completions", b'{"messages": "hi"}'),
        ("/v1/chat/completions", b'{"messages": [{"content": "no role"}]}'),
        (
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
        ),
        (
            "/v1/chat/completions",
            b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}',
        ),
        ("/generate", b"[1, 2]"),
        ("/generate", b'{"inputs": 3}'),
        ("/generate", b'{"inputs": ""}'),
        ("/v1/completions", b'{"prompt": ["a", "b", "c", "d", "e"]}'),
        ("/invocations", b'{"neither": 1}'),
    ],
)
def test_bad_bodies_get_422(standin: TgiStandIn, path: str, raw: bytes) -> None:
    status, headers, body = call(standin, "POST", path, raw=raw)
    assert status == 422
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)
    assert error["error_type"] == "validation"
    assert isinstance(error["error"], str)
    assert error["error"]


def test_token_limits_are_enforced(make_standin: Callable[..., TgiStandIn]) -> None:
    s = make_standin(max_input_tokens=3, max_total_tokens=5)
    status, _, body = call(s, "POST", "/generate", {"inputs": "one two three four"})
    assert status == 422
    assert "must have less than 3 tokens" in json.loads(body)["error"]
    status, _, body = call(
        s, "POST", "/generate", {"inputs": "one two", "parameters": {"max_new_tokens": 4}}
    )
    assert status == 422
    assert "must be <= 5" in json.loads(body)["error"]


def test_unknown_route_and_wrong_method(standin: TgiStandIn) -> None:
    assert call(standin, "GET", "/nope")[::2] == (404, b"")
    status, headers, _ = call(standin, "GET", "/generate")
    assert status == 405
    assert headers["Allow"] == "POST"


@pytest.mark.parametrize(
    "host",
    ["0.0.0.0", "::", "10.1.2.3", "8.8.8.8", "example.org", "localhost", "::ffff:127.0.0.1", ""],
)
def test_refuses_non_loopback_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="loopback"):
        TgiStandIn(MODEL, host=host)


def test_other_loopback_addresses(make_standin: Callable[..., TgiStandIn]) -> None:
    assert call(make_standin(host="127.0.0.2"), "GET", "/health")[0] == 200
    try:
        socket.socket(socket.AF_INET6).close()
        s6 = make_standin(host="::1")
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    assert s6.url == f"http://[::1]:{s6.port}"
    assert call(s6, "GET", "/health")[0] == 200


def test_stop_closes_the_socket() -> None:
    with TgiStandIn(MODEL) as s:
        port = s.port
        assert call(s, "GET", "/health")[0] == 200
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    s.stop()  # idempotent


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "sandbox"), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "icc_sandbox.tgi_standin", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environ,
    )


def test_cli_serves_until_sigterm() -> None:
    proc = _cli("--model-id", MODEL, "--port", "0", env={"API_KEY": KEY})
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the CLI printed no URL within 20 s"
        url = proc.stdout.readline().strip()
        found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)", url)
        assert found, url
        s = ("127.0.0.1", int(found.group(1)))
        assert call(s, "GET", "/health")[0] == 200
        assert call(s, "POST", "/v1/chat/completions", CHAT)[0] == 401
        assert call(s, "POST", "/v1/chat/completions", CHAT, bearer())[0] == 200
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
        assert KEY.encode() not in cmdline  # the key never shows in ps
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        assert proc.stderr.read() == ""  # quiet without --verbose
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(s, timeout=2).close()
        with pytest.raises(ProcessLookupError):
            os.kill(proc.pid, 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize("args", [["--host", "0.0.0.0"], ["--api-key", KEY]])
def test_cli_refuses_public_hosts_and_keys_in_argv(args: list[str]) -> None:
    proc = _cli("--model-id", MODEL, *args)
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    assert proc.returncode == 2
    assert "loopback" in err or "unrecognized arguments" in err

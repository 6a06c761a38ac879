"""Stand-in for the HTTP API of Hugging Face Text Generation Inference (TGI) v3.3.x.

It serves TGI's routes with TGI's response shapes, on loopback only, so smoke tests of the
collection run without a GPU or a model. Replies are deterministic echoes of the input, and a
"token" is a whitespace-led word, so token counts are stable and add up.

Copied from TGI's router (router/src/server.rs, 3.x):
- With an API key, only the generation routes (POST /, /generate, /generate_stream,
  /v1/chat/completions, /v1/completions, /invocations, /tokenize) require
  `Authorization: Bearer <key>`. TGI lower-cases both the whole header value and
  "Bearer <key>" before it compares them, so the scheme *and the key* match case-insensitively.
  A refused request gets 401 with an empty body. /health, /ping, GET /, /info, /metrics,
  /v1/models and /chat_tokenize stay open.
- GET /v1/models answers {"object": "list", "data": [ModelInfo]}. The OpenAPI spec says
  ModelInfo, but TGI returns the OpenAI-style list.
- SSE events are written like axum writes them (`data:<json>`), and chat/completion streams
  end with `data:[DONE]`.
Deliberate differences: a body that is not JSON or lacks a required field gets 422 with an
ErrorResponse body (TGI's axum extractor answers 400/422 in plain text, or 415 without a JSON
Content-Type), and streamed requests are validated before the stream starts.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import os
import re
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any

TGI_VERSION = "3.3.5"
MAX_PAYLOAD = 2_000_000  # TGI's default --payload-limit
MAX_CLIENT_BATCH_SIZE = 4  # TGI's default --max-client-batch-size
# Token limits when none are given (TGI derives them from the model; any model will do here).
DEFAULT_MAX_INPUT_TOKENS = 4095
DEFAULT_MAX_TOTAL_TOKENS = 4096

# (method, path) -> handler. The same table as TGI's routers, minus the feature-gated /vertex.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/health"): "_health",
    ("GET", "/ping"): "_health",
    ("GET", "/"): "_health",
    ("GET", "/info"): "_info",
    ("GET", "/v1/models"): "_models",
    ("GET", "/metrics"): "_metrics",
    ("POST", "/chat_tokenize"): "_chat_tokenize",
    ("POST", "/"): "_compat_generate",
    ("POST", "/generate"): "_generate",
    ("POST", "/generate_stream"): "_generate_stream",
    ("POST", "/v1/chat/completions"): "_chat",
    ("POST", "/v1/completions"): "_completions",
    ("POST", "/invocations"): "_invocations",
    ("POST", "/tokenize"): "_tokenize",
}
# TGI puts its auth middleware on exactly these routes ("base_routes").
PROTECTED_ROUTES = frozenset(
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
)
# Served by TGI (SageMaker / root health checks) but absent from its OpenAPI document.
NOT_IN_SPEC = frozenset({("GET", "/"), ("GET", "/ping")})
# Routes whose handlers bump tgi_request_count in TGI.
_COUNTED = (PROTECTED_ROUTES - {("POST", "/tokenize")}) | {("POST", "/chat_tokenize")}

_PIECE = re.compile(r"\s*\S+")  # the stand-in's "tokenizer"


class ApiError(Exception):
    """A TGI ErrorResponse: {"error": ..., "error_type": ...} with an HTTP status."""

    def __init__(self, status: int, error: str, error_type: str = "validation") -> None:
        super().__init__(error)
        self.status = status
        self.body = {"error": error, "error_type": error_type}


def _bad_body(detail: str) -> ApiError:
    return ApiError(422, f"Failed to deserialize the JSON body into the target type: {detail}")


@dataclass
class _Gen:
    input_tokens: int
    tokens: list[str]
    finish: str  # TGI's FinishReason: "length" or "eos_token"

    @property
    def text(self) -> str:
        return "".join(self.tokens)

    def usage(self) -> dict[str, int]:
        out = len(self.tokens)
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": out,
            "total_tokens": self.input_tokens + out,
        }


def _token(piece: str) -> dict[str, Any]:
    return {
        "id": zlib.crc32(piece.encode()) % 32_000,
        "text": piece,
        "logprob": -0.25,
        "special": False,
    }


def _simple_tokens(text: str) -> list[dict[str, Any]]:
    return [
        {"id": _token(m.group())["id"], "text": m.group(), "start": m.start(), "stop": m.end()}
        for m in _PIECE.finditer(text)
    ]


def _openai_finish(finish: str) -> str:
    return "stop" if finish == "eos_token" else finish


def _opt_int(body: dict[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise _bad_body(f"`{name}` must be a non-negative integer")
    return value


def _messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of each chat message; content may be a string or a list of chunks."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad_body("missing field `messages`")
    out = []
    for msg in messages:
        if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
            raise _bad_body("each message needs a string `role`")
        content = msg.get("content")
        if isinstance(content, list) and all(isinstance(c, dict) for c in content):
            content = " ".join(
                c["text"]
                for c in content
                if c.get("type") == "text" and isinstance(c.get("text"), str)
            )
        elif content is None and isinstance(msg.get("tool_calls"), list):
            content = ""
        if not isinstance(content, str):
            raise _bad_body("message `content` must be a string or a list of chunks")
        out.append((msg["role"], content))
    return out


def _template(messages: list[tuple[str, str]]) -> str:
    return "".join(f"<|{role}|>\n{text}\n" for role, text in messages) + "<|assistant|>\n"


class _Histogram:
    def __init__(self, *bounds: float) -> None:
        self.bounds, self.counts, self.sum, self.n = bounds, [0] * len(bounds), 0.0, 0

    def observe(self, value: float) -> None:
        self.n, self.sum = self.n + 1, self.sum + value
        self.counts = [c + (value <= b) for c, b in zip(self.counts, self.bounds, strict=True)]

    def render(self, name: str) -> list[str]:
        return [
            f"# TYPE {name} histogram",
            *(
                f'{name}_bucket{{le="{b}"}} {c}'
                for b, c in zip(self.bounds, self.counts, strict=True)
            ),
            f'{name}_bucket{{le="+Inf"}} {self.n}',
            f"{name}_sum {self.sum}",
            f"{name}_count {self.n}",
        ]


class _Metrics:
    """The subset of TGI's Prometheus metrics that a stand-in can fill in honestly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = self.success = self.failure = self.in_flight = 0
        self.last_active = 0.0  # time.time() a request last came or went (the GPU load of exec)
        self.hists = {
            "tgi_request_duration": _Histogram(0.001, 0.01, 0.1, 1.0, 10.0),
            "tgi_request_input_length": _Histogram(16, 64, 256, 1024, 4096),
            "tgi_request_generated_tokens": _Histogram(16, 64, 256, 1024, 4096),
        }

    @contextmanager
    def request(self) -> Iterator[None]:
        with self._lock:
            self.count += 1
            self.in_flight += 1
            self.last_active = time.time()
        try:
            yield
        except ApiError:
            with self._lock:
                self.failure += 1
            raise
        finally:
            with self._lock:
                self.in_flight -= 1
                self.last_active = time.time()

    def succeeded(self, gens: list[_Gen], started: float) -> None:
        with self._lock:
            self.success += 1
            self.hists["tgi_request_duration"].observe(time.monotonic() - started)
            for gen in gens:
                self.hists["tgi_request_input_length"].observe(gen.input_tokens)
                self.hists["tgi_request_generated_tokens"].observe(len(gen.tokens))

    def render(self) -> str:
        with self._lock:
            lines = [
                "# TYPE tgi_request_count counter",
                f"tgi_request_count {self.count}",
                "# TYPE tgi_request_success counter",
                f"tgi_request_success {self.success}",
                "# TYPE tgi_request_failure counter",
                f'tgi_request_failure{{err="validation"}} {self.failure}',
                "# TYPE tgi_queue_size gauge",
                "tgi_queue_size 0",
                "# TYPE tgi_batch_current_size gauge",
                f"tgi_batch_current_size {self.in_flight}",
                "# TYPE tgi_batch_current_max_tokens gauge",
                "tgi_batch_current_max_tokens 0",
            ]
            for name, hist in self.hists.items():
                lines += hist.render(name)
        return "\n".join(lines) + "\n"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: Any  # the ApiStandIn it serves

    def server_bind(self) -> None:
        # HTTPServer.server_bind() calls socket.getfqdn(), which may query DNS: just bind.
        TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin.verbose:
            super().log_message(format, *args)

    def _dispatch(self, method: str) -> None:
        s, path = self.server.standin, self.path.split("?", 1)[0]
        self._started = time.monotonic()
        if not any(p == path for _, p in ROUTES):
            return self._send(404)
        if (method, path) in PROTECTED_ROUTES and not s.authorized(self.headers["Authorization"]):
            return self._send(401)  # TGI: bare StatusCode::UNAUTHORIZED, empty body
        handler = ROUTES.get((method, path))
        if handler is None:
            return self._send(405, headers={"Allow": ",".join(m for m, p in ROUTES if p == path)})
        try:
            body = self._read_json() if method == "POST" else {}
            if (method, path) in _COUNTED:
                with s.metrics.request():
                    getattr(self, handler)(body)
            else:
                getattr(self, handler)(body)
        except ApiError as err:
            self._send_json(err.status, err.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-stream
        return None

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers["Content-Length"] or 0)
        if length > MAX_PAYLOAD:
            raise ApiError(413, "length limit exceeded", "validation")
        try:
            body = json.loads(self.rfile.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(422, f"Failed to parse the request body as JSON: {exc}") from None
        if not isinstance(body, dict):
            raise _bad_body("expected a JSON object")
        return body

    def _send(
        self,
        status: int,
        body: bytes = b"",
        ctype: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(
            status, json.dumps(obj, separators=(",", ":")).encode(), "application/json", headers
        )

    def _stream(self, events: list[Any], done: bool) -> None:
        # HTTP/1.0 without Content-Length: the stream ends when the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("X-Accel-Buffering", "no")
        self.end_headers()
        self.close_connection = True
        for event in events:
            self.wfile.write(b"data:" + json.dumps(event, separators=(",", ":")).encode() + b"\n\n")
        if done:
            self.wfile.write(b"data:[DONE]\n\n")

    def _head(self, body: dict[str, Any]) -> dict[str, Any]:
        s, model = self.server.standin, body.get("model")
        return {
            "id": "",
            "created": int(time.time()),
            "model": s.model_id if model in (None, "tgi") else str(model),
            "system_fingerprint": f"{TGI_VERSION}-native",
        }

    # --- open routes -------------------------------------------------------------------------

    def _health(self, _body: dict[str, Any]) -> None:
        if self.server.standin.ready:
            self._send(200)
        else:
            self._send_json(503, {"error": "unhealthy", "error_type": "healthcheck"})

    def _info(self, _body: dict[str, Any]) -> None:
        self._send_json(200, self.server.standin.info())

    def _models(self, _body: dict[str, Any]) -> None:
        model = self.server.standin.model_id
        self._send_json(
            200,
            {
                "object": "list",
                "data": [{"id": model, "object": "model", "created": 0, "owned_by": model}],
            },
        )

    def _metrics(self, _body: dict[str, Any]) -> None:
        self._send(200, self.server.standin.metrics.render().encode(), "text/plain; version=0.0.4")

    def _chat_tokenize(self, body: dict[str, Any]) -> None:
        text = _template(_messages(body))
        self._send_json(200, {"tokenize_response": _simple_tokens(text), "templated_text": text})

    # --- generation routes -------------------------------------------------------------------

    def _tokenize(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("inputs"), str):
            raise _bad_body("missing field `inputs`")
        self._send_json(200, _simple_tokens(body["inputs"]))

    def _compat_generate(self, body: dict[str, Any]) -> None:
        if body.get("stream"):
            self._generate_stream(body, compat=True)
        else:
            self._generate(body, compat=True)

    def _text_gen(self, body: dict[str, Any], compat: bool) -> tuple[_Gen, str, bool]:
        inputs, params = body.get("inputs"), body.get("parameters") or {}
        if not isinstance(inputs, str) or not isinstance(params, dict):
            raise _bad_body("missing field `inputs`")
        gen = self.server.standin.generate(
            inputs, f"Echo: {inputs}", _opt_int(params, "max_new_tokens")
        )
        full = params.get("return_full_text")
        if full is None and compat:  # TGI: POST / returns the full text for text-generation
            full = True
        return gen, (inputs if full else ""), bool(params.get("details"))

    def _generate(self, body: dict[str, Any], compat: bool = False) -> None:
        gen, prefix, details = self._text_gen(body, compat)
        reply: dict[str, Any] = {"generated_text": prefix + gen.text}
        if details:
            reply["details"] = {
                "finish_reason": gen.finish,
                "generated_tokens": len(gen.tokens),
                "seed": None,
                "prefill": [],
                "tokens": [_token(t) for t in gen.tokens],
            }
        self._send_json(
            200,
            [reply] if compat else reply,
            headers={
                "x-compute-type": "gpu+optimized",
                "x-prompt-tokens": str(gen.input_tokens),
                "x-generated-tokens": str(len(gen.tokens)),
            },
        )
        self.server.standin.metrics.succeeded([gen], self._started)

    def _generate_stream(self, body: dict[str, Any], compat: bool = False) -> None:
        gen, prefix, details = self._text_gen(body, compat)
        events: list[dict[str, Any]] = [
            {"index": i + 1, "token": _token(t), "generated_text": None, "details": None}
            for i, t in enumerate(gen.tokens)
        ]
        events[-1]["generated_text"] = prefix + gen.text
        if details:
            events[-1]["details"] = {
                "finish_reason": gen.finish,
                "seed": None,
                "generated_tokens": len(gen.tokens),
                "input_length": gen.input_tokens,
            }
        self._stream(events, done=False)
        self.server.standin.metrics.succeeded([gen], self._started)

    def _chat(self, body: dict[str, Any]) -> None:
        messages = _messages(body)
        users = [text for role, text in messages if role == "user"] or [messages[-1][1]]
        gen = self.server.standin.generate(
            _template(messages), f"Echo: {users[-1]}", _opt_int(body, "max_tokens")
        )
        head, finish = self._head(body), _openai_finish(gen.finish)
        if body.get("stream"):
            events: list[dict[str, Any]] = [
                {
                    "object": "chat.completion.chunk",
                    **head,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": tok},
                            "logprobs": None,
                            "finish_reason": finish if i == len(gen.tokens) - 1 else None,
                        }
                    ],
                    "usage": None,
                }
                for i, tok in enumerate(gen.tokens)
            ]
            options = body.get("stream_options")
            if isinstance(options, dict) and options.get("include_usage"):
                events.append(
                    {"object": "chat.completion.chunk", **head, "choices": [], "usage": gen.usage()}
                )
            self._stream(events, done=True)
        else:
            self._send_json(
                200,
                {
                    "object": "chat.completion",
                    **head,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": gen.text},
                            "logprobs": None,
                            "finish_reason": finish,
                        }
                    ],
                    "usage": gen.usage(),
                },
            )
        self.server.standin.metrics.succeeded([gen], self._started)

    def _completions(self, body: dict[str, Any]) -> None:
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else prompt
        if (
            not isinstance(prompts, list)
            or not prompts
            or not all(isinstance(p, str) for p in prompts)
        ):
            raise _bad_body("missing field `prompt`")
        if len(prompts) > MAX_CLIENT_BATCH_SIZE:
            raise ApiError(
                422,
                "Number of prompts exceeds the maximum allowed batch size of "
                f"{MAX_CLIENT_BATCH_SIZE}",
            )
        s, max_tokens = self.server.standin, _opt_int(body, "max_tokens")
        gens = [s.generate(p, f"Echo: {p}", max_tokens) for p in prompts]
        head = self._head(body)
        if body.get("stream"):
            self._stream(
                [
                    {
                        "object": "text_completion",
                        **head,
                        "choices": [
                            {
                                "index": i,
                                "text": tok,
                                "logprobs": None,
                                "finish_reason": _openai_finish(g.finish)
                                if j == len(g.tokens) - 1
                                else "",
                            }
                        ],
                    }
                    for i, g in enumerate(gens)
                    for j, tok in enumerate(g.tokens)
                ],
                done=True,
            )
        else:
            used = [g.usage() for g in gens]
            self._send_json(
                200,
                {
                    "object": "text_completion",
                    **head,
                    "choices": [
                        {
                            "index": i,
                            "text": g.text,
                            "logprobs": None,
                            "finish_reason": _openai_finish(g.finish),
                        }
                        for i, g in enumerate(gens)
                    ],
                    "usage": {k: sum(u[k] for u in used) for k in used[0]},
                },
            )
        s.metrics.succeeded(gens, self._started)

    def _invocations(self, body: dict[str, Any]) -> None:
        # SageMaker's untagged request enum, tried in TGI's order.
        for key, handler in (
            ("inputs", self._compat_generate),
            ("messages", self._chat),
            ("prompt", self._completions),
        ):
            if key in body:
                return handler(body)
        raise _bad_body("data did not match any variant of untagged enum SagemakerRequest")


def listen_address(
    host: str, local_networks: Iterable[str] = ()
) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Only IP literals on loopback, or in `local_networks`: ranges the caller has routed `local`
    on the loopback device (the sandbox's pod network). Names could resolve off-host, and a
    stand-in must never listen there."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and (
        ip.is_loopback or any(ip in ipaddress.ip_network(net) for net in local_networks)
    ):
        return ip
    allowed = ", ".join(["127.0.0.0/8", "::1", *local_networks])
    raise ValueError(
        f"refusing to bind {host!r}: only loopback or local-only addresses ({allowed})"
    )


class BackgroundServer:
    """An HTTP server answering in a thread of its own: start() in the subclass, stop() here."""

    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Any:
        raise NotImplementedError

    def _serve(self, server: ThreadingHTTPServer, name: str) -> None:
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=10)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class ApiStandIn(BackgroundServer):
    """An engine's API stand-in: listens at `_ip`:`_port` (IPv4 or IPv6), its handler class
    `handler` reaching it as `server.standin`."""

    _ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    _port: int
    handler: type[BaseHTTPRequestHandler]
    thread_name: str

    def start(self) -> Any:
        if self._server is not None:
            raise RuntimeError("already started")
        cls = _Server6 if self._ip.version == 6 else _Server
        server = cls((str(self._ip), self._port), self.handler)
        server.standin = self
        self._serve(server, f"{self.thread_name}-{server.server_address[1]}")
        return self

    @property
    def host(self) -> str:
        return str(self._ip)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self._ip}]" if self._ip.version == 6 else str(self._ip)
        return f"http://{host}:{self.port}"


class TgiStandIn(ApiStandIn):
    """A TGI look-alike HTTP server on loopback; use as a context manager or start()/stop()."""

    handler = _Handler
    thread_name = "tgi-standin"

    def __init__(
        self,
        model_id: str,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_input_tokens: int = DEFAULT_MAX_INPUT_TOKENS,
        max_total_tokens: int = DEFAULT_MAX_TOTAL_TOKENS,
        ready: bool = True,
        *,
        model_sha: str | None = None,
        verbose: bool = False,
        local_networks: Iterable[str] = (),
    ) -> None:
        self._ip = listen_address(host, local_networks)
        if not model_id:
            raise ValueError("model_id must not be empty")
        if not 0 < max_input_tokens < max_total_tokens:  # TGI's launcher enforces the same
            raise ValueError("need 0 < max_input_tokens < max_total_tokens")
        self.model_id, self.model_sha, self.verbose = model_id, model_sha, verbose
        self.max_input_tokens, self.max_total_tokens = max_input_tokens, max_total_tokens
        self.metrics = _Metrics()
        # Keep only the lower-cased expected header, as TGI compares lower-cased values.
        self._expected = f"Bearer {api_key}".lower().encode() if api_key else None
        self._port = port
        self._ready = threading.Event()
        self.set_ready(ready)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- behaviour ---------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def set_ready(self, ready: bool) -> None:
        """Flip /health between 200 and 503 (e.g. to simulate a model still loading)."""
        if ready:
            self._ready.set()
        else:
            self._ready.clear()

    def authorized(self, header: str | None) -> bool:
        if self._expected is None:
            return True
        if header is None:
            return False
        value = header.strip(" \t")
        # TGI's HeaderValue::to_str() fails on non-visible-ASCII bytes, which means 401.
        if not all(" " <= c <= "~" or c == "\t" for c in value):
            return False
        return hmac.compare_digest(value.lower().encode(), self._expected)

    def info(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "model_sha": self.model_sha,
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": 128,
            "max_best_of": 2,
            "max_stop_sequences": 4,
            "max_input_tokens": self.max_input_tokens,
            "max_total_tokens": self.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": MAX_CLIENT_BATCH_SIZE,
            "router": "text-generation-router",
            "version": TGI_VERSION,
            "sha": None,
            "docker_label": None,
        }

    def generate(self, prompt: str, reply: str, max_new_tokens: int | None) -> _Gen:
        """Validate like TGI's validation.rs, then "generate" `reply` within the token budget."""
        n_in = len(_PIECE.findall(prompt))
        if n_in == 0:
            raise ApiError(422, "Input validation error: `inputs` cannot be empty")
        if n_in > self.max_input_tokens:
            raise ApiError(
                422,
                "Input validation error: `inputs` must have less than "
                f"{self.max_input_tokens} tokens. Given: {n_in}",
            )
        if max_new_tokens == 0:
            raise ApiError(
                422, "Input validation error: `max_new_tokens` must be strictly positive"
            )
        budget = self.max_total_tokens - n_in if max_new_tokens is None else max_new_tokens
        if n_in + budget > self.max_total_tokens:
            raise ApiError(
                422,
                "Input validation error: `inputs` tokens + `max_new_tokens` must "
                f"be <= {self.max_total_tokens}. Given: {n_in} `inputs` tokens "
                f"and {budget} `max_new_tokens`",
            )
        pieces = _PIECE.findall(reply)
        return _Gen(n_in, pieces[:budget], "length" if len(pieces) > budget else "eos_token")


# --- a client for tests --------------------------------------------------------------------------

# Stand-ins listen on loopback addresses (pod IPs): talk to them directly, whatever proxy the
# environment names, so nothing leaves the machine.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def fetch(url: str, body: dict | None = None, key: str | None = None) -> tuple[int, Any]:
    """(HTTP status, JSON body or None) of a GET, or a POST of `body`, with an optional API key.

    Raises the connection's OSError (ConnectionRefusedError when nothing listens).
    """
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with _DIRECT.open(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, None
    except urllib.error.URLError as error:
        raise error.reason from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m icc_sandbox.tgi_standin",
        description="TGI API stand-in on loopback. The API key is read from the API_KEY "
        "environment variable only (never argv, so it never shows in ps).",
    )
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--host", default="127.0.0.1", help="a loopback IP (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--max-input-tokens", type=int, default=DEFAULT_MAX_INPUT_TOKENS)
    parser.add_argument("--max-total-tokens", type=int, default=DEFAULT_MAX_TOTAL_TOKENS)
    parser.add_argument("--verbose", action="store_true", help="log each request to stderr")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # installed before serving: no early-signal race
        signal.signal(sig, lambda *_: stop.set())
    try:
        standin = TgiStandIn(
            args.model_id,
            api_key=os.environ.get("API_KEY") or None,
            host=args.host,
            port=args.port,
            max_input_tokens=args.max_input_tokens,
            max_total_tokens=args.max_total_tokens,
            verbose=args.verbose,
        )
    except ValueError as exc:
        parser.error(str(exc))
    with standin:
        print(standin.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Stand-in for the OpenAI-compatible HTTP API of `vllm serve` 0.14.1, for a Ready vLLM pod in
the sandbox. Replies are echoes, and a "token" is a whitespace-led word (tgi_standin's), so the
counts add up; the routes, shapes, refusals and metric names are vLLM's.

Read in the release's source (vllm 0.14.1 sdist):
- entrypoints/openai/api_server.py AuthenticationMiddleware: with --api-key (or VLLM_API_KEY)
  every path that starts with /v1 needs `Authorization: Bearer <key>` (scheme case-insensitive,
  key exact); a refusal is 401 with {"error": "Unauthorized"}. /health, /ping, /version and
  /metrics stay open.
- serve/instrumentator/health.py: GET /health answers 200 with an empty body.
- protocol.py: ModelList/ModelCard (owned_by "vllm", root, max_model_len, permission),
  ErrorResponse {"error": {message, type, param, code}}, ChatCompletionResponse (id
  "chatcmpl-...", choices with stop_reason, usage without completion details).
- serving_engine.py: a `model` other than the served name is 404 NotFoundError "The model `X`
  does not exist."; an input of max_model_len tokens or more, or input + max_tokens beyond it,
  is 400 BadRequestError with vLLM's sentence.
- serving_chat.py: SSE events `data: <json>` and a closing `data: [DONE]`; the first chunk
  carries the role, the last the finish_reason, an optional usage chunk with no choices.
- v1/metrics/loggers.py: gauges vllm:num_requests_running, vllm:num_requests_waiting,
  vllm:kv_cache_usage_perc and counters vllm:prompt_tokens, vllm:generation_tokens,
  vllm:request_success (prometheus_client adds `_total`), labelled model_name and engine.
Deliberate differences: a body that is not JSON gets vLLM's 400 shape with a short message, and
only /v1/models, /v1/chat/completions and /v1/completions are served under /v1.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from icc_sandbox.tgi_standin import (
    _PIECE,
    MAX_PAYLOAD,
    ApiStandIn,
    _Gen,
    _Handler,
    _Metrics,
    _template,
    listen_address,
)

VLLM_VERSION = "0.14.1"
ENGINE_INDEX = "0"  # one engine core per server: the `engine` label of its metrics
ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/health"): "_health",
    ("GET", "/ping"): "_health",
    ("POST", "/ping"): "_health",
    ("GET", "/version"): "_version",
    ("GET", "/metrics"): "_metrics",
    ("GET", "/v1/models"): "_models",
    ("POST", "/v1/chat/completions"): "_chat",
    ("POST", "/v1/completions"): "_completions",
}
_COUNTED = {("POST", "/v1/chat/completions"), ("POST", "/v1/completions")}


class VllmError(Exception):
    """vLLM's ErrorResponse with its HTTP status."""

    def __init__(self, status: int, message: str, kind: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": status}}


def _bad_request(message: str, param: str | None = None) -> VllmError:
    return VllmError(400, message, "BadRequestError", param)


class _VllmMetrics(_Metrics):
    """vLLM's scheduler gauges and token counters, as far as a stand-in knows them."""

    def __init__(self, model_name: str) -> None:
        super().__init__()
        self.labels = f'engine="{ENGINE_INDEX}",model_name="{model_name}"'
        self.prompt_tokens = self.generation_tokens = 0
        self.finished = {"stop": 0, "length": 0}

    def succeeded(self, gens: list[_Gen], started: float) -> None:
        with self._lock:
            self.success += 1
            for gen in gens:
                self.prompt_tokens += gen.input_tokens
                self.generation_tokens += len(gen.tokens)
                self.finished["length" if gen.finish == "length" else "stop"] += 1

    def render(self) -> str:
        with self._lock:
            # A stand-in answers at once: no request holds KV blocks between answers.
            usage = 0.0
            lines = [
                "# TYPE vllm:num_requests_running gauge",
                f"vllm:num_requests_running{{{self.labels}}} {float(self.in_flight)}",
                "# TYPE vllm:num_requests_waiting gauge",
                f"vllm:num_requests_waiting{{{self.labels}}} 0.0",
                "# TYPE vllm:kv_cache_usage_perc gauge",
                f"vllm:kv_cache_usage_perc{{{self.labels}}} {usage}",
                "# TYPE vllm:prompt_tokens_total counter",
                f"vllm:prompt_tokens_total{{{self.labels}}} {float(self.prompt_tokens)}",
                "# TYPE vllm:generation_tokens_total counter",
                f"vllm:generation_tokens_total{{{self.labels}}} {float(self.generation_tokens)}",
                "# TYPE vllm:request_success_total counter",
                *(
                    f'vllm:request_success_total{{{self.labels},finished_reason="{reason}"}} '
                    f"{float(count)}"
                    for reason, count in self.finished.items()
                ),
            ]
        return "\n".join(lines) + "\n"


class _VllmHandler(_Handler):
    server: Any  # a _Server whose standin is a VllmStandIn

    def _dispatch(self, method: str) -> None:
        s, path = self.server.standin, self.path.split("?", 1)[0]
        self._started = time.monotonic()
        if path.startswith("/v1") and not s.authorized(self.headers["Authorization"]):
            return self._send_json(401, {"error": "Unauthorized"})
        if not any(p == path for _, p in ROUTES):
            return self._send_json(404, {"detail": "Not Found"})
        handler = ROUTES.get((method, path))
        if handler is None:
            return self._send_json(405, {"detail": "Method Not Allowed"})
        try:
            body = self._read_body() if method == "POST" and path != "/ping" else {}
            if (method, path) in _COUNTED:
                # Counted as finished once answered, before the answer is sent: a client that
                # reads /metrics after its answer sees its request there.
                with s.metrics.request():
                    reply, gen = getattr(self, handler)(body)
                    s.metrics.succeeded([gen], self._started)
                reply()
            else:
                getattr(self, handler)(body)
        except VllmError as err:
            self._send_json(err.status, err.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-stream
        return None

    def _read_body(self) -> dict[str, Any]:
        length = int(self.headers["Content-Length"] or 0)
        if length > MAX_PAYLOAD:
            raise _bad_request("request body too large")
        try:
            body = json.loads(self.rfile.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _bad_request(f"JSON decode error: {exc}") from None
        if not isinstance(body, dict):
            raise _bad_request("the request body must be a JSON object")
        return body

    def _events(self, events: list[Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.end_headers()
        self.close_connection = True
        for event in events:
            self.wfile.write(b"data: " + json.dumps(event, separators=(",", ":")).encode())
            self.wfile.write(b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")

    def _health(self, _body: dict[str, Any]) -> None:
        self._send(200)

    def _version(self, _body: dict[str, Any]) -> None:
        self._send_json(200, {"version": VLLM_VERSION})

    def _metrics(self, _body: dict[str, Any]) -> None:
        text = self.server.standin.metrics.render().encode()
        self._send(200, text, "text/plain; version=0.0.4; charset=utf-8")

    def _models(self, _body: dict[str, Any]) -> None:
        self._send_json(200, self.server.standin.model_list())

    def _chat(self, body: dict[str, Any]) -> tuple[Callable[[], None], _Gen]:
        """The answer to send, and what was generated."""
        s = self.server.standin
        messages = _chat_messages(body)
        users = [text for role, text in messages if role == "user"] or [messages[-1][1]]
        gen = s.generate(body, _template(messages), f"Echo: {users[-1]}")
        head = s.head(body, "chatcmpl")
        finish = "length" if gen.finish == "length" else "stop"
        usage = {
            "prompt_tokens": gen.input_tokens,
            "total_tokens": gen.input_tokens + len(gen.tokens),
            "completion_tokens": len(gen.tokens),
            "prompt_tokens_details": None,
        }
        if body.get("stream"):
            chunk = {"object": "chat.completion.chunk", **head}
            pieces = [{"role": "assistant", "content": ""}] + [{"content": t} for t in gen.tokens]
            events: list[Any] = [
                {
                    **chunk,
                    "choices": [
                        {
                            "index": 0,
                            "delta": delta,
                            "logprobs": None,
                            "finish_reason": finish if i == len(pieces) - 1 else None,
                        }
                    ],
                }
                for i, delta in enumerate(pieces)
            ]
            options = body.get("stream_options")
            if isinstance(options, dict) and options.get("include_usage"):
                events.append({**chunk, "choices": [], "usage": usage})
            return lambda: self._events(events), gen
        else:
            message = {"role": "assistant", "content": gen.text, "refusal": None, "tool_calls": []}
            choice = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish,
                "stop_reason": None,
            }
            reply = {"object": "chat.completion", **head, "choices": [choice], "usage": usage}
            return lambda: self._send_json(200, reply), gen

    def _completions(self, body: dict[str, Any]) -> tuple[Callable[[], None], _Gen]:
        s = self.server.standin
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            raise _bad_request("`prompt` must be a string here", "prompt")
        gen = s.generate(body, prompt, f"Echo: {prompt}")
        finish = "length" if gen.finish == "length" else "stop"
        choice = {"index": 0, "text": gen.text, "logprobs": None, "finish_reason": finish}
        usage = {
            "prompt_tokens": gen.input_tokens,
            "total_tokens": gen.input_tokens + len(gen.tokens),
            "completion_tokens": len(gen.tokens),
            "prompt_tokens_details": None,
        }
        head = s.head(body, "cmpl")
        reply = {"object": "text_completion", **head, "choices": [choice], "usage": usage}
        return lambda: self._send_json(200, reply), gen


def _chat_messages(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) of each message, content as a string or a list of text parts."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad_request("`messages` must be a non-empty list", "messages")
    out = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
        if not isinstance(message, dict) or not isinstance(content, str):
            raise _bad_request("each message needs a `role` and text `content`", "messages")
        out.append((str(message.get("role")), content))
    return out


class VllmStandIn(ApiStandIn):
    """vLLM's OpenAI server, as a stand-in on loopback or the pod network."""

    handler = _VllmHandler
    thread_name = "vllm-standin"

    def __init__(
        self,
        served_model_name: str,
        max_model_len: int,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        model: str | None = None,
        verbose: bool = False,
        local_networks: Iterable[str] = (),
    ) -> None:
        self._ip = listen_address(host, local_networks)
        if not served_model_name or max_model_len < 1:
            raise ValueError("need a served model name and max_model_len >= 1")
        self.served_model_name, self.model = served_model_name, model or served_model_name
        self.max_model_len, self.verbose = max_model_len, verbose
        self.metrics = _VllmMetrics(served_model_name)
        self._api_key = api_key.encode() if api_key else None
        self._port = port
        self._created = int(time.time())

    def authorized(self, header: str | None) -> bool:
        """vLLM's AuthenticationMiddleware: `Bearer` in any case, then the key exactly."""
        if self._api_key is None:
            return True
        scheme, _, key = (header or "").partition(" ")
        return scheme.lower() == "bearer" and secrets.compare_digest(key.encode(), self._api_key)

    def model_list(self) -> dict[str, Any]:
        card = {
            "id": self.served_model_name,
            "object": "model",
            "created": self._created,
            "owned_by": "vllm",
            "root": self.model,
            "parent": None,
            "max_model_len": self.max_model_len,
            "permission": [
                {
                    "id": f"modelperm-{uuid.uuid4().hex}",
                    "object": "model_permission",
                    "created": self._created,
                    "allow_create_engine": False,
                    "allow_sampling": True,
                    "allow_logprobs": True,
                    "allow_search_indices": False,
                    "allow_view": True,
                    "allow_fine_tuning": False,
                    "organization": "*",
                    "group": None,
                    "is_blocking": False,
                }
            ],
        }
        return {"object": "list", "data": [card]}

    def head(self, body: dict[str, Any], prefix: str) -> dict[str, Any]:
        return {
            "id": f"{prefix}-{uuid.uuid4().hex}",
            "created": int(time.time()),
            "model": self.served_model_name,
        }

    def generate(self, body: dict[str, Any], prompt: str, reply: str) -> _Gen:
        """vLLM's checks of the model name and the lengths, then `reply` within max_tokens."""
        model = body.get("model")
        if model and model != self.served_model_name:
            raise VllmError(404, f"The model `{model}` does not exist.", "NotFoundError", "model")
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        if max_tokens is not None and (
            isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1
        ):
            raise _bad_request("max_tokens must be at least 1", "max_tokens")
        given = len(_PIECE.findall(prompt))
        length = self.max_model_len
        if given >= length:
            raise _bad_request(
                f"This model's maximum context length is {length} tokens. However, your "
                f"request has {given} input tokens. Please reduce the length of the input "
                "messages.",
                "input_tokens",
            )
        if max_tokens is not None and given + max_tokens > length:
            raise _bad_request(
                f"'max_tokens' or 'max_completion_tokens' is too large: {max_tokens}. This "
                f"model's maximum context length is {length} tokens and your request has "
                f"{given} input tokens ({max_tokens} > {length} - {given}).",
                "max_tokens",
            )
        budget = length - given if max_tokens is None else max_tokens
        pieces = _PIECE.findall(reply)
        return _Gen(given, pieces[:budget], "length" if len(pieces) > budget else "eos_token")

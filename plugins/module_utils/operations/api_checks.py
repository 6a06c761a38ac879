# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The checks of the API smoke test (haw.icc.tgi_api_test), without a network.

The action plugin hands in `Transport`s: callables that send one HTTP request to TGI or Open
WebUI and return a `Reply` (through a port-forward the Kubernetes client opens to the pod,
through the API server's service proxy, or straight to a URL such as an Ingress). Everything
here decides what a reply means, so it is tested with fake transports and with the sandbox's
TGI stand-in.

TGI checks its API key only in `Authorization: Bearer <key>` (router/src/server.rs), and only on
the generation routes; /health, /info, /metrics and /v1/models stay open. The API server's
service proxy deletes the Authorization header after it authenticated the caller, so through it
the key never reaches TGI: there the keyed checks are skipped with that reason, while the
request without a key (which must be refused) still says something true. A port-forward
carries the request's bytes as they are, the key included.

vLLM (`vllm serve`'s AuthenticationMiddleware) asks for the key on every path under /v1, its
model list included, and answers a refusal with 401 {"error": "Unauthorized"}; /health and
/version stay open. So for a vLLM namespace the second check reads /version instead of /info,
and the model list is a keyed check (skipped through the proxy, like the chat).

The way to TGI (a base URL, or the port a port-forward goes to) is api_route's; the GPU test
(nvidia-smi in the TGI container) is gpu_check's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import (
    API_KEY_ENV,
    ENGINE_LABELS,
)


@dataclass(frozen=True)
class EngineApi:
    """What the checks must know of an engine's HTTP API."""

    name: str  # as the check names have it: "tgi", "vllm"
    label: str  # as the messages have it: "TGI", "vLLM"
    key_variable: str  # the container's environment variable the key comes from
    about: str  # the open route that says what runs: "/info" or "/version"
    models_need_key: bool  # whether /v1/models is behind the key


TGI_API = EngineApi("tgi", ENGINE_LABELS["tgi"], "API_KEY", "/info", False)
VLLM_API = EngineApi("vllm", ENGINE_LABELS["vllm"], API_KEY_ENV, "/version", True)
ENGINE_APIS = {api.name: api for api in (TGI_API, VLLM_API)}

# Names of the checks, in the order they run (TGI's; an engine's own: engine_checks).
HEALTH = "tgi health"
INFO = "tgi info"
MODELS = "tgi models"
CHAT = "chat with the key"
NO_KEY = "no key refused"
WRONG_KEY = "wrong key refused"
WEBUI = "open-webui health"
GPU = "gpu"


def engine_checks(engine: EngineApi) -> tuple[str, str, str, str, str, str]:
    """The names of the engine's checks, in the order they run (when the way to the engine
    fails, "<engine> port-forward" says why in their stead)."""
    return (
        f"{engine.name} health",
        f"{engine.name} {engine.about.strip('/')}",
        f"{engine.name} models",
        CHAT,
        NO_KEY,
        WRONG_KEY,
    )


PROXY_DROPS_KEY = (
    "not testable through the API server's proxy (it removes the Authorization header): "
    "use {variable}=port-forward (the default), ingress or a URL"
)
# Said when the API server cannot connect to the pod. A NetworkPolicy that admits only pods
# (like the tgi_server role's) may keep it out, depending on the cluster's network plugin.
PROXY_BLOCKED = (
    " (if a NetworkPolicy admits only pods, the API server's proxy is kept out too: use "
    "icc_test_tgi_url=port-forward, the default)"
)


@dataclass
class Reply:
    """What one HTTP request got: a status and body, or `error` when no answer came."""

    status: int | None
    body: bytes = b""
    seconds: float = 0.0
    error: str | None = None

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError):
            return None


# (method, path, JSON body or None, API key or None) -> Reply
Transport = Callable[[str, str, "dict[str, Any] | None", "str | None"], Reply]


class Unreachable(Exception):
    """Raised by a transport when the way to the pod itself failed (a port-forward refused, or
    its error channel naming the reason): no request reached TGI, so no check can say more."""


@dataclass
class Check:
    name: str
    ok: bool
    skipped: bool
    detail: str
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def state(self) -> str:
        return "skip" if self.skipped else "ok" if self.ok else "FAIL"


def passed(name: str, detail: str, seconds: float = 0.0) -> Check:
    return Check(name, True, False, detail, round(seconds, 3))


def failed(name: str, detail: str, seconds: float = 0.0) -> Check:
    return Check(name, False, False, detail, round(seconds, 3))


def skipped(name: str, reason: str) -> Check:
    return Check(name, True, True, reason, 0.0)


# --- what a reply means ------------------------------------------------------------------------


def why_not(reply: Reply) -> str:
    """A failed request in words: the connection error, the API server's message (its Status
    object, when the proxy itself answered), or the status and the start of the body."""
    if reply.status is None:
        return f"no answer: {reply.error or 'connection failed'}"
    body = reply.json()
    if isinstance(body, dict) and body.get("kind") == "Status":
        said = (
            f"the API server answered {reply.status}: {body.get('message') or body.get('reason')}"
        )
        return said + (PROXY_BLOCKED if "error trying to reach service" in said else "")
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{reply.status}: {body['error']}"
    text = reply.body[:200].decode("utf-8", "replace").strip()
    return f"{reply.status}" + (f": {text}" if text else "")


def _took(reply: Reply) -> str:
    return f"in {reply.seconds:.2f}s"


def check_health(reply: Reply, engine: EngineApi = TGI_API) -> Check:
    name = engine_checks(engine)[0]
    if reply.status == 200:
        return passed(name, f"200 {_took(reply)}", reply.seconds)
    if reply.status == 503 and (reply.json() or {}).get("error") == "unhealthy":
        return failed(name, "TGI says it is unhealthy (503): the model is not serving")
    if reply.status == 503 and engine is VLLM_API:
        return failed(name, "vLLM says its engine is dead (503): the model is not serving")
    return failed(name, why_not(reply), reply.seconds)


def check_info(reply: Reply, model_id: str) -> Check:
    info = reply.json()
    if reply.status != 200 or not isinstance(info, dict):
        return failed(INFO, why_not(reply), reply.seconds)
    served = info.get("model_id")
    if served != model_id:
        return failed(
            INFO,
            f"TGI serves {served!r}, but the inventory's tgi_model_id is {model_id!r} "
            "(deploy.yml or change_model.yml makes them agree)",
            reply.seconds,
        )
    limits = ", ".join(
        f"{name.replace('_', ' ')} {info[name]}"
        for name in ("max_input_tokens", "max_total_tokens")
        if info.get(name) is not None
    )
    version = f"TGI {info['version']}" if info.get("version") else "TGI"
    return passed(
        INFO,
        f"serves {served} ({version}" + (f", {limits}" if limits else "") + ")",
        reply.seconds,
    )


def check_version(reply: Reply) -> Check:
    """vLLM's /version: which release answers (the model is the model list's to say)."""
    name = engine_checks(VLLM_API)[1]
    about = reply.json()
    if reply.status != 200 or not isinstance(about, dict) or "version" not in about:
        return failed(name, why_not(reply), reply.seconds)
    return passed(name, f"vLLM {about['version']} {_took(reply)}", reply.seconds)


def check_models(reply: Reply, model_id: str, engine: EngineApi = TGI_API) -> Check:
    name = engine_checks(engine)[2]
    listing = reply.json()
    if reply.status == 401 and engine.models_need_key:
        return failed(name, f"{engine.label} refused the API key (401) for /v1/models")
    if reply.status != 200 or not isinstance(listing, dict):
        return failed(name, why_not(reply), reply.seconds)
    models = [m for m in listing.get("data") or [] if isinstance(m, dict)]
    ids = [m.get("id") for m in models]
    if model_id not in ids:
        return failed(
            name,
            f"/v1/models lists {ids or 'nothing'}, not the inventory's {model_id!r}: "
            "Open WebUI would offer the wrong model",
            reply.seconds,
        )
    length = next((m.get("max_model_len") for m in models if m.get("id") == model_id), None)
    told = f" (max_model_len {length})" if isinstance(length, int) else ""
    return passed(name, f"/v1/models lists {model_id}{told}", reply.seconds)


def chat_body(model_id: str, prompt: str, max_tokens: int) -> dict[str, Any]:
    return {
        "model": model_id,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": False,
    }


def check_chat(reply: Reply, key_source: str, engine: EngineApi = TGI_API) -> Check:
    """The chat completion with the key: latency and tokens per second, from its usage."""
    if reply.status == 401:
        return failed(
            CHAT,
            f"{engine.label} refused the API key from {key_source} (401): it is not the key "
            f"{engine.label} was started with",
            reply.seconds,
        )
    answer = reply.json()
    if reply.status != 200 or not isinstance(answer, dict):
        return failed(CHAT, why_not(reply), reply.seconds)
    usage = answer.get("usage") or {}
    tokens = usage.get("completion_tokens")
    choices = answer.get("choices") or [{}]
    content = ((choices[0] or {}).get("message") or {}).get("content")
    if not isinstance(tokens, int) or not isinstance(content, str):
        return failed(CHAT, "200, but the reply has no message or no usage.completion_tokens")
    rate = f", {tokens / reply.seconds:.1f} tokens/s" if reply.seconds > 0 else ""
    said = re.sub(r"\s+", " ", content).strip()
    said = said if len(said) <= 60 else said[:57] + "..."
    return passed(
        CHAT,
        f"200 {_took(reply)}: {tokens} tokens{rate} (key from {key_source}); reply {said!r}",
        reply.seconds,
    )


def check_refused(name: str, reply: Reply, what: str, engine: EngineApi = TGI_API) -> Check:
    """A generation request sent `what` (without a key, with a wrong one) must get 401."""
    if reply.status == 401:
        return passed(name, f"401 {what}", reply.seconds)
    if reply.status == 200:
        return failed(
            name,
            f"{engine.label} answered 200 {what}: anyone who reaches it can use it (is "
            f"{engine.key_variable} set?)",
            reply.seconds,
        )
    return failed(name, f"expected 401 {what}, got {why_not(reply)}", reply.seconds)


def check_webui(reply: Reply) -> Check:
    health = reply.json()
    if reply.status != 200:
        return failed(WEBUI, why_not(reply), reply.seconds)
    if isinstance(health, dict) and health.get("status") is False:
        return failed(WEBUI, f"200, but it says {health}", reply.seconds)
    return passed(WEBUI, f"200 {_took(reply)}", reply.seconds)


# --- the whole API test ------------------------------------------------------------------------


@dataclass
class ApiTest:
    """What to test and how: `carries_key` is False through the API server's proxy."""

    model_id: str
    api_key: str | None
    key_source: str  # "Secret tgi-api-key" or "tgi_api_key"
    wrong_key: str
    carries_key: bool
    url_variable: str = "icc_test_tgi_url"
    prompt: str = "Say hello in one short sentence."
    max_tokens: int = 32
    engine: EngineApi = TGI_API


def run_api_checks(tgi: Transport, test: ApiTest, webui: Transport | None = None) -> list[Check]:
    """Every HTTP check, in order; one failing does not stop the others. When the way to the
    engine fails (Unreachable), one line says why and the checks not yet run are skipped."""
    engine = test.engine
    names = engine_checks(engine)
    body = chat_body(test.model_id, test.prompt, test.max_tokens)
    path = "/v1/chat/completions"
    dropped = PROXY_DROPS_KEY.format(variable=test.url_variable)

    def keyed(name: str, run: Callable[[], Check]) -> Check:
        if not test.carries_key:
            return skipped(name, dropped)
        if not test.api_key:
            return failed(name, f"no API key: {test.key_source} is empty")
        return run()

    def about() -> Check:
        if engine is VLLM_API:
            return check_version(tgi("GET", "/version", None, None))
        return check_info(tgi("GET", "/info", None, None), test.model_id)

    def models() -> Check:
        def listed() -> Check:
            key = test.api_key if engine.models_need_key else None
            return check_models(tgi("GET", "/v1/models", None, key), test.model_id, engine)

        return keyed(names[2], listed) if engine.models_need_key else listed()

    def chat() -> Check:
        return keyed(
            CHAT,
            lambda: check_chat(tgi("POST", path, body, test.api_key), test.key_source, engine),
        )

    def wrong_key() -> Check:
        if not test.carries_key:
            return skipped(WRONG_KEY, dropped)
        answer = tgi("POST", path, body, test.wrong_key)
        return check_refused(WRONG_KEY, answer, "with a wrong key", engine)

    steps: list[Callable[[], Check]] = [
        lambda: check_health(tgi("GET", "/health", None, None), engine),
        about,
        models,
        chat,
        # Through the proxy no request carries a key, so this one tells the truth there as well.
        lambda: check_refused(NO_KEY, tgi("POST", path, body, None), "without an API key", engine),
        wrong_key,
    ]
    checks: list[Check] = []
    for step in steps:
        try:
            checks.append(step())
        except Unreachable as error:
            checks.append(failed(f"{engine.name} port-forward", str(error)))
            checks += [
                skipped(name, f"{engine.label} not reached") for name in names[len(checks) - 1 :]
            ]
            break
    if webui is not None:
        try:
            checks.append(check_webui(webui("GET", "/health", None, None)))
        except Unreachable as error:
            checks.append(failed(WEBUI, str(error)))
    return checks


# --- output ------------------------------------------------------------------------------------


def report(heading: str, checks: list[Check]) -> str:
    """The readable block per namespace."""
    width = max(len(c.name) for c in checks) if checks else 0
    lines = [heading]
    lines += [f"  {c.state:<4}  {c.name:<{width}}  {c.detail}" for c in checks]
    return "\n".join(lines)


def summary(checks: list[Check]) -> str:
    bad = [c for c in checks if not c.ok]
    left_out = sum(c.skipped for c in checks)
    if bad:
        return f"{len(bad)} of {len(checks)} checks failed: " + "; ".join(
            f"{c.name}: {c.detail}" for c in bad
        )
    done = len(checks) - left_out
    return f"{done} checks passed" + (f", {left_out} skipped" if left_out else "")

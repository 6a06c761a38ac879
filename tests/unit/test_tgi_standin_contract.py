"""The stand-in's real responses validate against TGI's own OpenAPI document (reference data).

TGI publishes OpenAPI 3.0.3 schemas. They become JSON Schema 2020-12 here: `nullable: true`
turns into a "null" type (or an anyOf with null), OpenAPI-only keywords are dropped, and
`#/components/schemas/...` references resolve through a `referencing.Registry`.
"""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from icc_sandbox.tgi_standin import NOT_IN_SPEC, PROTECTED_ROUTES, ROUTES, TgiStandIn
from referencing import Registry
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:tgi-openapi"
MODEL = "example-org/tiny-chat"
CHAT = {"messages": [{"role": "user", "content": [{"type": "text", "text": "hi schema"}]}]}
# TGI emits this counter (router/src/infer), though docs/metrics.md does not list it.
UNDOCUMENTED_METRICS = {"tgi_request_failure"}

Validate = Callable[[str, str, int, Any], None]


def to_json_schema(schema: Any) -> Any:
    """Convert one OpenAPI 3.0 schema object (recursively) to JSON Schema 2020-12."""
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in ("nullable", "example", "discriminator"):  # OpenAPI-only keywords
            continue
        if key == "properties":
            out[key] = {name: to_json_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not"):
            out[key] = to_json_schema(value)
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [to_json_schema(sub) for sub in value]
        elif key == "$ref":
            out[key] = SPEC_URI + value  # "#/components/..." -> "urn:tgi-openapi#/components/..."
        else:
            out[key] = value
    if schema.get("nullable"):
        if "type" in out and "enum" not in out:
            out["type"] = [out["type"], "null"]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


def call(s: TgiStandIn, method: str, path: str, body: Any = None) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection(s.host, s.port, timeout=10)
    try:
        data = None if body is None else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, resp.headers.get("Content-Type") or "", resp.read()
    finally:
        conn.close()


def sse_json(raw: bytes) -> list[Any]:
    data = [line[5:].lstrip(" ") for line in raw.decode().splitlines() if line.startswith("data:")]
    return [json.loads(d) for d in data if d != "[DONE]"]


@pytest.fixture(scope="module")
def spec(tgi_reference: Path) -> dict[str, Any]:
    return json.loads((tgi_reference / "openapi.json").read_text())


@pytest.fixture(scope="module")
def registry(spec: dict[str, Any]) -> Registry:
    schemas = {name: to_json_schema(s) for name, s in spec["components"]["schemas"].items()}
    resource = DRAFT202012.create_resource({"components": {"schemas": schemas}})
    return Registry().with_resource(SPEC_URI, resource)


@pytest.fixture(scope="module")
def validator(spec: dict[str, Any], registry: Registry) -> Callable[..., jsonschema.Validator]:
    def make(path: str, method: str, status: int, media: str | None = None) -> Any:
        """The validator for one response of one operation, as the spec documents it."""
        content = spec["paths"][path][method.lower()]["responses"][str(status)]["content"]
        schema = to_json_schema(content[media or next(iter(content))]["schema"])
        jsonschema.Draft202012Validator.check_schema(schema)
        return jsonschema.Draft202012Validator(schema, registry=registry)

    return make


@pytest.fixture(scope="module")
def component(registry: Registry) -> Callable[[str], jsonschema.Validator]:
    def make(name: str) -> Any:
        ref = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
        return jsonschema.Draft202012Validator(ref, registry=registry)

    return make


@pytest.fixture
def standin() -> Iterator[TgiStandIn]:
    with TgiStandIn(MODEL, max_input_tokens=100, max_total_tokens=200) as s:
        yield s


def test_every_served_route_is_in_the_spec(spec: dict[str, Any]) -> None:
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert set(ROUTES) - NOT_IN_SPEC <= documented
    assert documented <= set(ROUTES), "a documented route is not served"
    assert PROTECTED_ROUTES.issubset(documented)


@pytest.mark.parametrize(
    ("path", "body", "media"),
    [
        (
            "/generate",
            {"inputs": "a b", "parameters": {"details": True, "max_new_tokens": 2}},
            None,
        ),
        ("/generate", {"inputs": "a b"}, None),
        ("/", {"inputs": "a b"}, "application/json"),
        ("/v1/chat/completions", CHAT, "application/json"),
        ("/v1/completions", {"prompt": ["a b", "c"]}, "application/json"),
        ("/invocations", CHAT, "application/json"),
        ("/invocations", {"prompt": ["a b"]}, "application/json"),
        ("/tokenize", {"inputs": "a b"}, None),
        ("/chat_tokenize", CHAT, None),
    ],
)
def test_json_responses_match_the_spec(
    standin: TgiStandIn, validator: Callable[..., Any], path: str, body: Any, media: str | None
) -> None:
    status, ctype, raw = call(standin, "POST", path, body)
    assert (status, ctype) == (200, "application/json")
    validator(path, "POST", 200, media).validate(json.loads(raw))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/generate_stream", {"inputs": "a b c", "parameters": {"details": True}}),
        ("/", {"inputs": "a b", "stream": True}),
        (
            "/v1/chat/completions",
            {**CHAT, "stream": True, "stream_options": {"include_usage": True}},
        ),
        ("/v1/completions", {"prompt": "a b", "stream": True}),
        ("/invocations", {**CHAT, "stream": True}),
    ],
)
def test_stream_events_match_the_spec(
    standin: TgiStandIn, validator: Callable[..., Any], path: str, body: Any
) -> None:
    status, ctype, raw = call(standin, "POST", path, body)
    assert (status, ctype) == (200, "text/event-stream")
    events = sse_json(raw)
    assert events
    check = validator(path, "POST", 200, "text/event-stream")
    for event in events:
        check.validate(event)


def test_get_routes_match_the_spec(
    standin: TgiStandIn, validator: Callable[..., Any], component: Callable[[str], Any]
) -> None:
    status, _, raw = call(standin, "GET", "/info")
    assert status == 200
    validator("/info", "GET", 200).validate(json.loads(raw))
    # The spec documents /v1/models as one ModelInfo, but TGI returns ModelsInfo, the OpenAI
    # list {"object": "list", "data": [ModelInfo]} (router/src/lib.rs): check the items.
    status, _, raw = call(standin, "GET", "/v1/models")
    models = json.loads(raw)
    assert (status, models["object"]) == (200, "list")
    for item in models["data"]:
        component("ModelInfo").validate(item)
    standin.set_ready(False)
    status, _, raw = call(standin, "GET", "/health")
    assert status == 503
    validator("/health", "GET", 503).validate(json.loads(raw))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/generate", {"inputs": ""}),
        ("/generate", {"inputs": " ".join(["w"] * 150)}),
        ("/generate_stream", {"nope": 1}),
        ("/", {"inputs": "x", "parameters": {"max_new_tokens": 0}}),
        ("/v1/chat/completions", {"messages": []}),
        ("/v1/completions", {"prompt": 5}),
        ("/invocations", {}),
    ],
)
def test_validation_errors_match_the_spec(
    standin: TgiStandIn, validator: Callable[..., Any], path: str, body: Any
) -> None:
    status, _, raw = call(standin, "POST", path, body)
    assert status == 422
    error = json.loads(raw)
    validator(path, "POST", 422).validate(error)
    assert error["error_type"] == "validation"


def test_metric_names_are_tgi_names(standin: TgiStandIn, tgi_reference: Path) -> None:
    documented = set(re.findall(r"`(tgi_\w+)`", (tgi_reference / "metrics.md").read_text()))
    call(standin, "POST", "/generate", {"inputs": "x"})
    _, ctype, raw = call(standin, "GET", "/metrics")
    assert ctype.startswith("text/plain")
    served = set(re.findall(r"^# TYPE (\w+) ", raw.decode(), re.MULTILINE))
    assert {
        "tgi_request_count",
        "tgi_request_success",
        "tgi_queue_size",
        "tgi_batch_current_size",
    } <= served
    assert served <= documented | UNDOCUMENTED_METRICS


def test_the_validation_can_fail(
    standin: TgiStandIn, validator: Callable[..., Any], component: Callable[[str], Any]
) -> None:
    """Negative controls: broken copies of real responses must be rejected."""
    chat = json.loads(call(standin, "POST", "/v1/chat/completions", CHAT)[2])
    check = validator("/v1/chat/completions", "POST", 200, "application/json")
    check.validate(chat)
    broken = [
        {k: v for k, v in chat.items() if k != "usage"},
        {**chat, "choices": [{**chat["choices"][0], "message": {"role": "assistant"}}]},
        {**chat, "created": -1},
        {**chat, "usage": {**chat["usage"], "total_tokens": "9"}},
    ]
    for bad in broken:
        assert not check.is_valid(bad), bad
    info = json.loads(call(standin, "GET", "/info")[2])
    info_check = validator("/info", "GET", 200)
    info_check.validate({**info, "model_sha": None, "docker_label": None})  # nullable: fine
    assert not info_check.is_valid({**info, "model_id": None})  # not nullable
    assert not info_check.is_valid({k: v for k, v in info.items() if k != "max_total_tokens"})
    generated = json.loads(
        call(standin, "POST", "/generate", {"inputs": "a", "parameters": {"details": True}})[2]
    )
    generated["details"]["finish_reason"] = "done"  # not a FinishReason
    assert not component("GenerateResponse").is_valid(generated)
    assert not component("ErrorResponse").is_valid({"error": "x"})

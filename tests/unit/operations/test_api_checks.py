"""The API smoke test's checks (module_utils/operations/api_checks.py), against the TGI and vLLM
stand-ins on loopback and against replies made up to show each failure."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from ansible_collections.haw.icc.plugins.module_utils.operations import api_checks as t
from icc_sandbox.tgi_standin import TgiStandIn
from icc_sandbox.vllm_standin import VllmStandIn

MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
KEY = "the-right-key"
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def loopback(base: str) -> t.Transport:
    """A direct transport to the stand-in (what a port-forward gives)."""

    def send(method, path, body, key):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        started = time.monotonic()
        try:
            with _DIRECT.open(request, timeout=5) as response:
                return t.Reply(response.status, response.read(), time.monotonic() - started)
        except urllib.error.HTTPError as error:
            return t.Reply(error.code, error.read(), time.monotonic() - started)

    return send


def without_authorization(send: t.Transport) -> t.Transport:
    """What the API server's service proxy does to a request: the Authorization header goes."""
    return lambda method, path, body, _key: send(method, path, body, None)


def canned(replies: dict[tuple[str, str], t.Reply]) -> t.Transport:
    return lambda method, path, _body, _key: replies[(method, path)]


@pytest.fixture(scope="module")
def standin():
    with TgiStandIn(MODEL, api_key=KEY) as server:
        yield server


def by_name(checks: list[t.Check]) -> dict[str, t.Check]:
    return {check.name: check for check in checks}


def test_direct_with_the_right_key_every_check_passes(standin):
    test = t.ApiTest(MODEL, KEY, "Secret tgi-api-key", "wrong", carries_key=True, max_tokens=4)
    checks = by_name(t.run_api_checks(loopback(standin.url), test))
    assert list(checks) == [t.HEALTH, t.INFO, t.MODELS, t.CHAT, t.NO_KEY, t.WRONG_KEY]
    assert all(c.ok and not c.skipped for c in checks.values()), checks
    assert checks[t.INFO].detail.startswith(f"serves {MODEL} (TGI 3.3.5, max input tokens")
    # The stand-in echoes "Echo: <prompt>", cut at max_tokens=4 "tokens" (words).
    chat = checks[t.CHAT].detail
    assert ": 4 tokens, " in chat and " tokens/s (key from Secret tgi-api-key)" in chat, chat
    assert "reply 'Echo: Say hello in'" in chat
    assert checks[t.NO_KEY].detail == "401 without an API key"
    assert checks[t.WRONG_KEY].detail == "401 with a wrong key"


def test_a_wrong_configured_key_fails_the_chat_and_says_where_it_came_from(standin):
    test = t.ApiTest(MODEL, "not-it", "tgi_api_key", "wrong", carries_key=True)
    checks = by_name(t.run_api_checks(loopback(standin.url), test))
    assert not checks[t.CHAT].ok
    assert checks[t.CHAT].detail == (
        "TGI refused the API key from tgi_api_key (401): it is not the key TGI was started with"
    )
    assert t.summary(list(checks.values())).startswith("1 of 6 checks failed: chat with the key")


def test_through_the_proxy_the_keyed_checks_are_skipped_and_no_key_still_tested(standin):
    test = t.ApiTest(MODEL, None, "Secret tgi-api-key", "wrong", carries_key=False)
    checks = t.run_api_checks(without_authorization(loopback(standin.url)), test)
    named = by_name(checks)
    reason = (
        "not testable through the API server's proxy (it removes the Authorization header): "
        "use icc_test_tgi_url=port-forward (the default), ingress or a URL"
    )
    assert named[t.CHAT] == t.Check(t.CHAT, True, True, reason, 0.0)
    assert named[t.WRONG_KEY].skipped and named[t.WRONG_KEY].detail == reason
    assert named[t.NO_KEY].ok and not named[t.NO_KEY].skipped
    assert t.summary(checks) == "4 checks passed, 2 skipped"


def test_a_model_mismatch_fails_info_and_models_naming_both(standin):
    test = t.ApiTest("Qwen/Qwen2.5-0.5B-Instruct", KEY, "tgi_api_key", "w", carries_key=True)
    checks = by_name(t.run_api_checks(loopback(standin.url), test))
    assert checks[t.INFO].detail == (
        f"TGI serves '{MODEL}', but the inventory's tgi_model_id is 'Qwen/Qwen2.5-0.5B-Instruct' "
        "(deploy.yml or change_model.yml makes them agree)"
    )
    assert not checks[t.MODELS].ok and "not the inventory's" in checks[t.MODELS].detail
    assert checks[t.CHAT].ok  # the rest still runs


def test_tgi_without_a_key_is_reported_open():
    with TgiStandIn(MODEL) as open_server:
        test = t.ApiTest(MODEL, "any", "tgi_api_key", "wrong", carries_key=True)
        checks = by_name(t.run_api_checks(loopback(open_server.url), test))
    assert not checks[t.NO_KEY].ok
    assert "TGI answered 200 without an API key: anyone who reaches it" in checks[t.NO_KEY].detail
    assert not checks[t.WRONG_KEY].ok


def test_an_unready_tgi_and_an_unreachable_one_say_so():
    with TgiStandIn(MODEL, api_key=KEY, ready=False) as loading:
        check = t.check_health(loopback(loading.url)("GET", "/health", None, None))
    assert not check.ok
    assert check.detail == "TGI says it is unhealthy (503): the model is not serving"
    refused = t.check_info(t.Reply(None, error="[Errno 111] Connection refused"), MODEL)
    assert refused.detail == "no answer: [Errno 111] Connection refused"


def test_the_api_servers_own_answer_is_quoted_from_its_status():
    status = {"kind": "Status", "code": 503, "message": 'no endpoints available for service "tgi"'}
    reply = t.Reply(503, json.dumps(status).encode())
    assert t.check_health(reply).detail == (
        'the API server answered 503: no endpoints available for service "tgi"'
    )


def test_a_proxy_that_cannot_reach_the_pod_hints_at_the_network_policy():
    status = {
        "kind": "Status",
        "code": 503,
        "message": "error trying to reach service: dial tcp 10.1.2.3:80: i/o timeout",
    }
    detail = t.check_health(t.Reply(503, json.dumps(status).encode())).detail
    assert detail.startswith("the API server answered 503: error trying to reach service: dial")
    assert detail.endswith("is kept out too: use icc_test_tgi_url=port-forward, the default)")


def test_a_port_forward_that_does_not_open_is_one_line_and_the_rest_is_not_run(standin):
    """Unreachable from the transport (the port-forward refused): one FAIL line says why, the
    TGI checks not run are skipped, Open WebUI's own way is still tried."""
    test = t.ApiTest(MODEL, KEY, "Secret tgi-api-key", "wrong", carries_key=True)

    def refused(*_request):
        raise t.Unreachable("the port-forward to pod tgi-1 is forbidden: ...")

    webui = canned({("GET", "/health"): t.Reply(200, b'{"status":true}', 0.1)})
    checks = t.run_api_checks(refused, test, webui)
    assert [(c.name, c.state) for c in checks] == [
        ("tgi port-forward", "FAIL"),
        ("tgi health", "skip"),
        ("tgi info", "skip"),
        ("tgi models", "skip"),
        ("chat with the key", "skip"),
        ("no key refused", "skip"),
        ("wrong key refused", "skip"),
        ("open-webui health", "ok"),
    ]
    assert checks[0].detail == "the port-forward to pod tgi-1 is forbidden: ..."
    assert {c.detail for c in checks[1:7]} == {"TGI not reached"}
    assert t.summary(checks) == (
        "1 of 8 checks failed: tgi port-forward: the port-forward to pod tgi-1 is forbidden: ..."
    )
    # Failing later (after three checks got through) keeps what they saw.
    calls = []

    def fails_at_the_chat(method, path, body, key):
        calls.append(path)
        if len(calls) == 4:
            raise t.Unreachable("the port-forward to pod tgi-1 port 80 failed: reset")
        return loopback(standin.url)(method, path, body, key)

    later = t.run_api_checks(fails_at_the_chat, test, refused)
    assert [c.state for c in later] == ["ok", "ok", "ok", "FAIL", "skip", "skip", "skip", "FAIL"]
    assert later[3].name == "tgi port-forward" and later[4].name == "chat with the key"
    assert later[-1].name == "open-webui health" and "forbidden" in later[-1].detail


def test_chat_reply_without_usage_fails():
    transport = canned({("POST", "/v1/chat/completions"): t.Reply(200, b'{"choices": []}', 0.5)})
    reply = transport("POST", "/v1/chat/completions", None, KEY)
    check = t.check_chat(reply, "tgi_api_key")
    assert not check.ok and "no usage.completion_tokens" in check.detail


def test_tokens_per_second_come_from_usage_and_the_requests_time():
    answer = {
        "choices": [{"message": {"role": "assistant", "content": "Hello there"}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 20, "total_tokens": 29},
    }
    check = t.check_chat(t.Reply(200, json.dumps(answer).encode(), 0.5), "Secret s")
    assert check.detail == (
        "200 in 0.50s: 20 tokens, 40.0 tokens/s (key from Secret s); reply 'Hello there'"
    )
    assert check.seconds == 0.5


@pytest.mark.parametrize(
    ("reply", "ok", "detail"),
    [
        (t.Reply(200, b'{"status":true}', 0.25), True, "200 in 0.25s"),
        (t.Reply(200, b'{"status":false}'), False, "200, but it says {'status': False}"),
        (t.Reply(502, b"Bad Gateway"), False, "502: Bad Gateway"),
    ],
)
def test_open_webui_health(reply, ok, detail):
    check = t.check_webui(reply)
    assert (check.ok, check.detail) == (ok, detail)


def test_report_and_summary():
    checks = [
        t.passed(t.HEALTH, "200 in 0.01s"),
        t.failed(t.INFO, "TGI serves 'a', but ..."),
        t.skipped(t.GPU, "turned off"),
    ]
    assert t.report("[ns] API test", checks).splitlines() == [
        "[ns] API test",
        "  ok    tgi health  200 in 0.01s",
        "  FAIL  tgi info    TGI serves 'a', but ...",
        "  skip  gpu         turned off",
    ]
    assert t.summary(checks) == "1 of 3 checks failed: tgi info: TGI serves 'a', but ..."


# --- a vLLM namespace: /version, and the model list behind the key ------------------------------


@pytest.fixture(scope="module")
def vllm():
    with VllmStandIn(MODEL, 64, api_key=KEY) as server:
        yield server


def vllm_test(key: str | None = KEY, carries_key: bool = True) -> t.ApiTest:
    return t.ApiTest(
        MODEL, key, "Secret tgi-api-key", "wrong", carries_key, max_tokens=4, engine=t.VLLM_API
    )


def test_a_vllm_namespace_passes_its_own_checks(vllm):
    checks = by_name(t.run_api_checks(loopback(vllm.url), vllm_test()))
    assert list(checks) == [
        "vllm health",
        "vllm version",
        "vllm models",
        "chat with the key",
        "no key refused",
        "wrong key refused",
    ]
    assert all(c.ok and not c.skipped for c in checks.values()), checks
    assert checks["vllm version"].detail.startswith("vLLM 0.14.1 in ")
    assert checks["vllm models"].detail == f"/v1/models lists {MODEL} (max_model_len 64)"
    assert ": 4 tokens, " in checks[t.CHAT].detail


def test_through_the_proxy_vllms_model_list_is_a_keyed_check_and_skipped(vllm):
    checks = by_name(
        t.run_api_checks(without_authorization(loopback(vllm.url)), vllm_test(None, False))
    )
    dropped = t.PROXY_DROPS_KEY.format(variable="icc_test_tgi_url")
    assert [(c.skipped, c.detail) for c in (checks["vllm models"], checks[t.CHAT])] == [
        (True, dropped),
        (True, dropped),
    ]
    assert checks[t.NO_KEY].ok and not checks[t.NO_KEY].skipped
    assert checks["vllm health"].ok and checks["vllm version"].ok


def test_a_vllm_without_a_key_is_caught_and_a_wrong_key_named():
    with VllmStandIn(MODEL, 64) as open_server:
        checks = by_name(t.run_api_checks(loopback(open_server.url), vllm_test()))
    assert checks[t.NO_KEY].detail == (
        "vLLM answered 200 without an API key: anyone who reaches it can use it (is "
        "VLLM_API_KEY set?)"
    )
    with VllmStandIn(MODEL, 64, api_key="another-key-entirely") as keyed:
        checks = by_name(t.run_api_checks(loopback(keyed.url), vllm_test()))
    assert checks["vllm models"].detail == "vLLM refused the API key (401) for /v1/models"
    assert checks[t.CHAT].detail == (
        "vLLM refused the API key from Secret tgi-api-key (401): it is not the key vLLM was "
        "started with"
    )

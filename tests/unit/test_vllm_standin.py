"""The sandbox's vLLM API stand-in (sandbox/icc_sandbox/vllm_standin.py), the node agent serving
it for a Ready vLLM pod, and the log lines of a vLLM start-up (container_logs.vllm_run_lines).
The expected answers are vLLM 0.14.1's, read in its source (named at each test); the contract
test at the end checks the stand-in's metric names and refusal against that source itself."""

from __future__ import annotations

import base64
import json
import re
import urllib.request

import pytest
from icc_sandbox.container_logs import container_lines, container_run
from icc_sandbox.node_agent import NodeAgent
from icc_sandbox.nodes import iso
from icc_sandbox.tgi_standin import fetch
from icc_sandbox.vllm_standin import VllmStandIn
from test_node_agent import TEST_NODE, TIMING, FakeApi, free_port, unique_uids
from test_vllm_serve_sandbox import V100_NODE, vllm_pod
from test_vllm_server_contract import read, vllm_source  # noqa: F401 (fixture)

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
KEY = "s3cret-Key-for-vllm"
# The stand-in's "tokenizer" splits at whitespace (tgi_standin): the chat template
# "<|user|>\nhello there\n<|assistant|>\n" is 4 tokens, the reply "Echo: hello there" 3.
CHAT = {"messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
def standin():
    with VllmStandIn("student-model", 8, KEY, model=MODEL) as server:
        yield server


def raw(url: str, body: dict | None = None, key: str | None = None, scheme: str = "Bearer"):
    """(status, headers, body bytes) of a request, nothing decoded."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if key is not None:
        request.add_header("Authorization", f"{scheme} {key}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_only_paths_under_v1_need_the_key_and_a_refusal_is_vllms(standin):
    # api_server.py AuthenticationMiddleware: /v1... needs "Bearer <key>", the scheme in any case.
    assert raw(f"{standin.url}/health")[::2] == (200, b"")
    assert fetch(f"{standin.url}/version") == (200, {"version": "0.14.1"})
    assert raw(f"{standin.url}/metrics")[0] == 200
    for key, scheme in ((None, "Bearer"), ("wrong", "Bearer"), (KEY.lower(), "Bearer")):
        status, _headers, body = raw(f"{standin.url}/v1/models", key=key, scheme=scheme)
        assert (status, json.loads(body)) == (401, {"error": "Unauthorized"})
    assert raw(f"{standin.url}/v1/models", key=KEY, scheme="bearer")[0] == 200


def test_the_model_list_names_the_served_model_and_its_length(standin):
    status, listing = fetch(f"{standin.url}/v1/models", key=KEY)
    assert status == 200 and listing["object"] == "list"
    (card,) = listing["data"]
    assert {k: card[k] for k in ("id", "object", "owned_by", "root", "max_model_len")} == {
        "id": "student-model",
        "object": "model",
        "owned_by": "vllm",
        "root": MODEL,
        "max_model_len": 8,
    }


def test_a_chat_is_answered_with_usage_and_counted_in_vllms_metrics():
    with VllmStandIn("student-model", 64, KEY, model=MODEL) as server:
        status, reply = fetch(f"{server.url}/v1/chat/completions", CHAT, key=KEY)
        assert status == 200
        assert reply["id"].startswith("chatcmpl-") and reply["model"] == "student-model"
        (choice,) = reply["choices"]
        assert choice["message"]["content"] == "Echo: hello there"
        assert choice["finish_reason"] == "stop"
        assert reply["usage"] == {
            "prompt_tokens": 4,
            "total_tokens": 7,
            "completion_tokens": 3,
            "prompt_tokens_details": None,
        }
        metrics = raw(f"{server.url}/metrics")[2].decode()
    labels = 'engine="0",model_name="student-model"'
    assert f"vllm:prompt_tokens_total{{{labels}}} 4.0" in metrics
    assert f"vllm:generation_tokens_total{{{labels}}} 3.0" in metrics
    assert f'vllm:request_success_total{{{labels},finished_reason="stop"}} 1.0' in metrics
    assert f"vllm:num_requests_running{{{labels}}} 0.0" in metrics


def test_a_streamed_chat_comes_as_sse_events_ending_in_done():
    with VllmStandIn("student-model", 64, KEY) as server:
        body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
        status, headers, text = raw(f"{server.url}/v1/chat/completions", body, KEY)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = text.decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    content = "".join(c["choices"][0]["delta"]["content"] for c in chunks[:-1])
    assert content == "Echo: hello there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 3


def test_another_model_or_too_many_tokens_are_refused_in_vllms_words(standin):
    # serving_engine.py _check_model and the length checks; max_model_len 8 here.
    url = f"{standin.url}/v1/chat/completions"
    status, _h, body = raw(url, {**CHAT, "model": "gpt-4"}, KEY)
    assert status == 404
    assert json.loads(body)["error"] == {
        "message": "The model `gpt-4` does not exist.",
        "type": "NotFoundError",
        "param": "model",
        "code": 404,
    }
    status, _h, body = raw(url, {**CHAT, "max_tokens": 5}, KEY)
    assert status == 400
    assert json.loads(body)["error"]["message"] == (
        "'max_tokens' or 'max_completion_tokens' is too large: 5. This model's maximum context "
        "length is 8 tokens and your request has 4 input tokens (5 > 8 - 4)."
    )
    long = {"messages": [{"role": "user", "content": "one two three four five six"}]}
    status, _h, body = raw(url, long, KEY)  # 8 tokens with the template: not below 8
    assert status == 400
    assert json.loads(body)["error"]["message"] == (
        "This model's maximum context length is 8 tokens. However, your request has 8 input "
        "tokens. Please reduce the length of the input messages."
    )


# --- the node agent serves a Ready vLLM pod ------------------------------------------------------


def test_a_ready_vllm_pod_answers_at_its_port_with_the_key_from_its_secret():
    (uid,) = unique_uids(1)
    port = free_port(TEST_NODE.pod_ip(uid))
    secret = {"api-key": base64.b64encode(KEY.encode()).decode()}
    api = FakeApi({("ns", "tgi-api-key"): secret})
    spec = vllm_pod(
        [
            MODEL,
            "--served-model-name",
            "qwen-small",
            "--max-model-len",
            "2048",
            *["--port", str(port)],
        ],
        1,
    )
    container = spec["spec"]["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": port}]  # where the probe aims
    container["env"] = [
        {
            "name": "VLLM_API_KEY",
            "valueFrom": {"secretKeyRef": {"name": "tgi-api-key", "key": "api-key"}},
        }
    ]
    spec["metadata"] |= {
        "uid": uid,
        "annotations": {"sandbox.haw.icc/ready-after-seconds": "0"},
    }
    spec["spec"]["nodeName"] = TEST_NODE.name
    api.pods[uid] = spec
    agent = NodeAgent(api, [TEST_NODE], TIMING)
    try:
        agent.sync_pods(now=1000)
        url = f"http://{TEST_NODE.pod_ip(uid)}:{port}"
        assert fetch(f"{url}/v1/models")[0] == 401
        status, listing = fetch(f"{url}/v1/models", key=KEY)
        assert status == 200
        assert [(m["id"], m["root"], m["max_model_len"]) for m in listing["data"]] == [
            ("qwen-small", MODEL, 2048)
        ]
        assert fetch(f"{url}/health")[0] == 200
    finally:
        agent.close()


# --- the logs of a vLLM start-up -----------------------------------------------------------------

LINE = r"\(\w+ pid=\d+\) INFO \d\d-\d\d \d\d:\d\d:\d\d \[[\w.]+:\d+\] "


def vllm_texts(args: list[str], gpus: int, seconds: float, previous: bool = False) -> list[str]:
    pod = vllm_pod(args, gpus)
    pod["status"] = {"startTime": iso(START)}
    container = pod["spec"]["containers"][0]
    now = START + seconds
    run = container_run(pod, container, V100_NODE, START, now, TIMING, previous)
    return [line.text for line in container_lines(pod, container, V100_NODE, run, now, TIMING)]


START = 1_700_000_000.0
LLAMA_8B = ["meta-llama/Llama-3.1-8B-Instruct", "--dtype", "half", "--max-model-len", "4096"]


def test_a_vllm_start_up_logs_its_kv_cache_and_the_api_server():
    lines = vllm_texts([*LLAMA_8B, "--tensor-parallel-size", "2", "--port", "80"], 2, 6)
    messages = [re.sub(LINE, "", t) for t in lines]
    # Worked in test_vllm_serve_sandbox: per GPU 0.9 x 16160 MiB - 8.03e9 B of weights -
    # 417,857,536 B of activations - 0.75 GiB; 65,536 B per token in blocks of 16.
    available = 0.9 * 16160 * 2**20 - 8.03e9 - 417_857_536 - 0.75 * 2**30
    tokens = int(available // (65_536 * 16)) * 16
    assert messages.count(f"Available KV cache memory: {available / 2**30:.2f} GiB") == 2
    assert f"GPU KV cache size: {tokens:,} tokens" in messages
    assert f"Maximum concurrency for 4,096 tokens per request: {tokens / 4096:.2f}x" in messages
    assert "Starting vLLM API server 0 on http://0.0.0.0:80" in messages
    assert lines[-1] == "(APIServer pid=1) INFO:     Application startup complete."
    assert any(t.startswith("(Worker_TP1 pid=") for t in lines)
    # Before Ready (5 s here) the server has not started yet.
    assert not any("Starting vLLM API server" in t for t in vllm_texts(LLAMA_8B, 2, 2))


def test_a_failed_vllm_start_up_ends_its_log_with_vllms_error():
    one_gpu = vllm_texts([*LLAMA_8B, "--tensor-parallel-size", "1"], 1, 1.5, previous=True)
    assert any("EngineCore failed to start." in t for t in one_gpu)
    assert one_gpu[-1] == (
        "(EngineCore_DP0 pid=187) ValueError: No available memory for the cache blocks. Try "
        "increasing `gpu_memory_utilization` when initializing the engine."
    )
    bf16 = vllm_texts(["Qwen/Qwen2.5-1.5B-Instruct", "--dtype", "bfloat16"], 1, 1.5, True)
    assert bf16[-1].startswith("(APIServer pid=1) ValueError: Bfloat16 is only supported")
    assert not any("Starting to load model" in t for t in bf16)  # refused before loading


# --- against the release's source ----------------------------------------------------------------


def test_the_stand_ins_metrics_and_refusal_are_the_releases(vllm_source):  # noqa: F811
    loggers = read(vllm_source, "vllm/v1/metrics/loggers.py")
    defined = set(re.findall(r'name="(vllm:[a-z_]+)"', loggers))
    with VllmStandIn("m", 64) as server:
        fetch(f"{server.url}/v1/chat/completions", CHAT)
        rendered = raw(f"{server.url}/metrics")[2].decode()
    names = {
        re.split(r"[{ ]", line, maxsplit=1)[0] for line in rendered.splitlines() if line[0] != "#"
    }
    counters = {n for n in names if n.endswith("_total")}  # prometheus_client adds _total
    assert {n.removesuffix("_total") for n in counters} | (names - counters) <= defined
    assert 'labelnames = ["model_name", "engine"]' in loggers
    server_source = read(vllm_source, "vllm/entrypoints/openai/api_server.py")
    assert 'JSONResponse(content={"error": "Unauthorized"}, status_code=401)' in server_source
    assert 'url_path.startswith("/v1")' in server_source
    engine_source = read(vllm_source, "vllm/entrypoints/openai/serving_engine.py")
    assert "does not exist." in engine_source and "Please reduce the length of " in engine_source
    worker = read(vllm_source, "vllm/v1/worker/gpu_worker.py")
    assert '"Available KV cache memory: %s GiB"' in worker

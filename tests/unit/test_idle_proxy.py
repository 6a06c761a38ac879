"""The idle proxy the tgi_server role ships (roles/tgi_server/files/idle_proxy.py), run for real
on loopback in front of the sandbox's TGI stand-in, with a Kubernetes API that keeps the
Deployment's replicas in memory (the calls the proxy makes, as FakeKubernetes keeps them)."""

from __future__ import annotations

import importlib.util
import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from icc_sandbox.tgi_standin import TgiStandIn

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "tgi_server" / "files" / "idle_proxy.py"
spec = importlib.util.spec_from_file_location("idle_proxy", SCRIPT)
idle_proxy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(idle_proxy)

MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
KEY = "a-key-of-twenty-chars"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi there"}], "max_tokens": 8}
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FakeKubernetes:
    """One Deployment: its pod is Ready `ready_after` seconds after a scale to 1, or never
    scheduled (no GPU free) when `schedulable` is false."""

    def __init__(self, ready_after: float = 0.2, schedulable: bool = True) -> None:
        self.replica_count, self.scaled, self.woken, self.annotations = 1, [], 0.0, {}
        self.model = MODEL  # what the Deployment's arguments name
        self.refused = None  # the Deployment's ReplicaFailure message (a quota)
        self.ready_after, self.schedulable = ready_after, schedulable
        self.rolled_out = True  # no deploy or switch under way
        self.sleep_write_seconds = 0.0  # how long the API takes to store a scale to 0
        self.crash = None  # the container's last termination, for a pod that crash-loops
        # Seconds the previous pod still terminates, holding its GPUs, after a scale to 1.
        self.old_pod_for = 0.0

    def replicas(self, _deployment):
        return self.replica_count

    def scale(self, _deployment, replicas, annotations=None):
        if replicas == 0:
            time.sleep(self.sleep_write_seconds)
        self.scaled.append(replicas)
        self.annotations = {**self.annotations, **(annotations or {})}
        self.replica_count = replicas
        self.woken = time.time()

    def endpoints_ready(self, _service):
        return self.replica_count > 0 and time.time() - self.woken >= self.ready_after

    def served_model(self, _deployment):
        return self.model

    def annotate(self, _deployment, annotations):
        self.annotations = {**self.annotations, **annotations}

    def settled(self, _deployment):
        return self.rolled_out

    def replica_failure(self, _deployment):
        return self.refused if self.replica_count else None

    def selector(self, _deployment):
        return "app.kubernetes.io/name=tgi"

    def pods(self, _selector):
        if self.replica_count == 0:
            return []
        if self.crash:
            status = {"restartCount": 2, "lastState": {"terminated": self.crash}}
            return [{"metadata": {}, "status": {"containerStatuses": [status]}}]
        old = [{"metadata": {"deletionTimestamp": "2026-12-05T07:00:00Z"}, "status": {}}]
        if time.time() - self.woken < self.old_pod_for:  # the new pod waits for its GPU
            message = "0/5 nodes are available: 5 Insufficient nvidia.com/gpu."
            scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
            return [
                *old,
                {"metadata": {}, "status": {"conditions": [scheduled | {"message": message}]}},
            ]
        if not self.schedulable:
            message = "0/5 nodes are available: 5 Insufficient nvidia.com/gpu."
            scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
            return [{"metadata": {}, "status": {"conditions": [scheduled | {"message": message}]}}]
        ready = time.time() - self.woken >= self.ready_after
        condition = {"type": "Ready", "status": "True" if ready else "False"}
        return [{"metadata": {}, "status": {"conditions": [condition]}}]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def upstream():
    with TgiStandIn(MODEL, api_key=KEY) as server:
        yield server


def start(upstream, kube, idle=0.5, wake_timeout=10.0, sync=60.0):
    settings = {
        "upstream": upstream.url,
        "deployment": "tgi",
        "served_model": MODEL,
        "service": "tgi-server",
        "idle_seconds": idle,
        "wake_timeout_seconds": wake_timeout,
        "wake_estimate_seconds": 45.0,
        "poll_seconds": 0.05,
        "sync_seconds": sync,
        "unschedulable_grace": 0.5,
        "note_seconds": 0.2,
        "port": free_port(),
    }
    proxy = idle_proxy.IdleProxy(kube, settings)
    server = idle_proxy.serve(proxy, host="127.0.0.1")
    return proxy, server, f"http://127.0.0.1:{settings['port']}"


@pytest.fixture
def running(upstream):
    started = []

    def run(kube, **options):
        proxy, server, url = start(upstream, kube, **options)
        started.append((proxy, server))
        return proxy, url

    yield run
    for proxy, server in started:
        proxy.stop.set()
        server.shutdown()
        server.server_close()


def call(url, body=None, key=KEY, headers=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with DIRECT.open(request, timeout=20) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def until(condition, seconds=5.0):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_it_forwards_chats_and_streams_as_they_come(running, upstream):
    kube = FakeKubernetes()
    proxy, url = running(kube, idle=60)
    status, _headers, body = call(f"{url}/v1/chat/completions", CHAT)
    assert status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "Echo: hi there"
    # Counted from the answer's own usage; noted on the Deployment for status.yml.
    usage = json.loads(call(f"{upstream.url}/v1/chat/completions", CHAT)[2])["usage"]
    assert proxy.status()["generated_tokens"] == usage["completion_tokens"] > 0
    assert until(
        lambda: kube.annotations.get("haw.icc/generated-tokens") == str(usage["completion_tokens"])
    )
    streamed = call(f"{url}/v1/chat/completions", {**CHAT, "stream": True})[2]
    direct = call(f"{upstream.url}/v1/chat/completions", {**CHAT, "stream": True})[2]
    strip = [json.loads(e[5:])["choices"] for e in direct.decode().split("\n\n") if e[5:6] == "{"]
    through = [
        json.loads(e[5:])["choices"] for e in streamed.decode().split("\n\n") if e[5:6] == "{"
    ]
    assert through == strip and streamed.decode().endswith("data:[DONE]\n\n")
    assert call(f"{url}/v1/chat/completions", CHAT, key="wrong")[0] == 401  # TGI's own refusal


def test_idle_it_sleeps_and_health_checks_neither_keep_it_awake_nor_wake_it(running):
    kube = FakeKubernetes()
    _proxy, url = running(kube, idle=0.3)
    assert call(f"{url}/v1/models")[0] == 200
    for _ in range(15):  # probes and Open WebUI's model list, every 0.1 s for 1.5 s
        call(f"{url}/health")
        call(f"{url}/v1/models")
        time.sleep(0.1)
    assert kube.scaled == [0]  # asleep while they went on: they are not use
    status = json.loads(call(f"{url}/idle-proxy/status")[2])
    assert status["state"] == "asleep" and status["asleep_since"]
    health = call(f"{url}/health")
    assert health[0] == 503 and "the next generation request wakes it" in health[2].decode()
    models = call(f"{url}/v1/models")
    assert models[0] == 200 and json.loads(models[2])["data"][0]["id"] == MODEL
    kube.model = "Qwen/Qwen2.5-3B-Instruct"  # change_model.yml while it sleeps
    models = call(f"{url}/v1/models")
    assert json.loads(models[2])["data"][0]["id"] == "Qwen/Qwen2.5-3B-Instruct"
    assert kube.scaled == [0]  # nothing of that woke it
    # What status.yml reads from the Deployment: when it fell asleep, and the last use before.
    notes = kube.annotations
    assert notes["haw.icc/asleep-since"] == status["asleep_since"]
    assert notes["haw.icc/last-request"] <= notes["haw.icc/asleep-since"]


def test_the_next_chat_wakes_it_and_is_answered_once_it_is_ready(running):
    kube = FakeKubernetes(ready_after=0.3)
    proxy, url = running(kube, idle=0.2)
    assert until(lambda: kube.scaled == [0])
    began = time.time()
    status, _headers, body = call(f"{url}/v1/chat/completions", CHAT)
    waited = time.time() - began
    assert status == 200 and json.loads(body)["choices"][0]["message"]["content"]
    assert kube.scaled[:2] == [0, 1] and waited >= 0.3
    state = proxy.status()
    assert state["wakes"] == 1 and state["last_wake_seconds"] >= 0.3
    assert kube.annotations["haw.icc/asleep-since"] is None  # a merge patch's null removes it


def test_it_follows_replicas_that_someone_else_changed(running):
    kube = FakeKubernetes()
    proxy, _url = running(kube, idle=60, sync=0.1)
    kube.replica_count = 0  # kubectl scale --replicas 0
    assert until(lambda: proxy.status()["state"] == "asleep")
    kube.replica_count = 1  # test.yml woke it
    assert until(lambda: proxy.status()["state"] == "awake")
    assert kube.scaled == []  # it only followed: no write of its own


def test_a_request_that_cannot_wait_gets_503_with_the_estimate(running):
    kube = FakeKubernetes(ready_after=2.0)
    _proxy, url = running(kube, idle=0.2)
    assert until(lambda: kube.scaled == [0])
    status, headers, body = call(f"{url}/v1/chat/completions", CHAT, headers={"Prefer": "wait=0"})
    assert status == 503 and headers["Retry-After"] == "45"  # no wake measured yet: the estimate
    assert json.loads(body)["error"] == "waking up, about 45 s"
    assert kube.scaled == [0, 1]  # the wake began all the same


def test_when_no_node_has_the_gpus_free_the_answer_says_so_and_it_goes_back_to_sleep(running):
    kube = FakeKubernetes(schedulable=False)
    proxy, url = running(kube, idle=0.2, wake_timeout=1.0)
    assert until(lambda: kube.scaled == [0])
    status, _headers, body = call(f"{url}/v1/chat/completions", CHAT)
    assert status == 503
    said = json.loads(body)["error"]
    assert "no node has the GPUs free for this server right now" in said
    assert "Insufficient nvidia.com/gpu" in said
    assert until(lambda: kube.scaled == [0, 1, 0])  # the pending pod is taken back
    assert proxy.status()["state"] == "asleep"
    # For status.yml: when, and why.
    assert "no node has the GPUs free" in kube.annotations["haw.icc/wake-problem"]


def test_a_pod_the_quota_refuses_is_said_at_once_and_it_goes_back_to_sleep(running):
    kube = FakeKubernetes()
    kube.refused = 'pods "tgi-1" is forbidden: exceeded quota: gpus, requested: nvidia.com/gpu=1'
    _proxy, url = running(kube, idle=0.2, wake_timeout=30.0)
    assert until(lambda: kube.scaled == [0])
    began = time.time()
    status, _headers, body = call(f"{url}/v1/chat/completions", CHAT)
    assert status == 503 and time.time() - began < 5  # not the start-up budget of 30 s
    assert (
        'its pod cannot be created (pods "tgi-1" is forbidden: exceeded quota'
        in json.loads(body)["error"]
    )
    assert until(lambda: kube.scaled == [0, 1, 0])


def test_the_model_a_deployment_serves_is_read_from_its_arguments():
    kube = idle_proxy.Kubernetes("https://api", None, None, "wabc123-default")

    def serving(*args):
        pod = {"containers": [{"args": list(args)}]}
        kube.request = lambda _method, _path: {"spec": {"template": {"spec": pod}}}
        return kube.served_model("tgi")

    # TGI's launcher and vLLM's `vllm serve` as the role writes them (render.yml shows both).
    assert serving("--model-id", "Qwen/Qwen2.5-1.5B-Instruct", "--port", "80") == (
        "Qwen/Qwen2.5-1.5B-Instruct"
    )
    assert serving("Qwen/Qwen2.5-3B-Instruct", "--served-model-name", "qwen-3b") == "qwen-3b"
    assert serving("Qwen/Qwen2.5-3B-Instruct", "--port", "8000") == "Qwen/Qwen2.5-3B-Instruct"
    assert serving("--port", "80") is None


def test_the_proxy_notes_what_status_reads():
    # The script runs alone (a stock image) and cannot import the collection: the names agree.
    from ansible_collections.haw.icc.plugins.module_utils.operations import progress

    assert (idle_proxy.ASLEEP_SINCE, idle_proxy.LAST_REQUEST) == (
        progress.ASLEEP_SINCE_ANNOTATION,
        progress.LAST_REQUEST_ANNOTATION,
    )
    assert (idle_proxy.WAKE_PROBLEM, idle_proxy.GENERATED_TOKENS) == (
        progress.WAKE_PROBLEM_ANNOTATION,
        progress.GENERATED_TOKENS_ANNOTATION,
    )


def test_a_chat_that_comes_while_it_falls_asleep_wakes_it_again_and_is_answered(running):
    kube = FakeKubernetes()
    kube.sleep_write_seconds = 0.5
    proxy, url = running(kube, idle=0.2)
    assert until(lambda: proxy.status()["state"] == "asleep")  # the scale to 0 is under way
    status, _headers, body = call(f"{url}/v1/chat/completions", CHAT)
    assert status == 200, body
    assert kube.scaled[:2] == [0, 1] and kube.replica_count == 1  # in that order


def test_while_a_deploy_rolls_the_server_out_it_is_not_idle(running):
    kube = FakeKubernetes()
    kube.rolled_out = False  # a model download, say
    proxy, _url = running(kube, idle=0.2)
    time.sleep(1.0)
    assert kube.scaled == [] and proxy.status()["state"] == "awake"
    kube.rolled_out = True
    assert until(lambda: kube.scaled == [0])  # idle from the end of the rollout on


def test_a_server_that_crashes_when_woken_is_said_at_once(running):
    kube = FakeKubernetes()
    proxy, url = running(kube, idle=0.2, wake_timeout=30.0)
    assert until(lambda: kube.scaled == [0])
    kube.crash = {"reason": "Error", "message": "torch.OutOfMemoryError: CUDA out of memory"}
    began = time.time()
    status, _headers, body = call(f"{url}/v1/chat/completions", CHAT)
    assert status == 503 and time.time() - began < 5
    said = json.loads(body)["error"]
    assert said.endswith("(Error: torch.OutOfMemoryError: CUDA out of memory)"), said
    assert until(lambda: kube.scaled == [0, 1, 0]) and proxy.status()["state"] == "asleep"


def test_a_gpu_its_old_pod_still_frees_is_not_reported_missing(running):
    kube = FakeKubernetes(ready_after=0.6)
    kube.old_pod_for = 0.3  # Recreate: the old pod terminates, then the new one gets its GPU
    proxy, url = running(kube, idle=0.2)
    assert until(lambda: kube.scaled == [0])
    assert call(f"{url}/v1/chat/completions", CHAT)[0] == 200
    assert proxy.status()["problem"] is None


def test_a_health_check_while_someone_else_wakes_it_waits_for_the_server(running):
    kube = FakeKubernetes(ready_after=0.5)
    _proxy, url = running(kube, idle=0.2)
    assert until(lambda: kube.scaled == [0])
    kube.replica_count, kube.woken = 1, time.time()  # test.yml scales it to 1
    time.sleep(idle_proxy.LOOK_SECONDS)
    status, _headers, _body = call(f"{url}/health")
    assert status == 200 and kube.scaled == [0]  # answered by the server; not scaled by the proxy


def test_head_gets_no_body_and_a_chunked_request_is_forwarded_whole(running):
    _proxy, url = running(FakeKubernetes(), idle=60)
    head = urllib.request.Request(f"{url}/health", method="HEAD")
    with pytest.raises(urllib.error.HTTPError) as refused:  # the stand-in has no HEAD: 501
        DIRECT.open(head, timeout=10)
    assert refused.value.code == 501 and refused.value.read() == b""  # headers only
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        body = json.dumps(CHAT).encode()
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {KEY}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
            + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        )
        answer = b""
        while b"Echo: hi there" not in answer:
            piece = sock.recv(65536)
            if not piece:
                break
            answer += piece
    assert answer.startswith(b"HTTP/1.1 200") and b"Echo: hi there" in answer

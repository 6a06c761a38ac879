"""The node agent's simulation, without a cluster: timelines, probes, pod status, stand-ins."""

from __future__ import annotations

import base64
import copy
import dataclasses
import logging
import random
import re
import socket
import threading
import uuid
from pathlib import Path

import pytest
from icc_sandbox.cluster import DEFAULT_NODES_FILE
from icc_sandbox.container_spec import App, quantity_bytes, token_limits
from icc_sandbox.kubeapi import ApiError
from icc_sandbox.node_agent import STORAGE_PROVISIONER, NodeAgent
from icc_sandbox.nodes import NodeSpec, Timing, load_nodes
from icc_sandbox.pod_simulation import (
    PodView,
    crash_loop,
    probe_failure,
    simulate_pod,
    status_differs,
)
from icc_sandbox.stand_ins import ServedTgi, served_tgi
from icc_sandbox.tgi_standin import fetch

TGI = "ghcr.io/huggingface/text-generation-inference:3.3.0"
V100 = NodeSpec(
    name="n",
    index=0,
    cpu="32",
    memory="192Gi",
    gpu_type="gpu-tesla-v100",
    gpus=4,
    gpu_memory_gib=16,
)
TIMING = Timing(
    tgi_ready_seconds=5, webui_ready_seconds=1, crash_after_seconds=1, backoff_seconds=10
)


def pod(*containers: dict, annotations: dict | None = None) -> dict:
    return {
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "uid": "abcdef12-0000",
            "annotations": annotations or {},
        },
        "spec": {"containers": list(containers)},
    }


def tgi(args: list[str], gpus: int = 1, **extra) -> dict:
    limits = {"nvidia.com/gpu": str(gpus)} if gpus else {}
    return {"name": "tgi", "image": TGI, "args": args, "resources": {"limits": limits}} | extra


@pytest.mark.parametrize(
    ("elapsed", "restarts", "running", "backoff"),
    [
        (0.5, 0, True, 10),  # first run, not crashed yet
        (1.5, 0, False, 10),  # crashed, first back-off of 10 s
        (11.5, 1, True, 10),  # restarted once
        (12.5, 1, False, 20),  # crashed again, back-off doubles
        (10_000, 37, False, 300),  # 5 cycles of 11+21+41+81+161 s, then 32 of 1+300 s (cap)
    ],
)
def test_crash_loop_follows_the_kubelets_back_off(elapsed, restarts, running, backoff):
    loop = crash_loop(elapsed, run_for=1, backoff=10)
    assert (loop.restart_count, loop.running, loop.backoff) == (restarts, running, backoff)


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ({"httpGet": {"path": "/health", "port": 80}}, None),
        ({"httpGet": {"path": "/health", "port": "http"}}, None),
        ({"httpGet": {"path": "/health", "port": 3000}}, "connection refused"),
        ({"httpGet": {"path": "/healthz", "port": 80}}, "statuscode: 404"),
        ({"tcpSocket": {"port": 80}}, None),
        ({"exec": {"command": ["true"]}}, None),
    ],
)
def test_probes_pass_only_where_the_application_listens(probe, expected):
    container = {"readinessProbe": probe, "ports": [{"name": "http", "containerPort": 80}]}
    failure = probe_failure(container, App("tgi", 80, frozenset({"/health"})), "127.10.0.1")
    assert failure == expected or (
        expected is not None and failure is not None and expected in failure
    )


def test_valid_tgi_becomes_ready_after_its_load_delay():
    spec = pod(tgi(["--model-id", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"]))
    assert not simulate_pod(spec, V100, started=0, now=4, timing=TIMING).status[
        "containerStatuses"
    ][0]["ready"]
    ready = simulate_pod(spec, V100, started=0, now=5, timing=TIMING).status
    assert ready["containerStatuses"][0]["ready"]
    assert {"type": "Ready", "status": "True"} in ready["conditions"]


def test_a_startup_probe_keeps_the_container_unstarted_until_it_passes():
    probe = {"httpGet": {"path": "/health", "port": 80}}
    spec = pod(tgi(["--model-id", "x/y-1b"], startupProbe=probe, readinessProbe=probe))
    loading = simulate_pod(spec, V100, started=0, now=4, timing=TIMING).status
    assert loading["containerStatuses"][0]["started"] is False
    serving = simulate_pod(spec, V100, started=0, now=5, timing=TIMING).status
    assert serving["containerStatuses"][0]["started"] is True
    plain = pod(tgi(["--model-id", "x/y-1b"], readinessProbe=probe))
    assert simulate_pod(plain, V100, started=0, now=1, timing=TIMING).status["containerStatuses"][
        0
    ]["started"]


def test_the_ready_delay_can_be_set_per_pod():
    spec = pod(
        tgi(["--model-id", "x/y-1b"]), annotations={"sandbox.haw.icc/ready-after-seconds": "0"}
    )
    assert simulate_pod(spec, V100, started=0, now=0, timing=TIMING).status["containerStatuses"][0][
        "ready"
    ]


def test_bad_tgi_arguments_crash_loop_with_the_launchers_message():
    spec = pod(tgi(["--model-id", "x/y-1b", "--max-parallel-loading-workers", "2"]))
    view = simulate_pod(spec, V100, started=0, now=2, timing=TIMING)
    container = view.status["containerStatuses"][0]
    assert container["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert "--max-parallel-loading-workers" in container["lastState"]["terminated"]["message"]
    assert any(e["reason"] == "BackOff" for e in view.events)


def test_a_model_too_big_for_its_gpus_is_oom_killed_after_loading():
    spec = pod(tgi(["--model-id", "meta-llama/Llama-2-70b-chat-hf"]))
    loading = simulate_pod(spec, V100, started=0, now=4, timing=TIMING).status["containerStatuses"][
        0
    ]
    assert "running" in loading["state"]
    killed = simulate_pod(spec, V100, started=0, now=6, timing=TIMING).status["containerStatuses"][
        0
    ]
    assert killed["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert killed["lastState"]["terminated"]["exitCode"] == 137


def test_open_webui_needs_its_own_port_and_other_images_just_run():
    webui = {
        "name": "ui",
        "image": "ghcr.io/open-webui/open-webui:v0.11.0",
        "readinessProbe": {"httpGet": {"path": "/health", "port": 8080}},
    }
    other = {"name": "sidecar", "image": "busybox:1.36"}
    view = simulate_pod(pod(webui, other), V100, started=0, now=1, timing=TIMING)
    assert [c["ready"] for c in view.status["containerStatuses"]] == [True, True]
    wrong = webui | {"readinessProbe": {"httpGet": {"path": "/health", "port": 3000}}}
    view = simulate_pod(pod(wrong), V100, started=0, now=60, timing=TIMING)
    assert not view.status["containerStatuses"][0]["ready"]


def test_an_unchanged_status_is_not_written_again():
    spec = pod(tgi(["--model-id", "x/y-1b"]))
    desired = simulate_pod(spec, V100, started=0, now=10, timing=TIMING).status
    live = desired | {
        "qosClass": "BestEffort",
        "conditions": [
            c | {"lastTransitionTime": "2026-01-01T00:00:00Z"} for c in desired["conditions"]
        ]
        + [{"type": "PodScheduled", "status": "True"}],
    }
    assert not status_differs(live, desired)
    later = simulate_pod(
        spec | {"spec": {"containers": [tgi(["--bogus"])]}}, V100, 0, 10, TIMING
    ).status
    assert status_differs(live, later)


@pytest.mark.parametrize(
    ("text", "expected"), [("16Gi", 16 * 2**30), ("500M", 500 * 10**6), ("1", 1), ("", None)]
)
def test_memory_quantities(text, expected):
    assert quantity_bytes(text) == expected


def test_the_default_nodes_file_matches_the_icc():
    nodes = {node.name: node for node in load_nodes(DEFAULT_NODES_FILE)}
    v100 = [n for n in nodes.values() if n.gpu_type == "gpu-tesla-v100"]
    v100s = [n for n in nodes.values() if n.gpu_type == "gpu-tesla-v100s"]
    assert [(n.gpus, n.gpu_memory_gib) for n in v100] == [(4, 16), (4, 16)]
    assert [(n.gpus, n.gpu_memory_gib) for n in v100s] == [(2, 32)]
    assert sum(1 for n in nodes.values() if not n.gpu_type) == 1


# --- TGI stand-ins ------------------------------------------------------------------------------
# The agent against an in-memory API: real HTTP servers on free loopback ports (never port 80).

MODEL = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"
# Pod IPs are 127.(10 + index).x.y: index 90 keeps these tests off the sandbox's own nodes.
TEST_NODE = dataclasses.replace(V100, name="unit-node", index=90)
API_KEY_SECRET = {"name": "tgi-api-key", "key": "api-key"}


class FakeApi:
    """The API calls of NodeAgent.sync_pods, on in-memory pods and Secrets."""

    def __init__(self, secrets: dict[tuple[str, str], dict[str, str]] | None = None) -> None:
        self.pods: dict[str, dict] = {}
        self.secrets = secrets or {}
        self.status_writes = 0
        self.on_delete = lambda pod: None

    def get(self, path: str) -> dict:
        if path.startswith("/api/v1/pods?"):
            return {"items": [copy.deepcopy(p) for p in self.pods.values()]}
        match = re.fullmatch(r"/api/v1/namespaces/([^/]+)/secrets/([^/]+)", path)
        if match and match.groups() in self.secrets:
            return {"data": self.secrets[match.groups()]}
        raise ApiError(404, "not found", "GET", path)

    def patch(self, path: str, body: dict, content_type: str = "") -> dict:
        self.pods[body["metadata"]["uid"]]["status"] = body["status"]
        self.status_writes += 1
        return {}

    def create(self, path: str, body: dict) -> dict:
        return body  # events

    def delete(self, path: str, body: dict | None = None) -> dict:
        self.on_delete(self.pods.pop(body["preconditions"]["uid"]))
        return {}


def unique_uids(count: int) -> list[str]:
    """Pod uids whose IPs differ (the IP comes from the first four hex digits)."""
    prefixes = random.sample(range(0x0101, 0xFFFF), count * 2)
    prefixes = [p for p in prefixes if p & 0xFF][:count]  # a zero last byte would become .1
    return [f"{p:04x}{uuid.uuid4().hex[4:]}" for p in prefixes]


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def tgi_pod(uid: str, args: list[str], env: list[dict] | None = None, ready_after: float = 0):
    """A TGI pod on TEST_NODE that listens on a free port of its pod IP (set through PORT)."""
    port = free_port(TEST_NODE.pod_ip(uid))
    container = tgi(args, env=[{"name": "PORT", "value": str(port)}, *(env or [])])
    spec = pod(container, annotations={"sandbox.haw.icc/ready-after-seconds": str(ready_after)})
    spec["metadata"] |= {"uid": uid, "name": f"tgi-{uid[:8]}"}
    spec["spec"]["nodeName"] = TEST_NODE.name
    return spec


def url_of(spec: dict, path: str) -> str:
    port = spec["spec"]["containers"][0]["env"][0]["value"]
    return f"http://{TEST_NODE.pod_ip(spec['metadata']['uid'])}:{port}{path}"


def refused(url: str) -> bool:
    try:
        fetch(url)
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def api() -> FakeApi:
    return FakeApi()


@pytest.fixture
def agent(api: FakeApi):
    node_agent = NodeAgent(api, [TEST_NODE], TIMING)
    yield node_agent
    node_agent.close()


def test_a_ready_tgi_pod_answers_with_its_model_until_the_pod_is_gone(api, agent):
    (uid,) = unique_uids(1)
    args = ["--model-id", MODEL, "--max-input-tokens", "1024", "--max-total-tokens", "2048"]
    spec = api.pods[uid] = tgi_pod(uid, args)

    agent.sync_pods(now=1000)

    assert fetch(url_of(spec, "/v1/models"))[1]["data"][0]["id"] == MODEL
    info = fetch(url_of(spec, "/info"))[1]
    assert (info["model_id"], info["max_input_tokens"], info["max_total_tokens"]) == (
        MODEL,
        1024,
        2048,
    )
    del api.pods[uid]  # force-deleted: it just vanishes from the list
    agent.sync_pods(now=1001)
    assert refused(url_of(spec, "/v1/models"))
    assert agent.standins.running == {}


def test_a_pod_is_served_only_once_it_is_ready(api, agent):
    (uid,) = unique_uids(1)
    spec = api.pods[uid] = tgi_pod(uid, ["--model-id", MODEL], ready_after=5)

    agent.sync_pods(now=1000)  # start time 1000: Ready at 1005
    assert refused(url_of(spec, "/health"))
    agent.sync_pods(now=1004)
    assert refused(url_of(spec, "/health"))
    agent.sync_pods(now=1005)
    assert fetch(url_of(spec, "/health"))[0] == 200


def test_a_crash_looping_tgi_is_never_served(api, agent):
    (uid,) = unique_uids(1)
    spec = api.pods[uid] = tgi_pod(uid, ["--model-id", MODEL, "--bogus-flag"])
    for now in (1000, 1005, 1100):
        agent.sync_pods(now=now)
        assert refused(url_of(spec, "/health"))
    assert agent.standins.running == {}


def test_a_deleted_pod_stops_answering_before_the_deletion_is_confirmed(api, agent):
    (uid,) = unique_uids(1)
    spec = api.pods[uid] = tgi_pod(uid, ["--model-id", MODEL])
    agent.sync_pods(now=1000)
    answered_at_confirmation = []
    api.on_delete = lambda _pod: answered_at_confirmation.append(
        not refused(url_of(spec, "/health"))
    )

    api.pods[uid]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    agent.sync_pods(now=1001)

    assert answered_at_confirmation == [False]
    assert uid not in api.pods


def test_the_api_key_is_read_from_the_pods_secret():
    (uid,) = unique_uids(1)
    api = FakeApi({("ns", "tgi-api-key"): {"api-key": base64.b64encode(b"S3cret-key").decode()}})
    env = [{"name": "API_KEY", "valueFrom": {"secretKeyRef": API_KEY_SECRET}}]
    spec = api.pods[uid] = tgi_pod(uid, ["--model-id", MODEL], env)
    agent = NodeAgent(api, [TEST_NODE], TIMING)
    try:
        agent.sync_pods(now=1000)
        generate = url_of(spec, "/generate")
        body = {"inputs": "Hello there", "parameters": {"max_new_tokens": 2}}
        assert fetch(generate, body)[0] == 401
        assert fetch(generate, body, key="wrong")[0] == 401
        assert fetch(generate, body, key="S3cret-key")[0] == 200
        assert fetch(url_of(spec, "/v1/models"))[0] == 200  # open route, as in TGI
    finally:
        agent.close()


@pytest.mark.parametrize(
    "secrets",
    [
        {},  # no such Secret
        {("ns", "tgi-api-key"): {"other-key": "eA=="}},  # no such key
        {("ns", "tgi-api-key"): {"api-key": "not base64!"}},
    ],
)
def test_an_unreadable_api_key_is_logged_and_the_pod_served_without_one(secrets, caplog):
    (uid,) = unique_uids(1)
    api = FakeApi(secrets)
    env = [{"name": "API_KEY", "valueFrom": {"secretKeyRef": API_KEY_SECRET}}]
    spec = api.pods[uid] = tgi_pod(uid, ["--model-id", MODEL], env)
    agent = NodeAgent(api, [TEST_NODE], TIMING)
    try:
        with caplog.at_level(logging.WARNING, logger="node-agent"):
            agent.sync_pods(now=1000)
            agent.sync_pods(now=1001)
        body = {"inputs": "Hello", "parameters": {"max_new_tokens": 1}}
        assert fetch(url_of(spec, "/generate"), body)[0] == 200
        warnings = [r.message for r in caplog.records if "API_KEY" in r.message]
        assert len(warnings) == 1 and "tgi-api-key" in warnings[0]
    finally:
        agent.close()


def test_a_busy_address_is_logged_once_and_the_pod_still_becomes_ready(api, agent, caplog):
    (uid,) = unique_uids(1)
    spec = api.pods[uid] = tgi_pod(uid, ["--model-id", MODEL])
    port = int(spec["spec"]["containers"][0]["env"][0]["value"])
    with socket.socket() as squatter, caplog.at_level(logging.WARNING, logger="node-agent"):
        squatter.bind((TEST_NODE.pod_ip(uid), port))
        squatter.listen()
        for now in (1000, 1001, 1002):
            agent.sync_pods(now=now)
    warnings = [r.message for r in caplog.records if "no TGI stand-in" in r.message]
    assert len(warnings) == 1
    conditions = {c["type"]: c["status"] for c in api.pods[uid]["status"]["conditions"]}
    assert conditions["Ready"] == "True"


def test_a_restarted_agent_serves_the_same_pods_again_without_rewriting_them(api):
    (uid,) = unique_uids(1)
    spec = api.pods[uid] = tgi_pod(uid, ["--model-id", MODEL])
    first = NodeAgent(api, [TEST_NODE], TIMING)
    first.sync_pods(now=1000)
    first.close()
    assert refused(url_of(spec, "/v1/models"))
    writes = api.status_writes

    second = NodeAgent(api, [TEST_NODE], TIMING)
    try:
        second.sync_pods(now=1010)
        assert fetch(url_of(spec, "/v1/models"))[1]["data"][0]["id"] == MODEL
        assert api.status_writes == writes
    finally:
        second.close()


def serving_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("tgi-standin-")]


def test_many_pods_leave_no_servers_or_threads_behind(api, agent):
    assert serving_threads() == []
    uids = unique_uids(40)
    specs = [tgi_pod(uid, ["--model-id", f"org/model-{i}-1b"]) for i, uid in enumerate(uids)]
    api.pods = {s["metadata"]["uid"]: s for s in specs}

    agent.sync_pods(now=1000)
    assert len(serving_threads()) == 40
    models = {fetch(url_of(s, "/v1/models"))[1]["data"][0]["id"] for s in specs}
    assert models == {f"org/model-{i}-1b" for i in range(40)}

    api.pods.clear()
    agent.sync_pods(now=1001)
    assert agent.standins.running == {}
    assert serving_threads() == []
    assert all(refused(url_of(s, "/health")) for s in specs)


def test_closing_the_agent_closes_every_stand_in(api):
    specs = [tgi_pod(uid, ["--model-id", MODEL]) for uid in unique_uids(3)]
    api.pods = {s["metadata"]["uid"]: s for s in specs}
    agent = NodeAgent(api, [TEST_NODE], TIMING)
    agent.sync_pods(now=1000)
    assert not any(refused(url_of(s, "/health")) for s in specs)
    agent.close()
    assert all(refused(url_of(s, "/health")) for s in specs)


# --- what a stand-in serves (pure) --------------------------------------------------------------


def ready_view(spec: dict, now: float = 100) -> PodView:
    return simulate_pod(spec, V100, started=0, now=now, timing=TIMING)


@pytest.mark.parametrize(
    ("args", "env", "port"),
    [
        (["--model-id", MODEL], [], 80),  # the image's PORT=80
        (["--model-id", MODEL], [{"name": "PORT", "value": "8080"}], 8080),
        (["--model-id", MODEL, "--port", "3000"], [{"name": "PORT", "value": "8080"}], 3000),
    ],
)
def test_the_stand_in_listens_where_tgi_would(args, env, port):
    spec = pod(tgi(args, env=env))
    served = served_tgi(spec, V100, ready_view(spec))
    assert served == {"tgi": ServedTgi(V100.pod_ip("abcdef12-0000"), port, MODEL)}


@pytest.mark.parametrize(
    ("args", "env", "limits"),
    [
        ([], [], (4095, 4096)),  # none given: the stand-in's defaults
        (["--max-input-tokens", "1024", "--max-total-tokens", "2048"], [], (1024, 2048)),
        (["--max-total-tokens=8192"], [], (8192 - 1, 8192)),
        (["--max-input-tokens", "6000"], [], (6000, 6000 + 1)),
        (["--max-input-tokens", "100"], [], (100, 4096)),
        (["--max-input-length", "512"], [], (512, 4096)),  # the legacy spelling
        ([], [{"name": "MAX_TOTAL_TOKENS", "value": "2048"}], (2048 - 1, 2048)),
        (  # a flag wins over the environment, as in clap
            ["--max-total-tokens", "3000"],
            [{"name": "MAX_TOTAL_TOKENS", "value": "2048"}],
            (3000 - 1, 3000),
        ),
        ([], [{"name": "MAX_TOTAL_TOKENS", "valueFrom": {"secretKeyRef": {}}}], (4095, 4096)),
    ],
)
def test_token_limits_follow_the_launchers_arguments(args, env, limits):
    assert token_limits(tgi(["--model-id", MODEL, *args], env=env)) == limits


def test_the_model_revision_and_api_key_source_reach_the_stand_in():
    env = [{"name": "MODEL_ID", "value": "org/from-env-7b"}, {"name": "REVISION", "value": "v2"}]
    env.append({"name": "API_KEY", "valueFrom": {"secretKeyRef": API_KEY_SECRET}})
    spec = pod(tgi([], env=env))
    (served,) = served_tgi(spec, V100, ready_view(spec)).values()
    assert (served.model_id, served.revision) == ("org/from-env-7b", "v2")
    assert (served.api_key, served.api_key_secret) == (None, ("tgi-api-key", "api-key"))
    literal = pod(tgi(["--model-id", MODEL], env=[{"name": "API_KEY", "value": "k"}]))
    (served,) = served_tgi(literal, V100, ready_view(literal)).values()
    assert (served.api_key, served.api_key_secret) == ("k", None)


def test_only_ready_tgi_containers_are_served():
    loading = pod(tgi(["--model-id", MODEL]))
    assert served_tgi(loading, V100, ready_view(loading, now=4)) == {}  # ready after 5 s
    crashing = pod(tgi(["--model-id", MODEL, "--bogus-flag"]))
    assert served_tgi(crashing, V100, ready_view(crashing)) == {}
    other = pod({"name": "sidecar", "image": "busybox:1.36"})
    assert served_tgi(other, V100, ready_view(other)) == {}


class VolumeApi:
    """The API calls of NodeAgent.sync_volumes: one StorageClass, claims and volumes."""

    def __init__(self) -> None:
        self.claims: list[dict] = []
        self.volumes: dict[str, dict] = {}

    def get(self, path: str) -> dict:
        if path == "/apis/storage.k8s.io/v1/storageclasses":
            return {"items": [{"metadata": {"name": "local"}, "provisioner": STORAGE_PROVISIONER}]}
        if path == "/api/v1/persistentvolumeclaims":
            return {"items": self.claims}
        if path == "/api/v1/persistentvolumes":
            return {"items": list(self.volumes.values())}
        raise ApiError(404, "not found", "GET", path)

    def ensure(self, path: str, body: dict) -> dict:
        return self.volumes.setdefault(body["metadata"]["name"], body)

    def delete(self, path: str, body: dict | None = None) -> dict:
        self.volumes.pop(path.rsplit("/", 1)[1])
        return {}


def test_a_provisioned_volume_is_a_directory_of_its_own_removed_with_the_volume(tmp_path):
    api = VolumeApi()
    api.claims.append(
        {
            "metadata": {"namespace": "ns", "name": "data", "uid": "claim-uid"},
            "spec": {"storageClassName": "local", "resources": {"requests": {"storage": "1Gi"}}},
            "status": {"phase": "Pending"},
        }
    )
    agent = NodeAgent(api, [TEST_NODE], TIMING, work_dir=tmp_path)
    agent.sync_volumes()
    (volume,) = api.volumes.values()
    directory = Path(volume["spec"]["hostPath"]["path"])
    assert directory == tmp_path / "volumes" / "pvc-claim-uid"
    directory.mkdir(parents=True)  # what the real Open WebUI's runtime does when it mounts it
    (directory / "webui.db").write_text("kept while the claim lives")

    api.claims.clear()
    volume["status"] = {"phase": "Released"}  # the claim was deleted (reclaim policy Delete)
    agent.sync_volumes()
    assert api.volumes == {} and not directory.exists()

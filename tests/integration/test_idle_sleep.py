"""Sleep when idle (icc_idle_minutes) in the sandbox, driven as a course drives it: the idle
proxy (the role's own script, which the node agent runs as a process in the pod network, with
the ServiceAccount token the API server gave its pod) puts TGI to sleep after the idle time - its
Deployment at 0 replicas, no GPU held on its node -; status.yml and the course page say ASLEEP; a
second deploy changes and wakes nothing; a chat through the Service wakes it and is answered, and
one that cannot wait gets "waking up"; test.yml reports it asleep or wakes it and tests it; the
setting unset removes the proxy and wakes the server; cleanup removes what is left. A student who
may not create Roles is refused before any write, and deploys without the setting as before."""

from __future__ import annotations

import base64
import json
import re
import time
import urllib.error
import urllib.request

import pytest
from kubernetes import client
from test_api_test import check_line
from views import FAST, MANAGED

from playbooks import run_playbook, write_inventory

pytestmark = pytest.mark.sandbox

# 9 seconds: long enough for test.yml to run its checks after it woke the server.
IDLE_MINUTES = 0.15
CHAT = {"model": "tgi", "messages": [{"role": "user", "content": "are you awake"}], "max_tokens": 8}
DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def replicas(apps: client.AppsV1Api, namespace: str) -> int:
    return apps.read_namespaced_deployment("tgi", namespace).spec.replicas


def until(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"not within {seconds} s: {what}")


def asleep(apps, core, namespace) -> bool:
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=tgi").items
    return replicas(apps, namespace) == 0 and not pods


def gpus_held(core: client.CoreV1Api, namespace: str) -> int:
    """The GPUs the namespace's pods bound to a node request (what the scheduler counts as
    taken)."""
    pods = core.list_namespaced_pod(namespace).items
    return sum(
        int((container.resources.requests or {}).get("nvidia.com/gpu", 0))
        for pod in pods
        if pod.spec.node_name and pod.status.phase not in ("Succeeded", "Failed")
        for container in pod.spec.containers
    )


def chat(sandbox, namespace: str, key: str, headers: dict | None = None):
    """(status, body, seconds) of a chat through the Service clients call (the idle proxy)."""
    host, port = sandbox.service_address(namespace, "tgi", 3333)
    request = urllib.request.Request(
        f"http://{host}:{port}/v1/chat/completions",
        data=json.dumps(CHAT).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        | (headers or {}),
    )
    began = time.monotonic()
    try:
        with DIRECT.open(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read()), time.monotonic() - began
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()), time.monotonic() - began


def api_key(core: client.CoreV1Api, namespace: str) -> str:
    secret = core.read_namespaced_secret("tgi-api-key", namespace)
    return base64.b64decode(secret.data["api-key"]).decode()


def sleeps_and_says_so(tmp_path, inventory, namespace, core, apps) -> None:
    """Asleep after the idle time, its GPU free; status.yml and the page say so; a second
    deploy changes and wakes nothing."""
    until(lambda: asleep(apps, core, namespace), 60, "TGI asleep after the idle time")
    notes = apps.read_namespaced_deployment("tgi", namespace).metadata.annotations
    assert notes["haw.icc/asleep-since"] >= notes["haw.icc/last-request"]
    assert gpus_held(core, namespace) == 0  # its GPU is free for the scheduler

    status = run_playbook("status.yml", inventory, extra_vars={"icc_status_html": "c.html"},
                          cwd=tmp_path)  # fmt: skip
    assert status.rc == 0, status.output  # asleep is healthy
    assert "TGI: ASLEEP" in status.output, status.output
    assert "Idle proxy: READY - tgi-idle-proxy: 1/1 ready" in status.output  # the front door
    assert re.search(
        r"asleep since \S+ \(last request \S+\): its GPUs are given back", status.output
    )
    logs = run_playbook("logs.yml", inventory, extra_vars={"icc_logs_app": "tgi"})
    assert logs.rc == 0 and "idle-proxy: asleep: tgi scaled to 0" in logs.output, logs.output
    page = (tmp_path / "c.html").read_text()
    assert ">ASLEEP<" in page
    assert re.search(r'id="gpus-asleep"><b>1</b>', page) and 'id="gpus-held"><b>0</b>' in page

    again = run_playbook("deploy.yml", inventory)
    assert again.rc == 0 and again.changed(namespace) == 0, again.output
    assert "asleep, woken by the next request" in again.output
    assert replicas(apps, namespace) == 0  # a no-op deploy wakes nothing


def test_a_namespace_falls_asleep_gives_its_gpu_back_and_a_chat_wakes_it(
    tmp_path, namespace, sandbox, core, admin_client
):
    apps, rbac = client.AppsV1Api(admin_client), client.RbacAuthorizationV1Api(admin_client)
    inventory = write_inventory(
        tmp_path, [namespace], sandbox.student_kubeconfig, icc_idle_minutes=IDLE_MINUTES, **FAST
    )
    run = run_playbook("deploy.yml", inventory)
    assert run.rc == 0, run.output

    # The proxy's own rights: that one Deployment, that one Service's Endpoints, reading pods.
    rules = [
        (r.api_groups, r.resources, r.resource_names, r.verbs)
        for r in rbac.read_namespaced_role("tgi-idle-proxy", namespace).rules
    ]
    assert rules == [
        (["apps"], ["deployments"], ["tgi"], ["get", "patch"]),
        ([""], ["endpoints"], ["tgi-server"], ["get"]),
        ([""], ["pods"], None, ["list"]),
    ]
    front = core.read_namespaced_service("tgi", namespace).spec.selector
    assert front["app.kubernetes.io/name"] == "idle-proxy"  # clients call the proxy

    sleeps_and_says_so(tmp_path, inventory, namespace, core, apps)

    key = api_key(core, namespace)
    code, body, seconds = chat(sandbox, namespace, key)
    assert code == 200, body
    assert body["choices"][0]["message"]["content"] == "Echo: are you awake"
    assert replicas(apps, namespace) == 1 and gpus_held(core, namespace) == 1
    # Held while the server woke: at least the stand-in's start-up time (3 s, Timing).
    assert seconds >= 3.0

    until(lambda: asleep(apps, core, namespace), 60, "asleep again after the chat")
    notes = apps.read_namespaced_deployment("tgi", namespace).metadata.annotations
    assert notes["haw.icc/generated-tokens"] == str(body["usage"]["completion_tokens"])
    code, body, _seconds = chat(sandbox, namespace, key, {"Prefer": "wait=0"})
    assert code == 503 and re.fullmatch(r"waking up, about \d+ s", body["error"]), body
    until(lambda: replicas(apps, namespace) == 1, 10, "the wake began all the same")
    until(lambda: asleep(apps, core, namespace), 90, "asleep again")

    quiet = run_playbook("test.yml", inventory, extra_vars={"icc_test_wake": False})
    assert quiet.rc == 0, quiet.output
    assert "asleep (icc_test_wake=false)" in quiet.output and replicas(apps, namespace) == 0
    tested = run_playbook("test.yml", inventory)
    assert tested.rc == 0, tested.output
    assert re.search(r"woken \(tgi\), ready after \d+s", tested.output), tested.output
    assert "Echo: Say hello" in check_line(tested.output, "ok", "chat with the key")
    assert "Tesla V100" in check_line(tested.output, "ok", "gpu")  # in the server's pod

    # Unset, the proxy goes and the server is awake for good.
    plain = tmp_path / "plain"
    plain.mkdir()
    inventory = write_inventory(plain, [namespace], sandbox.student_kubeconfig, **FAST)
    off = run_playbook("deploy.yml", inventory)
    assert off.rc == 0, off.output
    assert replicas(apps, namespace) == 1
    front = core.read_namespaced_service("tgi", namespace).spec.selector
    assert front["app.kubernetes.io/name"] == "tgi"
    assert not rbac.list_namespaced_role(namespace, label_selector=MANAGED).items

    # Set again, and cleaned up: nothing of the proxy is left.
    inventory = tmp_path / "hosts.yml"
    assert run_playbook("deploy.yml", inventory).rc == 0
    cleaned = run_playbook("cleanup.yml", inventory)
    assert cleaned.rc == 0, cleaned.output
    left = [
        *rbac.list_namespaced_role(namespace, label_selector=MANAGED).items,
        *rbac.list_namespaced_role_binding(namespace, label_selector=MANAGED).items,
        *core.list_namespaced_service_account(namespace, label_selector=MANAGED).items,
        *core.list_namespaced_config_map(namespace, label_selector=MANAGED).items,
        *apps.list_namespaced_deployment(namespace, label_selector=MANAGED).items,
    ]
    assert [item.metadata.name for item in left] == []


def test_without_the_right_to_create_roles_sleep_is_refused_before_any_write(
    tmp_path, namespace, sandbox, admin_client
):
    rbac = client.RbacAuthorizationV1Api(admin_client)
    role = rbac.read_namespaced_role("haw-icc-deployer", namespace)
    role.rules = [r for r in role.rules if "rbac.authorization.k8s.io" not in r.api_groups]
    rbac.replace_namespaced_role("haw-icc-deployer", namespace, role)
    inventory = write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)
    writes = len(sandbox.student_writes(namespace))

    refused = run_playbook("deploy.yml", inventory, extra_vars={"icc_idle_minutes": "0.5"})
    assert refused.rc != 0, refused.output
    assert "create rbac.authorization.k8s.io/roles" in refused.output, refused.output
    assert "icc_idle_minutes needs them" in refused.output, refused.output
    assert len(sandbox.student_writes(namespace)) == writes

    zero = run_playbook("deploy.yml", inventory, extra_vars={"icc_idle_minutes": "0"})
    assert "icc_idle_minutes: 0.0 is not allowed: more than 0 minutes" in zero.output
    assert len(sandbox.student_writes(namespace)) == writes

    plain = run_playbook("deploy.yml", inventory)  # the rest still works
    assert plain.rc == 0, plain.output


def models_through_the_proxy(sandbox, namespace: str) -> list[str]:
    host, port = sandbox.service_address(namespace, "tgi", 3333)
    with DIRECT.open(f"http://{host}:{port}/v1/models", timeout=10) as answer:
        return [model["id"] for model in json.loads(answer.read())["data"]]


def test_a_sleeping_vllm_namespace_switches_its_model_without_waking_and_a_chat_wakes_it(
    tmp_path, namespace, sandbox, core, admin_client
):
    apps = client.AppsV1Api(admin_client)
    inventory = write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig,
                                icc_engine="vllm", icc_idle_minutes=0.1, **FAST)  # fmt: skip
    assert run_playbook("deploy.yml", inventory).rc == 0
    until(lambda: asleep(apps, core, namespace), 60, "vLLM asleep after the idle time")
    # A wake the namespace's GPU quota refuses: said at once, back to sleep, noted for status.yml.
    sandbox.set_gpu_quota(namespace, 0)
    code, body, seconds = chat(sandbox, namespace, api_key(core, namespace))
    assert code == 503 and "its pod cannot be created" in body["error"], body
    assert "exceeded quota" in body["error"] and seconds < 30, (body, seconds)
    until(lambda: replicas(apps, namespace) == 0, 30, "back to sleep after the refused wake")
    status = run_playbook("status.yml", inventory)
    assert status.rc == 0 and "vLLM: ASLEEP" in status.output, status.output
    assert re.search(r"the last wake failed at \S+: its pod cannot be created", status.output)
    sandbox.set_gpu_quota(namespace, 4)

    switched = run_playbook(
        "change_model.yml", inventory, extra_vars={"tgi_model_id": "Qwen/Qwen2.5-0.5B-Instruct"}
    )
    assert switched.rc == 0, switched.output
    assert "asleep: it starts with the next request" in switched.output, switched.output
    assert replicas(apps, namespace) == 0  # not woken to try it
    # Open WebUI asks the proxy for the models while the server sleeps: the new one.
    assert models_through_the_proxy(sandbox, namespace) == ["Qwen/Qwen2.5-0.5B-Instruct"]

    host, port = sandbox.service_address(namespace, "tgi", 3333)
    body = CHAT | {"model": "Qwen/Qwen2.5-0.5B-Instruct"}
    request = urllib.request.Request(
        f"http://{host}:{port}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": f"Bearer {api_key(core, namespace)}"},
    )  # fmt: skip
    with DIRECT.open(request, timeout=120) as answer:
        answered = json.loads(answer.read())
    assert answered["model"] == "Qwen/Qwen2.5-0.5B-Instruct"  # vLLM woke with the new model
    assert replicas(apps, namespace) == 1

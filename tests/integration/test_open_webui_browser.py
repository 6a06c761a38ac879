"""End to end: a student chats with the model through the real Open WebUI, in a real browser.

The namespace is labelled for the sandbox's real Open WebUI (PyPI `open-webui`, the version the
role deploys): its pod runs `open-webui serve` with the environment the role wrote, its data on
the claim's volume, and reaches `http://tgi:3333/v1` as written, through the sandbox's cluster DNS
and kube-proxy, on the TGI stand-in of the Service's ready pod. Headless Chromium opens Open WebUI
at its Service's ClusterIP, as a port-forward would, logs in as the bootstrapped admin, picks the
model and chats; Chromium runs inside the sandbox's network namespace, where the ClusterIPs are,
and the test itself reaches Open WebUI as a user on the machine does, through the sandbox's
gateway on 127.0.0.1. Then the model is switched, Open WebUI restarted, the namespace switched
to vLLM and back (one deploy each), TGI left to fall asleep (icc_idle_minutes) and the API key
rotated, and the chat must still reach the right model. Last, the base URL's path or the key
is broken on purpose (in the Deployment, not in the role) and the same check must fail.

The scenario runs in order on one namespace: each step starts where the previous one ended.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
import views
from kubernetes import client
from open_webui_browser import CHROMIUM, BrowserCheckFailed, open_webui_session
from views import FAST, FIRST_MODEL, SMALLER_MODEL, chat_status, served_model, tgi_url
from waiting import wait_until

from playbooks import REPO_ROOT, run_playbook, write_inventory

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0,
        reason="the real Open WebUI needs the sandbox's pod network and a mount namespace (root)",
    ),
]

ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "sandbox-admin-pw"
FIRST_KEY = "first-api-key-0123456789"
ROTATED_KEY = "rotated-api-key-9876543210"
MESSAGE = "hello from the browser test"
OPEN_WEBUI = "app.kubernetes.io/name=open-webui"
# Open WebUI's start (database migrations, imports) takes 10-30 s on a loaded 2-core machine.
READY_TIMEOUT = 240
REQUEST_COUNT = re.compile(r"^tgi_request_count(?:\{[^}]*\})? (\S+)$", re.MULTILINE)
VLLM_REQUEST_COUNT = re.compile(r"^vllm:request_success_total(?:\{[^}]*\})? (\S+)$", re.MULTILINE)
ARTEFACTS = Path(os.environ.get("ICC_TEST_ARTEFACTS", REPO_ROOT / "test-artefacts"))


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium, which `make test` installs when it is missing."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's package chromium "
            "(sandbox/install-debian-packages.sh chromium), or set ICC_CHROMIUM"
        )
    return CHROMIUM


def browser() -> str:
    """Chromium as a program that runs inside the sandbox's network namespace."""
    return views.SANDBOX.program_inside(CHROMIUM)


@pytest.fixture(scope="module")
def real_open_webui() -> Path:
    """The pinned Open WebUI, installed once into its cached virtualenv."""
    began = time.monotonic()
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "sandbox" / "install-open-webui.sh")],
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    print(f"\nOpen WebUI install (or cache check) took {time.monotonic() - began:.1f}s")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def chat_namespace(sandbox, core, real_open_webui, chromium):
    name = f"t-browser-chat-{os.urandom(3).hex()}"
    sandbox.create_namespace(name, real_open_webui=True)
    sandbox.wait_until_usable(name)
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def inventory(tmp_path_factory, chat_namespace, sandbox):
    return write_inventory(
        tmp_path_factory.mktemp("browser-inventory"),
        [chat_namespace],
        sandbox.student_kubeconfig,
        **FAST,
        tgi_model_id=FIRST_MODEL,
        tgi_api_key=FIRST_KEY,
        # The sandbox has no internet; the role's documented switch for such clusters.
        open_webui_offline=True,
        open_webui_admin_email=ADMIN_EMAIL,
        open_webui_admin_password=ADMIN_PASSWORD,
    )


@pytest.fixture(scope="module")
def artefacts() -> Path:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    return ARTEFACTS


def open_webui_url(core: client.CoreV1Api, namespace: str) -> str:
    """Open WebUI at its Service's ClusterIP, where the browser inside the sandbox's network
    opens it, as a pod in the cluster would."""
    service = core.read_namespaced_service("open-webui", namespace)
    return f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}"


def open_webui_here(core: client.CoreV1Api, namespace: str) -> str:
    """Open WebUI as this machine reaches it: the sandbox's gateway on 127.0.0.1, as
    `make demo` prints it."""
    port = core.read_namespaced_service("open-webui", namespace).spec.ports[0].port
    host, local = views.SANDBOX.service_address(namespace, "open-webui", port)
    return f"http://{host}:{local}"


def ready_open_webui_pods(core: client.CoreV1Api, namespace: str) -> list[str]:
    pods = core.list_namespaced_pod(namespace, label_selector=OPEN_WEBUI).items
    return [
        pod.metadata.name
        for pod in pods
        if pod.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    ]


def wait_for_new_open_webui(core: client.CoreV1Api, namespace: str, old: list[str]) -> str:
    """Waits until one Open WebUI pod other than `old` is Ready and the old ones are gone."""

    def only_a_new_one():
        pods = core.list_namespaced_pod(namespace, label_selector=OPEN_WEBUI).items
        ready = ready_open_webui_pods(core, namespace)
        names = {pod.metadata.name for pod in pods}
        return len(ready) == 1 and ready[0] not in old and not names & set(old) and ready[0]

    pod = wait_until(only_a_new_one, READY_TIMEOUT, f"a new Ready Open WebUI pod in {namespace}")
    # As a client of the Service sees it: its endpoints and the kube-proxy follow the pod.
    health = f"{open_webui_here(core, namespace)}/health"
    wait_until(lambda: answers(health), 60, f"{health} through the Service")
    return pod


def answers(url: str) -> bool:
    try:
        return fetch_text(url)[0] == 200
    except OSError:
        return False


def deployment_env(apps: client.AppsV1Api, namespace: str) -> dict[str, client.V1EnvVar]:
    deployment = apps.read_namespaced_deployment("open-webui", namespace)
    return {entry.name: entry for entry in deployment.spec.template.spec.containers[0].env}


def check_chat(core, namespace, artefacts, model: str, screenshot: str | None = None):
    """Log in, find `model` (and only it) in the picker, chat with it, see the stand-in's echo."""
    with open_webui_session(
        open_webui_url(core, namespace), ADMIN_EMAIL, ADMIN_PASSWORD, artefacts, browser()
    ) as ui:
        assert ui.models_in_picker() == [model]
        answer = ui.chat(model, MESSAGE)
        assert answer.text == f"Echo: {MESSAGE}"
        assert answer.model == model
        if screenshot:
            path = ui.screenshot(screenshot)
            assert path.stat().st_size > 10_000, "the screenshot is empty"
            print(f"\nscreenshot of the answer in the chat: {path}")


def chat_ids(core: client.CoreV1Api, namespace: str) -> set[str]:
    """The admin's chats, read through Open WebUI's API (what its database holds)."""
    base = open_webui_here(core, namespace)
    credentials = json.dumps({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}).encode()
    signin = urllib.request.Request(
        f"{base}/api/v1/auths/signin", credentials, {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(signin, timeout=30) as response:
        token = json.load(response)["token"]
    listing = urllib.request.Request(
        f"{base}/api/v1/chats/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(listing, timeout=30) as response:
        return {chat["id"] for chat in json.load(response)}


def fetch_text(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def tgi_requests(core: client.CoreV1Api, namespace: str) -> float:
    """How many generation requests the TGI pod has served (its tgi_request_count), asked at
    its pod IP inside the sandbox's network."""
    url = tgi_url(core, namespace, "/metrics")
    _status, text = views.SANDBOX.inside(lambda: fetch_text(url))
    return sum(float(value) for value in REQUEST_COUNT.findall(text))


def test_a_student_logs_in_picks_the_model_and_gets_its_answer(
    inventory, chat_namespace, core, admin_client, artefacts
):
    began = time.monotonic()
    run = run_playbook("deploy.yml", inventory)
    assert run.rc == 0, run.output
    print(f"\ndeploy.yml with the real Open WebUI: {time.monotonic() - began:.1f}s")
    # The URL the role wrote is the one Open WebUI used: the sandbox resolved it, not rewrote it.
    env = deployment_env(client.AppsV1Api(admin_client), chat_namespace)
    assert env["OPENAI_API_BASE_URL"].value == "http://tgi:3333/v1"

    before = tgi_requests(core, chat_namespace)
    began = time.monotonic()
    check_chat(core, chat_namespace, artefacts, FIRST_MODEL, screenshot="answer-in-chat")
    print(f"browser check (log in, picker, chat, screenshot): {time.monotonic() - began:.1f}s")
    # The answer and the chat's title, and no follow-up or tag generations on the shared GPU
    # (Open WebUI starts those right after the answer).
    wait_until(lambda: tgi_requests(core, chat_namespace) - before >= 2, 30, "the title request")
    time.sleep(5)
    assert tgi_requests(core, chat_namespace) - before == 2


def test_after_a_model_switch_and_a_restart_the_picker_offers_only_the_new_model(
    inventory, chat_namespace, core
):
    old = ready_open_webui_pods(core, chat_namespace)
    run = run_playbook("change_model.yml", inventory, extra_vars={"tgi_model": SMALLER_MODEL})
    assert run.rc == 0, run.output
    wait_for_new_open_webui(core, chat_namespace, old)  # DEFAULT_MODELS changed: a new pod
    check_chat(core, chat_namespace, artefacts=ARTEFACTS, model=SMALLER_MODEL)

    # A restart reads the settings again; the database on the claim must not pin old ones.
    chats = chat_ids(core, chat_namespace)
    assert len(chats) == 2  # one before the switch, one after
    old = ready_open_webui_pods(core, chat_namespace)
    core.delete_namespaced_pod(old[0], chat_namespace)
    began = time.monotonic()
    wait_for_new_open_webui(core, chat_namespace, old)
    print(f"\nOpen WebUI restart to Ready: {time.monotonic() - began:.1f}s")
    # The new pod has the same database: the chats are still there (the claim's volume).
    assert chat_ids(core, chat_namespace) == chats
    check_chat(core, chat_namespace, ARTEFACTS, SMALLER_MODEL)


def vllm_requests(core: client.CoreV1Api, namespace: str) -> float:
    """How many requests the vLLM pod has finished (its vllm:request_success_total)."""
    url = tgi_url(core, namespace, "/metrics")
    _status, text = views.SANDBOX.inside(lambda: fetch_text(url))
    return sum(float(value) for value in VLLM_REQUEST_COUNT.findall(text))


def test_after_a_switch_to_vllm_the_chat_is_answered_by_vllm(inventory, chat_namespace, core):
    """One deploy switches the namespace's engine; Open WebUI keeps its URL and key (the same
    Service, the same OpenAI API under /v1) and chats with vLLM; then back to TGI."""
    old = ready_open_webui_pods(core, chat_namespace)
    run = run_playbook("deploy.yml", inventory, extra_vars={"icc_engine": "vllm"})
    assert run.rc == 0, run.output
    assert f"{SMALLER_MODEL} on 1 x gpu-tesla-v100 (vllm, single-gpu, ready)" in run.output
    assert ready_open_webui_pods(core, chat_namespace) == old  # nothing of Open WebUI changed
    before = vllm_requests(core, chat_namespace)
    check_chat(core, chat_namespace, ARTEFACTS, SMALLER_MODEL, screenshot="answer-from-vllm")
    wait_until(lambda: vllm_requests(core, chat_namespace) - before >= 1, 30, "vLLM's answer")
    back = run_playbook("deploy.yml", inventory)
    assert back.rc == 0, back.output
    assert f"{SMALLER_MODEL} on 1 x gpu-tesla-v100 (single-gpu, ready)" in back.output


def tgi_asleep(apps: client.AppsV1Api, core: client.CoreV1Api, namespace: str) -> bool:
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=tgi").items
    return apps.read_namespaced_deployment("tgi", namespace).spec.replicas == 0 and not pods


def test_a_chat_to_a_sleeping_server_wakes_it_and_is_answered(
    inventory, chat_namespace, core, admin_client
):
    """icc_idle_minutes: TGI falls asleep, its GPU given back. The picker still offers its
    model (the idle proxy answers the list), and the student's next chat wakes the server and
    is held until it is ready: no error on the page, then the answer. Unset again afterwards."""
    apps = client.AppsV1Api(admin_client)
    run = run_playbook("deploy.yml", inventory, extra_vars={"icc_idle_minutes": 0.1})
    assert run.rc == 0, run.output
    wait_until(lambda: tgi_asleep(apps, core, chat_namespace), 90, "TGI asleep")
    before = time.monotonic()
    check_chat(core, chat_namespace, ARTEFACTS, SMALLER_MODEL, screenshot="answer-after-waking")
    print(f"\nlog in, picker and a chat that woke TGI: {time.monotonic() - before:.1f}s")
    assert apps.read_namespaced_deployment("tgi", chat_namespace).spec.replicas == 1
    back = run_playbook("deploy.yml", inventory)
    assert back.rc == 0, back.output


def test_a_rotated_api_key_reaches_tgi_and_open_webui(inventory, chat_namespace, core):
    old = ready_open_webui_pods(core, chat_namespace)
    run = run_playbook("deploy.yml", inventory, extra_vars={"tgi_api_key": ROTATED_KEY})
    assert run.rc == 0, run.output
    wait_for_new_open_webui(core, chat_namespace, old)
    wait_until(
        lambda: chat_status(core, chat_namespace, ROTATED_KEY) == 200,
        READY_TIMEOUT,
        "TGI to accept the rotated key",
    )
    assert chat_status(core, chat_namespace, FIRST_KEY) == 401
    assert served_model(core, chat_namespace) == SMALLER_MODEL
    check_chat(core, chat_namespace, ARTEFACTS, SMALLER_MODEL)


# What the Deployment's env is broken to, and what the check must then say.
MISTAKES = {
    "base URL path": (
        {"name": "OPENAI_API_BASE_URL", "value": "http://tgi:3333/api"},
        "no model",
    ),
    "API key": (
        {"name": "OPENAI_API_KEY", "value": "not-the-api-key"},
        "no complete answer",  # Open WebUI 0.11 shows TGI's 401 as an empty answer
    ),
}


def replacing(entry: dict) -> dict:
    """An env entry for a strategic merge patch that replaces the live one: null removes the
    live entry's other form (a value replacing a secretKeyRef, or the reverse)."""
    return {"value": None, "valueFrom": None} | entry


@pytest.fixture(scope="module")
def role_env(chat_namespace, admin_client) -> dict[str, client.V1EnvVar]:
    """Open WebUI's env as the role wrote it (read once, before any mistake is made)."""
    return deployment_env(client.AppsV1Api(admin_client), chat_namespace)


@pytest.mark.parametrize("mistake", sorted(MISTAKES))
def test_the_browser_check_fails_on_a_broken_setting(
    mistake, role_env, inventory, chat_namespace, core, admin_client
):
    broken, expected = MISTAKES[mistake]
    # Merged by name: the broken entry, and the other mistakes' entries as the role wrote them.
    env = [
        replacing(admin_client.sanitize_for_serialization(role_env[name]))
        for name in {entry["name"] for entry, _ in MISTAKES.values()} - {broken["name"]}
    ]
    container = {"name": "open-webui", "env": [*env, replacing(broken)]}
    old = ready_open_webui_pods(core, chat_namespace)
    client.AppsV1Api(admin_client).patch_namespaced_deployment(
        "open-webui",
        chat_namespace,
        {"spec": {"template": {"spec": {"containers": [container]}}}},
    )
    wait_for_new_open_webui(core, chat_namespace, old)
    url = open_webui_url(core, chat_namespace)
    with (
        open_webui_session(url, ADMIN_EMAIL, ADMIN_PASSWORD, ARTEFACTS, browser()) as ui,
        pytest.raises(BrowserCheckFailed, match=expected),
    ):
        ui.chat(SMALLER_MODEL, MESSAGE, timeout=20)
    if mistake == "base URL path":
        # logs.yml reads the real server's log through the API server and names the cause.
        run = run_playbook("logs.yml", inventory, extra_vars={"icc_logs_app": "webui"})
        assert run.rc == 0, run.output
        assert "url='http://tgi:3333/api/models'" in run.output
        assert "tgi-unreachable: Open WebUI could not list TGI's models" in run.output


@pytest.fixture(autouse=True, scope="module")
def no_browser_left_behind():
    yield
    left = subprocess.run(
        ["pgrep", "-f", "chromium.*--headless"], capture_output=True, text=True, check=False
    )
    assert left.returncode == 1, f"a headless Chromium outlived the tests: {left.stdout}"

"""The node agent's runtime for the containers that really run here: the real Open WebUI, with a
small server in its place, and a script of the stock Python image.

The server here is a script named like `open-webui` that records what it was started with (its
environment, the /etc/hosts and /etc/resolv.conf it sees, its directory) and answers /health:
the seam the runtime drives. The real Open WebUI behind the same seam is the e2e test's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml
from icc_sandbox.container_logs import LogsUnavailable
from icc_sandbox.kubeapi import ApiError
from icc_sandbox.nodes import NodeSpec, Timing
from icc_sandbox.pod_simulation import simulate_pod
from icc_sandbox.process_runtime import (
    ROLE_DEFAULTS,
    ProcessRuntime,
    host_path_of,
    pinned_version,
    probe_url,
    script_command,
)
from icc_sandbox.service_network import ServiceNetwork

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="the runtime binds the pod's DNS files in a mount namespace (root)"
)

FAKE_SERVER = f"""#!{sys.executable}
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
args = sys.argv[1:]
host, port = args[args.index("--host") + 1], int(args[args.index("--port") + 1])
seen = {{"argv": args, "env": dict(os.environ), "cwd": os.getcwd(),
        "hosts": open("/etc/hosts").read(), "resolv": open("/etc/resolv.conf").read()}}
with open(os.path.join(os.environ["DATA_DIR"], "seen.json"), "w") as out:
    json.dump(seen, out)
print("INFO: started on", host, port, flush=True)
if os.environ.get("FAIL_AT_START"):
    print("database migration failed: boom", flush=True)
    sys.exit(3)
class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer((host, port), Health).serve_forever()
"""

NODE = NodeSpec(name="n", index=3, cpu="8", memory="32Gi")  # loopback pod IPs: no root route
NAMESPACE = "chat"


class FakeApi:
    """The objects the runtime reads: labelled namespaces, a bound claim and its volume."""

    def __init__(self, volume_dir: Path) -> None:
        self.objects = {
            "/api/v1/namespaces?labelSelector=sandbox.haw.icc/open-webui%3Dreal": {
                "items": [{"metadata": {"name": NAMESPACE}}]
            },
            f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/open-webui-data": {
                "spec": {"volumeName": "pvc-1"}
            },
            "/api/v1/persistentvolumes/pvc-1": {"spec": {"hostPath": {"path": str(volume_dir)}}},
        }

    def get(self, path: str) -> dict:
        if path not in self.objects:
            raise ApiError(404, f"GET {path}", "not found")
        return self.objects[path]


def secrets(kind, namespace, name):
    return {("secret", NAMESPACE, "tgi-api-key"): {"api-key": "the-key"}}.get(
        (kind, namespace, name)
    )


def webui_pod(uid: str, *extra_env: dict) -> dict:
    container = {
        "name": "open-webui",
        "image": "ghcr.io/open-webui/open-webui:v0.11.0",
        "env": [
            {"name": "OPENAI_API_BASE_URL", "value": "http://tgi:3333/v1"},
            {
                "name": "OPENAI_API_KEY",
                "valueFrom": {"secretKeyRef": {"name": "tgi-api-key", "key": "api-key"}},
            },
            *extra_env,
        ],
        "ports": [{"name": "http", "containerPort": 8080}],
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}},
        "startupProbe": {"httpGet": {"path": "/health", "port": "http"}},
        "volumeMounts": [{"name": "data", "mountPath": "/app/backend/data"}],
    }
    return {
        "metadata": {"namespace": NAMESPACE, "name": f"open-webui-{uid}", "uid": uid},
        "spec": {
            "nodeName": NODE.name,
            "containers": [container],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "open-webui-data"}}
            ],
        },
        "status": {},
    }


def make_runtime(tmp_path: Path) -> ProcessRuntime:
    """A runtime whose `open-webui` is FAKE_SERVER, with one claim bound to a directory."""
    server = tmp_path / "venv" / "bin" / "open-webui"
    server.parent.mkdir(parents=True)
    server.write_text(FAKE_SERVER)
    server.chmod(0o755)
    network = ServiceNetwork("10.201.0.0/16", tmp_path / "agent" / "dns")
    network.services = [
        {"metadata": {"namespace": NAMESPACE, "name": "tgi"}, "spec": {"clusterIP": "10.201.0.7"}}
    ]
    runtime = ProcessRuntime(
        FakeApi(tmp_path / "volumes" / "pvc-1"),
        tmp_path / "agent",
        network,
        secrets,
        server_command=lambda: server,
    )
    runtime.refresh()
    return runtime


@pytest.fixture
def runtime(tmp_path):
    runtime = make_runtime(tmp_path)
    yield runtime
    runtime.close()


def live_until(runtime, pod, condition, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        state = runtime.live(pod, NODE, time.time())["open-webui"]
        if condition(state) or time.monotonic() > deadline:
            return state
        time.sleep(0.1)


def test_the_server_starts_with_the_pods_env_volume_and_dns_and_becomes_ready(runtime, tmp_path):
    pod = webui_pod("a1b2c3d4-ready")
    machine_hosts = Path("/etc/hosts").read_text()

    first = runtime.live(pod, NODE, time.time())["open-webui"]
    assert first.running and not first.ready  # Ready only once its probe answers
    state = live_until(runtime, pod, lambda s: s.ready)
    assert state.ready and state.restarts == 0

    seen = json.loads((tmp_path / "volumes" / "pvc-1" / "seen.json").read_text())
    assert seen["argv"][:1] == ["serve"]
    assert seen["argv"][seen["argv"].index("--host") + 1] == NODE.pod_ip("a1b2c3d4-ready")
    env = seen["env"]
    assert env["OPENAI_API_BASE_URL"] == "http://tgi:3333/v1"  # as the role wrote it
    assert env["OPENAI_API_KEY"] == "the-key"  # from the Secret
    assert env["DATA_DIR"] == str(tmp_path / "volumes" / "pvc-1")  # the claim's volume
    assert env["HOME"].startswith(str(tmp_path / "agent"))
    assert "10.201.0.7\ttgi.chat.svc.cluster.local tgi.chat.svc tgi.chat tgi" in seen["hosts"]
    assert seen["resolv"].startswith("nameserver 10.201.255.202\n")
    assert Path("/etc/hosts").read_text() == machine_hosts  # only the server's view changed

    view = simulate_pod(pod, NODE, time.time(), time.time(), Timing(), {"open-webui": state})
    assert view.status["containerStatuses"][0]["ready"] is True


def test_a_server_that_exits_is_reported_with_its_log_and_restarted_after_a_back_off(runtime):
    pod = webui_pod("b2c3d4e5-crash", {"name": "FAIL_AT_START", "value": "1"})
    state = live_until(runtime, pod, lambda s: not s.running)
    assert not state.ready and state.last_exit is not None
    code, message, _began, ended = state.last_exit
    assert code == 3 and "database migration failed: boom" in message
    view = simulate_pod(pod, NODE, ended, ended, Timing(), {"open-webui": state})
    status = view.status["containerStatuses"][0]
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 3

    later = runtime.live(pod, NODE, ended + 11)["open-webui"]  # after the first 10 s back-off
    assert later.restarts == 1


def test_the_kubelet_shows_the_servers_own_output_current_and_previous(runtime):
    pod = webui_pod("f6a7b8c9-logs", {"name": "FAIL_AT_START", "value": "1"})
    name = pod["metadata"]["name"]
    state = live_until(runtime, pod, lambda s: not s.running)
    current = runtime.log_lines("f6a7b8c9-logs", name, "open-webui", previous=False)
    texts = [line.text for line in current]
    assert texts[0].startswith("INFO: started on ") and texts[-1].endswith("boom")
    assert all(line.at >= state.started_at - 1 for line in current)  # when it was written
    # In the back-off, the previous run is the one that just ended.
    assert runtime.log_lines("f6a7b8c9-logs", name, "open-webui", previous=True) == current


def test_previous_logs_of_a_server_that_never_ended_are_refused_as_the_kubelet_does(runtime):
    pod = webui_pod("a7b8c9d0-first")
    live_until(runtime, pod, lambda s: s.ready)
    with pytest.raises(LogsUnavailable, match="previous terminated container"):
        runtime.log_lines("a7b8c9d0-first", pod["metadata"]["name"], "open-webui", previous=True)
    assert runtime.log_lines("other-uid", "other", "open-webui", previous=False) is None


def test_stopping_the_pod_ends_its_server(runtime):
    pod = webui_pod("c3d4e5f6-stop")
    live_until(runtime, pod, lambda s: s.ready)
    process = runtime.servers[("c3d4e5f6-stop", "open-webui")].process
    runtime.stop_pod("c3d4e5f6-stop")
    assert process.poll() is not None
    assert runtime.servers == {}


def test_a_namespace_without_the_label_keeps_the_health_stand_in(runtime):
    pod = webui_pod("d4e5f6a7-other")
    pod["metadata"]["namespace"] = "not-labelled"
    assert runtime.live(pod, NODE, time.time()) == {}
    assert runtime.servers == {}


def test_paths_and_probe_of_a_container():
    pod = webui_pod("e5f6a7b8-paths")
    container = pod["spec"]["containers"][0]
    root = Path("/srv/volume")
    assert host_path_of("/app/backend/data/db", pod, container, lambda _v: root) == root / "db"
    assert host_path_of("/tmp", pod, container, lambda _v: root) is None
    assert probe_url(container, "10.0.0.1", 8080) == "http://10.0.0.1:8080/health"


def test_the_pinned_version_is_the_roles_image_tag():
    image = yaml.safe_load(ROLE_DEFAULTS.read_text())["open_webui_image"]
    assert image.endswith(f":v{pinned_version()}")


AGENT_THAT_DIES = """
import sys, time
sys.path[:0] = {paths!r}
import test_process_runtime as t
from pathlib import Path
runtime = t.make_runtime(Path({tmp!r}))
pod = t.webui_pod("b8c9d0e1-orphan")
state = t.live_until(runtime, pod, lambda s: s.ready)
print(runtime.servers[("b8c9d0e1-orphan", "open-webui")].process.pid, flush=True)
time.sleep(60)
"""


def test_a_killed_agent_takes_its_servers_with_it(tmp_path):
    paths = [str(Path(__file__).parent), *sys.path]
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT_THAT_DIES.format(paths=paths, tmp=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        server_pid = int(agent.stdout.readline())
    finally:
        agent.kill()  # SIGKILL: no cleanup runs in the agent
        agent.wait()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{server_pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(f"/proc/{server_pid}").exists(), "the server outlived its agent"


# A script as the tgi_server role ships its idle proxy: it answers what it sees.
SEEING_SCRIPT = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
class Seen(BaseHTTPRequestHandler):
    def do_GET(self):
        seen = {"uid": os.getuid(), "argv": sys.argv, "bound": self.server.server_address[0],
                "token": open(ACCOUNT + "/token").read(),
                "api": os.environ.get("KUBERNETES_SERVICE_HOST"), "port": os.environ["PORT"],
                "hosts": open("/etc/hosts").read()}
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
print("listening", flush=True)
HTTPServer(("0.0.0.0", int(os.environ["PORT"])), Seen).serve_forever()
"""


def script_pod(uid: str) -> dict:
    container = {
        "name": "idle-proxy",
        "image": "docker.io/library/python:3.12.8-slim-bookworm",
        "command": ["python3", "-u", "/opt/haw-icc/seeing.py", "--an-arg"],
        "env": [{"name": "PORT", "value": "18089"}],
        "ports": [{"name": "http", "containerPort": 18089}],
        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
        "securityContext": {"runAsUser": 65534},
        "volumeMounts": [
            {"name": "script", "mountPath": "/opt/haw-icc", "readOnly": True},
            {"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        ],
    }
    return {
        "metadata": {"namespace": "elsewhere", "name": f"proxy-{uid}", "uid": uid},
        "spec": {
            "nodeName": NODE.name,
            "containers": [container],
            "volumes": [
                {"name": "script", "configMap": {"name": "seeing"}},
                {"name": "token", "secret": {"secretName": "proxy-token-abcde"}},
            ],
        },
        "status": {},
    }


def test_a_script_of_the_stock_python_image_runs_with_its_volumes_user_and_api(tmp_path):
    objects = {
        ("configMap", "elsewhere", "seeing"): {"seeing.py": SEEING_SCRIPT},
        ("secret", "elsewhere", "proxy-token-abcde"): {"token": "the-token", "ca.crt": "PEM"},
    }
    runtime = make_runtime(tmp_path)
    runtime.lookup = lambda kind, namespace, name: objects.get((kind, namespace, name))
    runtime.api.objects["/api/v1/namespaces/default/services/kubernetes"] = {
        "spec": {"clusterIP": "10.201.0.1"}
    }
    pod = script_pod("c9d0e1f2-script")
    try:
        state = runtime.live(pod, NODE, time.time())["idle-proxy"]
        assert state.running and not state.ready
        deadline = time.monotonic() + 20
        while not state.ready and time.monotonic() < deadline:
            time.sleep(0.1)
            state = runtime.live(pod, NODE, time.time())["idle-proxy"]
        assert state.ready, runtime.log_lines("c9d0e1f2-script", "p", "idle-proxy", False)
        pod_ip = NODE.pod_ip("c9d0e1f2-script")
        with urllib.request.urlopen(f"http://{pod_ip}:18089/", timeout=5) as answer:
            seen = json.loads(answer.read())
    finally:
        runtime.close()
    assert seen["uid"] == 65534  # securityContext.runAsUser
    assert seen["argv"] == ["/opt/haw-icc/seeing.py", "--an-arg"]  # from the ConfigMap volume
    assert seen["bound"] == pod_ip  # 0.0.0.0 in its own pod network: the pod's address here
    assert seen["token"] == "the-token"  # the ServiceAccount's Secret, at the in-cluster path
    assert seen["api"] == "10.201.0.1" and seen["port"] == "18089"
    assert "10.201.0.7\ttgi.chat.svc.cluster.local" in seen["hosts"]  # the cluster's DNS
    assert not Path("/opt/haw-icc").exists()  # only the container's view has it


def test_other_images_and_commands_are_not_run_as_scripts():
    container = script_pod("d0e1f2a3-not")["spec"]["containers"][0]
    assert script_command(container) == ["python3", "-u", "/opt/haw-icc/seeing.py", "--an-arg"]
    assert script_command(container | {"image": "ghcr.io/x/python-tools:1"}) is None
    assert script_command(container | {"command": ["sh", "-c", "python3 x.py"]}) is None
    assert script_command(container | {"command": ["python3", "-u"]}) is None  # no script

"""The node agent: plays the kubelets of the simulated ICC nodes (the KWOK idea, in Python).

There is no kubelet and no container runtime in the sandbox. This agent registers the nodes of
a data file, keeps them Ready with heartbeats, writes the status of pods bound to them through
`pods/status`, finishes deleted pods, and provisions PersistentVolumes for the default
StorageClass. What a container "does" is chosen by its image:

- TGI: the launcher's start-up is simulated (icc_sandbox.tgi_launcher): bad arguments crash-loop
  with TGI's message, a model too big for the GPUs the pod got is OOMKilled, a valid one becomes
  Ready after a delay (download and load) if its probes aim at what TGI serves. While it is Ready,
  a TGI stand-in (icc_sandbox.tgi_standin) answers on podIP:port with the model the launcher
  would load, so tests can ask a pod what it serves;
- Open WebUI: in a namespace labelled for it, the real Open WebUI runs (open_webui_runtime) and
  its probe decides; elsewhere Ready after a short delay if its probes aim at port 8080 (or
  $PORT), with a health stand-in;
- anything else: runs and is Ready.

With a pod network it also plays kube-proxy and cluster DNS (service_network).

Every status is derived from the pod and its start time alone, so the agent can restart and the
pods it already ran keep their state; the stand-ins are started again from the pods.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import ipaddress
import logging
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from icc_sandbox.kubeapi import STRATEGIC_MERGE_PATCH, ApiError, KubeApi
from icc_sandbox.service_network import ServiceNetwork, service_range
from icc_sandbox.tgi_launcher import (
    HF_TOKEN_VARIABLES,
    LaunchOutcome,
    gated_repo_outcome,
    simulate_launch,
)
from icc_sandbox.tgi_standin import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOTAL_TOKENS, TgiStandIn
from icc_sandbox.webui_standin import WebUiStandIn

if TYPE_CHECKING:
    from icc_sandbox.open_webui_runtime import OpenWebUiRuntime

log = logging.getLogger("node-agent")

JSON = dict[str, Any]
GPU_RESOURCE = "nvidia.com/gpu"
READY_AFTER_ANNOTATION = "sandbox.haw.icc/ready-after-seconds"
# "gated": the model's Hub repository is gated, so TGI without a Hugging Face token fails its
# weights download with a 401 (see tgi_launcher.gated_repo_outcome).
SIMULATE_ANNOTATION = "sandbox.haw.icc/simulate"
STORAGE_PROVISIONER = "sandbox.haw.icc/local"
KUBELET_VERSION = "v1.20.2"
MAX_BACKOFF_SECONDS = 300.0
SECRET_PLACEHOLDER = "<from-secret>"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    index: int
    cpu: str
    memory: str
    gpu_type: str | None = None
    gpu_product: str | None = None
    gpus: int = 0
    gpu_memory_gib: float | None = None
    gpu_compute_capability: str | None = None
    pods: int = 110
    # The sandbox's pod network (a private range routed `local` on lo), None for loopback pod IPs
    pod_network: str | None = None

    @property
    def address(self) -> str:
        # Loopback on purpose: nothing the API server dials (the kubelet's logs) leaves the
        # machine. The API server reads logs from loopback node addresses (it refuses only to
        # proxy to loopback pod IPs), so nodes stay here even with a pod network.
        return f"127.0.1.{self.index + 1}"

    def pod_ip(self, pod_uid: str, attempt: int = 0) -> str:
        """The address a pod gets, derived from its uid; `attempt` > 0 after a collision."""
        if self.pod_network is None:
            last = (int(pod_uid[2:4], 16) + attempt) % 256
            return f"127.{10 + self.index}.{int(pod_uid[:2], 16)}.{last or 1}"
        network = ipaddress.ip_network(self.pod_network)
        digest = hashlib.sha256(f"{pod_uid}/{attempt}".encode()).digest()
        # Skips the Service range at the start (service_network.service_range) and the last 256
        # addresses (broadcast, the dead resolver).
        services = ipaddress.ip_network(service_range(self.pod_network)).num_addresses
        offset = services + int.from_bytes(digest[:4], "big") % (
            network.num_addresses - services - 256
        )
        return str(network.network_address + offset)


def pod_address(pod: JSON, node: NodeSpec) -> str:
    """The pod's IP: what its status holds (kept across agent restarts), else derived anew."""
    return pod.get("status", {}).get("podIP") or node.pod_ip(pod["metadata"]["uid"])


@dataclass(frozen=True)
class Timing:
    tgi_ready_seconds: float = 3.0
    webui_ready_seconds: float = 1.0
    crash_after_seconds: float = 1.0
    backoff_seconds: float = 10.0
    heartbeat_seconds: float = 10.0
    poll_seconds: float = 0.5


@dataclass(frozen=True)
class App:
    """What a container image serves, for probe checks."""

    kind: str  # "tgi", "open-webui" or "generic"
    port: int | None = None
    paths: frozenset[str] = frozenset()


TGI_PATHS = frozenset({"/health", "/info", "/metrics", "/v1/models"})
WEBUI_PATHS = frozenset({"/health", "/health/db", "/", "/api/config", "/api/version"})


def load_nodes(path: Path, pod_network: str | None = None) -> list[NodeSpec]:
    entries = yaml.safe_load(path.read_text())["nodes"]
    return [NodeSpec(index=i, pod_network=pod_network, **entry) for i, entry in enumerate(entries)]


# --- pure simulation ---------------------------------------------------------------------------


def app_for(container: JSON) -> App:
    image = container.get("image", "")
    env = plain_env(container)
    if "text-generation-inference" in image:
        # The TGI image sets PORT=80; the launcher's own default (3000) applies only without it.
        port = int(_flag_value(container.get("args", []), "--port") or env.get("PORT") or 80)
        return App("tgi", port, TGI_PATHS)
    if "open-webui" in image:
        return App("open-webui", int(env.get("PORT") or 8080), WEBUI_PATHS)
    return App("generic")


def plain_env(container: JSON) -> dict[str, str]:
    """The container's env; values from Secrets/ConfigMaps are present but unknown here."""
    env = {}
    for entry in container.get("env", []):
        env[entry["name"]] = entry.get("value", SECRET_PLACEHOLDER if "valueFrom" in entry else "")
    return env


def _flag_value(args: list[str], flag: str) -> str | None:
    for i, arg in enumerate(args):
        if arg == flag and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
    return None


def launcher_args(container: JSON) -> list[str]:
    """The arguments text-generation-launcher receives (the image's entrypoint is the launcher)."""
    command = list(container.get("command", []))
    args = list(container.get("args", []))
    if command and command[0].endswith("text-generation-launcher"):
        return command[1:] + args
    return args


def gpu_count(container: JSON) -> int:
    resources = container.get("resources", {})
    value = resources.get("limits", {}).get(GPU_RESOURCE) or resources.get("requests", {}).get(
        GPU_RESOURCE
    )
    return int(value or 0)


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_SUFFIXES = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity_bytes(quantity: str | None) -> int | None:
    if not quantity:
        return None
    match = _QUANTITY.match(str(quantity))
    if not match or match.group(2) not in _SUFFIXES:
        return None
    return int(float(match.group(1)) * _SUFFIXES[match.group(2)])


def probe_port(container: JSON, check: JSON) -> int | None:
    """The port a probe's httpGet/tcpSocket aims at, a named port resolved by the container's."""
    port = check.get("port")
    if isinstance(port, str):
        named = {p.get("name"): p.get("containerPort") for p in container.get("ports", [])}
        return named.get(port, port)
    return port


def probe_failure(container: JSON, app: App, pod_ip: str) -> str | None:
    """Why a probe of this container can never pass, as the kubelet would word it; None if fine."""
    if app.kind == "generic":
        return None
    for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
        probe = container.get(kind) or {}
        check = probe.get("httpGet") or probe.get("tcpSocket")
        if not check:
            continue
        port = probe_port(container, check)
        kind_name = kind.removesuffix("Probe").capitalize()
        if port != app.port:
            target = f"{pod_ip}:{port}"
            return f"{kind_name} probe failed: dial tcp {target}: connect: connection refused"
        path = check.get("path")
        if "httpGet" in probe and path is not None and path.split("?")[0] not in app.paths:
            return f"{kind_name} probe failed: HTTP probe failed with statuscode: 404"
    return None


@dataclass(frozen=True)
class CrashLoop:
    restart_count: int
    running: bool
    started_at: float  # seconds after pod start when the current (or last) run began
    finished_at: float | None  # when the last run ended, if any did
    backoff: float


def crash_loop(elapsed: float, run_for: float, backoff: float) -> CrashLoop:
    """Where a container that always fails after `run_for` seconds is in the kubelet's back-off."""
    start, restarts, last_finish, delay = 0.0, 0, None, backoff
    while True:
        end = start + run_for
        if elapsed < end:
            return CrashLoop(restarts, True, start, last_finish, delay)
        delay = min(backoff * 2**restarts, MAX_BACKOFF_SECONDS)
        if elapsed < end + delay:
            return CrashLoop(restarts, False, start, end, delay)
        start, restarts, last_finish = end + delay, restarts + 1, end


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return (
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )


@dataclass
class PodView:
    """The status the agent wants for a pod now, and the events that explain it."""

    status: JSON
    events: list[JSON] = field(default_factory=list)


@dataclass(frozen=True)
class LiveContainer:
    """A container that really runs here (the real Open WebUI): its state replaces the
    simulated one."""

    running: bool
    ready: bool
    started_at: float
    restarts: int = 0
    # (exit code, termination message, started, finished) of the last run that ended
    last_exit: tuple[int, str, float, float] | None = None


def live_status(base: JSON, live: LiveContainer, pod: JSON) -> JSON:
    """The container status of a really running container, as the kubelet reports it."""
    meta, name = pod["metadata"], base["name"]
    status = base | {
        "ready": live.ready,
        "started": live.ready,  # the role's Open WebUI has a startup probe: started once ready
        "restartCount": live.restarts,
    }
    if live.running:
        status["state"] = {"running": {"startedAt": iso(live.started_at)}}
    else:
        status["state"] = {
            "waiting": {
                "reason": "CrashLoopBackOff",
                "message": f"back-off restarting failed container={name} "
                f"pod={meta['name']}_{meta['namespace']}({meta['uid']})",
            }
        }
    if live.last_exit is not None:
        code, message, began, ended = live.last_exit
        status["lastState"] = {
            "terminated": {
                "exitCode": code,
                "reason": "Error" if code else "Completed",
                "message": message,
                "startedAt": iso(began),
                "finishedAt": iso(ended),
                "containerID": base["containerID"],
            }
        }
    return status


def ready_delay(pod: JSON, app: App, timing: Timing) -> float:
    override = pod["metadata"].get("annotations", {}).get(READY_AFTER_ANNOTATION)
    if override is not None:
        return float(override)
    return {"tgi": timing.tgi_ready_seconds, "open-webui": timing.webui_ready_seconds}.get(
        app.kind, 0.0
    )


def launch_outcome(container: JSON, node: NodeSpec, pod: JSON | None = None) -> LaunchOutcome:
    """How text-generation-launcher starts in this TGI container on this node (of `pod`, whose
    annotations may simulate a gated model)."""
    capability = node.gpu_compute_capability
    outcome = simulate_launch(
        launcher_args(container),
        plain_env(container),
        gpu_count(container),
        node.gpu_memory_gib,
        quantity_bytes(container.get("resources", {}).get("limits", {}).get("memory")),
        tuple(int(part) for part in capability.split(".")) if capability else None,
    )
    # The download comes after clap and the launcher's own checks: those failures come first.
    reaches_download = outcome.ok or "text_generation_launcher" in outcome.message
    if pod is not None and reaches_download and gated_without_token(pod, container):
        return gated_repo_outcome(outcome.model_id, outcome.num_shard, hub_request_id(pod))
    return outcome


def gated_without_token(pod: JSON, container: JSON) -> bool:
    annotations = pod["metadata"].get("annotations") or {}
    if annotations.get(SIMULATE_ANNOTATION) != "gated":
        return False
    env = plain_env(container)
    return not any(env.get(name) for name in HF_TOKEN_VARIABLES)


def hub_request_id(pod: JSON) -> str:
    """A Hub request id of the usual shape, derived from the pod (the same on every read)."""
    digest = hashlib.sha256(pod["metadata"]["uid"].encode()).hexdigest()
    return f"Root=1-{digest[:8]}-{digest[8:32]};{uuid_from(digest[32:64])}"


def uuid_from(hex32: str) -> str:
    return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:32]}"


def failing_run_seconds(pod: JSON, app: App, outcome: LaunchOutcome, timing: Timing) -> float:
    """How long each run of a failing TGI container lasts: argument errors (and a refused
    download) die at once, a model that does not fit dies after loading its weights."""
    if outcome.reason == "OOMKilled":
        return max(ready_delay(pod, app, timing), 0.1)
    return max(timing.crash_after_seconds, 0.1)


def simulate_container(
    pod: JSON,
    container: JSON,
    node: NodeSpec,
    started: float,
    now: float,
    timing: Timing,
    live: LiveContainer | None = None,
) -> tuple[JSON, list[JSON]]:
    """Container status and (reason, type, message) events for one container at time `now`
    (`live`: the state of a container that really runs here)."""
    app = app_for(container)
    pod_ip = pod_address(pod, node)
    name, image = container["name"], container.get("image", "")
    base = {
        "name": name,
        "image": image,
        "imageID": f"sandbox://{image}",
        "containerID": f"sandbox://{pod['metadata']['uid']}/{name}",
    }
    events = [
        _event("Pulled", "Normal", f'Container image "{image}" already present on machine', name),
        _event("Started", "Normal", f"Started container {name}", name),
    ]
    if live is not None:
        return live_status(base, live, pod), events
    outcome = launch_outcome(container, node, pod) if app.kind == "tgi" else None
    elapsed = now - started
    if outcome is not None and not outcome.ok:
        run_for = failing_run_seconds(pod, app, outcome, timing)
        loop = crash_loop(elapsed, run_for, timing.backoff_seconds)
        status = base | {
            "ready": False,
            "started": loop.running,
            "restartCount": loop.restart_count,
        }
        if loop.running:
            status["state"] = {"running": {"startedAt": iso(started + loop.started_at)}}
        else:
            status["state"] = {
                "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": f"back-off {int(loop.backoff)}s restarting failed container={name} "
                    f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}"
                    f"({pod['metadata']['uid']})",
                }
            }
        if loop.finished_at is not None:
            status["lastState"] = {
                "terminated": {
                    "exitCode": outcome.exit_code,
                    "reason": outcome.reason,
                    "message": outcome.message,
                    "startedAt": iso(started + loop.finished_at - run_for),
                    "finishedAt": iso(started + loop.finished_at),
                    "containerID": base["containerID"],
                }
            }
            events.append(
                _event("BackOff", "Warning", "Back-off restarting failed container", name)
            )
        return status, events

    failure = probe_failure(container, app, pod_ip)
    ready = failure is None and elapsed >= ready_delay(pod, app, timing)
    if failure is not None and elapsed >= ready_delay(pod, app, timing):
        events.append(_event("Unhealthy", "Warning", failure, name))
    status = base | {
        "ready": ready,
        # As the kubelet: a container with a startup probe counts as started once it passes.
        "started": ready or not container.get("startupProbe"),
        "restartCount": 0,
        "state": {"running": {"startedAt": iso(started)}},
    }
    return status, events


def _event(reason: str, kind: str, message: str, container: str) -> JSON:
    return {
        "reason": reason,
        "type": kind,
        "message": message,
        "container": container,
    }


def simulate_pod(
    pod: JSON,
    node: NodeSpec,
    started: float,
    now: float,
    timing: Timing,
    live: dict[str, LiveContainer] | None = None,
) -> PodView:
    statuses, events = [], []
    for container in pod["spec"]["containers"]:
        status, container_events = simulate_container(
            pod, container, node, started, now, timing, (live or {}).get(container["name"])
        )
        statuses.append(status)
        events.extend(container_events)
    all_ready = all(s["ready"] for s in statuses)
    ready = "True" if all_ready else "False"
    pod_ip = pod_address(pod, node)
    status = {
        "phase": "Running",
        "hostIP": node.address,
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": iso(started),
        "conditions": [
            {"type": "Initialized", "status": "True"},
            {"type": "ContainersReady", "status": ready},
            {"type": "Ready", "status": ready},
        ],
        "containerStatuses": statuses,
    }
    init = pod["spec"].get("initContainers", [])
    if init:
        status["initContainerStatuses"] = [
            {
                "name": c["name"],
                "image": c.get("image", ""),
                "imageID": f"sandbox://{c.get('image', '')}",
                "ready": True,
                "restartCount": 0,
                "state": {
                    "terminated": {
                        "exitCode": 0,
                        "reason": "Completed",
                        "startedAt": iso(started),
                        "finishedAt": iso(started),
                    }
                },
            }
            for c in init
        ]
    return PodView(status, events)


def status_differs(current: JSON, desired: JSON) -> bool:
    """True when writing `desired` changes what the API holds (condition timestamps aside)."""
    for key, value in desired.items():
        if key == "conditions":
            have = {(c["type"], c["status"]) for c in current.get("conditions", [])}
            if not {(c["type"], c["status"]) for c in value} <= have:
                return True
        elif current.get(key) != value:
            return True
    return False


def with_transition_times(current: JSON, desired: JSON, now: float) -> JSON:
    """Keeps lastTransitionTime of conditions whose status did not change, sets it where it did."""
    before = {c["type"]: c for c in current.get("conditions", [])}
    conditions = []
    for condition in desired["conditions"]:
        previous = before.get(condition["type"])
        same = previous is not None and previous["status"] == condition["status"]
        since = previous.get("lastTransitionTime") if same else iso(now)
        conditions.append(condition | {"lastProbeTime": None, "lastTransitionTime": since})
    return desired | {"conditions": conditions}


# --- TGI stand-ins ------------------------------------------------------------------------------

# TgiStandIn's own token limits, for a launcher that was given none (TGI would read the model's).
DEFAULT_TOKEN_LIMITS = (DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOTAL_TOKENS)


@dataclass(frozen=True)
class ServedTgi:
    """What a Ready TGI container answers, and where: the settings of its stand-in."""

    host: str
    port: int
    model_id: str
    revision: str | None = None
    max_input_tokens: int = DEFAULT_TOKEN_LIMITS[0]
    max_total_tokens: int = DEFAULT_TOKEN_LIMITS[1]
    api_key: str | None = None  # a literal API_KEY value
    api_key_secret: tuple[str, str] | None = None  # (Secret, key) that API_KEY comes from


def served_tgi(pod: JSON, node: NodeSpec, view: PodView) -> dict[str, ServedTgi]:
    """The stand-ins a pod should have, by container name: one per TGI container, once Ready."""
    if {"type": "Ready", "status": "True"} not in view.status["conditions"]:
        return {}
    served = {}
    for container in pod["spec"]["containers"]:
        app = app_for(container)
        if app.kind != "tgi" or app.port is None:
            continue
        args, env = launcher_args(container), plain_env(container)
        max_input, max_total = token_limits(container)
        literal_key, key_secret = api_key_source(container)
        served[container["name"]] = ServedTgi(
            host=view.status["podIP"],
            port=app.port,
            # A Ready TGI container is one whose launch succeeded: this is the model it loaded.
            model_id=launch_outcome(container, node).model_id,
            revision=_flag_value(args, "--revision") or env.get("REVISION"),
            max_input_tokens=max_input,
            max_total_tokens=max_total,
            api_key=literal_key,
            api_key_secret=key_secret,
        )
    return served


@dataclass(frozen=True)
class ServedWebUi:
    """Where a Ready Open WebUI container answers its health check."""

    host: str
    port: int


def served_webui(pod: JSON, view: PodView, live: Iterable[str] = ()) -> dict[str, ServedWebUi]:
    """The Open WebUI health stand-ins a pod should have, by container name, once Ready (none
    for the containers in `live`, where the real Open WebUI answers)."""
    if {"type": "Ready", "status": "True"} not in view.status["conditions"]:
        return {}
    return {
        container["name"]: ServedWebUi(view.status["podIP"], app.port)
        for container in pod["spec"]["containers"]
        if (app := app_for(container)).kind == "open-webui"
        and app.port is not None
        and container["name"] not in live
    }


def served_apps(
    pod: JSON, node: NodeSpec, view: PodView, live: Iterable[str] = ()
) -> dict[str, ServedTgi | ServedWebUi]:
    return served_tgi(pod, node, view) | served_webui(pod, view, live)


def token_limits(container: JSON) -> tuple[int, int]:
    """(max input, max total) tokens as the launcher got them; the stand-in's defaults fill gaps."""
    args, env = launcher_args(container), plain_env(container)

    def given(flag: str, env_name: str) -> int | None:
        raw = _flag_value(args, flag) or env.get(env_name)
        return int(raw) if raw and raw.isdigit() else None  # a Secret's value stays unknown

    max_input = given("--max-input-tokens", "MAX_INPUT_TOKENS") or given(
        "--max-input-length", "MAX_INPUT_LENGTH"
    )
    max_total = given("--max-total-tokens", "MAX_TOTAL_TOKENS")
    if max_total is None:
        max_total = max(DEFAULT_TOKEN_LIMITS[1], (max_input or 0) + 1)
    if max_input is None:
        max_input = max_total - 1
    if not 0 < max_input < max_total:
        return DEFAULT_TOKEN_LIMITS
    return max_input, max_total


def api_key_source(container: JSON) -> tuple[str | None, tuple[str, str] | None]:
    """Where API_KEY comes from: (its literal value, None) or (None, (Secret name, key))."""
    literal, secret = None, None
    for entry in container.get("env", []):  # the last entry of a name wins, as in Kubernetes
        if entry["name"] != "API_KEY":
            continue
        ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
        literal = None if ref else entry.get("value") or None
        secret = (ref["name"], ref["key"]) if ref else None
    return literal, secret


@dataclass
class _Serving:
    settings: ServedTgi | ServedWebUi
    # None when it could not start: not retried for these settings
    standin: TgiStandIn | WebUiStandIn | None


class StandIns:
    """The running stand-ins (TGI's API, Open WebUI's health), by (pod uid, container name): at
    most one per container. They listen on loopback or in `local_networks` (the pod network)."""

    def __init__(self, api: KubeApi, local_networks: Iterable[str] = ()) -> None:
        self.api = api
        self.local_networks = tuple(local_networks)
        self.running: dict[tuple[str, str], _Serving] = {}

    def serve(self, pod: JSON, wanted: dict[str, ServedTgi | ServedWebUi]) -> None:
        """Makes the pod's stand-ins match `wanted`: starts the missing ones, closes the rest."""
        uid = pod["metadata"]["uid"]
        for key in [k for k in self.running if k[0] == uid and k[1] not in wanted]:
            self._close(key)
        for container, settings in wanted.items():
            key = (uid, container)
            current = self.running.get(key)
            if current is not None and current.settings == settings:
                continue
            if current is not None:
                self._close(key)
            self.running[key] = _Serving(settings, self._start(pod, settings))

    def keep_only(self, pod_uids: set[str]) -> None:
        """Closes the stand-ins of pods that are gone."""
        for key in [k for k in self.running if k[0] not in pod_uids]:
            self._close(key)

    def close(self) -> None:
        self.keep_only(set())

    def _start(
        self, pod: JSON, settings: ServedTgi | ServedWebUi
    ) -> TgiStandIn | WebUiStandIn | None:
        if isinstance(settings, ServedWebUi):
            return self._start_webui(pod, settings)
        where = _pod_name(pod)
        api_key = settings.api_key
        if settings.api_key_secret is not None:
            api_key = self._secret_value(pod, *settings.api_key_secret)
        try:
            standin = TgiStandIn(
                settings.model_id,
                api_key,
                settings.host,
                settings.port,
                settings.max_input_tokens,
                settings.max_total_tokens,
                model_sha=settings.revision,
                local_networks=self.local_networks,
            ).start()
        except (OSError, ValueError) as error:
            log.warning(
                "%s: no TGI stand-in on %s:%d (%s); the pod's status is simulated all the same",
                where,
                settings.host,
                settings.port,
                error,
            )
            return None
        log.info("%s: TGI stand-in serves %s at %s", where, settings.model_id, standin.url)
        return standin

    def _start_webui(self, pod: JSON, settings: ServedWebUi) -> WebUiStandIn | None:
        try:
            standin = WebUiStandIn(settings.host, settings.port, self.local_networks).start()
        except (OSError, ValueError) as error:
            log.warning(
                "%s: no Open WebUI health stand-in on %s:%d (%s)",
                _pod_name(pod),
                settings.host,
                settings.port,
                error,
            )
            return None
        log.info("%s: Open WebUI health stand-in at %s", _pod_name(pod), standin.url)
        return standin

    def _secret_value(self, pod: JSON, secret: str, key: str) -> str | None:
        namespace = pod["metadata"]["namespace"]
        try:
            data = self.api.get(f"/api/v1/namespaces/{namespace}/secrets/{secret}").get("data")
            return base64.b64decode((data or {})[key], validate=True).decode()
        except (ApiError, OSError, KeyError, binascii.Error, UnicodeDecodeError) as error:
            if isinstance(error, ApiError):
                detail = f"HTTP {error.status}"
            elif isinstance(error, KeyError):
                detail = "no such key"
            else:
                detail = str(error)
            log.warning(
                "%s: cannot read API_KEY from key %r of Secret %s (%s); its TGI stand-in "
                "accepts requests without an API key",
                _pod_name(pod),
                key,
                secret,
                detail,
            )
            return None

    def busy(self, pod_uid: str, container: str, now: float, recent: float) -> bool:
        """Whether the container's TGI stand-in has a request in flight or had one in the
        last `recent` seconds (what makes its simulated GPUs busy)."""
        serving = self.running.get((pod_uid, container))
        standin = serving.standin if serving is not None else None
        if not isinstance(standin, TgiStandIn):
            return False
        metrics = standin.metrics
        return metrics.in_flight > 0 or now - metrics.last_active < recent

    def _close(self, key: tuple[str, str]) -> None:
        serving = self.running.pop(key)
        if serving.standin is not None:
            url = serving.standin.url
            serving.standin.stop()  # closes the socket and joins the serving thread
            log.info("closed the stand-in at %s", url)


def _pod_name(pod: JSON) -> str:
    return f"pod {pod['metadata']['namespace']}/{pod['metadata']['name']}"


# --- the agent ---------------------------------------------------------------------------------


class NodeAgent:
    def __init__(
        self,
        api: KubeApi,
        nodes: Iterable[NodeSpec],
        timing: Timing,
        kubelet_ports: dict[str, int] | None = None,
        work_dir: Path | None = None,
        network: ServiceNetwork | None = None,
        runtime: OpenWebUiRuntime | None = None,
    ) -> None:
        self.api = api
        self.volumes_dir = (work_dir or Path(tempfile.gettempdir()) / "haw-icc-agent") / "volumes"
        # The simulated kube-proxy and cluster DNS, and the real Open WebUI (None: not here)
        self.network = network
        self.runtime = runtime
        self.nodes = {node.name: node for node in nodes}
        self.timing = timing
        self.kubelet_ports = kubelet_ports or {}
        self.posted_events: set[str] = set()
        self.last_heartbeat = 0.0
        self.started_at = time.time()
        networks = {node.pod_network for node in self.nodes.values() if node.pod_network}
        self.standins = StandIns(api, sorted(networks))

    def close(self) -> None:
        """Stops what the agent serves and runs; the pods keep their status."""
        self.standins.close()
        if self.runtime is not None:
            self.runtime.close()
        if self.network is not None:
            self.network.close()

    # nodes
    def register_nodes(self) -> None:
        for node in self.nodes.values():
            body = {
                "metadata": {"name": node.name, "labels": node_labels(node)},
                "spec": node_spec(node),
            }
            self.api.ensure("/api/v1/nodes", body)
            self.api.patch(f"/api/v1/nodes/{node.name}", body)
        self.heartbeat(time.time())

    def heartbeat(self, now: float) -> None:
        for node in self.nodes.values():
            self.api.patch(
                f"/api/v1/nodes/{node.name}/status",
                {
                    "status": node_status(
                        node, now, self.started_at, self.kubelet_ports.get(node.name)
                    )
                },
                STRATEGIC_MERGE_PATCH,
            )
        self.last_heartbeat = now

    # pods
    def sync_pods(self, now: float) -> None:
        pods = self.api.get("/api/v1/pods?fieldSelector=spec.nodeName%21%3D").get("items", [])
        running = set()
        assign_pod_ips(pods, self.nodes)
        for pod in pods:
            node = self.nodes.get(pod["spec"].get("nodeName", ""))
            if node is None:
                continue
            if not pod["metadata"].get("deletionTimestamp"):
                running.add(pod["metadata"]["uid"])
            try:
                self.sync_pod(pod, node, now)
            except ApiError as error:
                if error.status not in (404, 409):  # gone or changed meanwhile: next round
                    log.warning(
                        "pod %s/%s: %s",
                        pod["metadata"]["namespace"],
                        pod["metadata"]["name"],
                        error,
                    )
        self.standins.keep_only(running)
        if self.runtime is not None:
            self.runtime.keep_only(running)

    def sync_pod(self, pod: JSON, node: NodeSpec, now: float) -> None:
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
        if meta.get("deletionTimestamp"):
            # What a kubelet confirms after the container stopped; without it a Recreate
            # rollout would wait forever for the old pod to go.
            self.standins.serve(pod, {})
            if self.runtime is not None:
                self.runtime.stop_pod(meta["uid"])
            self.api.delete(path, {"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
            log.info("finished deleted pod %s/%s", meta["namespace"], meta["name"])
            return
        current = pod.get("status", {})
        started = parse_iso(current["startTime"]) if current.get("startTime") else float(int(now))
        live = self.runtime.live(pod, node, now) if self.runtime is not None else {}
        view = simulate_pod(pod, node, started, now, self.timing, live)
        # Before the status says Ready, so whoever sees Ready finds the stand-in answering.
        self.standins.serve(pod, served_apps(pod, node, view, live))
        if status_differs(current, view.status):
            body = {
                "metadata": {"uid": meta["uid"]},
                "status": with_transition_times(current, view.status, now),
            }
            self.api.patch(f"{path}/status", body, STRATEGIC_MERGE_PATCH)
        for event in view.events:
            self.post_event(pod, node, event, now)

    def post_event(self, pod: JSON, node: NodeSpec, event: JSON, now: float) -> None:
        meta = pod["metadata"]
        name = f"{meta['name']}.{meta['uid'][:8]}.{event['container']}.{event['reason'].lower()}"
        if name in self.posted_events:
            return
        body = {
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "fieldPath": f"spec.containers{{{event['container']}}}",
            },
            "reason": event["reason"],
            "message": event["message"],
            "type": event["type"],
            "source": {"component": "kubelet", "host": node.name},
            "firstTimestamp": iso(now),
            "lastTimestamp": iso(now),
            "count": 1,
        }
        try:
            self.api.create(f"/api/v1/namespaces/{meta['namespace']}/events", body)
        except ApiError as error:
            if error.status not in (409, 403, 404):
                raise
        self.posted_events.add(name)

    # volumes
    def sync_volumes(self) -> None:
        """A provisioner for the sandbox's StorageClass: a PV per pending claim, freed with it."""
        classes = self.api.get("/apis/storage.k8s.io/v1/storageclasses").get("items", [])
        ours = {
            c["metadata"]["name"] for c in classes if c.get("provisioner") == STORAGE_PROVISIONER
        }
        for claim in self.api.get("/api/v1/persistentvolumeclaims").get("items", []):
            spec, meta = claim["spec"], claim["metadata"]
            if spec.get("storageClassName") not in ours or spec.get("volumeName"):
                continue
            if claim.get("status", {}).get("phase") != "Pending":
                continue
            self.api.ensure("/api/v1/persistentvolumes", persistent_volume(claim, self.volumes_dir))
            log.info("provisioned a volume for %s/%s", meta["namespace"], meta["name"])
        for volume in self.api.get("/api/v1/persistentvolumes").get("items", []):
            provisioned_by = (
                volume["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by")
            )
            if (
                provisioned_by == STORAGE_PROVISIONER
                and volume.get("status", {}).get("phase") == "Released"
            ):
                self.api.delete(f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
                path = Path(volume["spec"].get("hostPath", {}).get("path", "/"))
                if path.parent == self.volumes_dir:  # only what this agent provisioned
                    shutil.rmtree(path, ignore_errors=True)

    def sync_services(self) -> None:
        if self.network is not None:
            self.network.sync(
                self.api.get("/api/v1/services").get("items", []),
                self.api.get("/api/v1/endpoints").get("items", []),
            )
        if self.runtime is not None:
            self.runtime.refresh()

    def tick(self, now: float) -> None:
        if now - self.last_heartbeat >= self.timing.heartbeat_seconds:
            self.heartbeat(now)
        self.sync_services()
        self.sync_pods(now)
        self.sync_volumes()


def assign_pod_ips(pods: list[JSON], nodes: dict[str, NodeSpec]) -> None:
    """Gives each bound pod without a podIP in its status a derived one no other pod holds
    (written into the pod dict; simulate_pod then reports it, and the status keeps it)."""
    taken = {p.get("status", {}).get("podIP") for p in pods} - {None}
    for pod in pods:
        node = nodes.get(pod["spec"].get("nodeName", ""))
        if node is None or pod.get("status", {}).get("podIP"):
            continue
        attempt = 0
        while (ip := node.pod_ip(pod["metadata"]["uid"], attempt)) in taken:
            attempt += 1
        pod.setdefault("status", {})["podIP"] = ip
        taken.add(ip)


def node_labels(node: NodeSpec) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": node.gpu_type or "cpu",
    }
    if node.gpu_type:
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": node.gpu_product or node.gpu_type,
            "nvidia.com/gpu.count": str(node.gpus),
            "nvidia.com/gpu.memory": str(int((node.gpu_memory_gib or 0) * 1024)),
            "gpu-type": node.gpu_type,
        }
    if node.gpu_compute_capability:
        major, minor = node.gpu_compute_capability.split(".")
        labels |= {"nvidia.com/gpu.compute.major": major, "nvidia.com/gpu.compute.minor": minor}
    return labels


def node_spec(node: NodeSpec) -> JSON:
    if not node.gpu_type:
        return {"taints": []}
    return {"taints": [{"key": node.gpu_type, "effect": "NoSchedule"}]}


def node_status(node: NodeSpec, now: float, since: float, kubelet_port: int | None = None) -> JSON:
    capacity = {
        "cpu": node.cpu,
        "memory": node.memory,
        "pods": str(node.pods),
        "ephemeral-storage": "500Gi",
    }
    if node.gpus:
        capacity[GPU_RESOURCE] = str(node.gpus)
    stamp = iso(now)
    conditions = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady"),
    ]
    return {
        "capacity": capacity,
        "allocatable": capacity,
        "conditions": [
            {
                "type": kind,
                "status": value,
                "reason": reason,
                "message": "simulated by the haw.icc sandbox node agent",
                "lastHeartbeatTime": stamp,
                "lastTransitionTime": iso(since),
            }
            for kind, value, reason in conditions
        ],
        "addresses": [
            {"type": "InternalIP", "address": node.address},
            {"type": "Hostname", "address": node.name},
        ],
        # Where the API server reads pod logs (icc_sandbox.kubelet): a port chosen free at start.
        "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port or 10250}},
        "nodeInfo": {
            "machineID": node.name,
            "systemUUID": node.name,
            "bootID": node.name,
            "kernelVersion": "simulated",
            "osImage": "haw.icc sandbox",
            "containerRuntimeVersion": "sandbox://1",
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": "amd64",
        },
    }


def persistent_volume(claim: JSON, volumes_dir: Path) -> JSON:
    """A volume for the claim: a directory of its own below `volumes_dir` (created by whoever
    mounts it first; removed when the volume is deleted)."""
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "metadata": {
            "name": f"pvc-{meta['uid']}",
            "annotations": {"pv.kubernetes.io/provisioned-by": STORAGE_PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes", ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": spec["storageClassName"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            # The real Open WebUI keeps its data here (open_webui_runtime); other pods only
            # simulate their use of it.
            "hostPath": {"path": str(volumes_dir / f"pvc-{meta['uid']}")},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": meta["namespace"],
                "name": meta["name"],
                "uid": meta["uid"],
            },
        },
    }


def _service_network_and_runtime(
    api: KubeApi, pod_network: str | None, work_dir: Path, kubelets: Any
) -> tuple[ServiceNetwork | None, OpenWebUiRuntime | None]:
    """The simulated kube-proxy and DNS, and the real Open WebUI with its logs at the kubelets:
    only with a pod network (ClusterIPs and pod IPs bindable on this machine)."""
    if pod_network is None:
        return None, None
    from icc_sandbox.kubelet import object_lookup  # both import this module
    from icc_sandbox.open_webui_runtime import OpenWebUiRuntime

    network = ServiceNetwork(pod_network, work_dir / "dns")
    runtime = OpenWebUiRuntime(api, work_dir, network, object_lookup(api))
    kubelets.real_logs = runtime.log_lines
    return network, runtime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--nodes", required=True, type=Path, help="the nodes data file")
    parser.add_argument(
        "--pod-network",
        help="a private range routed `local` on lo for pod IPs (default: loopback pod IPs)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="volumes, cluster DNS files and the real Open WebUI's files (default: a temp dir)",
    )
    defaults = Timing()
    for name in Timing.__dataclass_fields__:
        parser.add_argument(
            "--" + name.replace("_", "-"), type=float, default=getattr(defaults, name), metavar="S"
        )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    timing = Timing(**{name: getattr(args, name) for name in Timing.__dataclass_fields__})
    api = KubeApi.from_kubeconfig(args.kubeconfig)
    nodes = load_nodes(args.nodes, args.pod_network)
    if args.pod_network is None:
        log.warning(
            "pods get loopback IPs: the API server refuses to proxy to them (no service proxy) "
            "and Services get no Endpoints"
        )
    from icc_sandbox.kubelet import Kubelets  # it imports this module

    kubelets = Kubelets(api, nodes, timing)
    try:
        kubelets.start()
        log.info("kubelet endpoints (pod logs, exec): %s", kubelets.ports)
    except OSError as error:
        log.warning("no kubelet endpoints, so no pod logs and no exec: %s", error)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="haw-icc-agent-"))
    network, runtime = _service_network_and_runtime(api, args.pod_network, work_dir, kubelets)
    agent = NodeAgent(api, nodes, timing, kubelets.ports, work_dir, network, runtime)
    kubelets.busy = agent.standins.busy  # exec's nvidia-smi shows load while TGI answers

    stopping = False

    def request_stop(signum, _frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    agent.register_nodes()
    log.info("registered %d nodes", len(agent.nodes))
    try:
        while not stopping:
            try:
                agent.tick(time.time())
            except (ApiError, OSError) as error:
                log.warning("sync failed, retrying: %s", error)
            time.sleep(timing.poll_seconds)
    finally:
        agent.close()
        kubelets.close()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

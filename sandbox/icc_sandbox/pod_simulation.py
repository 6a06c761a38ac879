"""What a pod bound to a simulated node shows: each container's status over time (running, a
crash loop with the kubelet's back-off, Ready once its delay passed and its probes can pass),
the events that explain it, and when a status write changes anything. Pure functions of the pod,
the node, its start time and now.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from icc_sandbox.container_spec import ENGINES, App, app_for, launch_outcome, probe_port
from icc_sandbox.nodes import JSON, NodeSpec, Timing, iso, pod_address
from icc_sandbox.tgi_launcher import LaunchOutcome

READY_AFTER_ANNOTATION = "sandbox.haw.icc/ready-after-seconds"
MAX_BACKOFF_SECONDS = 300.0


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
    # vLLM loads from the same cache as TGI: the sandbox gives it TGI's start-up time.
    ready = timing.tgi_ready_seconds
    return {"tgi": ready, "vllm": ready, "open-webui": timing.webui_ready_seconds}.get(
        app.kind, 0.0
    )


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
    outcome = launch_outcome(container, node, pod) if app.kind in ENGINES else None
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

"""The real Open WebUI for Open WebUI pods: the node agent's container runtime for that image.

In a namespace labelled `sandbox.haw.icc/open-webui=real`, each Open WebUI container of a pod the
agent runs is the real server (`open-webui serve` from PyPI, the version the role deploys, in a
virtualenv cached outside the checkout by sandbox/install-open-webui.sh), started as the image
would start it:

- with the container's environment as the kubelet builds it (Secrets resolved, the image's own
  variables), PATH and HOME aside;
- on the pod's IP and the container's port, so the Service, its Endpoints and the API server's
  service proxy reach it as in a cluster;
- with DATA_DIR on the pod's volume: a PersistentVolumeClaim's directory under the agent's work
  directory (the volume the sandbox provisioned), so the database survives pod restarts exactly
  as far as the claim does;
- in a private mount namespace whose /etc/hosts and /etc/resolv.conf are the pod's cluster DNS
  (icc_sandbox.service_network): Service names resolve to ClusterIPs, everything else fails.

The container is Ready when its readiness probe, sent to the real server, answers 2xx/3xx. A
server that exits is restarted after the kubelet's back-off; its log's tail becomes the last
termination message (the role's FallbackToLogsOnError). Elsewhere the health stand-in still
answers for Open WebUI: the real one costs about 0.8 GB and 12 s per pod.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from icc_sandbox.container_exec import Lookup, container_env
from icc_sandbox.container_logs import LogLine, LogsUnavailable
from icc_sandbox.container_spec import app_for, probe_port
from icc_sandbox.kubeapi import ApiError, KubeApi
from icc_sandbox.nodes import JSON, NodeSpec, pod_address
from icc_sandbox.pod_simulation import MAX_BACKOFF_SECONDS, LiveContainer
from icc_sandbox.service_network import ServiceNetwork

log = logging.getLogger("open-webui-runtime")

REAL_OPEN_WEBUI_LABEL = "sandbox.haw.icc/open-webui"
SANDBOX_DIR = Path(__file__).resolve().parents[1]
ROLE_DEFAULTS = SANDBOX_DIR.parent / "roles" / "open_webui" / "defaults" / "main.yml"
PROBE_PERIOD_SECONDS = 5.0
LOG_TAIL_BYTES = 2048


def cache_root() -> Path:
    """Where sandbox/install.sh and install-open-webui.sh keep their builds."""
    explicit = os.environ.get("ICC_SANDBOX_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "haw-icc-sandbox"


def pinned_version(defaults: Path = ROLE_DEFAULTS) -> str:
    """The Open WebUI release the role deploys: its image tag without the leading v."""
    match = re.search(r"^open_webui_image:\s*\S+:v?([0-9][\w.+-]*)\s*$", defaults.read_text(), re.M)
    if match is None:
        raise ValueError(f"no tagged open_webui_image in {defaults}")
    return match.group(1)


def installed_server(version: str | None = None) -> Path | None:
    """The `open-webui` command of the cached virtualenv for `version`, if it is installed."""
    venv = cache_root() / f"open-webui-{version or pinned_version()}" / "venv"
    # The install script writes the stamp last: a half-built virtualenv does not count.
    return venv / "bin" / "open-webui" if (venv / ".installed").exists() else None


# --- where a container's paths are on this machine ----------------------------------------------


def host_path_of(
    container_path: str, pod: JSON, container: JSON, volume_dir: Callable[[JSON], Path | None]
) -> Path | None:
    """The directory behind `container_path` in this container: below the mount that holds it
    (the longest mount path wins), None when no volume is mounted there."""
    volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes", [])}
    best = None
    for mount in container.get("volumeMounts", []):
        mount_path = mount["mountPath"].rstrip("/") or "/"
        inside = container_path == mount_path or container_path.startswith(mount_path + "/")
        if inside and (best is None or len(mount_path) > len(best["mountPath"].rstrip("/"))):
            best = mount
    if best is None or best["name"] not in volumes:
        return None
    root = volume_dir(volumes[best["name"]])
    if root is None:
        return None
    rest = container_path[len(best["mountPath"].rstrip("/")) :].lstrip("/")
    return root / best.get("subPath", "") / rest


def probe_url(container: JSON, pod_ip: str, port: int) -> str | None:
    """The URL of the container's readiness probe (httpGet), None without one."""
    probe = (container.get("readinessProbe") or {}).get("httpGet")
    if probe is None:
        return None
    return f"http://{pod_ip}:{probe_port(container, probe) or port}{probe.get('path', '/')}"


# --- one server -----------------------------------------------------------------------------------

# Binds the pod's DNS files over the machine's, then becomes the server (same PID).
_WITH_POD_DNS = (
    'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@"'
)


@dataclass
class _Server:
    pod_ip: str
    port: int
    probe: str | None
    directory: Path
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    ready: bool = False
    last_probe: float = 0.0
    restarts: int = 0
    last_exit: tuple[int, str, float, float] | None = None
    restart_at: float = 0.0
    log_writer: threading.Thread | None = None

    def log_file(self, run: int | None = None) -> Path:
        """The log of a run (0 = the first; default: the current one), one line per line the
        server wrote, prefixed with the Unix time it was read at, as a container runtime keeps."""
        return self.directory / f"run-{self.restarts if run is None else run}.log"

    def log_tail(self) -> str:
        lines = [line.text for line in read_log(self.log_file())]
        return "\n".join(lines)[-LOG_TAIL_BYTES:].strip()


@dataclass
class OpenWebUiRuntime:
    """Starts, probes and stops the real Open WebUI servers of labelled namespaces' pods."""

    api: KubeApi
    work_dir: Path
    network: ServiceNetwork
    lookup: Lookup
    server_command: Callable[[], Path | None] = installed_server
    namespaces: set[str] = field(default_factory=set)
    servers: dict[tuple[str, str], _Server] = field(default_factory=dict)
    _warned: set[str] = field(default_factory=set)

    def refresh(self) -> None:
        """Reads which namespaces want the real Open WebUI."""
        selector = f"{REAL_OPEN_WEBUI_LABEL}%3Dreal"
        found = self.api.get(f"/api/v1/namespaces?labelSelector={selector}").get("items", [])
        self.namespaces = {item["metadata"]["name"] for item in found}

    def live(self, pod: JSON, node: NodeSpec, now: float) -> dict[str, LiveContainer]:
        """The state of the pod's real Open WebUI containers, starting those not yet running."""
        meta = pod["metadata"]
        if meta["namespace"] not in self.namespaces or meta.get("deletionTimestamp"):
            return {}
        states = {}
        for container in pod["spec"]["containers"]:
            app = app_for(container)
            if app.kind != "open-webui" or app.port is None:
                continue
            key = (meta["uid"], container["name"])
            server = self.servers.get(key)
            if server is None:
                command = self.server_command()
                if command is None:
                    self._warn_once(meta["namespace"])
                    return {}
                pod_ip = pod_address(pod, node)
                server = self.servers[key] = _Server(
                    pod_ip,
                    app.port,
                    probe_url(container, pod_ip, app.port),
                    self.work_dir / "pods" / meta["uid"] / container["name"],
                )
                self._start(server, pod, container, node, command, now)
            states[container["name"]] = self._observe(server, pod, container, node, now)
        return states

    def log_lines(self, uid: str, pod: str, container: str, previous: bool) -> list[LogLine] | None:
        """What the kubelet shows for a real container: its current run's log, or with
        `previous` the last ended run's. None when the container does not run here."""
        server = self.servers.get((uid, container))
        if server is None:
            return None
        if previous:
            ended = server.restarts - (0 if server.process is None else 1)
            if ended < 0 or server.last_exit is None:
                raise LogsUnavailable(
                    400, f'previous terminated container "{container}" in pod "{pod}" not found'
                )
            return read_log(server.log_file(ended))
        return read_log(server.log_file())

    def stop_pod(self, uid: str) -> None:
        _stop([self.servers.pop(key) for key in [k for k in self.servers if k[0] == uid]])

    def keep_only(self, uids: set[str]) -> None:
        gone = [key for key in self.servers if key[0] not in uids]
        _stop([self.servers.pop(key) for key in gone])

    def close(self) -> None:
        self.keep_only(set())

    # ---

    def _warn_once(self, namespace: str) -> None:
        if namespace not in self._warned:
            self._warned.add(namespace)
            log.warning(
                "namespace %s asks for the real Open WebUI, which is not installed "
                "(bash sandbox/install-open-webui.sh): its health stand-in answers instead",
                namespace,
            )

    def _start(
        self, server: _Server, pod: JSON, container: JSON, node: NodeSpec, command: Path, now: float
    ) -> None:
        env = dict(container_env(pod, container, node, (), self.lookup))
        data_dir = env.get("DATA_DIR", "")
        host_data = None
        if data_dir:
            host_data = host_path_of(
                data_dir, pod, container, lambda volume: self._volume_dir(pod, volume)
            )
        if host_data is None:
            # No volume there (or its claim not readable): the container's own layer, gone with
            # the container, as in a cluster.
            log.warning(
                "pod %s/%s: DATA_DIR %s is on no volume; Open WebUI's data will not survive it",
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                data_dir or "(unset)",
            )
            host_data = server.directory / "container-layer" / data_dir.strip("/")
        home, app_dir = server.directory / "home", server.directory / "app"
        for directory in (host_data, home, app_dir):
            directory.mkdir(parents=True, exist_ok=True)
        env |= {
            "DATA_DIR": str(host_data),
            "HOME": str(home),
            "PATH": f"{command.parent}:/usr/local/bin:/usr/bin:/bin",
        }
        hosts, resolv = self.network.dns_files(pod["metadata"]["namespace"])
        # setpriv: SIGKILL when the agent dies, so that no server outlives a killed agent.
        argv = ["setpriv", "--pdeathsig", "KILL", "--", "unshare", "--mount"]
        argv += ["--propagation", "private", "--", "sh", "-c", _WITH_POD_DNS]
        argv += ["sh", str(hosts), str(resolv), str(command), "serve"]
        argv += ["--host", server.pod_ip, "--port", str(server.port)]
        server.process = subprocess.Popen(
            argv,
            env=env,
            cwd=app_dir,  # where the image's start script keeps a generated secret key
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server.log_writer = threading.Thread(
            target=_keep_log,
            args=(server.process.stdout, server.log_file()),
            name=f"open-webui-log-{server.process.pid}",
            daemon=True,
        )
        server.log_writer.start()
        server.started_at, server.ready, server.last_probe = now, False, 0.0
        log.info(
            "pod %s/%s: real Open WebUI (pid %d) starting on %s:%d, data in %s",
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            server.process.pid,
            server.pod_ip,
            server.port,
            host_data,
        )

    def _observe(
        self, server: _Server, pod: JSON, container: JSON, node: NodeSpec, now: float
    ) -> LiveContainer:
        process = server.process
        if process is not None and process.poll() is not None:
            if server.log_writer is not None:
                server.log_writer.join(timeout=2)  # the last lines, before reading the tail
            tail = server.log_tail()
            server.last_exit = (process.returncode, tail, server.started_at, now)
            server.restart_at = now + min(10.0 * 2**server.restarts, MAX_BACKOFF_SECONDS)
            server.process, server.ready = None, False
            log.warning(
                "pod %s/%s: Open WebUI exited with %s: %s",
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                process.returncode,
                tail.splitlines()[-1:] or "no output",
            )
        if server.process is None and now >= server.restart_at:
            command = self.server_command()
            if command is not None:
                server.restarts += 1
                self._start(server, pod, container, node, command, now)
        if server.process is not None and now - server.last_probe >= (
            PROBE_PERIOD_SECONDS if server.ready else 0.0
        ):
            server.last_probe = now
            server.ready = _probe(server.probe) if server.probe else True
        return LiveContainer(
            running=server.process is not None,
            ready=server.ready,
            started_at=server.started_at,
            restarts=server.restarts,
            last_exit=server.last_exit,
        )

    def _volume_dir(self, pod: JSON, volume: JSON) -> Path | None:
        """Where a pod volume lives here: a claim's provisioned directory, an emptyDir's own."""
        if "emptyDir" in volume:
            return self.work_dir / "pods" / pod["metadata"]["uid"] / "volumes" / volume["name"]
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
        if claim is None:
            return None
        namespace = pod["metadata"]["namespace"]
        try:
            found = self.api.get(f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
            volume = self.api.get(f"/api/v1/persistentvolumes/{found['spec']['volumeName']}")
            return Path(volume["spec"]["hostPath"]["path"])
        except (ApiError, KeyError):
            return None  # not bound yet: the pod would not have started on a real node either


def _stop(servers: list[_Server], grace: float = 8.0) -> None:
    """SIGTERM to all at once, SIGKILL to what still runs after `grace` seconds: within the
    time the sandbox gives the agent itself to stop."""
    running = [s.process for s in servers if s.process is not None and s.process.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.info("stopped the real Open WebUI (pid %d)", process.pid)


def _keep_log(stream, path: Path) -> None:
    """Copies the server's output to its log, each line with the time it came."""
    with path.open("a", encoding="utf-8") as log_file:
        for raw in iter(stream.readline, b""):
            text = raw.decode(errors="replace").rstrip("\r\n")
            log_file.write(f"{time.time():.6f} {text}\n")
            log_file.flush()
    stream.close()


def read_log(path: Path) -> list[LogLine]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return []
    parsed = []
    for line in lines:
        at, _, text = line.partition(" ")
        parsed.append(LogLine(float(at), text))
    return parsed


def _probe(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return 200 <= response.status < 400
    except (urllib.error.URLError, OSError, ValueError):
        return False

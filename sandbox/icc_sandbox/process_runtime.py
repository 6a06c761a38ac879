"""The node agent's container runtime for the containers that really run here: the real Open
WebUI, and a script in the stock Python image (the tgi_server role's idle proxy).

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

In every namespace, a container of the stock Python image (`python:<tag>`) whose command is
`python3 [flags] SCRIPT [args]` runs that script with this machine's python3 (standard library
only, as in the image), as the image would run it:

- its volumes (ConfigMaps, Secrets - the ServiceAccount token the API server's admission put
  there among them -, emptyDirs, claims) mounted at their paths in its mount namespace, over a
  tmpfs where the path does not exist on this machine;
- with the in-cluster API address (KUBERNETES_SERVICE_HOST) in its environment, as the user of
  securityContext.runAsUser;
- listening on the pod's IP where it binds 0.0.0.0: all pods share the sandbox's one network
  namespace, in which a pod of its own would have only its own address.

The container is Ready when its readiness probe, sent to the real server, answers 2xx/3xx. A
server that exits is restarted after the kubelet's back-off; its log's tail becomes the last
termination message (the role's FallbackToLogsOnError). Elsewhere the health stand-in still
answers for Open WebUI: the real one costs about 0.8 GB and 12 s per pod.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import shlex
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
from icc_sandbox.kubelet import kubernetes_service_ip
from icc_sandbox.nodes import JSON, NodeSpec, pod_address
from icc_sandbox.pod_simulation import MAX_BACKOFF_SECONDS, LiveContainer
from icc_sandbox.service_network import ServiceNetwork

log = logging.getLogger("process-runtime")

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


# --- what runs for real -----------------------------------------------------------------------

# The python3 of this machine stands for the stock image's: standard library only.
MACHINE_PYTHON = "/usr/bin/python3"
# Runs the script (argv[2]) with its arguments, binding the pod's IP (argv[1]) where it binds
# 0.0.0.0: in its own pod network namespace, that would be its only address.
_BIND_IN_POD = """
import runpy, socket, sys
pod_ip = sys.argv[1]
machine_bind = socket.socket.bind
def bind_in_pod(sock, address):
    if isinstance(address, tuple) and address[0] in ("", "0.0.0.0"):
        address = (pod_ip, *address[1:])
    return machine_bind(sock, address)
socket.socket.bind = bind_in_pod
sys.argv = sys.argv[2:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def script_command(container: JSON) -> list[str] | None:
    """`python3 [flags] SCRIPT [args]` of a container of the stock Python image, or None."""
    image = container.get("image", "").split("@")[0].split("/")[-1].split(":")[0]
    command = [*container.get("command", []), *container.get("args", [])]
    if image != "python" or not command or Path(command[0]).name not in ("python", "python3"):
        return None
    script_at = next((i for i, arg in enumerate(command[1:], 1) if not arg.startswith("-")), None)
    return command if script_at is not None else None


def container_port(container: JSON) -> int | None:
    ports = container.get("ports") or []
    return int(ports[0]["containerPort"]) if ports else None


def run_as(pod: JSON, container: JSON) -> tuple[int, int] | None:
    """(uid, gid) of securityContext.runAsUser/runAsGroup (the container's over the pod's)."""
    merged = (pod["spec"].get("securityContext") or {}) | (container.get("securityContext") or {})
    if merged.get("runAsUser") is None:
        return None
    return int(merged["runAsUser"]), int(merged.get("runAsGroup", merged["runAsUser"]))


def mount_steps(binds: list[tuple[Path, str]]) -> list[str]:
    """Shell steps that mount each (directory here, path in the container), over a tmpfs on the
    deepest existing directory where the path does not exist on this machine."""
    steps, covered = [], []
    for source, target in binds:
        path = Path(target)
        if not path.exists():
            root = path
            while not root.exists():
                root = root.parent
            root = root.resolve()
            if root == Path("/"):
                raise ValueError(f"cannot mount a volume at {target}: not below a directory here")
            if not any(root == c or c in root.parents for c in covered):
                steps.append(f"mount -t tmpfs -o mode=0755 tmpfs {shlex.quote(str(root))}")
                covered.append(root)
            steps.append(f"mkdir -p {shlex.quote(target)}")
        steps.append(f"mount --bind {shlex.quote(str(source))} {shlex.quote(target)}")
    return steps


@dataclass(frozen=True)
class Launch:
    """How a container runs here: the real Open WebUI, or a script in the stock Python image."""

    kind: str  # "open-webui" or "python-script"
    port: int
    program: Path


# --- one server -----------------------------------------------------------------------------------


@dataclass
class _Server:
    pod_ip: str
    launch: Launch
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
class ProcessRuntime:
    """Starts, probes and stops the containers that really run here (see the module)."""

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
        """The state of the pod's containers that run here, starting those not yet running."""
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            return {}
        states = {}
        for container in pod["spec"]["containers"]:
            key = (meta["uid"], container["name"])
            server = self.servers.get(key)
            if server is None:
                launch = self._launch(pod, container)
                if launch is None:
                    continue
                pod_ip = pod_address(pod, node)
                server = self.servers[key] = _Server(
                    pod_ip,
                    launch,
                    probe_url(container, pod_ip, launch.port),
                    self.work_dir / "pods" / meta["uid"] / container["name"],
                )
                self._start(server, pod, container, node, now)
            states[container["name"]] = self._observe(server, pod, container, node, now)
        return states

    def _launch(self, pod: JSON, container: JSON) -> Launch | None:
        app = app_for(container)
        if app.kind == "open-webui" and app.port is not None:
            if pod["metadata"]["namespace"] not in self.namespaces:
                return None
            command = self.server_command()
            if command is None:
                self._warn_once(pod["metadata"]["namespace"])
                return None
            return Launch("open-webui", app.port, command)
        port = container_port(container)
        if script_command(container) is not None and port is not None:
            return Launch("python-script", port, Path(MACHINE_PYTHON))
        return None

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
        self, server: _Server, pod: JSON, container: JSON, node: NodeSpec, now: float
    ) -> None:
        if server.launch.kind == "open-webui":
            argv, env, cwd, where = self._open_webui(server, pod, container, node)
        else:
            argv, env, cwd, where = self._script(server, pod, container, node)
        # setpriv: SIGKILL when the agent dies, so that no server outlives a killed agent.
        server.process = subprocess.Popen(
            ["setpriv", "--pdeathsig", "KILL", "--", *argv],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server.log_writer = threading.Thread(
            target=_keep_log,
            args=(server.process.stdout, server.log_file()),
            name=f"{server.launch.kind}-log-{server.process.pid}",
            daemon=True,
        )
        server.log_writer.start()
        server.started_at, server.ready, server.last_probe = now, False, 0.0
        log.info(
            "pod %s/%s: %s (pid %d) starting on %s:%d, %s",
            pod["metadata"]["namespace"],
            pod["metadata"]["name"],
            server.launch.kind,
            server.process.pid,
            server.pod_ip,
            server.launch.port,
            where,
        )

    def _in_pod_mounts(self, pod: JSON, steps: list[str], argv: list[str]) -> list[str]:
        """`argv` in a private mount namespace with the pod's DNS files and `steps` mounted."""
        hosts, resolv = self.network.dns_files(pod["metadata"]["namespace"])
        script = " && ".join(
            [
                f"mount --bind {shlex.quote(str(hosts))} /etc/hosts",
                f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf",
                *steps,
                'exec "$@"',
            ]
        )
        return [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            script,
            "sh",
            *argv,
        ]

    def _open_webui(
        self, server: _Server, pod: JSON, container: JSON, node: NodeSpec
    ) -> tuple[list[str], dict[str, str], Path, str]:
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
        command = server.launch.program
        env |= {
            "DATA_DIR": str(host_data),
            "HOME": str(home),
            "PATH": f"{command.parent}:/usr/local/bin:/usr/bin:/bin",
        }
        argv = [str(command), "serve", "--host", server.pod_ip, "--port", str(server.launch.port)]
        # cwd: where the image's start script keeps a generated secret key
        return self._in_pod_mounts(pod, [], argv), env, app_dir, f"data in {host_data}"

    def _script(
        self, server: _Server, pod: JSON, container: JSON, node: NodeSpec
    ) -> tuple[list[str], dict[str, str], Path, str]:
        kubernetes_ip = kubernetes_service_ip(self.api)
        env = dict(container_env(pod, container, node, (), self.lookup, kubernetes_ip))
        env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
        volumes = {volume["name"]: volume for volume in pod["spec"].get("volumes", [])}
        binds = []
        for mount in container.get("volumeMounts", []):
            source = self._volume_dir(pod, volumes.get(mount["name"]) or {})
            if source is not None:
                binds.append((source / mount.get("subPath", ""), mount["mountPath"]))
        command = script_command(container) or []
        flags = list(itertools.takewhile(lambda arg: arg.startswith("-"), command[1:]))
        script_and_args = command[1 + len(flags) :]
        argv = [str(server.launch.program), *flags, "-c", _BIND_IN_POD, server.pod_ip]
        argv += script_and_args
        user = run_as(pod, container)
        if user is not None:  # after the mounts, which need root; a new user clears pdeathsig
            uid, gid = map(str, user)
            as_user = ["setpriv", "--reuid", uid, "--regid", gid, "--clear-groups"]
            argv = [*as_user, "--pdeathsig", "KILL", "--", *argv]
        home = server.directory / "home"
        home.mkdir(parents=True, exist_ok=True)
        mounted = ", ".join(target for _source, target in binds) or "no volumes"
        return self._in_pod_mounts(pod, mount_steps(binds), argv), env, home, f"mounted {mounted}"

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
                "pod %s/%s: %s exited with %s: %s",
                pod["metadata"]["namespace"],
                pod["metadata"]["name"],
                server.launch.kind,
                process.returncode,
                tail.splitlines()[-1:] or "no output",
            )
        if server.process is None and now >= server.restart_at:
            server.restarts += 1
            self._start(server, pod, container, node, now)
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
        """Where a pod volume lives here: a claim's provisioned directory, an emptyDir's own, a
        ConfigMap's or Secret's keys written as files (as the kubelet does, mode 0644)."""
        own = self.work_dir / "pods" / pod["metadata"]["uid"] / "volumes" / volume.get("name", "")
        if "emptyDir" in volume:
            own.mkdir(parents=True, exist_ok=True)
            return own
        for kind, key in (("configMap", "name"), ("secret", "secretName")):
            source = volume.get(kind)
            if source is None:
                continue
            data = self.lookup(kind, pod["metadata"]["namespace"], source.get(key, ""))
            if data is None:
                return None
            own.mkdir(parents=True, exist_ok=True)
            own.chmod(0o755)
            items = source.get("items") or [{"key": name, "path": name} for name in data]
            for item in items:
                if item["key"] in data:
                    path = own / item["path"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(data[item["key"]])
                    path.chmod(0o644)
            return own
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
        log.info("stopped pid %d", process.pid)


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

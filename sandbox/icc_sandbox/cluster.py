"""Start and stop the sandbox: etcd, the Kubernetes control plane and the node agent.

Everything runs as child processes in their own sessions, tracked by PID in a state file inside
a temporary run directory; `stop` ends them by PID and removes that directory. As root they run
in a network namespace of the sandbox's own (icc_sandbox.pod_network), which holds the pod
network; the machine reaches the API server and the Services through the gateway's ports on its
127.0.0.1 (icc_sandbox.gateway). Ports are chosen free at start.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from icc_sandbox import pki as pki_files
from icc_sandbox import pod_network
from icc_sandbox.gateway import service_key
from icc_sandbox.kubeapi import ApiError, KubeApi
from icc_sandbox.node_agent import STORAGE_PROVISIONER
from icc_sandbox.process_runtime import REAL_OPEN_WEBUI_LABEL
from icc_sandbox.service_network import service_range

DEFAULT_SERVICE_RANGE = "10.96.0.0/16"  # without a pod network (not root): no kube-proxy either
PACKAGE_DIR = Path(__file__).resolve().parent
SANDBOX_DIR = PACKAGE_DIR.parent
DEFAULT_NODES_FILE = SANDBOX_DIR / "nodes.yml"
INSTALL_SCRIPT = SANDBOX_DIR / "install.sh"
# What the student may do in a namespace: the Role the collection ships (least privilege).
DEPLOYER_ROLE_FILE = SANDBOX_DIR.parent / "rbac" / "haw-icc-deployer.yml"

STUDENT_USER = "infwabc123"
# The ICC derives a student's namespace from the login: drop "inf", append "-default".
STUDENT_NAMESPACE = "wabc123-default"
STORAGE_CLASS = "sandbox-local"
# Processes are stopped in this order: clients of the API first, etcd, then the network.
STOP_ORDER = (
    "gateway",
    "node-agent",
    "kube-scheduler",
    "kube-controller-manager",
    "kube-apiserver",
    "etcd",
    "network",
)
# What a process's command line holds, where its name is not in it.
PROCESS_MARKERS = {
    "node-agent": "icc_sandbox.node_agent_main",
    "gateway": "icc_sandbox.gateway",
    "network": "icc_sandbox.pod_network",
}


# The API server logs every request of the student (reads too, at Metadata level: who, which
# verb, which object, no bodies), and nothing of anyone else. The benchmarks count requests by
# verb from it; the tests count writes (Sandbox.student_writes).
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "Metadata", "users": [STUDENT_USER]},
        {"level": "None"},
    ],
}
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
# Requests that create nothing stored: reviews answered on the spot (can-i, rules, tokens).
REVIEW_RESOURCES = frozenset(
    [
        "selfsubjectaccessreviews",
        "selfsubjectrulesreviews",
        "subjectaccessreviews",
        "localsubjectaccessreviews",
        "tokenreviews",
    ]
)


class SandboxError(RuntimeError):
    pass


@dataclass
class Sandbox:
    run_dir: Path
    server: str
    pids: dict[str, int] = field(default_factory=dict)
    student_user: str = STUDENT_USER
    student_namespace: str = STUDENT_NAMESPACE
    # The private range of pod IPs inside the sandbox's network namespace (None: there is no
    # namespace, and pods get loopback IPs in the machine's)
    pod_network: str | None = None
    # How each process was started ({"argv": [...], "env": {...}}), to start it again the same
    commands: dict[str, dict] = field(default_factory=dict)

    @property
    def service_range(self) -> str:
        """ClusterIPs: inside the pod network when there is one, so the simulated kube-proxy's
        listeners never leave the machine either."""
        return service_range(self.pod_network) if self.pod_network else DEFAULT_SERVICE_RANGE

    @property
    def network_namespace(self) -> str | None:
        """/proc/<holder>/ns/net of the sandbox's network namespace, None without one."""
        pid = self.pids.get("network")
        return pod_network.namespace_file(pid) if pid else None

    def inside(self, function):
        """`function()` called inside the sandbox's network (its sockets are created there):
        how a test reaches a pod IP or a ClusterIP. Without a namespace, called here."""
        namespace = self.network_namespace
        return pod_network.call_inside(namespace, function) if namespace else function()

    def inside_argv(self, argv: list[str]) -> list[str]:
        """`argv` as a command that runs inside the sandbox's network."""
        namespace = self.network_namespace
        return pod_network.inside(namespace, argv) if namespace else list(argv)

    def program_inside(self, executable: str) -> str:
        """A program that runs `executable` inside the sandbox's network, with the arguments it
        is given (for tools that take a program's path, such as Playwright's browser)."""
        if not self.network_namespace:
            return executable
        wrapper = self.run_dir / "inside" / Path(executable).name
        wrapper.parent.mkdir(exist_ok=True)
        argv = " ".join(shlex.quote(arg) for arg in self.inside_argv([executable]))
        wrapper.write_text(f'#!/bin/sh\nexec {argv} "$@"\n')
        wrapper.chmod(0o755)
        return str(wrapper)

    @property
    def gateway_map(self) -> Path:
        """{"namespace/service:port": port on 127.0.0.1}, written by the gateway."""
        return self.run_dir / "gateway.json"

    def service_address(
        self, namespace: str, service: str, port: int, timeout: float = 10.0
    ) -> tuple[str, int]:
        """Where this machine reaches a Service's port: the gateway's port on 127.0.0.1 (it
        follows new Services within a second or so, hence the wait)."""
        key = service_key(namespace, service, port)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return "127.0.0.1", json.loads(self.gateway_map.read_text())[key]
            except (OSError, ValueError, KeyError):
                if "gateway" not in self.pids or time.monotonic() > deadline:
                    raise SandboxError(
                        f"the sandbox's gateway has no port for Service {key}"
                    ) from None
                time.sleep(0.2)

    @property
    def admin_kubeconfig(self) -> Path:
        return self.run_dir / "admin.kubeconfig"

    @property
    def student_kubeconfig(self) -> Path:
        return self.run_dir / "student.kubeconfig"

    @property
    def audit_log(self) -> Path:
        """One JSON line per request of the student (see AUDIT_POLICY)."""
        return self.run_dir / "student-writes.log"

    def audit_lines(self) -> int:
        """How many lines the audit log has now: a mark for `student_requests(since_line=...)`."""
        if not self.audit_log.exists():
            return 0
        with self.audit_log.open("rb") as log:
            return sum(1 for _ in log)

    def student_requests(self, namespace: str | None = None, since_line: int = 0) -> list[dict]:
        """The student's completed requests (reads and writes) from the API server's audit log,
        from line `since_line` on; with `namespace`, only those aimed into that namespace.

        One entry per request: a watch also logs the stage ResponseStarted, counted once here."""
        if not self.audit_log.exists():
            return []
        with self.audit_log.open(encoding="utf-8") as log:
            lines = [line for number, line in enumerate(log) if number >= since_line]
        entries = [json.loads(line) for line in lines if line.strip()]
        return [
            entry
            for entry in entries
            if entry.get("stage") == "ResponseComplete"
            and (entry.get("user") or {}).get("username") == self.student_user
            and (namespace is None or (entry.get("objectRef") or {}).get("namespace") == namespace)
        ]

    def student_writes(self, namespace: str, lease: bool = False) -> list[dict]:
        """The student's write requests into `namespace` so far, from the API server's audit log.

        Dry runs (check mode) are requests with the write verbs too, but store nothing: they are
        left out. So is the Lease a run holds while it writes (its lock, taken and given back
        by every run that may write) unless `lease`."""
        return [
            entry
            for entry in self.student_requests(namespace)
            if entry.get("verb") in WRITE_VERBS
            and (entry.get("objectRef") or {}).get("resource") not in REVIEW_RESOURCES
            and (lease or (entry.get("objectRef") or {}).get("resource") != "leases")
            and "dryRun=All" not in entry.get("requestURI", "")
        ]

    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    def admin_api(self) -> KubeApi:
        return KubeApi.from_kubeconfig(self.admin_kubeconfig)

    def save(self) -> None:
        state = asdict(self) | {"run_dir": str(self.run_dir)}
        self.state_file.write_text(json.dumps(state, indent=2))

    @classmethod
    def load(cls, state_file: Path) -> Sandbox:
        state = json.loads(state_file.read_text())
        return cls(**(state | {"run_dir": Path(state["run_dir"])}))

    def is_alive(self) -> bool:
        """True when every process still runs and the API server answers /readyz."""
        if not all(_pid_runs(pid, name) for name, pid in self.pids.items()):
            return False
        return _ready(self.admin_api())

    def export_lines(self) -> str:
        return (
            f"# admin (cluster-admin), and the student {self.student_user} "
            f"(haw-icc-deployer Role only in namespace {self.student_namespace})\n"
            f"export KUBECONFIG={self.admin_kubeconfig}\n"
            f"export KUBECONFIG={self.student_kubeconfig}\n"
        )

    def create_namespace(
        self, name: str, grant_student: bool = True, real_open_webui: bool = False
    ) -> None:
        """Creates a namespace; with grant_student the student gets there exactly the rights of
        the collection's Role (rbac/haw-icc-deployer.yml), the least every playbook needs.
        With real_open_webui its Open WebUI pods run the real Open WebUI (process_runtime)."""
        api = self.admin_api()
        api.ensure("/api/v1/namespaces", {"metadata": {"name": name}})
        if real_open_webui:
            self.use_real_open_webui(name)
        if grant_student:
            grant_role(api, name, self.student_user)

    def use_real_open_webui(self, namespace: str, real: bool = True) -> None:
        """Open WebUI pods started in the namespace from now on run the real Open WebUI (when
        installed: sandbox/install-open-webui.sh), or its health stand-in."""
        self.admin_api().patch(
            f"/api/v1/namespaces/{namespace}",
            {"metadata": {"labels": {REAL_OPEN_WEBUI_LABEL: "real" if real else None}}},
        )

    def wait_until_usable(self, namespace: str, timeout: float = 30.0) -> None:
        """Waits for the default ServiceAccount and its token: pods are refused before that."""
        api = self.admin_api()
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/default"
        _wait_for(
            lambda: _exists(api, path) and bool(api.get(path).get("secrets")),
            timeout,
            f"the service account token of namespace {namespace}",
            self,
        )

    def set_gpu_quota(self, namespace: str, gpus: int, timeout: float = 30.0) -> None:
        """Caps the namespace's GPU requests, like the ICC's ResourceQuota on nvidia.com/gpu."""
        quota = {
            "metadata": {"name": "gpu-quota"},
            "spec": {"hard": {"requests.nvidia.com/gpu": str(gpus)}},
        }
        api = self.admin_api()
        path = f"/api/v1/namespaces/{namespace}/resourcequotas/gpu-quota"
        api.ensure(f"/api/v1/namespaces/{namespace}/resourcequotas", quota)
        api.patch(path, quota)
        # The quota binds only once the controller has written its status; until the API server's
        # own quota cache has it, pods are admitted uncounted. Waiting for the status covers both.
        _wait_for(
            lambda: api.get(path).get("status", {}).get("hard") == quota["spec"]["hard"],
            timeout,
            f"the GPU quota of namespace {namespace} to take effect",
            self,
        )


def kubernetes_bin_dir() -> Path:
    """Builds the control plane once (cached by Debian package version) and returns its bin dir."""
    override = os.environ.get("ICC_SANDBOX_BIN_DIR")
    if override:
        return Path(override)
    result = subprocess.run(
        ["bash", str(INSTALL_SCRIPT)], check=False, stdout=subprocess.PIPE, text=True
    )
    if result.returncode != 0:
        raise SandboxError(f"{INSTALL_SCRIPT} failed with exit code {result.returncode}")
    return Path(result.stdout.strip().splitlines()[-1])


def start(
    run_dir: Path | None = None,
    nodes_file: Path = DEFAULT_NODES_FILE,
    bin_dir: Path | None = None,
    agent_args: tuple[str, ...] = (),
    timeout: float = 60.0,
) -> Sandbox:
    """Starts a fresh sandbox and returns once the API is ready and the nodes are Ready."""
    bin_dir = bin_dir or kubernetes_bin_dir()
    run_dir = run_dir or Path(tempfile.mkdtemp(prefix="haw-icc-sandbox-"))
    run_dir.mkdir(parents=True, exist_ok=True)
    etcd_port, etcd_peer_port, api_port = _free_ports(3)
    sandbox = Sandbox(run_dir=run_dir, server=f"https://127.0.0.1:{api_port}")
    try:
        _start_network(sandbox, timeout)
        _write_credentials(sandbox)
        (run_dir / "audit-policy.yaml").write_text(yaml.safe_dump(AUDIT_POLICY))
        sandbox.pids["etcd"] = _spawn(
            sandbox,
            "etcd",
            [
                "etcd",
                f"--data-dir={run_dir / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{etcd_peer_port}",
                "--quota-backend-bytes=1073741824",
            ],
        )
        sandbox.pids["kube-apiserver"] = _spawn(
            sandbox,
            "kube-apiserver",
            [
                str(bin_dir / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                "--insecure-port=0",
                f"--tls-cert-file={run_dir / 'pki/apiserver.crt'}",
                f"--tls-private-key-file={run_dir / 'pki/apiserver.key'}",
                f"--client-ca-file={run_dir / 'pki/ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={run_dir / 'pki/sa.key'}",
                f"--service-account-signing-key-file={run_dir / 'pki/sa.key'}",
                f"--token-auth-file={run_dir / 'tokens.csv'}",
                "--authorization-mode=Node,RBAC",
                f"--service-cluster-ip-range={sandbox.service_range}",
                "--allow-privileged=true",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
                # The simulated kubelets serve pod logs on their InternalIP; the node names
                # (the default first choice, Hostname) resolve nowhere.
                "--kubelet-preferred-address-types=InternalIP",
                # Tests prove "refused before the first write" from the student's write requests.
                f"--audit-policy-file={run_dir / 'audit-policy.yaml'}",
                f"--audit-log-path={sandbox.audit_log}",
                "--audit-log-format=json",
                "--audit-log-mode=blocking",
            ],
        )
        if sandbox.network_namespace:
            sandbox.pids["gateway"] = _spawn(
                sandbox,
                "gateway",
                [
                    sys.executable,
                    "-m",
                    "icc_sandbox.gateway",
                    f"--namespace={sandbox.network_namespace}",
                    f"--api-port={api_port}",
                    f"--kubeconfig={sandbox.admin_kubeconfig}",
                    f"--map-file={sandbox.gateway_map}",
                ],
                env={"PYTHONPATH": str(SANDBOX_DIR)},
                inside=False,
            )
        api = sandbox.admin_api()
        _wait_for(lambda: _ready(api), timeout, "the API server to answer /readyz", sandbox)
        for name, binary in (
            ("kube-controller-manager", "kube-controller-manager"),
            ("kube-scheduler", "kube-scheduler"),
        ):
            sandbox.pids[name] = _spawn(
                sandbox, name, [str(bin_dir / binary), *_component_flags(sandbox, name)]
            )
        _bootstrap_objects(sandbox)
        sandbox.pids["node-agent"] = _spawn(
            sandbox,
            "node-agent",
            [
                sys.executable,
                "-m",
                "icc_sandbox.node_agent_main",
                f"--kubeconfig={sandbox.admin_kubeconfig}",
                f"--nodes={nodes_file}",
                f"--work-dir={run_dir / 'agent'}",
                *([f"--pod-network={sandbox.pod_network}"] if sandbox.pod_network else []),
                *agent_args,
            ],
            env={"PYTHONPATH": str(SANDBOX_DIR)},
        )
        expected = {node["name"] for node in yaml.safe_load(nodes_file.read_text())["nodes"]}
        _wait_for(
            lambda: expected <= _ready_nodes(api),
            timeout,
            "the simulated nodes to be Ready",
            sandbox,
        )
        sandbox.wait_until_usable(sandbox.student_namespace, timeout)
    except BaseException:
        stop(sandbox)
        raise
    sandbox.save()
    return sandbox


def stop(sandbox: Sandbox, keep_run_dir: bool = False) -> None:
    """Stops every process of the sandbox by PID, then removes its run directory."""
    for name in STOP_ORDER:
        pid = sandbox.pids.pop(name, None)
        if pid is not None:
            _terminate(pid, name)
    for name, pid in list(sandbox.pids.items()):
        _terminate(pid, name)
        del sandbox.pids[name]
    sandbox.pod_network = None
    if not keep_run_dir:
        shutil.rmtree(sandbox.run_dir, ignore_errors=True)


# --- one process down and up again (fault tests) ------------------------------------------------

RESTARTABLE = ("etcd", "kube-apiserver")


def stop_process(sandbox: Sandbox, name: str, kill: bool = True) -> None:
    """Stops one process of the sandbox and leaves the others running: `kill` ends it at once
    (SIGKILL, a crash: no graceful shutdown, requests in flight break), else by SIGTERM.
    The state file then lists it no more, so `is_alive()` is False until start_process."""
    if name not in RESTARTABLE:
        raise SandboxError(f"only {', '.join(RESTARTABLE)} can be stopped alone, not {name}")
    if name not in sandbox.commands:
        raise SandboxError(
            f"this sandbox does not know how {name} was started (started by an older version): "
            "restart it with `make sandbox-down sandbox-up`"
        )
    pid = sandbox.pids.pop(name, None)
    if pid is not None:
        _terminate(pid, name, first_signal=signal.SIGKILL if kill else signal.SIGTERM)
    sandbox.save()


def start_process(sandbox: Sandbox, name: str, timeout: float = 60.0) -> None:
    """Starts a process stopped by stop_process again, with exactly the arguments and
    environment it first had: the same ports, certificates and data directory, so kubeconfigs
    and the cluster's objects stay valid. Returns once the API server answers /readyz again
    (with etcd alone: once etcd serves and, when the API server runs, the API is ready)."""
    if name in sandbox.pids and _pid_runs(sandbox.pids[name], name):
        raise SandboxError(f"{name} of this sandbox is running already")
    command = sandbox.commands.get(name)
    if command is None:
        raise SandboxError(f"this sandbox does not know how {name} was started")
    sandbox.pids[name] = _spawn(
        sandbox, name, command["argv"], env=command["env"] or None, inside=False
    )
    sandbox.save()
    if "kube-apiserver" in sandbox.pids:
        api = sandbox.admin_api()
        _wait_for(lambda: _ready(api), timeout, "the API server to answer /readyz", sandbox)
    else:
        port = _flag_port(command["argv"], "--listen-client-urls")
        _wait_for(
            lambda: sandbox.inside(lambda: _listening(port)),
            timeout,
            f"etcd to listen on {port}",
            sandbox,
        )


def stop_apiserver(sandbox: Sandbox, kill: bool = True) -> None:
    stop_process(sandbox, "kube-apiserver", kill)


def start_apiserver(sandbox: Sandbox, timeout: float = 60.0) -> None:
    start_process(sandbox, "kube-apiserver", timeout)


def stop_etcd(sandbox: Sandbox, kill: bool = True) -> None:
    stop_process(sandbox, "etcd", kill)


def start_etcd(sandbox: Sandbox, timeout: float = 60.0) -> None:
    start_process(sandbox, "etcd", timeout)


def restart_apiserver(
    sandbox: Sandbox, down_seconds: float = 0.0, kill: bool = True, timeout: float = 60.0
) -> None:
    """The API server down for `down_seconds` and back on its port; etcd keeps running."""
    stop_apiserver(sandbox, kill)
    time.sleep(down_seconds)
    start_apiserver(sandbox, timeout)


def restart_etcd(
    sandbox: Sandbox, down_seconds: float = 0.0, kill: bool = True, timeout: float = 60.0
) -> None:
    """etcd down for `down_seconds` and back with its data; the API server keeps running (and
    answers errors meanwhile). Returns once the API server is ready again."""
    stop_etcd(sandbox, kill)
    time.sleep(down_seconds)
    start_etcd(sandbox, timeout)


def _flag_port(argv: list[str], flag: str) -> int:
    value = next(arg.split("=", 1)[1] for arg in argv if arg.startswith(flag + "="))
    return int(value.rsplit(":", 1)[1])


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _start_network(sandbox: Sandbox, timeout: float) -> None:
    """The sandbox's network namespace with its pod network, or a warning why there is none
    (then pods get loopback IPs in the machine's namespace)."""
    why = pod_network.unavailable_reason()
    if why is not None:
        print(
            f"sandbox: WARNING: no network namespace, pods get loopback IPs ({why}); the API "
            "server refuses to proxy to those, so the service proxy (services/NAME:PORT/proxy) "
            "will not work and Services get no Endpoints",
            file=sys.stderr,
        )
        return
    ready = sandbox.run_dir / "network.ready"
    sandbox.pids["network"] = _spawn(
        sandbox,
        "network",
        pod_network.holder_argv(ready),
        env={"PYTHONPATH": str(SANDBOX_DIR)},
        inside=False,
    )
    _wait_for(ready.exists, timeout, "the sandbox's network namespace", sandbox)
    sandbox.pod_network = ready.read_text()


# --- credentials and kubeconfigs -----------------------------------------------------------


def _write_credentials(sandbox: Sandbox) -> None:
    pki = sandbox.run_dir / "pki"
    pki.mkdir(mode=0o700)
    ca_key = pki_files.rsa_key()
    ca_cert = pki_files.certificate("haw-icc-sandbox-ca", ca_key, ca=True)
    server_key = pki_files.rsa_key()
    server_cert = pki_files.certificate(
        "kube-apiserver",
        server_key,
        issuer=(ca_key, ca_cert),
        ips=("127.0.0.1", str(next(ipaddress.ip_network(sandbox.service_range).hosts()))),
        dns_names=("localhost", "kubernetes.default.svc"),
    )
    pki_files.write_pem(pki / "ca.crt", ca_cert)
    pki_files.write_pem(pki / "apiserver.crt", server_cert)
    pki_files.write_pem(pki / "apiserver.key", server_key)
    pki_files.write_pem(pki / "sa.key", pki_files.rsa_key())
    admin_token, student_token = secrets.token_hex(24), secrets.token_hex(24)
    # Static tokens: token,user,uid,"groups". The student has no groups: RBAC decides everything.
    tokens = (
        f'{admin_token},sandbox-admin,sandbox-admin,"system:masters"\n'
        f"{student_token},{sandbox.student_user},{sandbox.student_user}\n"
    )
    pki_files.write_private(sandbox.run_dir / "tokens.csv", tokens)
    for path, user, token, namespace in (
        (sandbox.admin_kubeconfig, "sandbox-admin", admin_token, "default"),
        (
            sandbox.student_kubeconfig,
            sandbox.student_user,
            student_token,
            sandbox.student_namespace,
        ),
    ):
        pki_files.write_private(
            path, _kubeconfig(sandbox.server, pki / "ca.crt", user, token, namespace)
        )


def _kubeconfig(server: str, ca_file: Path, user: str, token: str, namespace: str) -> str:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "icc-sandbox",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [
            {
                "name": f"{user}@icc-sandbox",
                "context": {"cluster": "icc-sandbox", "user": user, "namespace": namespace},
            }
        ],
        "current-context": f"{user}@icc-sandbox",
    }
    return yaml.safe_dump(config, sort_keys=False)


# --- processes -------------------------------------------------------------------------------


def _component_flags(sandbox: Sandbox, name: str) -> list[str]:
    common = [f"--kubeconfig={sandbox.admin_kubeconfig}", "--leader-elect=false", "--port=0"]
    if name == "kube-scheduler":
        return [*common, "--secure-port=0"]
    return [
        *common,
        "--secure-port=0",
        f"--service-account-private-key-file={sandbox.run_dir / 'pki/sa.key'}",
        f"--root-ca-file={sandbox.run_dir / 'pki/ca.crt'}",
        "--use-service-account-credentials=false",
        # No cloud, no pod network: the controllers that need one stay off.
        "--controllers=*,-nodeipam,-ttl,-route,-cloud-node-lifecycle,-csrsigning",
    ]


def _spawn(
    sandbox: Sandbox,
    name: str,
    argv: list[str],
    env: dict[str, str] | None = None,
    inside: bool = True,
) -> int:
    """Starts a process of the sandbox, inside its network unless `inside` is False."""
    if inside:
        argv = sandbox.inside_argv(argv)
    sandbox.commands[name] = {"argv": list(argv), "env": dict(env or {})}
    log = (sandbox.run_dir / f"{name}.log").open("ab")
    process = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=sandbox.run_dir,
        env=os.environ | (env or {}),
        start_new_session=True,  # outlives `make sandbox-up`; stopped by PID in stop()
    )
    log.close()
    return process.pid


def _pid_runs(pid: int, name: str) -> bool:
    """True when `pid` is alive and is still our process (guards against PID reuse)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    # Right after exec the kernel briefly shows an empty cmdline; that is still our process.
    return not cmdline or PROCESS_MARKERS.get(name, name) in cmdline


def _terminate(
    pid: int, name: str, grace: float = 10.0, first_signal: int = signal.SIGTERM
) -> None:
    if _pid_runs(pid, name):
        os.kill(pid, first_signal)
        deadline = time.monotonic() + grace
        while _pid_runs(pid, name) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _pid_runs(pid, name):
            os.kill(pid, signal.SIGKILL)
            while _pid_runs(pid, name):
                _reap(pid)
                time.sleep(0.05)
    # It may still be exiting: collect our child once it is a zombie, or it keeps its PID.
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        if not _reap(pid):
            return  # not our child: its parent (init, for `make sandbox-up`) collects it
        time.sleep(0.02)


def _reap(pid: int) -> bool:
    """Collects the exit status of our own exited child; False when it is not our child."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return True


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _wait_for(condition, timeout: float, what: str, sandbox: Sandbox) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, pid in sandbox.pids.items():
            if not _pid_runs(pid, name):
                raise SandboxError(
                    f"{name} exited while waiting for {what}:\n{_log_tail(sandbox, name)}"
                )
        if condition():
            return
        time.sleep(0.2)
    raise SandboxError(f"timed out after {timeout:.0f}s waiting for {what}")


def _log_tail(sandbox: Sandbox, name: str, lines: int = 20) -> str:
    log = sandbox.run_dir / f"{name}.log"
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# --- API objects -------------------------------------------------------------------------------


def _ready(api: KubeApi) -> bool:
    try:
        api.request("GET", "/readyz", timeout=2)
    except (ApiError, OSError):
        return False
    return True


def _exists(api: KubeApi, path: str) -> bool:
    try:
        api.get(path)
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


def _ready_nodes(api: KubeApi) -> set[str]:
    ready = set()
    for node in api.get("/api/v1/nodes").get("items", []):
        for condition in node.get("status", {}).get("conditions", []):
            if condition["type"] == "Ready" and condition["status"] == "True":
                ready.add(node["metadata"]["name"])
    return ready


def deployer_role_objects(user: str, role_file: Path = DEPLOYER_ROLE_FILE) -> tuple[dict, dict]:
    """The Role and RoleBinding the collection ships, with `user` as the binding's only subject.
    Neither names a namespace in the file: the caller's path does."""
    documents = {item["kind"]: item for item in yaml.safe_load(role_file.read_text())["items"]}
    role, binding = documents["Role"], documents["RoleBinding"]
    binding["subjects"] = [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    return role, binding


def grant_role(api: KubeApi, namespace: str, user: str) -> None:
    """Creates (or brings up to date) the shipped Role in `namespace` and binds `user` to it."""
    base = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    role, binding = deployer_role_objects(user)
    api.ensure(f"{base}/roles", role)
    # A reused sandbox may hold an older version of the rules: these are the file's.
    api.patch(f"{base}/roles/{role['metadata']['name']}", {"rules": role["rules"]})
    api.ensure(f"{base}/rolebindings", binding)


def _bootstrap_objects(sandbox: Sandbox) -> None:
    """What an ICC account finds: its namespace (the collection's Role there) and a default
    StorageClass."""
    sandbox.create_namespace(sandbox.student_namespace)
    sandbox.admin_api().ensure(
        "/apis/storage.k8s.io/v1/storageclasses",
        {
            "metadata": {
                "name": STORAGE_CLASS,
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": STORAGE_PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
    )

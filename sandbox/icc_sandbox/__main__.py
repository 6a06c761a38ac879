"""Command line of the sandbox: `python -m icc_sandbox up|down|status|quota|restart`.

`up` records the running sandbox in a state file (default: .sandbox/state.json in the
checkout) so that `down`, the tests and the demo find and reuse it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from icc_sandbox import cluster

DEFAULT_POINTER = cluster.SANDBOX_DIR.parent / ".sandbox" / "state.json"


def pointer_file() -> Path:
    return Path(os.environ.get("ICC_SANDBOX_STATE", DEFAULT_POINTER))


def running_sandbox() -> cluster.Sandbox | None:
    """The sandbox started by `up`, when it is still alive."""
    pointer = pointer_file()
    if not pointer.exists():
        return None
    try:
        sandbox = cluster.Sandbox.load(Path(json.loads(pointer.read_text())["state_file"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return sandbox if sandbox.is_alive() else None


def cmd_up(args: argparse.Namespace) -> int:
    sandbox = running_sandbox()
    if sandbox is None:
        stale = pointer_file()
        if stale.exists():
            cmd_down(args)
        began = time.monotonic()
        sandbox = cluster.start()
        pointer = pointer_file()
        pointer.parent.mkdir(parents=True, exist_ok=True)
        pointer.write_text(json.dumps({"state_file": str(sandbox.state_file)}))
        # Stable paths for inventories/sandbox, whatever temporary directory the sandbox uses.
        for kubeconfig in (sandbox.admin_kubeconfig, sandbox.student_kubeconfig):
            link = pointer.parent / kubeconfig.name
            link.unlink(missing_ok=True)
            link.symlink_to(kubeconfig)
        print(
            f"# sandbox up in {time.monotonic() - began:.1f}s at {sandbox.server}", file=sys.stderr
        )
    else:
        print(f"# sandbox already running at {sandbox.server}", file=sys.stderr)
    if args.real_open_webui:
        _install_open_webui()
        sandbox.use_real_open_webui(sandbox.student_namespace)
        print(
            f"# Open WebUI pods in {sandbox.student_namespace} run the real Open WebUI",
            file=sys.stderr,
        )
    print(sandbox.export_lines(), end="")
    return 0


def _install_open_webui() -> None:
    """Installs the real Open WebUI once (cached by version); its progress goes to stderr."""
    script = cluster.SANDBOX_DIR / "install-open-webui.sh"
    done = subprocess.run(["bash", str(script)], check=False, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        raise cluster.SandboxError(f"{script} failed (exit code {done.returncode}, see above)")


def cmd_down(_args: argparse.Namespace) -> int:
    pointer = pointer_file()
    if not pointer.exists():
        print("# no sandbox recorded", file=sys.stderr)
        return 0
    try:
        sandbox = cluster.Sandbox.load(Path(json.loads(pointer.read_text())["state_file"]))
    except (OSError, ValueError, KeyError, TypeError):
        sandbox = None
    if sandbox is not None:
        cluster.stop(sandbox)
        print(f"# sandbox at {sandbox.server} stopped", file=sys.stderr)
    pointer.unlink(missing_ok=True)
    return 0


def cmd_status(_args: argparse.Namespace) -> int:
    sandbox = running_sandbox()
    if sandbox is None:
        print("not running")
        return 1
    print(f"running at {sandbox.server}")
    for name, pid in sandbox.pids.items():
        print(f"  {name}: pid {pid}")
    if sandbox.network_namespace:
        print(
            f"pods and Services ({sandbox.pod_network}) live in the sandbox's network namespace;"
            f" a command runs there with: nsenter --net={sandbox.network_namespace} CMD"
        )
    print(sandbox.export_lines(), end="")
    return 0


def cmd_quota(args: argparse.Namespace) -> int:
    sandbox = running_sandbox()
    if sandbox is None:
        print("no running sandbox: run `make sandbox-up` first", file=sys.stderr)
        return 1
    sandbox.set_gpu_quota(args.namespace, args.gpus)
    print(f"namespace {args.namespace}: requests.nvidia.com/gpu <= {args.gpus}")
    return 0


def cmd_services(args: argparse.Namespace) -> int:
    """The Services of a namespace at the gateway's ports on 127.0.0.1: where a browser on this
    machine opens Open WebUI, no port-forward needed."""
    sandbox = running_sandbox()
    if sandbox is None:
        print("no running sandbox: run `make sandbox-up` first", file=sys.stderr)
        return 1
    namespace = args.namespace or sandbox.student_namespace
    services = sandbox.admin_api().get(f"/api/v1/namespaces/{namespace}/services")["items"]
    for service in services:
        name, spec = service["metadata"]["name"], service["spec"]
        for port in spec.get("ports", []):
            if sandbox.network_namespace:
                host, local = sandbox.service_address(namespace, name, port["port"])
                print(f"{name:<14}http://{host}:{local}   (Service port {port['port']})")
            else:
                print(f"{name:<14}http://{spec['clusterIP']}:{port['port']}")
    return 0


def cmd_nodes(_args: argparse.Namespace) -> int:
    """The simulated ICC at a glance: nodes, their GPU type and how many GPUs pods hold."""
    sandbox = running_sandbox()
    if sandbox is None:
        print("no running sandbox: run `make sandbox-up` first", file=sys.stderr)
        return 1
    api = sandbox.admin_api()
    used: dict[str, int] = {}
    for pod in api.get("/api/v1/pods?fieldSelector=spec.nodeName%21%3D").get("items", []):
        if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for container in pod["spec"]["containers"]:
            gpus = container.get("resources", {}).get("requests", {}).get("nvidia.com/gpu", 0)
            used[pod["spec"]["nodeName"]] = used.get(pod["spec"]["nodeName"], 0) + int(gpus)
    print(f"{'NODE':<18}{'READY':<7}{'GPU TYPE (taint)':<20}{'GPUS USED/ALL':<15}GPU MEMORY")
    for node in api.get("/api/v1/nodes")["items"]:
        name, labels = node["metadata"]["name"], node["metadata"].get("labels", {})
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )
        total = int(node["status"].get("allocatable", {}).get("nvidia.com/gpu", 0))
        memory = labels.get("nvidia.com/gpu.memory")
        print(
            f"{name:<18}{'yes' if ready else 'no':<7}{labels.get('gpu-type', '-'):<20}"
            f"{f'{used.get(name, 0)}/{total}':<15}{f'{int(memory) // 1024} GiB' if memory else '-'}"
        )
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    """Takes the API server or etcd down for a while and brings it back on the same port with
    the same flags; every other process of the sandbox keeps running (fault tests by hand)."""
    sandbox = running_sandbox()
    if sandbox is None:
        print("no running sandbox: run `make sandbox-up` first", file=sys.stderr)
        return 1
    name = {"apiserver": "kube-apiserver", "etcd": "etcd"}[args.process]
    began = time.monotonic()
    cluster.stop_process(sandbox, name, kill=not args.graceful)
    print(f"# {name} stopped ({'SIGTERM' if args.graceful else 'SIGKILL'})", file=sys.stderr)
    time.sleep(args.down)
    cluster.start_process(sandbox, name)
    print(
        f"# {name} back as pid {sandbox.pids[name]}, API ready after "
        f"{time.monotonic() - began:.1f}s",
        file=sys.stderr,
    )
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    """Times fresh sandbox starts (the Kubernetes build is done once, before the first run)."""
    cluster.kubernetes_bin_dir()
    times = []
    for run in range(1, args.runs + 1):
        began = time.monotonic()
        sandbox = cluster.start()
        times.append(time.monotonic() - began)
        cluster.stop(sandbox)
        print(f"run {run}: sandbox ready in {times[-1]:.2f}s")
    times.sort()
    median = times[len(times) // 2]
    print(f"start-up over {len(times)} runs: min {times[0]:.2f}s, median {median:.2f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m icc_sandbox", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start (or reuse) the sandbox and print KUBECONFIG exports")
    up.add_argument(
        "--real-open-webui",
        action="store_true",
        help="install (once) and run the real Open WebUI for the student namespace's Open WebUI",
    )
    commands.add_parser("down", help="stop the recorded sandbox and remove its files")
    commands.add_parser("status", help="show the recorded sandbox")
    commands.add_parser("nodes", help="the simulated nodes, GPU types and GPUs in use")
    services = commands.add_parser(
        "services", help="a namespace's Services at their ports on 127.0.0.1 (the gateway)"
    )
    services.add_argument("namespace", nargs="?", help="default: the student's namespace")
    quota = commands.add_parser("quota", help="cap a namespace's GPU requests with a ResourceQuota")
    quota.add_argument("namespace")
    quota.add_argument("gpus", type=int)
    restart = commands.add_parser(
        "restart", help="the API server or etcd down for --down seconds, then back (same port)"
    )
    restart.add_argument("process", choices=("apiserver", "etcd"))
    restart.add_argument("--down", type=float, default=5.0, help="seconds down (default 5)")
    restart.add_argument("--graceful", action="store_true", help="SIGTERM instead of SIGKILL")
    bench = commands.add_parser("bench", help="time fresh sandbox start-ups")
    bench.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    handler = {
        "up": cmd_up,
        "down": cmd_down,
        "status": cmd_status,
        "quota": cmd_quota,
        "nodes": cmd_nodes,
        "services": cmd_services,
        "bench": cmd_bench,
        "restart": cmd_restart,
    }
    try:
        return handler[args.command](args)
    except cluster.SandboxError as error:
        print(f"sandbox: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

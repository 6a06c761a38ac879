"""The node agent's process: plays the kubelets of the simulated ICC nodes until stopped.

`python -m icc_sandbox.node_agent_main --kubeconfig ... --nodes ...` (icc_sandbox.cluster starts
it) wires what plays the simulated nodes (icc_sandbox.node_agent), their kubelet APIs
(icc_sandbox.kubelet), and with a pod network the simulated kube-proxy and DNS and the real Open
WebUI; then syncs until SIGTERM or SIGINT. Nothing imports this module.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

from icc_sandbox.kubeapi import ApiError, KubeApi
from icc_sandbox.kubelet import Kubelets, object_lookup
from icc_sandbox.node_agent import NodeAgent
from icc_sandbox.nodes import Timing, load_nodes
from icc_sandbox.process_runtime import ProcessRuntime
from icc_sandbox.service_network import ServiceNetwork

log = logging.getLogger("node-agent")


def _service_network_and_runtime(
    api: KubeApi, pod_network: str | None, work_dir: Path, kubelets: Kubelets
) -> tuple[ServiceNetwork | None, ProcessRuntime | None]:
    """The simulated kube-proxy and DNS, and the real Open WebUI with its logs at the kubelets:
    only with a pod network (ClusterIPs and pod IPs bindable on this machine)."""
    if pod_network is None:
        return None, None
    server = urllib.parse.urlsplit(api.server)
    network = ServiceNetwork(pod_network, work_dir / "dns", (server.hostname, server.port or 443))
    runtime = ProcessRuntime(api, work_dir, network, object_lookup(api))
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

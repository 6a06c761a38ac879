"""The gateway: how this machine reaches the sandbox inside its network namespace.

It runs in the machine's own namespace and listens on 127.0.0.1 only: the API server's port
(the same number as inside, so the kubeconfigs' `https://127.0.0.1:PORT` works on both sides)
and one port per TCP port of every Service with a ClusterIP, chosen free, relayed to that
ClusterIP:port inside, where the sandbox's kube-proxy takes it on. The Services' ports are
written to a JSON file (`"namespace/service:port": local port`), which `icc_sandbox services`
prints and tests read: a browser or curl on this machine opens Open WebUI there, as it would
through a port-forward. Connections to the inside are opened by a thread that joined the
namespace (pod_network.connector); nothing is routed.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from icc_sandbox import pod_network
from icc_sandbox.kubeapi import ApiError, KubeApi
from icc_sandbox.tcp_relay import Relay

log = logging.getLogger("gateway")
POLL_SECONDS = 1.0


def service_key(namespace: str, service: str, port: int) -> str:
    return f"{namespace}/{service}:{port}"


def service_targets(services: list[dict]) -> dict[str, tuple[str, int]]:
    """{"namespace/service:port": (ClusterIP, port)} of every TCP port of a ClusterIP Service."""
    targets = {}
    for service in services:
        meta, spec = service["metadata"], service.get("spec", {})
        cluster_ip = spec.get("clusterIP")
        if not cluster_ip or cluster_ip == "None":
            continue
        for port in spec.get("ports", []):
            if port.get("protocol", "TCP") == "TCP":
                key = service_key(meta["namespace"], meta["name"], port["port"])
                targets[key] = (cluster_ip, port["port"])
    return targets


class Gateway:
    def __init__(self, namespace: str, api_port: int, api: KubeApi, map_file: Path) -> None:
        self.connect = pod_network.connector(namespace)
        self.api, self.map_file = api, map_file
        self.api_relay = Relay(("127.0.0.1", api_port), (("127.0.0.1", api_port),), self.connect)
        self.services: dict[str, Relay] = {}
        self._write_map()

    def sync(self) -> None:
        targets = service_targets(self.api.get("/api/v1/services").get("items", []))
        changed = False
        for key in [key for key in self.services if key not in targets]:
            self.services.pop(key).close()
            changed = True
        for key, target in targets.items():
            relay = self.services.get(key)
            if relay is not None and relay.backends == (target,):
                continue
            if relay is not None:  # the Service was made again with another ClusterIP
                relay.backends = (target,)
            else:
                self.services[key] = Relay(("127.0.0.1", 0), (target,), self.connect)
            changed = True
        if changed:
            self._write_map()

    def _write_map(self) -> None:
        ports = {key: relay.address[1] for key, relay in sorted(self.services.items())}
        partial = self.map_file.with_suffix(".partial")
        partial.write_text(json.dumps(ports, indent=1))
        partial.replace(self.map_file)  # readers never see half a file

    def close(self) -> None:
        for relay in [self.api_relay, *self.services.values()]:
            relay.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", required=True, help="/proc/<holder>/ns/net")
    parser.add_argument("--api-port", required=True, type=int)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--map-file", required=True, type=Path)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    gateway = Gateway(
        args.namespace, args.api_port, KubeApi.from_kubeconfig(args.kubeconfig), args.map_file
    )
    log.info("API server at 127.0.0.1:%d", args.api_port)
    try:
        while not stop.wait(POLL_SECONDS):
            try:
                gateway.sync()
            except (ApiError, OSError) as error:  # the API server is starting or restarting
                log.debug("no Services read: %s", error)
    finally:
        gateway.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

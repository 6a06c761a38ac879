"""Services as a pod sees them: a simulated kube-proxy and cluster DNS, on this machine only.

kube-proxy: every TCP port of every Service with a ClusterIP gets a listener on ClusterIP:port
(the service range lies inside the sandbox's pod network, routed `local` on the loopback device of
the sandbox's own network namespace, so the addresses are bindable and reach nothing else). A
connection goes to one of the Service's ready endpoints, chosen in turn, as read from its
Endpoints object; with none ready it is closed at once, as kube-proxy rejects it.

DNS: a process the agent runs for a pod (the real Open WebUI) gets its own /etc/hosts and
/etc/resolv.conf, bind-mounted in a private mount namespace. The hosts file names every Service as
`<svc>.<ns>.svc.cluster.local`, `<svc>.<ns>.svc`, `<svc>.<ns>`, and those of the pod's own
namespace also by their bare name, as the search path of a pod's resolv.conf would. The resolver
it names is an address of the pod network nobody listens on, so every other name fails at once:
nothing the process looks up is asked of the machine's real resolver, so nothing leaves the machine.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from icc_sandbox.tcp_relay import Backend, Relay

log = logging.getLogger("service-network")

JSON = dict[str, Any]
CLUSTER_DOMAIN = "cluster.local"


def service_range(pod_network: str) -> str:
    """The Service range inside a pod network: its first /20 (pod IPs start after it)."""
    network = ipaddress.ip_network(pod_network)
    return str(next(network.subnets(new_prefix=20)))


def dead_resolver(pod_network: str) -> str:
    """An address of the pod network's last 256, which no pod and no Service gets: a resolver
    that fails every query at once (the kernel refuses UDP to a local address nobody binds)."""
    return str(ipaddress.ip_network(pod_network).broadcast_address - 53)


# --- what the Services ask for (pure) -----------------------------------------------------------


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    service: str
    cluster_ip: str
    port: int
    backends: tuple[Backend, ...]


def service_ports(services: Iterable[JSON], endpoints: Iterable[JSON]) -> list[ServicePort]:
    """Each TCP port of each Service with a ClusterIP, with its ready endpoints (address, port)."""
    by_name = {
        (e["metadata"]["namespace"], e["metadata"]["name"]): e.get("subsets") or []
        for e in endpoints
    }
    ports = []
    for service in services:
        meta, spec = service["metadata"], service.get("spec", {})
        cluster_ip = spec.get("clusterIP")
        if not cluster_ip or cluster_ip == "None":
            continue
        subsets = by_name.get((meta["namespace"], meta["name"]), [])
        for port in spec.get("ports", []):
            if port.get("protocol", "TCP") != "TCP":
                continue
            backends = tuple(
                (address["ip"], endpoint_port["port"])
                for subset in subsets
                for endpoint_port in subset.get("ports", [])
                if endpoint_port.get("name") == port.get("name")
                and endpoint_port.get("protocol", "TCP") == "TCP"
                for address in subset.get("addresses", [])  # notReadyAddresses get no traffic
            )
            ports.append(
                ServicePort(meta["namespace"], meta["name"], cluster_ip, port["port"], backends)
            )
    return ports


def hosts_file(namespace: str, services: Iterable[JSON]) -> str:
    """The /etc/hosts a pod of `namespace` sees: every Service by its DNS names."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    for service in sorted(
        services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])
    ):
        meta = service["metadata"]
        cluster_ip = service.get("spec", {}).get("clusterIP")
        if not cluster_ip or cluster_ip == "None":
            continue
        name, ns = meta["name"], meta["namespace"]
        names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
        if ns == namespace:
            names.append(name)
        lines.append(f"{cluster_ip}\t{' '.join(names)}")
    return "\n".join(lines) + "\n"


def resolv_conf(namespace: str, nameserver: str) -> str:
    """A pod's resolv.conf (search path as the kubelet writes it) naming a resolver that fails."""
    search = f"{namespace}.svc.{CLUSTER_DOMAIN} svc.{CLUSTER_DOMAIN} {CLUSTER_DOMAIN}"
    return f"nameserver {nameserver}\nsearch {search}\noptions ndots:5 attempts:1 timeout:1\n"


def write_in_place(path: Path, text: str) -> None:
    """Rewrites a file keeping its inode: a bind mount of it shows the new text at once."""
    if path.exists() and path.read_text() == text:
        return
    with path.open("a+") as handle:
        handle.seek(0)
        handle.truncate()
        handle.write(text)


# --- the proxy ----------------------------------------------------------------------------------


class ServiceNetwork:
    """kube-proxy and DNS files for the sandbox; `sync` with the API's Services and Endpoints."""

    def __init__(self, pod_network: str, dns_dir: Path, api_server: Backend | None = None) -> None:
        self.pod_network = pod_network
        self.dns_dir = dns_dir
        # The API server, behind default/kubernetes: it advertises 127.0.0.1, which Endpoints
        # may not hold, so that Service has none; a pod's in-cluster client reaches it here.
        self.api_server = api_server
        dns_dir.mkdir(parents=True, exist_ok=True)
        self.listeners: dict[tuple[str, int], Relay] = {}
        self.services: list[JSON] = []

    def sync(self, services: list[JSON], endpoints: list[JSON]) -> None:
        self.services = services
        wanted = {(p.cluster_ip, p.port): p for p in service_ports(services, endpoints)}
        for key, port in wanted.items():
            if (port.namespace, port.service) == ("default", "kubernetes") and self.api_server:
                wanted[key] = dataclasses.replace(port, backends=(self.api_server,))
        for key in [k for k in self.listeners if k not in wanted]:
            self.listeners.pop(key).close()
        for key, port in wanted.items():
            listener = self.listeners.get(key)
            if listener is None:
                try:
                    listener = self.listeners[key] = Relay(key)
                except OSError as error:
                    log.warning(
                        "no listener for %s/%s on %s:%d: %s",
                        port.namespace,
                        port.service,
                        *key,
                        error,
                    )
                    continue
            listener.backends = port.backends
        for namespace in {path.name for path in self.dns_dir.iterdir() if path.is_dir()}:
            self._write(namespace)

    def dns_files(self, namespace: str) -> tuple[Path, Path]:
        """(hosts, resolv.conf) for pods of `namespace`, kept current by `sync`."""
        self._write(namespace)
        directory = self.dns_dir / namespace
        return directory / "hosts", directory / "resolv.conf"

    def _write(self, namespace: str) -> None:
        directory = self.dns_dir / namespace
        directory.mkdir(parents=True, exist_ok=True)
        write_in_place(directory / "hosts", hosts_file(namespace, self.services))
        write_in_place(
            directory / "resolv.conf", resolv_conf(namespace, dead_resolver(self.pod_network))
        )

    def close(self) -> None:
        for listener in self.listeners.values():
            listener.close()
        self.listeners.clear()

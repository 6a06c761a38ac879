"""The simulated ICC nodes as every part of the sandbox shares them: a node's spec (from
nodes.yml), the address a pod gets on it, the agent's timing, and the API's time stamps.

The node agent, its kubelets and the real Open WebUI's runtime all read these; this module
imports none of them.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from icc_sandbox.service_network import service_range

JSON = dict[str, Any]
GPU_RESOURCE = "nvidia.com/gpu"


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


def load_nodes(path: Path, pod_network: str | None = None) -> list[NodeSpec]:
    entries = yaml.safe_load(path.read_text())["nodes"]
    return [NodeSpec(index=i, pod_network=pod_network, **entry) for i, entry in enumerate(entries)]


def iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(int(ts), datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> float:
    return (
        datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
        .replace(tzinfo=datetime.UTC)
        .timestamp()
    )

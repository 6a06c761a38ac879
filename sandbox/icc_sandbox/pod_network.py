"""A pod network that never leaves the machine: a private /16 routed `local` on the loopback device.

The API server refuses to proxy to loopback addresses ("address not allowed") and Endpoints may
not hold them, so pods need addresses of a private range. `ip route add local <range> dev lo`
puts the whole range into the kernel's `local` routing table: every address in it is bindable
and is delivered to this host itself, like 127.0.0.0/8, and nothing is sent to a gateway or an
interface. Each sandbox claims a /16 nobody routes yet (the route's creation is the atomic
claim: a second `ip route add` of the same prefix fails) and removes exactly that route at stop.

Needs root (CAP_NET_ADMIN) and iproute2; without them the sandbox keeps loopback pod IPs.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Iterable

# Candidates: 10.200.0.0/16 .. 10.249.0.0/16, away from the sandbox's service range 10.96.0.0/16
# and from the 10.0-10.1 ranges many networks use.
CANDIDATES = tuple(ipaddress.ip_network(f"10.{second}.0.0/16") for second in range(200, 250))
SERVICE_RANGE = ipaddress.ip_network("10.96.0.0/16")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class NoPodNetwork(RuntimeError):
    """Why this machine gives the sandbox no pod network (the sandbox then uses loopback)."""


def routed_networks(routes: Iterable[dict]) -> list[Network]:
    """The destinations of `ip -json route show table all`, as networks (default routes aside)."""
    networks = []
    for route in routes:
        dst = route.get("dst", "")
        if not dst or dst == "default":
            continue
        try:
            networks.append(ipaddress.ip_network(dst, strict=False))
        except ValueError:
            continue
    return networks


def free_candidates(taken: Iterable[Network]) -> list[ipaddress.IPv4Network]:
    """The candidate ranges that overlap no route of the machine and not the service range."""
    taken = [n for n in taken if n.version == 4] + [SERVICE_RANGE]
    return [c for c in CANDIDATES if not any(c.overlaps(n) for n in taken)]


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False)


def claim() -> str:
    """Adds a `local` route for a free candidate range and returns it, e.g. "10.201.0.0/16"."""
    if os.geteuid() != 0:
        raise NoPodNetwork("not running as root: adding a local route needs CAP_NET_ADMIN")
    if shutil.which("ip") is None:
        raise NoPodNetwork("the `ip` command (Debian package iproute2) is not installed")
    shown = _ip("-json", "route", "show", "table", "all")
    if shown.returncode != 0:
        raise NoPodNetwork(f"`ip route show` failed: {shown.stderr.strip()}")
    last_error = "no free 10.x.0.0/16 range among the candidates"
    for candidate in free_candidates(routed_networks(json.loads(shown.stdout or "[]"))):
        added = _ip("route", "add", "local", str(candidate), "dev", "lo")
        if added.returncode == 0:
            return str(candidate)
        last_error = added.stderr.strip()  # taken meanwhile by another sandbox: try the next
    raise NoPodNetwork(last_error)


def release(network: str) -> None:
    """Removes the route `claim` added (only that prefix, only as a `local` route on lo)."""
    _ip("route", "del", "local", network, "dev", "lo")


def is_local_route(network: str) -> bool:
    """True when the machine routes exactly this prefix `local` on the loopback device."""
    shown = _ip("-json", "route", "show", "table", "local", "type", "local", "dev", "lo")
    if shown.returncode != 0:
        return False
    return any(route.get("dst") == network for route in json.loads(shown.stdout or "[]"))

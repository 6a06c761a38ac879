# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The way the API smoke test (haw.icc.tgi_api_test) reaches TGI: a base URL given by the user
(url_problem, join_url), or a port-forward to the pod behind the Service (target_port maps the
Service's port to the pod's as kubectl does; forward_refused says why none opened and what
to do). The checks of what comes back are api_checks'.

Pure functions: no Ansible, no I/O.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import is_base_url

# The rights a port-forward of the Python client needs: it is a WebSocket GET, which the API
# server authorizes as "get" (from Kubernetes 1.30 on also as "create", as kubectl's POST).
PORT_FORWARD_RIGHTS = "get and create on pods/portforward"


# --- URLs --------------------------------------------------------------------------------------


def url_problem(variable: str, url: str) -> str | None:
    """What is wrong with a base URL given in `variable`, or None."""
    if is_base_url(url):
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{variable} must be an http:// or https:// URL with a host, not {url!r}"
    if parts.query or parts.fragment:
        return f"{variable} must be a base URL without a query or fragment, not {url!r}"
    return f"{variable} has an invalid port: {url!r}"


def join_url(base: str, path: str) -> str:
    """`path` (starting with /) below a base URL that may carry a path prefix."""
    return base.rstrip("/") + path


# --- the port-forward --------------------------------------------------------------------------


def target_port(service: dict[str, Any], port: int, pod: dict[str, Any]) -> int:
    """The pod's port behind port `port` of `service` (both as the API returns them, as dicts),
    as kubectl port-forward svc/... maps it: the Service port's targetPort, a number or the
    name of a container port; ValueError saying what does not match."""
    name = (service.get("metadata") or {}).get("name")
    spec_ports = (service.get("spec") or {}).get("ports") or []
    found = next((p for p in spec_ports if p.get("port") == port), None)
    if found is None:
        listed = ", ".join(str(p.get("port")) for p in spec_ports) or "none"
        raise ValueError(f"Service {name} has no port {port} (it has {listed})")
    target = found.get("targetPort")
    if target is None or target == "":
        return port
    if isinstance(target, int) or str(target).isdigit():
        return int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for declared in container.get("ports") or []:
            if declared.get("name") == target:
                return int(declared["containerPort"])
    pod_name = (pod.get("metadata") or {}).get("name")
    raise ValueError(
        f"Service {name} port {port} targets the port named {target!r}, "
        f"which no container of pod {pod_name} declares"
    )


def forward_refused(pod: str, status: int | None, message: str, variable: str) -> str:
    """Why no port-forward to `pod` opened (the API server's status and message), with the
    right it needs and the way that needs none."""
    instead = (
        f"or test through the API server's service proxy with -e {variable}=proxy "
        "(no key reaches TGI there: the keyed checks are skipped)"
    )
    if status == 403:
        return (
            f"the port-forward to pod {pod} is forbidden: {message}. It needs "
            f"{PORT_FORWARD_RIGHTS} in the namespace (RBAC; rbac/haw-icc-deployer.yml grants "
            f"it): ask for it, {instead}"
        )
    said = f"{status}: {message}" if status else message
    return f"no port-forward to pod {pod} ({said}); {instead}"

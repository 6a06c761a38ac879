# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The few typed-client calls the waits, the capacity check and the Lease make, without the
typed client.

kubernetes 37's CoreV1Api and AppsV1Api modules build some 300 pydantic models when imported:
about a second of CPU in every process that touches them, for every namespace of a course.
The collection reads their answers as JSON anyway (`_preload_content=False`), so these classes
offer the same method names and arguments, send the same requests through the library's
ApiClient (its auth, TLS and proxy handling) and answer the same raw response; errors are the
library's ApiException. Callers and their unit tests' fakes stay as they were.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

try:
    from kubernetes.client.exceptions import ApiException
except ImportError:  # pragma: no cover - the collection requires the library
    ApiException = Exception

# The keyword arguments of the typed methods that are query parameters, by their API name.
QUERY = {
    "label_selector": "labelSelector",
    "field_selector": "fieldSelector",
    "field_manager": "fieldManager",
    "dry_run": "dryRun",
    "limit": "limit",
    "container": "container",
    "previous": "previous",
    "tail_lines": "tailLines",
    "timestamps": "timestamps",
    "since_seconds": "sinceSeconds",
}


class LightApi:
    """Sends one request the way the typed client would; the raw response, read."""

    def __init__(self, api_client: Any) -> None:
        self.api_client = api_client

    def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str | None = None,
        query: list[tuple[str, str]] | None = None,
        **kwargs: Any,
    ) -> Any:
        """The response, read; an ApiException for an answer that is not 2xx. `query` is given
        as the API names it; the typed methods' keyword arguments are translated (QUERY)."""
        query = list(query or []) + [
            (QUERY[k], _text(v)) for k, v in kwargs.items() if k in QUERY and v is not None
        ]
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        method, url, headers, _body, _post = self.api_client.param_serialize(
            method=method,
            resource_path=path,
            query_params=query,
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method,
            url,
            header_params=headers,
            body=body,
            _request_timeout=kwargs.get("_request_timeout"),
        )
        response.read()
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return response


def _text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _namespaced(group: str, namespace: str, plural: str, name: str = "") -> str:
    path = f"{group}/namespaces/{quote(namespace)}/{plural}"
    return f"{path}/{quote(name)}" if name else path


class CoreApi(LightApi):
    """CoreV1Api's reads that the waits and the capacity check make."""

    def list_node(self, **kwargs: Any) -> Any:
        return self.send("GET", "/api/v1/nodes", **kwargs)

    def list_pod_for_all_namespaces(self, **kwargs: Any) -> Any:
        return self.send("GET", "/api/v1/pods", **kwargs)

    def list_namespaced_pod(self, namespace: str, **kwargs: Any) -> Any:
        return self.send("GET", _namespaced("/api/v1", namespace, "pods"), **kwargs)

    def list_namespaced_event(self, namespace: str, **kwargs: Any) -> Any:
        return self.send("GET", _namespaced("/api/v1", namespace, "events"), **kwargs)

    def list_namespaced_resource_quota(self, namespace: str, **kwargs: Any) -> Any:
        return self.send("GET", _namespaced("/api/v1", namespace, "resourcequotas"), **kwargs)


class AppsApi(LightApi):
    """AppsV1Api's calls on Deployments and ReplicaSets."""

    def read_namespaced_deployment(self, name: str, namespace: str, **kwargs: Any) -> Any:
        path = _namespaced("/apis/apps/v1", namespace, "deployments", name)
        return self.send("GET", path, **kwargs)

    def patch_namespaced_deployment(
        self, name: str, namespace: str, body: Any, **kwargs: Any
    ) -> Any:
        # As the typed client: a list is a JSON patch, a mapping a strategic merge patch (the
        # library's REST client serializes either).
        content_type = (
            "application/json-patch+json"
            if isinstance(body, list)
            else "application/strategic-merge-patch+json"
        )
        path = _namespaced("/apis/apps/v1", namespace, "deployments", name)
        return self.send("PATCH", path, body, content_type, **kwargs)

    def list_namespaced_replica_set(self, namespace: str, **kwargs: Any) -> Any:
        return self.send("GET", _namespaced("/apis/apps/v1", namespace, "replicasets"), **kwargs)


class CoordinationApi(LightApi):
    """CoordinationV1Api's calls on one Lease."""

    GROUP = "/apis/coordination.k8s.io/v1"

    def read_namespaced_lease(self, name: str, namespace: str, **kwargs: Any) -> Any:
        return self.send("GET", _namespaced(self.GROUP, namespace, "leases", name), **kwargs)

    def create_namespaced_lease(self, namespace: str, body: Any, **kwargs: Any) -> Any:
        return self.send("POST", _namespaced(self.GROUP, namespace, "leases"), body, **kwargs)

    def replace_namespaced_lease(self, name: str, namespace: str, body: Any, **kwargs: Any) -> Any:
        path = _namespaced(self.GROUP, namespace, "leases", name)
        return self.send("PUT", path, body, **kwargs)

    def delete_namespaced_lease(
        self, name: str, namespace: str, body: Any = None, **kwargs: Any
    ) -> Any:
        path = _namespaced(self.GROUP, namespace, "leases", name)
        return self.send("DELETE", path, body, **kwargs)

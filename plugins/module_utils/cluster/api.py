# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The one way the collection talks to the Kubernetes API: `ClusterApi`, over the ApiClient that
kubernetes.core's `get_api_client` makes (module_utils/cluster/connection.py).

Every request goes through `ClusterApi.send`: reads, writes, server-side apply, the Lease, the
service proxy, and the WebSocket streams (exec, port-forward) through the same ApiClient, with
its auth, TLS and proxy handling. Objects are plain JSON dicts: kubernetes 37's typed APIs
(CoreV1Api, AppsV1Api...) build some 300 pydantic models when imported, about a second of CPU
in every process that touches them, for every namespace of a course.

Every failure is an `ApiError` (`NoAnswer` when nothing answered), worded in one place
(errors.py). `ClusterApi.now()` is the API server's clock, read from the Date header of each
answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Callable, Mapping  # noqa: UP035 - modules may run on older Pythons
from urllib.parse import quote

from ansible_collections.haw.icc.plugins.module_utils.cluster.errors import (
    ApiError,
    NoAnswer,
    api_error,
    translated,
)

try:
    from kubernetes.client.exceptions import ApiException
    from kubernetes.stream import ws_client  # imported by `import kubernetes` anyway
except ImportError:  # pragma: no cover - the collection requires them; ansible-test imports this
    ApiException = OSError

# Connect and read timeouts (seconds) of every request the collection sends.
REQUEST_TIMEOUT = (10, 30)
JSON = "application/json"
APPLY = "application/apply-patch+yaml"
PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
}
# Exec's status channel: the command's exit code is the cause with this reason.
EXIT_CODE = "ExitCode"


# --- paths ----------------------------------------------------------------------------------------


def resource_path(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    """The API path of a collection or an object: ("apps/v1", "deployments", "ns", "tgi") is
    /apis/apps/v1/namespaces/ns/deployments/tgi; the core group ("v1") lives under /api."""
    path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespace:
        path += f"/namespaces/{quote(namespace)}"
    path += f"/{plural}"
    if name:
        path += f"/{quote(name)}"
    return f"{path}/{subresource}" if subresource else path


def proxy_path(namespace: str, service: str, port: int | str, path: str) -> str:
    """The API server's proxy path to `path` (starting with /) on a Service's port."""
    return f"/api/v1/namespaces/{quote(namespace)}/services/{quote(service)}:{port}/proxy{path}"


# --- answers --------------------------------------------------------------------------------------


@dataclass
class Response:
    """An answer as it came: status, body and headers."""

    status: int
    data: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.data) if self.data else {}


@dataclass
class ExecResult:
    """What a command run through exec printed, and its status channel (a metav1.Status in
    JSON; empty when none came)."""

    stdout: str
    stderr: str
    status: str = ""

    def _answer(self) -> dict[str, Any] | None:
        try:
            answer = json.loads(self.status) if self.status else None
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    @property
    def failure(self) -> str | None:
        """Why the command failed, None for success (or when no status came)."""
        if not self.status:
            return None
        answer = self._answer()
        if answer is None:
            return self.status.strip()
        if answer.get("status") == "Success":
            return None
        return str(answer.get("message") or answer.get("reason") or self.status).strip()

    @property
    def code(self) -> int:
        """The exit code: 0 for success, the command's own, -1 when it did not run (or no
        status came)."""
        answer = self._answer() or {}
        if answer.get("status") == "Success":
            return 0
        for cause in (answer.get("details") or {}).get("causes") or []:
            if cause.get("reason") == EXIT_CODE:
                try:
                    return int(cause.get("message"))
                except (TypeError, ValueError):
                    break
        return -1


# --- the layer ------------------------------------------------------------------------------------


def _query(query: Mapping[str, Any] | list[tuple[str, Any]] | None) -> list[tuple[str, str]]:
    items = query.items() if isinstance(query, Mapping) else (query or [])
    return [
        (name, str(value).lower() if isinstance(value, bool) else str(value))
        for name, value in items
        if value is not None
    ]


class ClusterApi:
    """Requests to one cluster through a kubernetes ApiClient; the API server's clock."""

    def __init__(
        self, api_client: Any, first_contact: Callable[[ApiError], Exception] | None = None
    ) -> None:
        self.client = api_client
        self.skew = timedelta(0)  # the API server's clock minus ours
        # Until the server first answers: the error to raise instead when it cannot be reached
        # or refuses the credentials (401), so that a task's first request says so as a
        # connection check would, without a request of its own.
        self._first_contact = first_contact

    @property
    def server(self) -> str:
        return self.client.configuration.host

    def now(self) -> datetime:
        """The API server's time, as far as its last answer told."""
        return datetime.now(timezone.utc) + self.skew  # noqa: UP017

    def _note_clock(self, headers: Any) -> None:
        try:
            said = parsedate_to_datetime((headers or {})["Date"])
        except (KeyError, TypeError, ValueError):
            return
        self.skew = said - datetime.now(timezone.utc)  # noqa: UP017

    def _serialize(
        self, method: str, path: str, query: Any, headers: dict[str, str]
    ) -> tuple[str, str, dict[str, str]]:
        method, url, headers, _body, _post = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=_query(query),
            header_params=headers,
            auth_settings=["BearerToken"],
        )
        return method, url, headers

    def send(
        self,
        method: str,
        path: str,
        query: Any = None,
        body: Any = None,
        content_type: str = JSON,
        accept: str = JSON,
        timeout: Any = REQUEST_TIMEOUT,
    ) -> Response:
        """One request, its answer whatever the status; NoAnswer when none came."""
        headers = {"Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
            if content_type == APPLY:  # sent as its text: the library serializes only JSON
                body = json.dumps(body)
        first_contact, self._first_contact = self._first_contact, None
        try:
            with translated(self.server):
                method, url, headers = self._serialize(method, path, query, headers)
                answer = self.client.call_api(
                    method, url, header_params=headers, body=body, _request_timeout=timeout
                )
                answer.read()
        except NoAnswer as error:
            self._first_contact = first_contact
            if first_contact is None:
                raise
            raise first_contact(error) from error
        self._note_clock(answer.headers)
        response = Response(answer.status, answer.data or b"", answer.headers or {}, answer.reason)
        if first_contact is not None and response.status == 401:
            refused = self.refusal(response)
            raise first_contact(refused) from refused
        return response

    def refusal(self, response: Response) -> ApiError:
        """The ApiError for an answer that is not 2xx."""
        refused = ApiException(status=response.status, reason=response.reason)
        refused.body = response.data.decode("utf-8", errors="replace")
        return api_error(refused, self.server)

    def request(self, method: str, path: str, **options: Any) -> Response:
        """send(), and an ApiError for an answer that is not 2xx."""
        response = self.send(method, path, **options)
        if not response.ok:
            raise self.refusal(response)
        return response

    # -- objects, as JSON --

    def get(self, path: str, query: Any = None, missing_ok: bool = False) -> Any:
        """The object (or list) at `path`; None for a missing one when `missing_ok`."""
        try:
            return self.request("GET", path, query=query).json()
        except ApiError as error:
            if missing_ok and error.status == 404:
                return None
            raise

    def list(self, path: str, query: Any = None) -> list[dict[str, Any]]:
        """The items of a list."""
        return self.get(path, query).get("items") or []

    def text(self, path: str, query: Any = None) -> str:
        """A plain-text answer (a container's log)."""
        response = self.request("GET", path, query=query, accept="*/*")
        return response.data.decode("utf-8", errors="replace")

    def create(self, path: str, body: dict[str, Any], query: Any = None) -> Any:
        """POST: a new object, or a review (SelfSubjectAccessReview...) with its answer."""
        return self.request("POST", path, query=query, body=body).json()

    def replace(self, path: str, body: dict[str, Any], query: Any = None) -> Any:
        return self.request("PUT", path, query=query, body=body).json()

    def patch(self, path: str, body: Any, patch_type: str = "strategic", query: Any = None) -> Any:
        """A JSON patch (a list of operations), a merge or a strategic merge patch."""
        response = self.request(
            "PATCH", path, query=query, body=body, content_type=PATCH_TYPES[patch_type]
        )
        return response.json()

    def apply(self, path: str, body: dict[str, Any], manager: str, dry_run: bool = False) -> Any:
        """Server-side apply with `manager`, taking over its fields from other managers."""
        query = {"fieldManager": manager, "force": True, "dryRun": "All" if dry_run else None}
        return self.request("PATCH", path, query=query, body=body, content_type=APPLY).json()

    def delete(self, path: str, body: dict[str, Any] | None = None, query: Any = None) -> Any:
        return self.request("DELETE", path, query=query, body=body).json()

    def version(self) -> dict[str, Any]:
        """The API server's /version (gitVersion, ...)."""
        return self.get("/version")

    # -- the service proxy and the streams --

    def proxy(
        self,
        method: str,
        namespace: str,
        service: str,
        port: int | str,
        path: str,
        body: dict[str, Any] | None = None,
        timeout: Any = REQUEST_TIMEOUT,
    ) -> Response:
        """A request to a Service's port through the API server's proxy, its answer whatever the
        status (the Service's own, or the API server's when it could not reach it)."""
        return self.send(
            method, proxy_path(namespace, service, port, path), body=body, accept="*/*",
            timeout=timeout,
        )  # fmt: skip

    def _websocket_url(self, path: str, query: Any) -> tuple[str, dict[str, str]]:
        _method, url, headers = self._serialize("GET", path, query, {"Accept": "*/*"})
        return url, headers

    def exec(
        self, namespace: str, pod: str, command: list[str], container: str, timeout: float
    ) -> ExecResult:
        """Runs `command` in a container through the API server (pods/exec, a WebSocket), until
        it ends or `timeout` seconds passed."""
        query = [("command", part) for part in command] + [
            ("container", container),
            ("stdin", False),
            ("stdout", True),
            ("stderr", True),
            ("tty", False),
        ]
        with translated(self.server):
            url, headers = self._websocket_url(
                resource_path("v1", "pods", namespace, pod, "exec"), query
            )
            stream = ws_client.websocket_call(
                self.client.configuration, "GET", url, headers=headers, _preload_content=False
            )
            try:
                stream.run_forever(timeout=timeout)
                return ExecResult(
                    stream.read_stdout(), stream.read_stderr(), stream.read_channel(3)
                )
            finally:
                stream.close()

    def port_forward(self, namespace: str, pod: str, port: int) -> Any:
        """A forward to `pod`'s `port` (pods/portforward, a WebSocket): the library's PortForward,
        whose socket(port) carries the bytes and error(port) the node's reason for a failure."""
        path = resource_path("v1", "pods", namespace, pod, "portforward")
        with translated(self.server):
            url, headers = self._websocket_url(path, {"ports": port})
            return ws_client.portforward_call(
                self.client.configuration, "GET", url, headers=headers
            )

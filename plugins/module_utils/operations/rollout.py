# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Reading and patching Deployments, for the collection's action plugins.

`RolloutWatcher` reads what a rollout looks like (the Deployment, its ReplicaSets, pods and
events) and sends JSON patches; `undo_rollout` puts the revision before the newest back, as
`kubectl rollout undo` does. The client comes from module_utils/cluster/connection.py.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import AppsApi, CoreApi
from ansible_collections.haw.icc.plugins.module_utils.cluster.connection import (
    REQUEST_TIMEOUT,
    api_message,
    connection_reason,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import label_selector
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import (
    RolloutProgress,
    describe_rollout,
    previous_revision,
)

try:
    import urllib3
    from kubernetes import client as k8s_client
except ImportError:  # the action plugins get their client from cluster_access, which says so
    pass

FIELD_MANAGER = "haw.icc"  # the roles' server-side apply uses the same manager


class ApiProblem(Exception):
    """An API call failed; `fatal` when waiting longer cannot help (404, 401, 403)."""

    def __init__(self, message: str, fatal: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.fatal = fatal
        self.status = status


class RolloutWatcher:
    """Reads what describe_rollout needs, one round per poll, and patches Deployments."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.apps = AppsApi(api)
        self.core = CoreApi(api)
        self.skew = timedelta(0)  # the API server's clock minus ours
        self.warnings: list[str] = []
        self.replicasets: dict[str, str] = {}  # Deployment name -> its newest ReplicaSet seen
        self._denied: set[str] = set()

    @property
    def server(self) -> str:
        return self.api.configuration.host

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.skew  # noqa: UP017

    def _call(self, what: str, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs
            )
        except k8s_client.ApiException as error:
            if error.status == 401:
                raise ApiProblem(
                    f"the API server at {self.server} rejected the credentials (401 "
                    "Unauthorized): the token is wrong or has expired; download a new "
                    "kubeconfig",
                    fatal=True,
                ) from error
            if error.status in (403, 404):
                raise ApiProblem(api_message(error), True, error.status) from error
            raise ApiProblem(f"{what}: {api_message(error)}", False, error.status) from error
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise ApiProblem(
                f"cannot reach the Kubernetes API at {self.server}: {connection_reason(error)}",
                fatal=False,
            ) from error
        self._note_clock(response)
        return json.loads(response.data or b"{}")

    def _note_clock(self, response: Any) -> None:
        date = (getattr(response, "headers", None) or {}).get("Date")
        if not date:
            return
        try:
            server_time = parsedate_to_datetime(date)
        except (TypeError, ValueError):
            return
        self.skew = server_time - datetime.now(timezone.utc)  # noqa: UP017

    def _optional_list(self, what: str, method: Any, **kwargs: Any) -> list[dict[str, Any]]:
        """A list call that may be forbidden under namespace RBAC: then nothing, with a warning."""
        try:
            return self._call(what, method, self.namespace, **kwargs).get("items") or []
        except ApiProblem as problem:
            if problem.status != 403:
                raise
            if what not in self._denied:
                self._denied.add(what)
                self.warnings.append(
                    f"cannot list {what} in namespace {self.namespace} ({problem}); progress "
                    "lines show less detail"
                )
            return []

    def events(self) -> list[dict[str, Any]]:
        return self._optional_list(
            "events",
            self.core.list_namespaced_event,
            field_selector="involvedObject.kind=Pod,type=Warning",
        )

    def deployment(self, name: str) -> dict[str, Any]:
        try:
            return self._call(
                f"Deployment {name}", self.apps.read_namespaced_deployment, name, self.namespace
            )
        except ApiProblem as problem:
            if problem.status == 404:
                message = f"Deployment {name} not found in namespace {self.namespace}"
            elif problem.status == 403:
                message = f"cannot read Deployment {name} in namespace {self.namespace}: {problem}"
            else:
                raise
            raise ApiProblem(message, True, problem.status) from problem

    def patch_deployment(
        self, name: str, patch: list[dict[str, Any]], field_manager: str, dry_run: bool = False
    ) -> dict[str, Any]:
        """Sends a JSON patch (a list of operations); the Deployment as the server stored it.

        With `dry_run` the server runs every stage (admission, validation) but stores nothing.
        """
        options: dict[str, Any] = {"field_manager": field_manager}
        if dry_run:
            options["dry_run"] = "All"
        # A list body makes the client send application/json-patch+json (old and new clients).
        return self._call(
            f"patching Deployment {name}",
            self.apps.patch_namespaced_deployment,
            name,
            self.namespace,
            patch,
            **options,
        )

    def list_replicasets(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        return self._optional_list(
            "replicasets", self.apps.list_namespaced_replica_set, label_selector=selector
        )

    def rollout(
        self, deployment: dict[str, Any], events: list[dict[str, Any]], grace: float
    ) -> RolloutProgress:
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        replicasets = self.list_replicasets(deployment)
        pods = self._optional_list("pods", self.core.list_namespaced_pod, label_selector=selector)
        progress = describe_rollout(deployment, replicasets, pods, events, self.now(), grace)
        if progress.replicaset:
            self.replicasets[progress.name] = progress.replicaset
        return progress


def undo_rollout(watcher: RolloutWatcher, name: str) -> tuple[int, int | None]:
    """Puts the revision before Deployment `name`'s newest one back, as `kubectl rollout undo`
    does: its pod template is written to the Deployment, and the controller scales its
    ReplicaSet up again. Returns (that revision, the generation the write made).

    The write tests the resourceVersion read, so a change made meanwhile is never overwritten.
    Raises ApiProblem saying why when there is no earlier revision or it cannot be written.
    """
    deployment = watcher.deployment(name)
    found = previous_revision(deployment, watcher.list_replicasets(deployment))
    if found is None:
        raise ApiProblem(
            f"Deployment {name} has no earlier revision to go back to (or its ReplicaSets "
            "cannot be listed)",
            fatal=True,
        )
    revision, template = found
    version = (deployment.get("metadata") or {}).get("resourceVersion") or ""
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "replace", "path": "/spec/template", "value": template},
    ]
    patched = watcher.patch_deployment(name, patch, FIELD_MANAGER)
    return revision, (patched.get("metadata") or {}).get("generation")

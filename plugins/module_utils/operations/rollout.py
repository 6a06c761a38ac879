# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Reading and patching Deployments, for the collection's action plugins.

`RolloutWatcher` reads what a rollout looks like (the Deployment, its ReplicaSets, pods and
events) and sends JSON patches, through ClusterApi (module_utils/cluster/api.py), whose clock
ages the pods; `undo_rollout` puts the revision before the newest back, as
`kubectl rollout undo` does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import (
    ApiError,
    ClusterApi,
    resource_path,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.errors import NoAnswer
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import label_selector
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import (
    RolloutProgress,
    describe_rollout,
    previous_revision,
)

FIELD_MANAGER = "haw.icc"  # the roles' server-side apply uses the same manager


class RolloutWatcher:
    """Reads what describe_rollout needs, one round per poll, and patches Deployments.

    Every failure is an ApiError worded for the wait: `lasting` (401, 403, 404) ends it.
    """

    def __init__(self, api: ClusterApi, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.warnings: list[str] = []
        self.replicasets: dict[str, str] = {}  # Deployment name -> its newest ReplicaSet seen
        self._denied: set[str] = set()

    def _path(self, api_version: str, plural: str, name: str | None = None) -> str:
        return resource_path(api_version, plural, self.namespace, name)

    def _call(self, what: str, method: str, path: str, **options: Any) -> Any:
        try:
            if method == "PATCH":
                return self.api.patch(path, options["body"], "json", options.get("query"))
            return self.api.get(path, options.get("query"))
        except NoAnswer as error:
            raise NoAnswer(
                f"cannot reach the cluster at {error.server} ({error.said})",
                said=error.said,
                server=error.server,
            ) from error
        except ApiError as error:
            if error.status == 401:
                raise ApiError(
                    f"the API server at {self.api.server} rejected the credentials (401 "
                    "Unauthorized): the token is wrong or has expired; download a new "
                    "kubeconfig",
                    401,
                    error.said,
                ) from error
            if error.lasting:
                raise
            raise ApiError(f"{what}: {error.said}", error.status, error.said) from error

    def now(self) -> datetime:
        """The API server's time (the rollout's ages are counted on its clock)."""
        return self.api.now()

    def _optional_list(
        self, what: str, plural: str, api_version: str = "v1", **query: Any
    ) -> list[dict[str, Any]]:
        """A list call that may be forbidden under namespace RBAC: then nothing, with a warning."""
        try:
            found = self._call(what, "GET", self._path(api_version, plural), query=query)
        except ApiError as problem:
            if problem.status != 403:
                raise
            if what not in self._denied:
                self._denied.add(what)
                self.warnings.append(
                    f"cannot list {what} in namespace {self.namespace} ({problem}); progress "
                    "lines show less detail"
                )
            return []
        return found.get("items") or []

    def events(self) -> list[dict[str, Any]]:
        return self._optional_list(
            "events", "events", fieldSelector="involvedObject.kind=Pod,type=Warning"
        )

    def deployment(self, name: str) -> dict[str, Any]:
        try:
            return self._call(
                f"Deployment {name}", "GET", self._path("apps/v1", "deployments", name)
            )
        except ApiError as problem:
            if problem.status == 404:
                message = f"Deployment {name} not found in namespace {self.namespace}"
            elif problem.status == 403:
                message = f"cannot read Deployment {name} in namespace {self.namespace}: {problem}"
            else:
                raise
            raise ApiError(message, problem.status, problem.said) from problem

    def patch_deployment(
        self, name: str, patch: list[dict[str, Any]], field_manager: str, dry_run: bool = False
    ) -> dict[str, Any]:
        """Sends a JSON patch (a list of operations); the Deployment as the server stored it.

        With `dry_run` the server runs every stage (admission, validation) but stores nothing.
        """
        query = {"fieldManager": field_manager, "dryRun": "All" if dry_run else None}
        return self._call(
            f"patching Deployment {name}",
            "PATCH",
            self._path("apps/v1", "deployments", name),
            body=patch,
            query=query,
        )

    def list_replicasets(self, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        return self._optional_list("replicasets", "replicasets", "apps/v1", labelSelector=selector)

    def rollout(
        self, deployment: dict[str, Any], events: list[dict[str, Any]], grace: float
    ) -> RolloutProgress:
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        replicasets = self.list_replicasets(deployment)
        pods = self._optional_list("pods", "pods", labelSelector=selector)
        progress = describe_rollout(deployment, replicasets, pods, events, self.now(), grace)
        if progress.replicaset:
            self.replicasets[progress.name] = progress.replicaset
        return progress


def undo_rollout(watcher: RolloutWatcher, name: str) -> tuple[int, int | None]:
    """Puts the revision before Deployment `name`'s newest one back, as `kubectl rollout undo`
    does: its pod template is written to the Deployment, and the controller scales its
    ReplicaSet up again. Returns (that revision, the generation the write made).

    The write tests the resourceVersion read, so a change made meanwhile is never overwritten.
    Raises ApiError saying why when there is no earlier revision or it cannot be written.
    """
    deployment = watcher.deployment(name)
    found = previous_revision(deployment, watcher.list_replicasets(deployment))
    if found is None:
        raise ApiError(
            f"Deployment {name} has no earlier revision to go back to (or its ReplicaSets "
            "cannot be listed)"
        )
    revision, template = found
    version = (deployment.get("metadata") or {}).get("resourceVersion") or ""
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "replace", "path": "/spec/template", "value": template},
    ]
    patched = watcher.patch_deployment(name, patch, FIELD_MANAGER)
    return revision, (patched.get("metadata") or {}).get("generation")

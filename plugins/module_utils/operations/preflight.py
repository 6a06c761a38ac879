# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The check before anything is written to a namespace (haw.icc.cluster_preflight): does it
exist (and may it be created), may the user do there what the playbook needs, and would the API
server accept the volumes' sizes.

`check` fills the task's result and returns why the run must stop, or None; requests go through
the ClusterApi it is given and raise ApiError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster import rights
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError, resource_path
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import quantity_value

PURGE_HINT = "remove the volume with its data first (cleanup.yml -e purge=true)"


def _readable(read: Callable[[], Any]) -> tuple[bool, Any]:
    """(True, what `read` returned), or (False, None) when reading it is forbidden (403)."""
    try:
        return True, read()
    except ApiError as error:
        if error.status == 403:
            return False, None
        raise


def namespace_state(api: Any, name: str) -> bool | None:
    """True/False when the namespace could be read, None when reading it is forbidden."""
    allowed, found = _readable(
        lambda: api.get(resource_path("v1", "namespaces", name=name), missing_ok=True)
    )
    return (found is not None) if allowed else None


def storage_class_expands(api: Any, name: str | None) -> bool | None:
    """Whether the StorageClass allows volume expansion; None when it cannot be read."""
    if not name:
        return None
    path = resource_path("storage.k8s.io/v1", "storageclasses", name=name)
    _allowed, found = _readable(lambda: api.get(path, missing_ok=True))
    return None if found is None else bool(found.get("allowVolumeExpansion"))


def volume_problems(
    api: Any, namespace: str, volumes: list[dict[str, Any]], warn: Callable[[str], None]
) -> list[str]:
    """Why the API server would refuse the size of a volume that exists already: a claim never
    shrinks, and grows only where its StorageClass allows expansion."""
    problems = []
    for volume in volumes:
        path = resource_path("v1", "persistentvolumeclaims", namespace, volume["name"])
        # A volume this user may not see (403) has nothing to compare; a missing one is new.
        _allowed, claim = _readable(lambda path=path: api.get(path, missing_ok=True))
        if claim is None:
            continue
        spec = claim.get("spec") or {}
        live = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        wanted, have = quantity_value(volume["size"]), quantity_value(live)
        if wanted is None or have is None or wanted == have:
            continue
        where = f"{volume['variable']}: {volume['size']} for volume {volume['name']}"
        if wanted < have:
            problems.append(
                f"{where}, which has {live}: a volume cannot shrink. Keep {live}, or {PURGE_HINT}"
            )
            continue
        storage_class = spec.get("storageClassName")
        expandable = storage_class_expands(api, storage_class)
        if expandable is False:
            problems.append(
                f"{where}, which has {live}: its StorageClass {storage_class} does not allow "
                f"expansion. Keep {live}, or {PURGE_HINT}"
            )
        elif expandable is None:
            warn(
                f"{where}, which has {live}: whether its StorageClass may grow volumes cannot be "
                "read with these rights; the apply will tell"
            )
    return problems


def needed_for(permissions: list[dict[str, Any]], denied: list[str]) -> str:
    """Why the denied rights are needed: all by one setting the user may leave unset (their
    `needed_for`), or to deploy at all."""
    setting_of = {
        rights.label(*right): permission.get("needed_for")
        for permission in permissions
        for right in rights.needed([permission])
    }
    settings = {setting_of.get(label) for label in denied}
    if len(settings) == 1 and None not in settings:
        setting = settings.pop()
        return (
            f"{setting} needs them (rbac/haw-icc-deployer.yml grants them); without {setting} "
            "the rest deploys."
        )
    return "Deploying needs these rights (on the ICC a student has them in their own namespace)."


def check(
    api: Any,
    credentials: str,
    args: dict[str, Any],
    check_mode: bool,
    result: dict[str, Any],
    warn: Callable[[str], None],
) -> str | None:
    """The namespace of `args` checked with `api` (whose credentials are described by
    `credentials`): fills `result` (namespace_exists, namespace_created, changed, denied,
    volume_problems) and returns why the run must stop, or None. Raises ApiError."""
    namespace = args["namespace"]
    exists = namespace_state(api, namespace)
    result["namespace_exists"] = exists
    if exists is None:
        warn(
            f"Cannot read namespace {namespace} (reading namespaces is cluster-scoped and not "
            "allowed for this user); assuming it exists."
        )
    elif not exists:
        if not args["create_namespace"]:
            return (
                f"Namespace {namespace} does not exist. Ask for it, or set "
                "icc_create_namespace=true if you may create namespaces."
            )
        if not check_mode:
            api.create(
                resource_path("v1", "namespaces"),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
            )
        result.update(changed=True, namespace_created=True)
    result["denied"] = rights.denied(api, namespace, args["permissions"])
    result["volume_problems"] = volume_problems(api, namespace, args["volumes"], warn)
    asked = sum(len(permission.get("verbs", [])) for permission in args["permissions"])
    if result["denied"] and len(result["denied"]) == asked and not result["namespace_exists"]:
        return (
            f"Namespace {namespace} does not exist or is not yours: {credentials} may "
            f"do nothing there. Check icc_namespace (or the inventory host name): on the ICC a "
            "student's namespace is the login without 'inf' plus '-default', like "
            "wabc123-default for infwabc123."
        )
    if result["denied"]:
        return (
            f"Not allowed in namespace {namespace}: {', '.join(result['denied'])}. "
            + needed_for(args["permissions"], result["denied"])
        )
    if result["volume_problems"]:
        return "The API server would refuse these volume sizes:\n" + "\n".join(
            f"- {problem}" for problem in result["volume_problems"]
        )
    return None

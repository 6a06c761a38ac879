# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Server-side apply of a namespace's objects, all in one process, as plain JSON.

The apply_objects and keep_secrets actions use it instead of one kubernetes.core.k8s module
process per object: that process, and the typed client's models it imports (kubernetes 37
builds them with pydantic, most of a second), cost more than the requests. The requests go
through ClusterApi (module_utils/cluster/api.py); its ApiError says what failed.

A present object is first applied as a dry run: only when the outcome differs from the live
object is it applied for real. So a run that changes nothing writes nothing, and every
resourceVersion stays as it was.
"""

from __future__ import annotations

import base64
import copy
import secrets
import string
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError, ClusterApi

# The kinds the collection writes, and where the API keeps them (no discovery round trip).
RESOURCES = {
    ("v1", "Secret"): "/api/v1/namespaces/{namespace}/secrets",
    ("v1", "Service"): "/api/v1/namespaces/{namespace}/services",
    ("v1", "PersistentVolumeClaim"): "/api/v1/namespaces/{namespace}/persistentvolumeclaims",
    ("v1", "ConfigMap"): "/api/v1/namespaces/{namespace}/configmaps",
    ("v1", "ServiceAccount"): "/api/v1/namespaces/{namespace}/serviceaccounts",
    ("rbac.authorization.k8s.io/v1", "Role"): (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/roles"
    ),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): (
        "/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}/rolebindings"
    ),
    ("apps/v1", "Deployment"): "/apis/apps/v1/namespaces/{namespace}/deployments",
    ("networking.k8s.io/v1", "NetworkPolicy"): (
        "/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
    ),
    (
        "networking.k8s.io/v1",
        "Ingress",
    ): "/apis/networking.k8s.io/v1/namespaces/{namespace}/ingresses",
}
# What the server sets on every object and a dry run may report differently: not a change.
# Dependents (a Deployment's ReplicaSets and pods) go before the object itself.
FOREGROUND = {"propagationPolicy": "Foreground"}
SERVER_FIELDS = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp")
# Objects planned side by side (plan_objects).
PLAN_THREADS = 4


class ObjectProblem(ValueError):
    """An object the collection cannot apply (its kind, or a missing name)."""


def object_path(definition: dict[str, Any], namespace: str) -> str:
    """The API path of one object, from its apiVersion, kind and name."""
    key = (definition.get("apiVersion"), definition.get("kind"))
    name = (definition.get("metadata") or {}).get("name")
    if key not in RESOURCES:
        known = ", ".join(f"{kind} ({version})" for version, kind in RESOURCES)
        raise ObjectProblem(f"cannot apply {key[1]} ({key[0]}): the collection applies {known}")
    if not name:
        raise ObjectProblem(f"a {key[1]} without metadata.name")
    return f"{RESOURCES[key].format(namespace=quote(namespace))}/{quote(name)}"


def secret_path(namespace: str, name: str) -> str:
    return object_path(
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}}, namespace
    )


def comparable(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    """The object without status and what the server stamps on every write."""
    if obj is None:
        return None
    kept = copy.deepcopy(obj)
    kept.pop("status", None)
    metadata = kept.get("metadata") or {}
    for name in SERVER_FIELDS:
        metadata.pop(name, None)
    return kept


def describe(definition: dict[str, Any]) -> str:
    return f"{definition.get('kind')}/{(definition.get('metadata') or {}).get('name')}"


@dataclass
class Outcome:
    """What applying one object did (or, in check mode, would do)."""

    kind: str
    name: str
    state: str
    changed: bool
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    resource_version: str = ""
    notes: list[str] = field(default_factory=list)
    # What plan_object read, for carry_out: where the object lives and what to apply.
    path: str = field(default="", repr=False)
    definition: dict[str, Any] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "state": self.state,
            "changed": self.changed,
            "resource_version": self.resource_version,
        }


_UNREAD = object()  # plan_object's `live` when the caller has not read the object


def plan_object(
    api: ClusterApi,
    namespace: str,
    definition: dict[str, Any],
    state: str,
    manager: str,
    live: Any = _UNREAD,
) -> Outcome:
    """What applying (state present) or deleting (state absent) one object would change, from
    the live object (`live`, when the caller has read it already) and the server's dry run of
    the apply; writes nothing. Raises ObjectProblem for a kind the collection does not apply
    and ApiError for a request the API server refused or did not answer."""
    definition = copy.deepcopy(definition)
    definition.setdefault("metadata", {})["namespace"] = namespace
    path = object_path(definition, namespace)
    outcome = Outcome(definition["kind"], definition["metadata"]["name"], state, False)
    outcome.path, outcome.definition = path, definition
    if live is _UNREAD:
        live = api.get(path, missing_ok=True)
    outcome.before = comparable(live)
    outcome.resource_version = (live or {}).get("metadata", {}).get("resourceVersion", "")
    if state == "absent":
        outcome.changed = live is not None
        return outcome
    try:
        planned = api.apply(path, definition, manager, dry_run=True)
    except ApiError as problem:
        # A new RoleBinding to a Role of the same apply: the API server looks the Role up to
        # check that the user holds its rights, and in a dry run it is not there yet. Applied
        # after the Role, for real, it is.
        if not (definition["kind"] == "RoleBinding" and live is None and problem.status == 404):
            raise
        outcome.changed = True
        return outcome
    outcome.after = comparable(planned)
    if not outcome.resource_version:
        outcome.resource_version = planned.get("metadata", {}).get("resourceVersion", "")
    outcome.changed = outcome.after != outcome.before
    return outcome


def carry_out(api: ClusterApi, outcome: Outcome, manager: str, check_mode: bool) -> Outcome:
    """Writes what plan_object found to change (in check mode, a delete is a server dry run and
    an apply is left at the dry run already made). Raises ApiError as plan_object does."""
    if not outcome.changed:
        return outcome
    if outcome.state == "absent":
        api.delete(outcome.path, FOREGROUND, {"dryRun": "All" if check_mode else None})
    elif not check_mode:
        applied = api.apply(outcome.path, outcome.definition, manager, dry_run=False)
        outcome.after = comparable(applied)
        outcome.resource_version = applied.get("metadata", {}).get("resourceVersion", "")
    return outcome


def apply_object(
    api: ClusterApi,
    namespace: str,
    definition: dict[str, Any],
    state: str,
    manager: str,
    check_mode: bool,
    live: Any = _UNREAD,
) -> Outcome:
    """Applies (state present) or deletes (state absent) one object; writes only on a change
    (plan_object, then carry_out). Raises ApiError for a request the API server refused or did
    not answer."""
    return carry_out(
        api, plan_object(api, namespace, definition, state, manager, live), manager, check_mode
    )


def plan_objects(
    api: ClusterApi, namespace: str, wanted: list[tuple[dict[str, Any], str]], manager: str
) -> list[Outcome | Exception]:
    """plan_object for each (definition, state) of `wanted`, in its order: the Outcome, or the
    ObjectProblem or ApiError that stopped it. The first is planned alone (its first request
    stands for the connection check: ClusterApi's first_contact), the others side by side:
    they only read, and each waits on the API server more than it computes."""
    if not wanted:
        return []

    def plan(item: tuple[dict[str, Any], str]) -> Outcome | Exception:
        try:
            return plan_object(api, namespace, item[0], item[1], manager)
        except (ObjectProblem, ApiError) as problem:
            return problem

    first = plan(wanted[0])
    if isinstance(first, Exception) or len(wanted) == 1:
        return [first]
    with ThreadPoolExecutor(max_workers=PLAN_THREADS) as pool:
        return [first, *pool.map(plan, wanted[1:])]


def random_value(length: int) -> str:
    """Letters and digits from the operating system's random source."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def secret_definition(wanted: dict[str, Any], live: dict[str, Any] | None) -> dict[str, Any] | None:
    """The single-key Secret to apply: the given value, else the live one, else a generated one
    when `generate`; None when there is none of these (the Secret stays absent)."""
    key = wanted["key"]
    if wanted.get("value"):
        data = base64.b64encode(wanted["value"].encode()).decode()
    elif key in ((live or {}).get("data") or {}):
        data = live["data"][key]
    elif wanted.get("generate"):
        data = base64.b64encode(random_value(wanted.get("length") or 48).encode()).decode()
    else:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": wanted["name"], "labels": dict(wanted.get("labels") or {})},
        "data": {key: data},
    }

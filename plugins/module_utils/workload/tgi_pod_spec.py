# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The part of a running TGI (or vLLM) pod that a change of settings owns: read from the live
Deployment, compared with what tgi_workload (or vllm_workload) gives for the new settings, and
the JSON patch between them.

The owned part is what tgi_workload computes: the container's image, args, env and resources,
the pod's tolerations, the size of the in-memory /dev/shm and the annotations the caller manages
(the Secret versions). A JSON patch of only these fields changes the pod template in exactly
those fields, so the Deployment makes one new ReplicaSet, and writing the previous values back
makes its controller reuse the previous ReplicaSet (a rollback). The patch's `test` operations
make the API server refuse it when the Deployment changed since it was read: nothing is
overwritten blindly.

Pure Python: no Ansible imports, no I/O (operations/model_switch.py reads and writes).
"""

from __future__ import annotations

from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import quantity_value
from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import served_model
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import container_gpus
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import flag_value

SHM_VOLUME = "shm"  # the in-memory /dev/shm volume of the tgi_server role's pod


class SwitchRefused(Exception):
    """The switch cannot or must not be made; nothing was written."""


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    """The pod template's spec."""
    return ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}


def find_container(deployment: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    """(index, container) of the pod template's container `name`; SwitchRefused when absent."""
    meta = deployment.get("metadata") or {}
    containers = _pod(deployment).get("containers") or []
    for index, container in enumerate(containers):
        if container.get("name") == name:
            return index, container
    names = ", ".join(str(c.get("name")) for c in containers) or "none"
    raise SwitchRefused(
        f"Deployment {meta.get('name')} has no container named {name!r} (its containers: "
        f"{names}); set the container option to the TGI container's name"
    )


def _without_defaults(value: Any) -> Any:
    """Drops what the API server leaves out or defaults: nulls, `optional: false`."""
    if isinstance(value, dict):
        return {
            key: _without_defaults(item)
            for key, item in value.items()
            if item is not None and not (key == "optional" and item is False)
        }
    if isinstance(value, list):
        return [_without_defaults(item) for item in value]
    return value


def normalize_env(env: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Env entries as the API server stores them, to compare what is live with what is wanted.

    The server drops empty values and nulls and sets fieldRef.apiVersion to v1; values are
    strings. The order is kept: it matters ($(VAR) references see only earlier entries).
    """
    normalized = []
    for entry in env or []:
        item: dict[str, Any] = {"name": str(entry.get("name"))}
        value = entry.get("value")
        if value is not None and value != "":
            item["value"] = str(value)
        source = _without_defaults(entry.get("valueFrom") or {})
        if "fieldRef" in source:
            source["fieldRef"] = dict({"apiVersion": "v1"}, **source["fieldRef"])
        if source:
            item["valueFrom"] = source
        normalized.append(item)
    return normalized


def shm_volume(deployment: dict[str, Any]) -> tuple[int | None, dict[str, Any]]:
    """(index, emptyDir) of the pod's in-memory /dev/shm volume, named "shm"; (None, {})."""
    for index, volume in enumerate(_pod(deployment).get("volumes") or []):
        if volume.get("name") == SHM_VOLUME:
            return index, volume.get("emptyDir") or {}
    return None, {}


def live_spec(
    deployment: dict[str, Any], container: dict[str, Any], annotation_keys: Any = ()
) -> dict[str, Any]:
    """The part of the pod the switch owns, as it is live (what tgi_workload computes)."""
    annotations = template_annotations(deployment)
    return {
        "image": container.get("image"),
        "args": [str(arg) for arg in container.get("args") or []],
        "env": container.get("env") or [],
        "resources": container.get("resources") or {},
        "tolerations": _pod(deployment).get("tolerations") or [],
        "shm_size": shm_volume(deployment)[1].get("sizeLimit"),
        "annotations": {key: annotations.get(key) for key in annotation_keys},
    }


def wanted_spec(workload: dict[str, Any], annotations: dict[str, Any] | None = None) -> dict:
    """The same part as tgi_workload gives it for the settings."""
    return {
        "image": workload["image"],
        "args": list(workload["args"]),
        "env": list(workload["env"]),
        "resources": workload["resources"],
        "tolerations": list(workload["tolerations"]),
        "shm_size": workload["shm_size"],
        "annotations": dict(annotations or {}),
    }


def _amounts(resources: dict[str, Any]) -> dict[str, Any]:
    """Resources by amount: the API server stores '0.5' as '500m' and '1024Mi' as '1Gi'."""
    return {
        kind: {name: quantity_value(value) for name, value in (part or {}).items()}
        for kind, part in (resources or {}).items()
        if part
    }


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        **spec,
        "env": normalize_env(spec["env"]),
        "resources": _amounts(spec["resources"]),
        "tolerations": _without_defaults(spec["tolerations"]),
        "shm_size": quantity_value(spec["shm_size"]) if spec["shm_size"] else None,
    }


def same_spec(live: dict[str, Any], wanted: dict[str, Any]) -> bool:
    """Whether the live pod already has the wanted spec (lists in order, amounts by value)."""
    return _comparable(live) == _comparable(wanted)


def _set_op(base: str, field: str, present: bool, value: Any) -> list[dict[str, Any]]:
    path = f"{base}/{field}"
    if value in (None, [], {}):
        return [{"op": "remove", "path": path}] if present else []
    return [{"op": "replace" if present else "add", "path": path, "value": value}]


def switch_patch(
    resource_version: str, deployment: dict[str, Any], index: int, spec: dict[str, Any]
) -> list[dict[str, Any]]:
    """The JSON patch that gives container `index` and its pod `spec` (see live_spec); only
    what differs is written, and an empty value removes its field.

    The `test` operations make the server refuse it when the Deployment changed since it was
    read, or the container moved: nothing is overwritten blindly.
    """
    live_container = _pod(deployment)["containers"][index]
    live = live_spec(deployment, live_container, spec["annotations"])
    mine, theirs = _comparable(live), _comparable(spec)
    base = f"/spec/template/spec/containers/{index}"
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
        {"op": "test", "path": f"{base}/name", "value": live_container.get("name")},
    ]
    for field in ("image", "args", "env", "resources"):
        if mine[field] != theirs[field]:
            ops += _set_op(base, field, field in live_container, spec[field])
    if mine["tolerations"] != theirs["tolerations"]:
        pod = _pod(deployment)
        ops += _set_op(
            "/spec/template/spec", "tolerations", "tolerations" in pod, spec["tolerations"]
        )
    shm_index, shm = shm_volume(deployment)
    if shm_index is not None and mine["shm_size"] != theirs["shm_size"]:
        ops += _set_op(
            f"/spec/template/spec/volumes/{shm_index}/emptyDir",
            "sizeLimit",
            "sizeLimit" in shm,
            spec["shm_size"],
        )
    return ops + annotation_ops(deployment, spec["annotations"])


def template_annotations(deployment: dict[str, Any]) -> dict[str, str]:
    template = (deployment.get("spec") or {}).get("template") or {}
    return dict((template.get("metadata") or {}).get("annotations") or {})


def annotation_ops(
    deployment: dict[str, Any], wanted: dict[str, str | None]
) -> list[dict[str, Any]]:
    """JSON patch operations that give the pod template the `wanted` annotations (None removes
    one), touching no other annotation; none when they are already so."""
    live = template_annotations(deployment)
    path = "/spec/template/metadata/annotations"
    ops: list[dict[str, Any]] = []
    for key, value in sorted(wanted.items()):
        if live.get(key) == value:
            continue
        pointer = f"{path}/{key.replace('~', '~0').replace('/', '~1')}"
        if value is None:
            ops.append({"op": "remove", "path": pointer})
        elif not live and not ops:
            ops.append({"op": "add", "path": path, "value": {key: value}})
            live = {key: value}
        else:
            ops.append({"op": "replace" if key in live else "add", "path": pointer, "value": value})
    return ops


def model_of(args: list[Any]) -> str | None:
    """The model a live pod's command line serves: TGI's --model-id, else vLLM's positional
    model."""
    return flag_value(args, "--model-id") or served_model(args)


def spec_view(spec: dict[str, Any]) -> dict[str, Any]:
    """What --diff shows: the model and GPUs, then the owned parts (Secrets by reference)."""
    view = {
        "model_id": model_of(spec["args"]),
        "gpus": container_gpus({"resources": spec["resources"]}),
        **spec,
        "env": normalize_env(spec["env"]),
    }
    if not view["annotations"]:
        del view["annotations"]
    return view

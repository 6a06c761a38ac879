# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.tgi_model_switch: changes a running TGI to new settings, safely.

A new model (change_model.yml) or another number of GPUs (the gpu_scale role) are both new
settings of the same pod. It runs on the controller so that it can print what the new pod does
while it starts. The pod comes from module_utils/workload/tgi_workload.py (the function the
tgi_server role renders its Deployment with); the client and the rollout wait from module_utils.
This file
decides what to write, writes it as one JSON patch, and puts the previous settings back when
the new ones do not come up.

Why a JSON patch of only what tgi_workload owns (the container's image, args, env and resources,
the tolerations, the /dev/shm size, the Secret versions): the template changes in exactly those
fields, so the Deployment makes one new ReplicaSet, and writing the previous values back makes
the controller reuse the previous ReplicaSet (a rollback). Its `test` operations make the write
fail instead of overwriting a change made since the Deployment was read.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ansible.module_utils.common.text.converters import to_text
from ansible.utils.display import Display
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    format_duration,
    quantity_value,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import runs_on_cpu
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import container_gpus
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import (
    DEFAULT_UNSCHEDULABLE_GRACE,
    REVISION_ANNOTATION,
    ProgressLog,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout import (
    FIELD_MANAGER,
    RolloutWatcher,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout_wait import (
    HEARTBEAT_SECONDS,
    READY,
    TIMED_OUT,
    UNOBSERVED,
    WaitOutcome,
    rollout_report,
    wait_for_rollouts,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import TgiSettingsError
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    flag_value,
    tgi_workload,
)
from ansible_collections.haw.icc.plugins.modules.tgi_model_switch import ARGUMENT_SPEC
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import (
    ConnectionProblem,
    KubernetesAction,
)

display = Display()

SHM_VOLUME = "shm"  # the in-memory /dev/shm volume of the tgi_server role's pod
PATCH_ATTEMPTS = 3  # the Deployment controller writes status often: a stale read is normal
OOM_MARKS = ("OOMKilled", "OutOfMemoryError", "out of memory")


class SwitchRefused(Exception):
    """The switch cannot or must not be made; nothing was written."""


# --- pure helpers ------------------------------------------------------------------------------


def find_container(deployment: dict[str, Any], name: str) -> tuple[int, dict[str, Any]]:
    """(index, container) of the pod template's container `name`; SwitchRefused when absent."""
    meta = deployment.get("metadata") or {}
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
        "containers"
    ) or []
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


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}


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


def spec_view(spec: dict[str, Any]) -> dict[str, Any]:
    """What --diff shows: the model and GPUs, then the owned parts (Secrets by reference)."""
    view = {
        "model_id": flag_value(spec["args"], "--model-id"),
        "gpus": container_gpus({"resources": spec["resources"]}),
        **spec,
        "env": normalize_env(spec["env"]),
    }
    if not view["annotations"]:
        del view["annotations"]
    return view


def should_roll_back(outcome: WaitOutcome, rollback: bool) -> bool:
    """Roll back when the new revision failed or timed out; not when the API could not be read.

    Without a view of the cluster nobody knows whether the new revision works, and a rollback
    write would most likely fail the same way.
    """
    return rollback and outcome.status not in (READY, UNOBSERVED)


def gpus_text(count: int) -> str:
    return "CPU" if runs_on_cpu(count) else f"{count} GPU" + ("s" if count > 1 else "")


def describe_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    """'from model A to B', 'from 1 GPU to 2 GPUs', both, or 'the settings of model A'."""
    parts = []
    if before["model_id"] != after["model_id"]:
        parts.append(f"from model {before['model_id']} to {after['model_id']}")
    if before["gpus"] != after["gpus"]:
        parts.append(f"from {gpus_text(before['gpus'])} to {gpus_text(after['gpus'])}")
    return " and ".join(parts) or f"the settings of model {after['model_id']}"


def switch_result(
    *,
    changed: bool,
    before: dict[str, Any],
    after: dict[str, Any],
    revision_before: str,
    revision_after: str | None,
    replicaset: str | None = None,
    rolled_back: bool = False,
    report: dict[str, Any] | None = None,
    diff: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The result keys every path returns, in one shape."""
    result = {
        "changed": changed,
        "model": {"before": before["model_id"], "after": after["model_id"]},
        "gpus": {"before": before["gpus"], "after": after["gpus"]},
        "revision": {"before": revision_before, "after": revision_after},
        "replicaset": replicaset,
        "rolled_back": rolled_back,
        "deployment": report or {},
    }
    if diff is not None:
        result["diff"] = diff
    return result


def _revision(deployment: dict[str, Any]) -> str:
    return ((deployment.get("metadata") or {}).get("annotations") or {}).get(
        REVISION_ANNOTATION, ""
    )


# --- the switch --------------------------------------------------------------------------------


class ModelSwitch:
    """One switch of one Deployment; `watcher` reads and patches (a RolloutWatcher or a fake)."""

    def __init__(
        self,
        watcher: Any,
        args: dict[str, Any],
        *,
        check_mode: bool,
        show: Callable[[str], None],
        warn: Callable[[str], None],
        prefix: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.watcher = watcher
        self.args = args
        self.name = args["name"]
        self.namespace = args["namespace"]
        self.container = args["container"]
        self.check_mode = check_mode
        self.show = show
        self.warn = warn
        self.prefix = prefix
        self.clock = clock
        self.sleep = sleep

    # reading --------------------------------------------------------------------------------

    def _read(self) -> dict[str, Any]:
        try:
            return self.watcher.deployment(self.name)
        except ApiError as problem:
            if problem.status == 404:
                raise SwitchRefused(
                    f"{problem}: the switch changes a running TGI and does not create one; "
                    "run playbooks/deploy.yml first"
                ) from problem
            raise

    # writing --------------------------------------------------------------------------------

    def _patch(
        self, deployment: dict[str, Any], spec: dict[str, Any], dry_run: bool = False
    ) -> dict[str, Any]:
        """Patches the owned part of the pod to `spec` (see live_spec), re-reading and retrying
        when the Deployment changed meanwhile."""
        for attempt in range(1, PATCH_ATTEMPTS + 1):
            index, _live = find_container(deployment, self.container)
            version = (deployment.get("metadata") or {}).get("resourceVersion") or ""
            patch = switch_patch(version, deployment, index, spec)
            try:
                return self.watcher.patch_deployment(self.name, patch, FIELD_MANAGER, dry_run)
            except ApiError as problem:
                # A failed `test` is a bare 422: see whether the Deployment moved on since.
                if problem.status not in (409, 422):
                    raise
                deployment = self._read()
                moved = (deployment.get("metadata") or {}).get("resourceVersion") != version
                if not moved or attempt == PATCH_ATTEMPTS:
                    raise ApiError(
                        f"the API server refused the change of Deployment {self.name}: {problem}"
                        + (" (it kept changing while being patched; run again)" if moved else ""),
                        problem.status,
                    ) from problem
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, timeout: int, generation: int | None) -> WaitOutcome:
        return wait_for_rollouts(
            self.watcher,
            [self.name],
            timeout=timeout,
            poll_interval=self.args["poll_interval"],
            grace=float(self.args.get("unschedulable_grace", DEFAULT_UNSCHEDULABLE_GRACE)),
            log=ProgressLog(prefix=self.prefix, heartbeat=HEARTBEAT_SECONDS),
            show=self.show,
            warn=self.warn,
            generations={self.name: generation} if generation else None,
            clock=self.clock,
            sleep=self.sleep,
        )

    def _snapshot(self, deployment: dict[str, Any]) -> dict[str, Any]:
        """The rollout as it is now, for the result of a run that writes nothing."""
        try:
            events = self.watcher.events()
            progress = self.watcher.rollout(deployment, events, DEFAULT_UNSCHEDULABLE_GRACE)
        except ApiError as problem:
            self.warn(f"cannot describe the rollout of Deployment {self.name}: {problem}")
            return {}
        return rollout_report(progress)

    # the whole switch -----------------------------------------------------------------------

    def run(self, wanted: dict[str, Any]) -> dict[str, Any]:
        """Changes the pod to `wanted` (see wanted_spec); the task result (with `failed` on
        failure)."""
        deployment = self._read()
        _index, container = find_container(deployment, self.container)
        live = live_spec(deployment, container, wanted["annotations"])
        before, after = spec_view(live), spec_view(wanted)
        revision_before = _revision(deployment)
        where = f"Deployment {self.name} in namespace {self.namespace}"
        change = describe_change(before, after)
        if same_spec(live, wanted):
            result = switch_result(
                changed=False,
                before=before,
                after=after,
                revision_before=revision_before,
                revision_after=revision_before,
                report=self._snapshot(deployment),
            )
            result["msg"] = (
                f"{where} already runs model {after['model_id']} on {gpus_text(after['gpus'])} "
                "with these settings"
            )
            return result
        header = f"Deployment {self.name}, container {self.container}"
        diff = {
            "before": before,
            "after": after,
            "before_header": f"{header} (revision {revision_before or 'unknown'})",
            "after_header": f"{header} (new revision)",
        }
        if self.check_mode:
            self._patch(deployment, wanted, dry_run=True)
            result = switch_result(
                changed=True,
                before=before,
                after=after,
                revision_before=revision_before,
                revision_after=None,
                report=self._snapshot(deployment),
                diff=diff,
            )
            result["msg"] = (
                f"check mode: would change {where} {change} (the API server accepted the change "
                "in a dry run; nothing was written)"
            )
            return result

        patched = self._patch(deployment, wanted)
        generation = (patched.get("metadata") or {}).get("generation")
        self.show(f"{self.prefix}{self.name}: changing {change}")
        outcome = self._wait(self.args["timeout"], generation)
        progress = outcome.rollouts.get(self.name)
        result = switch_result(
            changed=True,
            before=before,
            after=after,
            revision_before=revision_before,
            revision_after=(progress.revision if progress else "") or None,
            replicaset=self.watcher.replicasets.get(self.name),
            report=rollout_report(progress) if progress else {},
            diff=diff,
        )
        result["elapsed"] = outcome.elapsed
        if outcome.ready:
            result["msg"] = (
                f"changed {where} {change}: revision {result['revision']['after']} "
                f"(ReplicaSet {result['replicaset']}) ready after "
                f"{format_duration(outcome.elapsed)}"
            )
            return result
        result["failed"] = True
        if progress is not None and outcome.status != UNOBSERVED:
            result["failed_rollout"] = rollout_report(progress)
        if not should_roll_back(outcome, self.args["rollback"]):
            result["msg"] = self._unrolled_message(outcome, change, before)
            return result
        return self._roll_back(result, outcome, live, before, change)

    def _unrolled_message(self, outcome: WaitOutcome, change: str, before: dict) -> str:
        old = f"model {before['model_id']} on {gpus_text(before['gpus'])}"
        where = f"Deployment {self.name} in namespace {self.namespace}"
        if outcome.status == UNOBSERVED:
            return (
                f"changed {where} {change}, but cannot follow the rollout: {outcome.message}. "
                "The new revision may still be starting; look again with "
                f"haw.icc.wait_for_rollout, and go back to {old} if it does not come up"
            )
        return (
            f"the change of {where} {change} failed and was not rolled back (rollback: false): "
            f"{outcome.message}{self._hint(outcome)}\nGo back to {old} (or another choice) to "
            "restore the service"
        )

    def _hint(self, outcome: WaitOutcome) -> str:
        text = outcome.message or ""
        if any(mark in text for mark in OOM_MARKS):
            return (
                "\n\nThe model does not fit into the GPU memory: check it with "
                "haw.icc.gpu_capacity_check, then choose a smaller model, a quantization "
                "(tgi_quantize) or more GPUs (playbooks/scale.yml)"
            )
        if outcome.status == TIMED_OUT:
            return (
                f"\n\nA first start downloads the model: if it only needs longer, raise the "
                f"timeout (now {format_duration(self.args['timeout'])})"
            )
        return ""

    def _roll_back(
        self,
        result: dict[str, Any],
        outcome: WaitOutcome,
        previous: dict[str, Any],
        before: dict[str, Any],
        change: str,
    ) -> dict[str, Any]:
        old = f"model {before['model_id']} on {gpus_text(before['gpus'])}"
        where = f"Deployment {self.name} in namespace {self.namespace}"
        why = f"{outcome.message}{self._hint(outcome)}"
        self.show(f"{self.prefix}{self.name}: the new revision failed; rolling back to {old}")
        try:
            patched = self._patch(self._read(), previous)
        except (ApiError, SwitchRefused) as problem:
            result["msg"] = (
                f"the change of {where} {change} failed, and the rollback to {old} failed "
                f"too.\n\nWhy the change failed: {why}\n\nWhy the rollback failed: {problem}"
                f"\n\nThe Deployment still runs the new settings: run playbooks/deploy.yml with "
                f"the previous ones ({old}) to restore it"
            )
            return result
        restored = self._wait(
            self.args["rollback_timeout"], (patched.get("metadata") or {}).get("generation")
        )
        result["rolled_back"] = True
        progress = restored.rollouts.get(self.name)
        if progress is not None:
            result["deployment"] = rollout_report(progress)
        result["elapsed"] = round(outcome.elapsed + restored.elapsed, 1)
        if restored.ready:
            result["msg"] = (
                f"the change of {where} {change} failed, so it was rolled back: {old} serves "
                f"again (revision {progress.revision if progress else '?'}).\n\nWhy the change "
                f"failed: {why}"
            )
        else:
            result["msg"] = (
                f"the change of {where} {change} failed; the previous settings ({old}) were "
                f"written back, but they did not become ready either.\n\nWhy the change failed: "
                f"{why}\n\nWhy the rollback failed: {restored.message}"
            )
        return result


# --- the action --------------------------------------------------------------------------------


class ActionModule(KubernetesAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC

    def act(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        problem = self._timing_problem(args, ("timeout", "rollback_timeout", "unschedulable_grace"))
        if problem:
            return self._fail(result, problem)
        where = f"Deployment {args['name']} in namespace {args['namespace']}"
        try:
            workload = tgi_workload(args["settings"], args["catalog"] or None)
        except TgiSettingsError as error:
            problems = "\n".join(f"- {problem}" for problem in error.errors)
            return self._fail(result, f"Refusing to change {where}:\n{problems}")
        try:
            api = self._cluster_api(args)
        except ConnectionProblem as error:
            return self._fail(result, f"Cannot connect: {error}")
        host = to_text(task_vars.get("inventory_hostname") or "")
        watcher = RolloutWatcher(api, args["namespace"])
        switch = ModelSwitch(
            watcher,
            args,
            check_mode=bool(self._task.check_mode),
            show=display.display,
            warn=lambda message: display.warning(f"{host}: {message}" if host else message),
            prefix=f"[{host}] " if host else "",
        )
        try:
            result.update(switch.run(wanted_spec(workload, args["pod_annotations"])))
            result["multi_gpu"] = workload["multi_gpu"]
        except SwitchRefused as refusal:
            return self._fail(result, f"Refusing to change {where}: {refusal}")
        except ApiError as problem:
            return self._fail(result, f"cannot change {where}: {problem}")
        if watcher.warnings:
            result["warnings"] = list(watcher.warnings)
        return result

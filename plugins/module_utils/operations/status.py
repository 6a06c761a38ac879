# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The status of a namespace (haw.icc.deployment_status): is the inference server (TGI or vLLM)
and Open WebUI up, and if not, why and what to do.

`read_status` reads the namespace's objects (and the newest log lines of a container that is
not ready) through ClusterApi, has diagnosis judge each application, adds what the status shows
of its pod and template (model, GPUs, image, node, how to reach it) and words it in lines.
Namespace-only rights suffice; a list that is refused gives a warning, nothing is written.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.capacity.cluster_reader import ClusterReader
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError, resource_path
from ansible_collections.haw.icc.plugins.module_utils.engine.vllm_server import (
    ENGINE_LABELS,
    engine_of,
    parallel_mode,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import pod_gpus
from ansible_collections.haw.icc.plugins.module_utils.operations import diagnosis, progress
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_pod_spec import model_of
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    flag_value,
    mode_of,
)

GIB = 2**30


class NamespaceReader(ClusterReader):
    """The namespace's objects as plain dicts; a list that is refused gives a warning."""

    def items(self, api_version, plural, what):
        try:
            return self.api.list(self._here(api_version, plural))
        except ApiError as error:
            if error.status not in (403, 404):
                raise
            self.warnings.append(f"cannot list {what} in {self.namespace}: {error}")
            return []

    def __init__(self, api, namespace, warnings):
        super().__init__(api, namespace, warnings)
        self._deployments = {}

    def deployment(self, name):
        """The Deployment (None when missing), read once per status: the server's and the idle
        proxy's are asked for by more than one step."""
        if name not in self._deployments:
            path = self._here("apps/v1", "deployments", name)
            self._deployments[name] = self.api.get(path, missing_ok=True)
        return self._deployments[name]

    def log_lines(self, pod, container, tail, previous):
        """The newest lines of a container's log (its previous run's with `previous`)."""
        query = {"container": container, "tailLines": tail, "previous": previous}
        try:
            text = self.api.text(resource_path("v1", "pods", self.namespace, pod, "log"), query)
        except ApiError as error:
            which = "previous " if previous else ""
            self.warnings.append(f"cannot read the {which}log of {pod}/{container}: {error}")
            return []
        return (text or "").splitlines()


def _main_container(deployment, name):
    containers = ((deployment.get("spec") or {}).get("template") or {}).get("spec", {})
    containers = containers.get("containers") or []
    return next(
        (c for c in containers if c.get("name") == name), containers[0] if containers else {}
    )


def _ready_since(pod):
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            return condition.get("lastTransitionTime")
    return None


def _access(namespace, service, ingresses):
    """How to reach a Service: in the cluster, through a port-forward, and its Ingress hosts."""
    if service is None:
        return []
    name = service["metadata"]["name"]
    port = (service.get("spec", {}).get("ports") or [{}])[0].get("port")
    ways = [
        f"in the namespace: http://{name}:{port}",
        f"port-forward: kubectl -n {namespace} port-forward svc/{name} {port} "
        f"(then http://localhost:{port})",
    ]
    for ingress in ingresses:
        for rule in (ingress.get("spec") or {}).get("rules") or []:
            paths = ((rule.get("http") or {}).get("paths")) or []
            if any(
                ((p.get("backend") or {}).get("service") or {}).get("name") == name for p in paths
            ):
                scheme = "https" if (ingress.get("spec") or {}).get("tls") else "http"
                ways.append(f"ingress: {scheme}://{rule.get('host')}/")
    return ways


def describe_app(reader, app, name, container_name, objects, now, log_tail, capacity, catalog):
    """Diagnosis of one application, with what the status shows about its pod and template."""
    deployment = reader.deployment(name)
    replicasets, pods, events = objects["replicasets"], objects["pods"], objects["events"]
    total_bytes = None
    sizing = (capacity or {}).get("sizing") or {}
    if sizing.get("weights_gib"):
        total_bytes = int(float(sizing["weights_gib"]) * GIB)
    template = ((deployment or {}).get("spec") or {}).get("template") or {}
    gpu_type = diagnosis.gpu_type_of(template.get("spec"))
    container = _main_container(deployment or {}, container_name)
    engine = engine_of(container) if app == "tgi" else "tgi"
    found = diagnosis.diagnose(
        app,
        deployment,
        replicasets,
        pods,
        events,
        now,
        container_name,
        lambda pod, previous: reader.log_lines(pod, container_name, log_tail, previous),
        capacity,
        total_bytes,
        reader.namespace,
        (catalog.get(gpu_type) or {}).get("gpus_per_node"),
        engine,
    ).as_dict()
    if deployment is None:
        return found
    args = list(container.get("args") or [])
    count = pod_gpus({"spec": {"containers": [container]}})
    serving = [
        p
        for p in pods
        if _ready_since(p) and p["metadata"].get("labels", {}).get("app.kubernetes.io/name") == app
    ]
    found.update(
        image=container.get("image"),
        node=(serving[0]["spec"].get("nodeName") if serving else None),
        ready_since=_ready_since(serving[0]) if serving else None,
    )
    if app == "tgi":
        _idle_notes(found, deployment, reader.deployment(f"{name}-idle-proxy"), reader.namespace)
    if app == "tgi":
        mode = parallel_mode(count) if engine == "vllm" else mode_of(args, count)
        found.update(
            engine=engine,
            model=model_of(args),
            revision=flag_value(args, "--revision"),
            gpu={"type": gpu_type, "count": count, "mode": mode},
        )
    return found


def _idle_notes(found, deployment, proxy, namespace):
    """What the idle proxy (icc_idle_minutes) notes on the server's Deployment - its use, its
    sleep - when there is a proxy; without one, 0 replicas is a server nothing wakes."""
    if proxy is None:
        if found["state"] == "asleep":
            found.update(
                state="stopped",
                problem="scaled to 0 replicas, and no idle proxy wakes it (icc_idle_minutes unset)",
                cause="someone scaled it down",
                fix=[f"{diagnosis.playbook('deploy', namespace)} (puts it back to 1 replica)"],
            )
        return
    notes = (deployment.get("metadata") or {}).get("annotations") or {}
    tokens = notes.get(progress.GENERATED_TOKENS_ANNOTATION) or ""
    found.update(
        last_request=notes.get(progress.LAST_REQUEST_ANNOTATION),
        generated_tokens=int(tokens) if tokens.isdigit() else None,
    )
    if found["state"] == "asleep":
        found.update(
            asleep_since=notes.get(progress.ASLEEP_SINCE_ANNOTATION),
            wake_problem=notes.get(progress.WAKE_PROBLEM_ANNOTATION),
        )


def block(namespace, tgi, webui, expected_model, proxy=None):
    """The readable status of one namespace (`proxy`: its idle proxy, when it has one)."""
    lines = [f"namespace {namespace}"]
    for app in (tgi, proxy, webui):
        if app is None:
            continue
        title = {"open-webui": "Open WebUI", "idle-proxy": "Idle proxy"}.get(app["app"])
        if app["app"] == "tgi":
            title = ENGINE_LABELS[app.get("engine", "tgi")]
        lines.append(f"{title}: {app['state'].upper()} - {app['summary']}")
        if app["state"] == "absent":
            lines.append(f"  fix: {app['fix'][0]}")
            continue
        if app["app"] == "tgi":
            gpu = app.get("gpu") or {}
            model = app.get("model") or "?"
            lines.append(
                f"  model {model}"
                + (f" @ {app['revision']}" if app.get("revision") else "")
                + f"; {gpu.get('count')} x {gpu.get('type') or 'CPU'} ({gpu.get('mode')})"
            )
            if expected_model and app.get("model") and app["model"] != expected_model:
                lines.append(
                    f"  drift: the inventory asks for {expected_model}; run deploy.yml or "
                    "change_model.yml to apply it"
                )
        lines.append(f"  image {app.get('image')}")
        if app["state"] == "asleep":
            lines.append(
                f"  asleep since {app.get('asleep_since') or '?'} (last request "
                f"{app.get('last_request') or '?'}): its GPUs are given back"
            )
            if app.get("wake_problem"):
                lines.append(f"  the last wake failed at {app['wake_problem']}")
            lines.extend(f"  wake: {fix}" for fix in app["fix"])
        if app.get("node") or app.get("ready_since"):
            lines.append(
                f"  node {app.get('node') or '?'}, ready since {app.get('ready_since') or '-'}, "
                f"restarts {app.get('restarts', 0)}"
            )
        if app["state"] != "asleep" and app.get("last_request"):
            lines.append(
                f"  idle proxy: last request {app['last_request']}, "
                f"{app.get('generated_tokens') or 0} tokens generated"
            )
        for way in app.get("access") or []:
            lines.append(f"  reach it {way}")
        if app["problem"] and app["state"] != "ready":
            lines.append(f"  problem: {app['problem']}")
            if app["cause"]:
                lines.append(f"  cause: {app['cause']}")
            for quote in app["evidence"][:3]:
                lines.append(f"  seen: {quote}")
            for fix in app["fix"]:
                lines.append(f"  fix: {fix}")
    return lines


def read_status(
    api: Any, params: dict[str, Any], catalog: dict[str, Any], warnings: list[str]
) -> dict[str, Any]:
    """The status of the namespace of `params` (the task's options; `catalog` the merged GPU
    catalog): tgi, open_webui, healthy and lines; what could not be read is added to
    `warnings`. Raises ApiError when reading fails otherwise."""
    namespace = params["namespace"]
    reader = NamespaceReader(api, namespace, warnings)
    now = datetime.now(timezone.utc)  # noqa: UP017
    objects = dict(
        replicasets=reader.items("apps/v1", "replicasets", "ReplicaSets"),
        pods=reader.items("v1", "pods", "pods"),
        events=reader.items("v1", "events", "events"),
    )
    services = {s["metadata"]["name"]: s for s in reader.items("v1", "services", "Services")}
    ingresses = reader.items("networking.k8s.io/v1", "ingresses", "Ingresses")
    apps = {}
    for key, app, name, container in (
        ("tgi", "tgi", params["tgi_name"], "tgi"),
        ("open_webui", "open-webui", params["open_webui_name"], "open-webui"),
    ):
        capacity = params["capacity"] if key == "tgi" else None
        apps[key] = describe_app(
            reader, app, name, container, objects, now, params["log_lines"], capacity, catalog
        )
        apps[key]["access"] = _access(namespace, services.get(name), ingresses)
    # icc_idle_minutes: the proxy is the server's front door; it must be up too.
    proxy = f"{params['tgi_name']}-idle-proxy"
    if reader.deployment(proxy) is not None:
        apps["idle_proxy"] = describe_app(
            reader,
            "idle-proxy",
            proxy,
            "idle-proxy",
            objects,
            now,
            params["log_lines"],
            None,
            catalog,
        )
    return dict(
        **apps,
        healthy=all(a["state"] in diagnosis.HEALTHY_STATES for a in apps.values()),
        lines=block(
            namespace,
            apps["tgi"],
            apps["open_webui"],
            params["expected_model"],
            apps.get("idle_proxy"),
        ),
    )

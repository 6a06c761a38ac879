"""What the tests look at in the sandbox: the objects the collection made, the model TGI runs
and serves. Shared by the integration tests."""

from __future__ import annotations

from icc_sandbox import cluster
from icc_sandbox.tgi_standin import fetch
from kubernetes import client

FIRST_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
SMALLER_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
# 13e9 parameters x 2 bytes (float16) = 24.2 GiB: more than one 16 GiB V100 holds.
TOO_BIG_MODEL = "meta-llama/Llama-2-13b-chat-hf"


# The session's sandbox (set by the `sandbox` fixture): pod IPs are reached inside its network.
SANDBOX: cluster.Sandbox | None = None


def fetch_in_sandbox(url: str, body: dict | None = None, key: str | None = None):
    """(status, JSON) of a request to a pod IP or ClusterIP, sent from inside the sandbox's
    network namespace, where those addresses are."""
    assert SANDBOX is not None, "the sandbox fixture sets views.SANDBOX"
    return SANDBOX.inside(lambda: fetch(url, body, key))


V100 = "gpu-tesla-v100"
MANAGED = "app.kubernetes.io/managed-by=haw.icc"
FAST = {"tgi_cache_size": "1Gi", "open_webui_data_size": "1Gi"}


def tgi_pod(core: client.CoreV1Api, namespace: str) -> client.V1Pod:
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=tgi").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def tgi_replicasets(apps: client.AppsV1Api, namespace: str) -> list[client.V1ReplicaSet]:
    return apps.list_namespaced_replica_set(
        namespace, label_selector="app.kubernetes.io/name=tgi"
    ).items


def managed_objects(admin_client, namespace: str) -> set[str]:
    """Every object with the collection's labels, as kind/name."""
    core, apps = client.CoreV1Api(admin_client), client.AppsV1Api(admin_client)
    net = client.NetworkingV1Api(admin_client)
    listings = {
        "Deployment": apps.list_namespaced_deployment,
        "Service": core.list_namespaced_service,
        "Secret": core.list_namespaced_secret,
        "PersistentVolumeClaim": core.list_namespaced_persistent_volume_claim,
        "NetworkPolicy": net.list_namespaced_network_policy,
        "Ingress": net.list_namespaced_ingress,
    }
    return {
        f"{kind}/{item.metadata.name}"
        for kind, listing in listings.items()
        for item in listing(namespace, label_selector=MANAGED).items
    }


def host_vars_file(inventory, namespace):
    return inventory.parent / "host_vars" / f"{namespace}.yml"


def tgi_args(apps: client.AppsV1Api, namespace: str) -> list[str]:
    return apps.read_namespaced_deployment("tgi", namespace).spec.template.spec.containers[0].args


def model_of(args: list[str]) -> str:
    return args[args.index("--model-id") + 1]


def tgi_url(core: client.CoreV1Api, namespace: str, path: str) -> str | None:
    """The address of `path` on the one Ready TGI pod, or None while there is none."""
    pods = core.list_namespaced_pod(namespace, label_selector="app.kubernetes.io/name=tgi").items
    ready = [
        pod
        for pod in pods
        if pod.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    ]
    return f"http://{ready[0].status.pod_ip}:80{path}" if len(ready) == 1 else None


def served_model(core: client.CoreV1Api, namespace: str) -> str | None:
    """The model the Ready TGI pod reports on GET /v1/models, or None while there is none."""
    url = tgi_url(core, namespace, "/v1/models")
    try:
        _status, models = fetch_in_sandbox(url) if url else (None, None)
    except OSError:  # not listening yet
        return None
    return models["data"][0]["id"] if models else None


def chat_status(core: client.CoreV1Api, namespace: str, key: str) -> int | None:
    """The status TGI's chat route answers with this API key, or None while no pod serves."""
    url = tgi_url(core, namespace, "/v1/chat/completions")
    body = {"model": "tgi", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    try:
        return fetch_in_sandbox(url, body, key)[0] if url else None
    except OSError:  # not listening yet
        return None


def webui_default_model(apps: client.AppsV1Api, namespace: str) -> str:
    container = apps.read_namespaced_deployment("open-webui", namespace).spec.template.spec
    env = {e.name: e.value for e in container.containers[0].env}
    return env["DEFAULT_MODELS"]


# --- pods the tests make themselves ------------------------------------------------------------


def gpu_container(name: str, image: str, gpus: int, args: list[str] | None = None) -> dict:
    container = {
        "name": name,
        "image": image,
        "resources": {
            "requests": {"nvidia.com/gpu": str(gpus)},
            "limits": {"nvidia.com/gpu": str(gpus)},
        },
    }
    if args is not None:
        container["args"] = args
    return container


def pod_manifest(name: str, container: dict, tolerate: tuple[str, ...] = (V100,)) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [container],
            "tolerations": [
                {"key": key, "operator": "Exists", "effect": "NoSchedule"} for key in tolerate
            ],
        },
    }

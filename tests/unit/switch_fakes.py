"""The fakes of the model switch's unit tests: a TGI Deployment as deploy.yml leaves it, and a
fake API that plays its Deployment controller.

The fake keeps one Deployment: JSON patches are applied (their `test` operations too), a changed
pod template makes a new revision, and going back to an earlier template reuses that revision's
ReplicaSet with the next number, as Kubernetes does. What the new pod does is chosen by its model
id. Used by operations/test_model_switch.py, workload/test_tgi_pod_spec.py and
test_model_switch_action.py (tests/unit is on sys.path through its conftest.py).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import container_gpus
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import RolloutProgress
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import flag_value

NAMESPACE = "wabc123-default"
OLD_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
NEW_MODEL = "Qwen/Qwen2.5-3B-Instruct"
BIG_MODEL = "meta-llama/Llama-2-13b-chat-hf"
SHARDING_MODEL = "bigscience/bloom-1b7"  # tensor-sharded on V100s: no flash attention needed
IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.0"
OOM_REASON = (
    "pod tgi-3-abcde: OOMKilled (restart 0): torch.OutOfMemoryError: CUDA out of memory. "
    "Tried to allocate 13.50 GiB"
)
OOM_OUTPUT = "Traceback ...\ntorch.OutOfMemoryError: CUDA out of memory.\nError: ShardCannotStart"

# The role's settings (roles/tgi_server/vars/main.yml __tgi_settings with its defaults).
SETTINGS: dict[str, Any] = {
    "tgi_model_id": OLD_MODEL,
    "tgi_model_revision": None,
    "tgi_gpu_type": "gpu-tesla-v100",
    "tgi_gpu_count": 1,
    "tgi_dtype": None,
    "tgi_quantize": None,
    "tgi_max_input_tokens": 2048,
    "tgi_max_total_tokens": 4096,
    "tgi_max_batch_prefill_tokens": 4096,
    "tgi_max_concurrent_requests": None,
    "tgi_cuda_memory_fraction": None,
    "tgi_container_port": 80,
    "tgi_cache_mount_path": "/data",
    "tgi_nccl_env": {},
    "tgi_extra_args": [],
    "tgi_api_key_secret": "tgi-api-key",
    "tgi_hf_token_secret": None,
    "tgi_multi_gpu_mode": "auto",
    "tgi_image": None,
    "tgi_cpu_request": "2",
    "tgi_memory_request": "8Gi",
    "tgi_memory_limit": "32Gi",
    "tgi_shm_size_per_gpu": "1Gi",
    "tgi_model_architecture": None,
}
# The same container as the API server returns it after deploy.yml (written out by hand).
LIVE_ARGS = [
    "--model-id",
    OLD_MODEL,
    "--num-shard",
    "1",
    "--max-input-tokens",
    "2048",
    "--max-total-tokens",
    "4096",
    "--max-batch-prefill-tokens",
    "4096",
]
LIVE_ENV = [
    {"name": "HOSTNAME", "value": "0.0.0.0"},
    {"name": "PORT", "value": "80"},
    {"name": "USAGE_STATS", "value": "off"},
    {"name": "HF_HOME", "value": "/data"},
    {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "tgi-api-key", "key": "api-key"}}},
]


def with_model(model: str, **more: Any) -> dict[str, Any]:
    return {**SETTINGS, "tgi_model_id": model, **more}


def live_deployment(gpus: int | None = 1) -> dict[str, Any]:
    """The Deployment as the API server returns it after deploy.yml (the owned parts by hand)."""
    gpu = {} if gpus is None else {"nvidia.com/gpu": str(gpus)}
    tolerations = (
        [{"key": "gpu-tesla-v100", "operator": "Exists", "effect": "NoSchedule"}] if gpus else []
    )
    return {
        "metadata": {
            "name": "tgi",
            "namespace": NAMESPACE,
            "uid": "uid-tgi",
            "generation": 1,
            "resourceVersion": "100",
            "annotations": {"deployment.kubernetes.io/revision": "1"},
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "tgi"}},
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "tgi",
                            "image": IMAGE,
                            "args": list(LIVE_ARGS),
                            "env": copy.deepcopy(LIVE_ENV),
                            "resources": {
                                "requests": {"cpu": "2", "memory": "8Gi", **gpu},
                                "limits": {"memory": "32Gi", **gpu},
                            },
                        }
                    ],
                    **({"tolerations": tolerations} if tolerations else {}),
                    "volumes": [
                        {"name": "cache", "persistentVolumeClaim": {"claimName": "tgi-cache"}},
                        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}},
                    ],
                }
            },
        },
        "status": {"observedGeneration": 1},
    }


# --- a fake API with a Deployment controller ---------------------------------------------------


def _pointer(document: Any, path: str) -> tuple[Any, str | int]:
    parts = path.lstrip("/").split("/")
    for part in parts[:-1]:
        document = document[int(part)] if isinstance(document, list) else document[part]
    last = parts[-1]
    return document, int(last) if isinstance(document, list) else last


def apply_json_patch(document: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """RFC 6902 for the operations the switch uses; ValueError where the server says 422."""
    document = copy.deepcopy(document)
    for operation in patch:
        parent, key = _pointer(document, operation["path"])
        present = key in parent if isinstance(parent, dict) else key < len(parent)
        if operation["op"] == "test":
            if not present or parent[key] != operation["value"]:
                raise ValueError(f"test failed at {operation['path']}")
        elif operation["op"] == "replace":
            if not present:
                raise ValueError(f"replace of missing {operation['path']}")
            parent[key] = operation["value"]
        elif operation["op"] == "add":
            parent[key] = operation["value"]
        elif operation["op"] == "remove":
            del parent[key]
    return document


class FakeCluster:
    """Plays the API server and the Deployment controller for one Deployment."""

    def __init__(
        self,
        deployment: dict[str, Any],
        crashing: tuple[str, ...] = (),
        never_ready: tuple[str, ...] = (),
        ready_after_polls: int = 0,
        unschedulable_gpus: int | None = None,
    ) -> None:
        self.namespace = NAMESPACE
        self.stored = deployment
        self.crashing, self.never_ready = crashing, never_ready
        self.ready_after_polls = ready_after_polls
        self.unschedulable_gpus = unschedulable_gpus  # a pod asking this many never fits
        self.patches: list[tuple[list[dict[str, Any]], bool]] = []
        self.writes = 0
        self.warnings: list[str] = []
        self.replicasets: dict[str, str] = {}
        self.status_writes_before_patch = 0  # the controller writes status between read and patch
        self.refuse_patch_number: int | None = None  # this patch (1-based) gets a 403
        self.templates = [self._template(deployment)]  # index + 1 = first revision number
        self.revision_of_template = {self._template(deployment): 1}
        self.polls = 0

    @staticmethod
    def _template(deployment: dict[str, Any]) -> str:
        return json.dumps(deployment["spec"]["template"], sort_keys=True)

    def deployment(self, name: str) -> dict[str, Any]:
        if name != self.stored["metadata"]["name"]:
            raise ApiError(f"Deployment {name} not found in namespace {NAMESPACE}", 404)
        return copy.deepcopy(self.stored)

    def events(self) -> list[dict[str, Any]]:
        return []

    def patch_deployment(self, name, patch, field_manager, dry_run=False):
        assert field_manager == "haw.icc"
        self.patches.append((copy.deepcopy(patch), dry_run))
        if self.refuse_patch_number == len(self.patches):
            raise ApiError("deployments.apps is forbidden", 403)
        if self.status_writes_before_patch:
            self.status_writes_before_patch -= 1
            meta = self.stored["metadata"]
            meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        try:
            patched = apply_json_patch(self.stored, patch)
        except ValueError as error:
            raise ApiError(f"patching Deployment {name}: {error}", 422) from error
        if dry_run:
            return patched
        self.writes += 1
        meta = patched["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        template = self._template(patched)
        if template != self._template(self.stored):
            meta["generation"] += 1
            # A template seen before gets its ReplicaSet back, with the next revision number.
            revision = max(self.revision_of_template.values()) + 1
            self.revision_of_template[template] = revision
            meta["annotations"]["deployment.kubernetes.io/revision"] = str(revision)
            self.polls = 0
        patched["status"]["observedGeneration"] = meta["generation"]
        self.stored = patched
        return copy.deepcopy(patched)

    def rollout(self, deployment, events, grace) -> RolloutProgress:
        self.polls += 1
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        model = flag_value(container["args"], "--model-id")
        revision = deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        self.replicasets["tgi"] = f"tgi-rs{revision}"
        pod = f"tgi-{revision}-abcde"
        if container_gpus(container) == self.unschedulable_gpus:
            reason = f"pod {pod}: Unschedulable: 0/3 nodes available: 3 Insufficient nvidia.com/gpu"
            summary = f"tgi: 0/1 ready — {reason}"
            return RolloutProgress("tgi", False, summary, True, reason, revision=revision, pod=pod)
        if model in self.crashing:
            reason = OOM_REASON.replace("tgi-3-abcde", pod)
            return RolloutProgress(
                "tgi", False, f"tgi: 0/1 ready — {reason}", True, reason, OOM_OUTPUT,
                revision=revision, pod=pod,
            )  # fmt: skip
        if model in self.never_ready or self.polls <= self.ready_after_polls:
            summary = f"tgi: 0/1 ready — pod {pod}: Running, not ready yet"
            return RolloutProgress("tgi", False, summary, revision=revision, pod=pod, state=summary)
        return RolloutProgress("tgi", True, "tgi: 1/1 ready", revision=revision, state="ready")

    @property
    def container(self) -> dict[str, Any]:
        return self.stored["spec"]["template"]["spec"]["containers"][0]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.001)

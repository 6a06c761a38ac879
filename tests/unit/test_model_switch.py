"""haw.icc.tgi_model_switch without a cluster: the pure parts, then the action on a fake API.

The switch changes a running TGI to new settings: another model (change_model.yml) or another
number of GPUs (the gpu_scale role). The fake keeps one Deployment and plays its controller: JSON
patches are applied (their `test` operations too), a changed pod template makes a new revision,
and going back to an earlier template reuses that revision's ReplicaSet with the next number, as
Kubernetes does. What the new pod does is chosen by its model id.
"""

from __future__ import annotations

import copy
import json
from types import SimpleNamespace
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.action import tgi_model_switch as plugin
from ansible_collections.haw.icc.plugins.action.tgi_model_switch import (
    ActionModule,
    ModelSwitch,
    SwitchRefused,
    annotation_ops,
    describe_change,
    find_container,
    live_spec,
    normalize_env,
    same_spec,
    should_roll_back,
    switch_patch,
    switch_result,
    wanted_spec,
)
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import container_gpus
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import (
    RolloutProgress,
    describe_rollout,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout_wait import (
    FAILED,
    READY,
    TIMED_OUT,
    UNOBSERVED,
    WaitOutcome,
    _at_least_generation,
    wait_for_rollouts,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import NCCL_ENV_DEFAULTS
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    flag_value,
    tgi_workload,
)
from ansible_collections.haw.icc.plugins.plugin_utils import kubernetes_action

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


def run_switch(
    cluster: FakeCluster,
    settings: dict[str, Any],
    check_mode=False,
    annotations: dict[str, Any] | None = None,
    **options,
):
    """ModelSwitch.run to the pod of `settings` on the fake, with a fake clock; (result, lines
    shown)."""
    clock, lines = FakeClock(), []
    args = {
        "namespace": NAMESPACE,
        "name": "tgi",
        "container": "tgi",
        "timeout": 60,
        "poll_interval": 5,
        "rollback": True,
        "rollback_timeout": 30,
        **options,
    }
    switch = ModelSwitch(
        cluster,
        args,
        check_mode=check_mode,
        show=lines.append,
        warn=lines.append,
        prefix=f"[{NAMESPACE}] ",
        clock=clock,
        sleep=clock.sleep,
    )
    return switch.run(wanted_spec(tgi_workload(settings), annotations)), lines


def spec(**fields: Any) -> dict[str, Any]:
    """A spec as live_spec and wanted_spec give it, empty where not given."""
    empty = {"image": IMAGE, "args": [], "env": [], "resources": {}, "tolerations": [],
             "shm_size": None, "annotations": {}}  # fmt: skip
    return {**empty, **fields}


# --- pure parts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ([{"name": "A", "value": ""}], [{"name": "A"}]),  # the server drops empty values
        ([{"name": "PORT", "value": 80}], [{"name": "PORT", "value": "80"}]),
        ([{"name": "A", "value": None, "valueFrom": None}], [{"name": "A"}]),
        (
            [
                {
                    "name": "K",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": False}},
                }
            ],
            [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
        ),
        (
            [
                {
                    "name": "K",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}},
                }
            ],
            [
                {
                    "name": "K",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k", "optional": True}},
                }
            ],
        ),
        (
            [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            [
                {
                    "name": "POD",
                    "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}},
                }
            ],
        ),
        (None, []),
    ],
)
def test_env_is_compared_as_the_api_server_stores_it(given, stored):
    assert normalize_env(given) == stored


@pytest.mark.parametrize(
    ("live", "wanted", "same"),
    [
        (
            spec(args=["--model-id", "a"], env=LIVE_ENV),
            spec(args=["--model-id", "a"], env=LIVE_ENV),
            True,
        ),
        (
            spec(args=["--model-id", "a"], env=LIVE_ENV),
            spec(args=["--model-id", "b"], env=LIVE_ENV),
            False,
        ),
        # Order matters: the launcher reads flags in order, env may refer to earlier entries.
        (spec(args=["--a", "1", "--b", "2"]), spec(args=["--b", "2", "--a", "1"]), False),
        (spec(env=LIVE_ENV), spec(env=list(reversed(LIVE_ENV))), False),
        (
            spec(env=[{"name": "PORT", "value": "80"}]),
            spec(env=[{"name": "PORT", "value": 80}]),
            True,
        ),
        # Amounts by value: the API server stores 0.5 CPU as 500m and 1024Mi as 1Gi.
        (
            spec(resources={"requests": {"cpu": "500m", "memory": "1Gi"}}),
            spec(resources={"requests": {"cpu": "0.5", "memory": "1024Mi"}}),
            True,
        ),
        (
            spec(resources={"requests": {"nvidia.com/gpu": "1"}}),
            spec(resources={"requests": {"nvidia.com/gpu": "2"}}),
            False,
        ),
        (spec(shm_size="1Gi"), spec(shm_size="1024Mi"), True),
        (spec(shm_size="1Gi"), spec(shm_size="2Gi"), False),
        (spec(), spec(image="ghcr.io/huggingface/text-generation-inference:3.3.1"), False),
        (
            spec(),
            spec(tolerations=[{"key": "gpu-tesla-v100", "operator": "Exists"}]),
            False,
        ),
        (spec(annotations={"a": "1"}), spec(annotations={"a": "2"}), False),
    ],
)
def test_same_spec_compares_every_owned_part(live, wanted, same):
    assert same_spec(live, wanted) is same


def test_the_role_settings_give_exactly_the_live_pod():
    """tgi_workload is the one source: unchanged settings must not look like a change."""
    deployment = live_deployment()
    live = live_spec(deployment, find_container(deployment, "tgi")[1])
    wanted = wanted_spec(tgi_workload(SETTINGS))
    assert wanted["args"] == LIVE_ARGS
    assert same_spec(live, wanted)


@pytest.mark.parametrize(
    ("args", "model"),
    [
        (["--model-id", "org/m", "--num-shard", "1"], "org/m"),
        (["--num-shard", "1", "--model-id=org/m"], "org/m"),
        (["--num-shard", "1"], None),
        (["--model-id"], None),
        (None, None),
    ],
)
def test_flag_value_reads_the_model_id_flag(args, model):
    assert flag_value(args, "--model-id") == model


@pytest.mark.parametrize(
    ("resources", "gpus"),
    [
        ({"requests": {"nvidia.com/gpu": "2"}, "limits": {"nvidia.com/gpu": "2"}}, 2),
        ({"requests": {"cpu": "2"}}, 0),
        ({}, 0),
        ({"limits": {"nvidia.com/gpu": "1"}}, 1),  # request defaults to the limit
    ],
)
def test_container_gpus(resources, gpus):
    assert container_gpus({"resources": resources}) == gpus


def test_switch_patch_tests_the_version_and_the_container_then_writes_what_differs():
    deployment = live_deployment()
    wanted = wanted_spec(tgi_workload({**SETTINGS, "tgi_model_id": NEW_MODEL}))
    patch = switch_patch("4711", deployment, 0, wanted)
    assert patch == [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "4711"},
        {"op": "test", "path": "/spec/template/spec/containers/0/name", "value": "tgi"},
        {
            "op": "replace",
            "path": "/spec/template/spec/containers/0/args",
            "value": ["--model-id", NEW_MODEL, *LIVE_ARGS[2:]],
        },
    ]


def test_switch_patch_for_more_gpus_writes_resources_args_env_and_shm():
    deployment = live_deployment()
    wanted = wanted_spec(tgi_workload(with_model(SHARDING_MODEL, tgi_gpu_count=2)))
    ops = {op["path"].rsplit("/", 1)[-1]: op for op in switch_patch("1", deployment, 0, wanted)}
    assert ops["args"]["value"][:4] == ["--model-id", SHARDING_MODEL, "--num-shard", "2"]
    assert ops["resources"]["value"]["limits"]["nvidia.com/gpu"] == "2"
    assert {e["name"] for e in ops["env"]["value"]} >= set(NCCL_ENV_DEFAULTS)
    assert ops["sizeLimit"] == {
        "op": "replace",
        "path": "/spec/template/spec/volumes/1/emptyDir/sizeLimit",
        "value": "2Gi",
    }
    assert "tolerations" not in ops  # the same GPU type


def test_switch_patch_adds_missing_fields_and_removes_emptied_ones():
    deployment = live_deployment(gpus=None)  # on CPU: no tolerations
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    del container["args"]
    wanted = wanted_spec(tgi_workload(SETTINGS))
    wanted["env"] = []
    patch = switch_patch("1", deployment, 0, wanted)
    assert {"op": "add", "path": "/spec/template/spec/containers/0/args",
            "value": LIVE_ARGS} in patch  # fmt: skip
    assert {"op": "remove", "path": "/spec/template/spec/containers/0/env"} in patch
    assert {"op": "add", "path": "/spec/template/spec/tolerations",
            "value": wanted["tolerations"]} in patch  # fmt: skip


@pytest.mark.parametrize(
    ("before", "after", "text"),
    [
        ({"model_id": "a", "gpus": 1}, {"model_id": "b", "gpus": 1}, "from model a to b"),
        ({"model_id": "a", "gpus": 1}, {"model_id": "a", "gpus": 2}, "from 1 GPU to 2 GPUs"),
        ({"model_id": "a", "gpus": 0}, {"model_id": "a", "gpus": 1}, "from CPU to 1 GPU"),
        (
            {"model_id": "a", "gpus": 2},
            {"model_id": "b", "gpus": 1},
            "from model a to b and from 2 GPUs to 1 GPU",
        ),
        ({"model_id": "a", "gpus": 1}, {"model_id": "a", "gpus": 1}, "the settings of model a"),
    ],
)
def test_the_change_is_described_by_model_and_gpus(before, after, text):
    assert describe_change(before, after) == text


@pytest.mark.parametrize(
    ("status", "rollback", "expected"),
    [
        (READY, True, False),
        (FAILED, True, True),
        (TIMED_OUT, True, True),
        (UNOBSERVED, True, False),  # cannot see the cluster: cannot judge, cannot write either
        (FAILED, False, False),
        (TIMED_OUT, False, False),
    ],
)
def test_rollback_decision(status, rollback, expected):
    assert should_roll_back(WaitOutcome(status, {}, 1.0), rollback) is expected


def test_result_shape():
    result = switch_result(
        changed=True,
        before={"model_id": "a", "gpus": 1},
        after={"model_id": "b", "gpus": 2},
        revision_before="1",
        revision_after="2",
        replicaset="tgi-rs2",
        diff={"before": {}, "after": {}},
    )
    assert result == {
        "changed": True,
        "model": {"before": "a", "after": "b"},
        "gpus": {"before": 1, "after": 2},
        "revision": {"before": "1", "after": "2"},
        "replicaset": "tgi-rs2",
        "rolled_back": False,
        "deployment": {},
        "diff": {"before": {}, "after": {}},
    }


def test_a_missing_container_is_refused_naming_the_containers():
    with pytest.raises(SwitchRefused, match=r"no container named 'server' \(its containers: tgi\)"):
        find_container(live_deployment(), "server")


def test_a_stale_read_counts_as_the_generation_the_patch_made():
    deployment = {"metadata": {"generation": 3}}
    assert _at_least_generation(deployment, 4)["metadata"]["generation"] == 4
    assert _at_least_generation(deployment, 2) is deployment
    assert _at_least_generation(deployment, None) is deployment


def test_the_wait_looks_at_the_patched_generation_not_an_older_read():
    """A read from before the patch (its status already complete) must not end the wait."""
    old = live_deployment()
    old["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "availableReplicas": 1,
    }
    clock = FakeClock()
    watcher = SimpleNamespace(
        namespace=NAMESPACE,
        deployment=lambda name: copy.deepcopy(old),
        events=list,
        rollout=lambda d, e, g: describe_rollout(d, [], [], e, clock_now(), g),
    )

    def clock_now():
        from datetime import UTC, datetime

        return datetime(2026, 3, 2, tzinfo=UTC)

    done = wait_for_rollouts(
        watcher, ["tgi"], timeout=10, poll_interval=1, grace=60, show=print, warn=print,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert done.status == READY
    waiting = wait_for_rollouts(
        watcher, ["tgi"], timeout=10, poll_interval=1, grace=60, show=print, warn=print,
        generations={"tgi": 2}, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert waiting.status == TIMED_OUT
    assert "waiting for the Deployment controller to see the new spec" in waiting.message


# --- the switch on the fake --------------------------------------------------------------------


def test_a_switch_writes_one_patch_and_waits_for_the_new_revision():
    cluster = FakeCluster(live_deployment(), ready_after_polls=2)

    result, lines = run_switch(cluster, with_model(NEW_MODEL))

    assert "failed" not in result, result["msg"]
    assert cluster.writes == 1
    [(patch, dry_run)] = cluster.patches
    assert dry_run is False
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "100"}
    assert patch[2]["value"] == ["--model-id", NEW_MODEL, *LIVE_ARGS[2:]]
    assert cluster.container["args"][:2] == ["--model-id", NEW_MODEL]
    assert cluster.container["env"] == LIVE_ENV  # re-written unchanged
    assert result["changed"] is True
    assert result["model"] == {"before": OLD_MODEL, "after": NEW_MODEL}
    assert result["revision"] == {"before": "1", "after": "2"}
    assert result["replicaset"] == "tgi-rs2"
    assert result["rolled_back"] is False
    assert result["deployment"]["ready"] is True
    assert result["diff"]["before"]["model_id"] == OLD_MODEL
    assert result["diff"]["after"]["model_id"] == NEW_MODEL
    assert lines[0] == f"[{NAMESPACE}] tgi: changing from model {OLD_MODEL} to {NEW_MODEL}"
    assert f"[{NAMESPACE}] tgi: 0/1 ready — pod tgi-2-abcde: Running, not ready yet" in lines
    assert lines[-1].startswith(f"[{NAMESPACE}] tgi: 1/1 ready")
    assert result["msg"].startswith(
        f"changed Deployment tgi in namespace {NAMESPACE} from model {OLD_MODEL} to {NEW_MODEL}: "
        "revision 2 (ReplicaSet tgi-rs2) ready after"
    )


def test_the_same_settings_write_nothing():
    cluster = FakeCluster(live_deployment())

    result, _lines = run_switch(cluster, SETTINGS)

    assert cluster.patches == []
    assert result["changed"] is False
    assert result["model"] == {"before": OLD_MODEL, "after": OLD_MODEL}
    assert result["gpus"] == {"before": 1, "after": 1}
    assert result["revision"] == {"before": "1", "after": "1"}
    assert "diff" not in result
    assert result["msg"] == (
        f"Deployment tgi in namespace {NAMESPACE} already runs model {OLD_MODEL} on 1 GPU "
        "with these settings"
    )


def test_check_mode_sends_a_dry_run_and_shows_the_diff_without_secrets():
    cluster = FakeCluster(live_deployment())
    before = copy.deepcopy(cluster.stored)

    result, lines = run_switch(cluster, with_model(NEW_MODEL, tgi_dtype="float16"), check_mode=True)

    assert [dry for _patch, dry in cluster.patches] == [True]
    assert cluster.stored == before and cluster.writes == 0
    assert lines == []  # nothing waited for
    assert result["changed"] is True
    assert result["revision"] == {"before": "1", "after": None}
    assert result["diff"]["after"]["args"] == [
        *("--model-id", NEW_MODEL, "--num-shard", "1", "--dtype", "float16"),
        *LIVE_ARGS[4:],
    ]
    assert result["diff"]["after"]["env"][-1] == {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "tgi-api-key", "key": "api-key"}},
    }
    assert result["msg"].startswith("check mode: would change Deployment tgi")


def owned(cluster: FakeCluster) -> dict[str, Any]:
    """The live owned part of the fake's Deployment."""
    return live_spec(cluster.stored, cluster.container)


def test_scaling_a_layer_split_model_changes_only_the_gpus():
    """Qwen2 cannot be tensor-sharded on a V100: more GPUs are one shard that sees them all."""
    cluster = FakeCluster(live_deployment())

    result, lines = run_switch(cluster, with_model(OLD_MODEL, tgi_gpu_count=2))

    assert "failed" not in result, result["msg"]
    assert cluster.writes == 1
    assert owned(cluster)["args"] == LIVE_ARGS  # --num-shard 1 still
    assert owned(cluster)["env"] == LIVE_ENV  # no NCCL: one process
    assert owned(cluster)["shm_size"] == "1Gi"
    assert owned(cluster)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert owned(cluster)["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert result["gpus"] == {"before": 1, "after": 2}
    assert result["model"] == {"before": OLD_MODEL, "after": OLD_MODEL}
    assert lines[0] == f"[{NAMESPACE}] tgi: changing from 1 GPU to 2 GPUs"
    assert result["diff"]["before"]["gpus"] == 1 and result["diff"]["after"]["gpus"] == 2


def test_scaling_a_sharded_model_up_and_down_leaves_exactly_the_pod_of_each_count():
    settings = with_model(SHARDING_MODEL)
    cluster = FakeCluster(live_deployment())
    run_switch(cluster, settings)  # to the sharding model on one GPU
    revisions = []
    for count in (2, 4, 1):
        result, _lines = run_switch(cluster, {**settings, "tgi_gpu_count": count})
        assert "failed" not in result, result["msg"]
        assert same_spec(
            owned(cluster), wanted_spec(tgi_workload({**settings, "tgi_gpu_count": count}))
        )
        revisions.append(result["revision"]["after"])
        nccl = {e["name"] for e in owned(cluster)["env"]} & set(NCCL_ENV_DEFAULTS)
        shards = owned(cluster)["args"][owned(cluster)["args"].index("--num-shard") + 1]
        assert (shards, bool(nccl), owned(cluster)["shm_size"]) == {
            2: ("2", True, "2Gi"),
            4: ("4", True, "4Gi"),
            1: ("1", False, "1Gi"),
        }[count]
    assert revisions == ["3", "4", "5"]  # one new revision per step
    again, _lines = run_switch(cluster, {**settings, "tgi_gpu_count": 1})
    assert again["changed"] is False and cluster.writes == 4


def test_a_cpu_deployment_moves_to_a_gpu_with_its_toleration():
    cluster = FakeCluster(live_deployment(gpus=None))
    cluster.container["args"] = [a for a in LIVE_ARGS if a not in ("--num-shard", "1")]

    result, _lines = run_switch(cluster, SETTINGS)

    assert "failed" not in result, result["msg"]
    assert owned(cluster)["tolerations"] == [
        {"key": "gpu-tesla-v100", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert owned(cluster)["args"] == LIVE_ARGS
    assert result["gpus"] == {"before": 0, "after": 1}


def test_a_failed_scale_puts_the_previous_gpus_back():
    cluster = FakeCluster(live_deployment(), unschedulable_gpus=2)
    before = owned(cluster)

    result, lines = run_switch(cluster, with_model(OLD_MODEL, tgi_gpu_count=2))

    assert result["failed"] is True and result["rolled_back"] is True
    assert owned(cluster) == before
    rolling_back = f"tgi: the new revision failed; rolling back to model {OLD_MODEL} on 1 GPU"
    assert f"[{NAMESPACE}] {rolling_back}" in lines
    assert result["msg"].startswith(
        f"the change of Deployment tgi in namespace {NAMESPACE} from 1 GPU to 2 GPUs failed, so "
        f"it was rolled back: model {OLD_MODEL} on 1 GPU serves again (revision 3)"
    )
    assert "Insufficient nvidia.com/gpu" in result["msg"]


def test_a_cpu_deployment_switches_with_zero_gpus():
    cluster = FakeCluster(live_deployment(gpus=None))
    cluster.container["args"] = [a for a in LIVE_ARGS if a not in ("--num-shard", "1")]

    result, _lines = run_switch(cluster, with_model(NEW_MODEL, tgi_gpu_count=0))

    assert result["changed"] is True and "failed" not in result
    assert "--num-shard" not in cluster.container["args"]


def test_a_deployment_that_changed_meanwhile_is_read_again_and_patched():
    cluster = FakeCluster(live_deployment())
    cluster.status_writes_before_patch = 1  # the first `test` of resourceVersion fails

    result, _lines = run_switch(cluster, with_model(NEW_MODEL))

    assert "failed" not in result, result["msg"]
    assert len(cluster.patches) == 2 and cluster.writes == 1
    assert cluster.patches[0][0][0]["value"] == "100"
    assert cluster.patches[1][0][0]["value"] == "101"


def test_a_crash_looping_model_is_rolled_back_and_the_reason_reported():
    cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL,))

    result, lines = run_switch(cluster, with_model(BIG_MODEL, tgi_dtype="float16"))

    assert result["failed"] is True
    assert result["rolled_back"] is True
    assert cluster.writes == 2
    # The previous args and env are back exactly: the controller reuses the old ReplicaSet.
    assert cluster.container["args"] == LIVE_ARGS
    assert cluster.container["env"] == LIVE_ENV
    assert cluster.stored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert result["model"] == {"before": OLD_MODEL, "after": BIG_MODEL}
    assert result["revision"] == {"before": "1", "after": "2"}
    assert result["failed_rollout"]["reason"] == OOM_REASON.replace("tgi-3", "tgi-2")
    assert result["deployment"]["ready"] is True and result["deployment"]["revision"] == "3"
    message = result["msg"]
    assert message.startswith(
        f"the change of Deployment tgi in namespace {NAMESPACE} from model {OLD_MODEL} to "
        f"{BIG_MODEL} failed, so it was rolled back: model {OLD_MODEL} on 1 GPU serves again "
        "(revision 3)"
    )
    assert "OOMKilled (restart 0): torch.OutOfMemoryError" in message
    assert "Last output of the container:\n" + OOM_OUTPUT in message
    assert "haw.icc.gpu_capacity_check" in message
    assert (
        f"[{NAMESPACE}] tgi: the new revision failed; rolling back to model {OLD_MODEL} on 1 GPU"
        in lines
    )


def test_without_rollback_the_failed_revision_stays():
    cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL,))

    result, _lines = run_switch(cluster, with_model(BIG_MODEL), rollback=False)

    assert result["failed"] is True and result["rolled_back"] is False
    assert cluster.writes == 1
    assert flag_value(cluster.container["args"], "--model-id") == BIG_MODEL
    assert "was not rolled back (rollback: false)" in result["msg"]
    assert f"Go back to model {OLD_MODEL} on 1 GPU" in result["msg"]


def test_a_model_not_ready_in_time_is_rolled_back():
    cluster = FakeCluster(live_deployment(), never_ready=(NEW_MODEL,))

    result, _lines = run_switch(cluster, with_model(NEW_MODEL), timeout=20)

    assert result["rolled_back"] is True and result["failed"] is True
    assert flag_value(cluster.container["args"], "--model-id") == OLD_MODEL
    assert "timed out after 20s waiting for Deployment(s) tgi" in result["msg"]
    assert "raise the timeout (now 20s)" in result["msg"]
    assert result["elapsed"] >= 20


def test_a_rollback_that_does_not_come_up_says_so_with_both_reasons():
    # Both models crash: the restored revision cannot become ready either.
    cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL, OLD_MODEL))

    result, _lines = run_switch(cluster, with_model(BIG_MODEL))

    assert result["failed"] is True and result["rolled_back"] is True
    assert "were written back, but they did not become ready either" in result["msg"]
    assert "Why the change failed: " in result["msg"]
    assert "Why the rollback failed: Deployment tgi in namespace" in result["msg"]


def test_a_rollback_write_that_is_refused_says_so_with_both_reasons():
    cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL,))
    cluster.refuse_patch_number = 2

    result, _lines = run_switch(cluster, with_model(BIG_MODEL))

    assert result["failed"] is True and result["rolled_back"] is False
    assert f"and the rollback to model {OLD_MODEL} on 1 GPU failed too" in result["msg"]
    assert "Why the rollback failed: deployments.apps is forbidden" in result["msg"]
    assert "OOMKilled" in result["msg"]


# --- the action plugin -------------------------------------------------------------------------


class FakeDisplay:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def display(self, line: str) -> None:
        self.lines.append(line)

    def warning(self, line: str) -> None:
        self.warnings.append(line)


@pytest.fixture
def fake_api(monkeypatch):
    """The action's client is the fake cluster; what it prints is collected."""
    state = SimpleNamespace(cluster=None, clients=0, display=FakeDisplay())

    def build(module=None, auth=None):
        state.clients += 1
        return SimpleNamespace(), None

    monkeypatch.setattr(kubernetes_action, "api_client", build)
    monkeypatch.setattr(plugin, "RolloutWatcher", lambda api, namespace: state.cluster)
    monkeypatch.setattr(plugin, "display", state.display)
    return state


def run_action(settings: dict[str, Any], check_mode: bool = False, **options: Any):
    task = SimpleNamespace(
        args={"namespace": NAMESPACE, "settings": settings, "kubeconfig": "/dev/null", **options},
        async_val=0,
        check_mode=check_mode,
        diff=True,
        action="haw.icc.tgi_model_switch",
    )
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    action = ActionModule(task, connection, SimpleNamespace(), None, None, None)
    return action.run(task_vars={"inventory_hostname": NAMESPACE})


def test_action_switches_and_prints_progress(fake_api):
    fake_api.cluster = FakeCluster(live_deployment())

    result = run_action(with_model(NEW_MODEL))

    assert "failed" not in result, result["msg"]
    assert result["changed"] is True
    assert result["model"] == {"before": OLD_MODEL, "after": NEW_MODEL}
    assert fake_api.display.lines[0] == (
        f"[{NAMESPACE}] tgi: changing from model {OLD_MODEL} to {NEW_MODEL}"
    )
    assert result["multi_gpu"]["mode"] == "single-gpu"
    assert fake_api.display.lines[-1] == f"[{NAMESPACE}] tgi: 1/1 ready"


def test_action_refuses_invalid_settings_listing_every_problem_without_a_client(fake_api):
    bad = with_model("not a model", tgi_dtype="float16", tgi_quantize="awq")

    result = run_action(bad)

    assert result["failed"] is True and result["changed"] is False
    assert fake_api.clients == 0  # refused before connecting, so before any write
    lines = result["msg"].splitlines()
    assert lines[0] == f"Refusing to change Deployment tgi in namespace {NAMESPACE}:"
    assert any(line.startswith("- tgi_model_id: 'not a model' is not allowed") for line in lines)
    assert any(
        line.startswith("- tgi_dtype ('float16') and tgi_quantize ('awq')") for line in lines
    )


def test_action_tells_to_deploy_first_when_there_is_no_deployment(fake_api):
    fake_api.cluster = FakeCluster(live_deployment())

    result = run_action(with_model(NEW_MODEL), name="tgi-other")

    assert result["failed"] is True
    assert result["msg"] == (
        f"Refusing to change Deployment tgi-other in namespace {NAMESPACE}: "
        f"Deployment tgi-other not found in namespace {NAMESPACE}: the switch changes a running "
        "TGI and does not create one; run playbooks/deploy.yml first"
    )
    assert fake_api.cluster.patches == []


def test_action_check_mode_reports_a_change_and_writes_nothing(fake_api):
    fake_api.cluster = FakeCluster(live_deployment())

    result = run_action(with_model(NEW_MODEL), check_mode=True)

    assert result["changed"] is True
    assert fake_api.cluster.writes == 0
    assert [dry for _patch, dry in fake_api.cluster.patches] == [True]


def test_action_rolls_back_a_crashing_model(fake_api):
    fake_api.cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL,))

    result = run_action(with_model(BIG_MODEL, tgi_dtype="float16"))

    assert result["failed"] is True and result["rolled_back"] is True
    assert "OOMKilled" in result["msg"]
    assert flag_value(fake_api.cluster.container["args"], "--model-id") == OLD_MODEL


def test_action_checks_its_numbers(fake_api):
    result = run_action(SETTINGS, poll_interval=0)
    assert result["failed"] is True
    assert result["msg"] == (
        "poll_interval must be >= 1; timeout, rollback_timeout and unschedulable_grace >= 0"
    )


@pytest.mark.parametrize(
    ("live", "wanted", "ops"),
    [
        # No annotations yet: the map is added in one operation.
        (
            None,
            {"haw.icc/secret-versions": "k=1"},
            [("add", "", {"haw.icc/secret-versions": "k=1"})],
        ),
        # Others are left alone; ours is replaced, with '/' escaped in the pointer.
        (
            {"keep": "me", "haw.icc/secret-versions": "k=1"},
            {"haw.icc/secret-versions": "k=2"},
            [("replace", "/haw.icc~1secret-versions", "k=2")],
        ),
        ({"keep": "me"}, {"a/b": "x"}, [("add", "/a~1b", "x")]),
        ({"a/b": "x"}, {"a/b": None}, [("remove", "/a~1b", None)]),
        ({"a/b": "x"}, {"a/b": "x"}, []),  # already so: nothing to write
    ],
)
def test_annotation_ops_touch_only_the_managed_annotations(live, wanted, ops):
    metadata = {"labels": {"app": "tgi"}} | ({"annotations": live} if live is not None else {})
    deployment = {"spec": {"template": {"metadata": metadata}}}
    base = "/spec/template/metadata/annotations"
    assert annotation_ops(deployment, wanted) == [
        {"op": op, "path": base + path, **({} if value is None else {"value": value})}
        for op, path, value in ops
    ]

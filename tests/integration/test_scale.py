"""playbooks/scale.yml against the sandbox, driven as a user drives it: `-e tgi_gpu_count=N`.

The sandbox's V100 nodes have compute capability 7.0, and its node agent plays TGI's launcher
there: a sharded Qwen2 dies ("Sharded Qwen2 requires Flash Attention enabled models"), BLOOM
shards, and one shard with several GPUs visible spreads its layers over them. After every step
the live pod must be exactly what the tgi_server role renders for that count (render.yml reads
the count scale.yml recorded in host_vars), so scaling down leaves no sharding flag, NCCL
variable or larger /dev/shm behind.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_pod_spec import (
    live_spec,
    same_spec,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import NCCL_ENV_DEFAULTS
from kubernetes import client
from views import FAST, FIRST_MODEL, V100, gpu_container, host_vars_file, pod_manifest
from waiting import wait_until

from playbooks import Run, run_playbook, write_inventory

SHARDING_MODEL = "bigscience/bloom-1b7"  # has sharded classes without flash attention
TGI_SELECTOR = "app.kubernetes.io/name=tgi"
REVISION = "deployment.kubernetes.io/revision"


def deployment(apps: client.AppsV1Api, namespace: str) -> dict:
    """The TGI Deployment as plain JSON, as the API server returns it."""
    live = apps.read_namespaced_deployment("tgi", namespace)
    return client.ApiClient().sanitize_for_serialization(live)


def owned(manifest: dict) -> dict:
    """The part of the pod that follows from the settings (what tgi_workload computes)."""
    return live_spec(manifest, manifest["spec"]["template"]["spec"]["containers"][0])


def rendered(inventory: Path, namespace: str, tmp_path: Path) -> dict:
    """The Deployment the tgi_server role renders from the inventory as it is now."""
    folder = tmp_path / f"rendered-{secrets.token_hex(2)}"
    run = run_playbook("render.yml", inventory, extra_vars={"icc_render_dir": str(folder)})
    assert run.rc == 0, run.output[-3000:]
    return yaml.safe_load((folder / namespace / "tgi_server-deployment.yml").read_text())


def ready_tgi_pod(core: client.CoreV1Api, namespace: str) -> client.V1Pod | None:
    pods = core.list_namespaced_pod(namespace, label_selector=TGI_SELECTOR).items
    ready = [
        pod
        for pod in pods
        if pod.metadata.deletion_timestamp is None
        and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    ]
    return ready[0] if len(ready) == 1 else None


def free_v100s(core: client.CoreV1Api, besides: str | None = None) -> dict[str, int]:
    """GPUs free per V100 node, counting the unfinished pods of every namespace but `besides`
    (whose TGI pod the scale replaces)."""
    nodes = {
        node.metadata.name: int(node.status.allocatable.get("nvidia.com/gpu", "0"))
        for node in core.list_node().items
        if (node.metadata.labels or {}).get("gpu-type") == V100
    }
    for pod in core.list_pod_for_all_namespaces().items:
        if (
            pod.spec.node_name in nodes
            and pod.status.phase not in ("Succeeded", "Failed")
            and pod.metadata.namespace != besides
        ):
            nodes[pod.spec.node_name] -= pod_gpus(pod)
    return nodes


def pod_gpus(pod: client.V1Pod) -> int:
    return sum(
        int(((c.resources and c.resources.requests) or {}).get("nvidia.com/gpu", "0"))
        for c in pod.spec.containers
    )


def wait_for_free_v100s(core: client.CoreV1Api, gpus: int, besides: str, nodes: int = 1) -> None:
    """Pods of the tests before (their namespaces are deleted in the background) may still hold
    GPUs: wait until `nodes` V100 nodes have `gpus` free each."""
    wait_until(
        lambda: sum(free >= gpus for free in free_v100s(core, besides).values()) >= nodes,
        180,
        f"{nodes} V100 node(s) with {gpus} GPUs free",
        interval=1,
        explain=lambda: f"free per node: {free_v100s(core, besides)}",
    )


def wait_until_no_gpu_pod_is_leaving(core: client.CoreV1Api) -> None:
    """Until the pods of deleted namespaces are gone: GPUs they free later would change what
    the test set up."""

    def leaving() -> list[str]:
        ending = {
            ns.metadata.name for ns in core.list_namespace().items if ns.status.phase != "Active"
        }
        return [
            f"{pod.metadata.namespace}/{pod.metadata.name}"
            for pod in core.list_pod_for_all_namespaces().items
            if pod.spec.node_name
            and pod_gpus(pod)
            and (pod.metadata.deletion_timestamp or pod.metadata.namespace in ending)
        ]

    wait_until(lambda: not leaving(), 180, "the pods of deleted namespaces to go", interval=1,
               explain=lambda: f"still there: {leaving()}")  # fmt: skip


@pytest.fixture
def apps(admin_client) -> client.AppsV1Api:
    return client.AppsV1Api(admin_client)


@pytest.fixture
def blockers(sandbox, core) -> Iterator:
    """Places pods holding GPUs on given nodes, in a namespace of their own (made on the first
    pod, deleted after)."""
    namespace = f"t-blockers-{secrets.token_hex(3)}"
    made = []

    def place(node: str, gpus: int) -> None:
        if not made:
            sandbox.create_namespace(namespace, grant_student=False)
            sandbox.wait_until_usable(namespace)
        manifest = pod_manifest(
            f"hold-{node}-{len(made)}", gpu_container("hold", "busybox:1.36", gpus)
        )
        manifest["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node}
        core.create_namespaced_pod(namespace, manifest)
        made.append(manifest["metadata"]["name"])
        wait_until(
            lambda: core.read_namespaced_pod(made[-1], namespace).spec.node_name == node,
            60,
            f"the blocker pod on {node} to be scheduled",
        )

    yield place
    if made:
        core.delete_namespace(namespace)


def deploy(tmp_path: Path, namespace: str, kubeconfig: Path, model: str, *options: str) -> Path:
    """An inventory whose namespace file names the model, as a user writes it; deployed."""
    inventory = write_inventory(tmp_path, [namespace], kubeconfig, **FAST)
    record = host_vars_file(inventory, namespace)
    record.parent.mkdir()
    record.write_text(f"---\ntgi_model_id: {model}\n")
    run = run_playbook("deploy.yml", inventory, *options)
    assert run.rc == 0, run.output[-4000:]
    return inventory


def scale(inventory: Path, gpus: int, *options: str) -> Run:
    return run_playbook("scale.yml", inventory, *options, extra_vars={"tgi_gpu_count": gpus})


# ---------------------------------------------------------------------------------------------


@pytest.mark.sandbox
@pytest.mark.parametrize(
    ("model", "mode", "shards"),
    [
        (FIRST_MODEL, "layer-split", {2: "1", 4: "1", 1: "1"}),
        (SHARDING_MODEL, "tensor-sharding", {2: "2", 4: "4", 1: "1"}),
    ],
    ids=["qwen2-layer-split", "bloom-tensor-sharding"],
)
def test_scaling_up_and_down_leaves_exactly_the_pod_of_each_count(
    model, mode, shards, tmp_path, namespace, sandbox, core, apps
):
    inventory = deploy(tmp_path, namespace, sandbox.student_kubeconfig, model)
    revision = int(deployment(apps, namespace)["metadata"]["annotations"][REVISION])

    for gpus in (2, 4, 1):
        wait_for_free_v100s(core, gpus, besides=namespace)
        run = scale(inventory, gpus)

        assert run.rc == 0, run.output[-4000:]
        assert f"({mode if gpus > 1 else 'single-gpu'};" in run.output
        live = deployment(apps, namespace)
        revision += 1  # one rollout per step
        assert live["metadata"]["annotations"][REVISION] == str(revision)
        assert yaml.safe_load(host_vars_file(inventory, namespace).read_text()) == {
            "tgi_model_id": model,
            "tgi_gpu_count": gpus,
        }
        # What deploy.yml would make of the inventory now: nothing left over, nothing missing.
        assert same_spec(owned(live), owned(rendered(inventory, namespace, tmp_path)))
        spec = owned(live)
        assert spec["args"][spec["args"].index("--num-shard") + 1] == shards[gpus]
        names = {entry["name"] for entry in spec["env"]}
        assert bool(names & set(NCCL_ENV_DEFAULTS)) == (shards[gpus] != "1")
        assert spec["shm_size"] == f"{shards[gpus]}Gi"
        assert spec["resources"]["limits"]["nvidia.com/gpu"] == str(gpus)
        pod = wait_until(lambda: ready_tgi_pod(core, namespace), 60, "the scaled pod to be Ready")
        assert pod_gpus(pod) == gpus  # the new pod, not the old one still ready
        node = core.read_node(pod.spec.node_name)
        assert node.metadata.labels["gpu-type"] == V100

    # The same count again: nothing written, the pod stays.
    writes = len(sandbox.student_writes(namespace))
    again = scale(inventory, 1)
    assert again.rc == 0, again.output[-4000:]
    assert again.changed(namespace) == 0, again.output[-4000:]
    assert len(sandbox.student_writes(namespace)) == writes
    assert ready_tgi_pod(core, namespace).metadata.uid == pod.metadata.uid


@pytest.mark.sandbox
def test_refused_scales_write_nothing_and_say_why(
    tmp_path, namespace, sandbox, core, apps, blockers
):
    inventory = deploy(tmp_path, namespace, sandbox.student_kubeconfig, FIRST_MODEL)
    writes = len(sandbox.student_writes(namespace))

    more_than_a_node = scale(inventory, 5)
    assert more_than_a_node.rc != 0
    assert "tgi_gpu_count: 5 is more than one gpu-tesla-v100 node has: allowed 0..4" in (
        more_than_a_node.output
    )

    cpu = scale(inventory, 0)
    assert cpu.rc != 0
    assert "add -e gpu_scale_allow_cpu=true" in cpu.output

    sandbox.set_gpu_quota(namespace, 2)
    over_quota = scale(inventory, 3)
    assert over_quota.rc != 0
    assert "- gpu-quota: ResourceQuota gpu-quota in " in over_quota.output
    assert (
        "allows 2 (requests.nvidia.com/gpu), 1 in use, 1 of them by the pod being replaced: "
        "2 left, fewer than the 3 asked for" in over_quota.output
    )
    assert len(sandbox.student_writes(namespace)) == writes
    assert "Traceback" not in over_quota.output

    # A lecturer sees the nodes: with one GPU taken on every V100 node, no node has 4 free.
    # (The quota is raised first, so that only the free GPUs per node can refuse.)
    sandbox.set_gpu_quota(namespace, 8)
    lecturer = tmp_path / "lecturer"
    lecturer.mkdir()
    admin_inventory = write_inventory(lecturer, [namespace], sandbox.admin_kubeconfig, **FAST)
    wait_for_free_v100s(core, 3, besides=namespace, nodes=2)
    for node in free_v100s(core):
        blockers(node, 1)  # TGI's node: 4 - 1 (TGI, released by the scale) - 1 = 3 free
    generation = deployment(apps, namespace)["metadata"]["generation"]
    no_node = scale(admin_inventory, 4)
    assert no_node.rc != 0
    assert "- gpus-free: no gpu-tesla-v100 node has 4 GPUs free; free per node: " in no_node.output
    assert deployment(apps, namespace)["metadata"]["generation"] == generation


@pytest.mark.sandbox
def test_gpus_taken_between_the_check_and_the_change_are_rolled_back(
    tmp_path, namespace, sandbox, core, apps, blockers
):
    """The student cannot see the nodes, so the check passes on the quota; the new pod then
    finds no node with 2 GPUs free, stays Pending, and the previous revision comes back."""
    inventory = deploy(tmp_path, namespace, sandbox.student_kubeconfig, FIRST_MODEL)
    before = deployment(apps, namespace)
    wait_until_no_gpu_pod_is_leaving(core)
    for node, free in free_v100s(core).items():
        if free:
            blockers(node, free)  # every V100 taken but the one TGI holds

    run = scale(inventory, 2, "-e", "gpu_scale_unschedulable_grace=5")

    assert run.rc != 0
    assert "cannot list nodes" in run.output  # the check could only see the quota
    assert f"failed, so it was rolled back: model {FIRST_MODEL} on 1 GPU serves again" in run.output
    assert "Insufficient nvidia.com/gpu" in run.output
    after = deployment(apps, namespace)
    assert same_spec(owned(after), owned(before))
    assert after["metadata"]["annotations"][REVISION] == str(
        int(before["metadata"]["annotations"][REVISION]) + 2
    )  # the failed revision, then the old template again under the next number
    assert wait_until(lambda: ready_tgi_pod(core, namespace), 60, "the old pod to serve again")
    assert "tgi_gpu_count" not in yaml.safe_load(host_vars_file(inventory, namespace).read_text())


@pytest.mark.sandbox
def test_a_scale_keeps_the_hugging_face_token_and_writes_no_secret(
    tmp_path, namespace, sandbox, core, apps
):
    """The token was given once, at deploy; a scale without it must not drop it from the pod."""
    inventory = deploy(tmp_path, namespace, sandbox.student_kubeconfig, FIRST_MODEL,
                       "-e", "tgi_hf_token=hf_given_once")  # fmt: skip
    env = {entry["name"] for entry in owned(deployment(apps, namespace))["env"]}
    assert "HF_TOKEN" in env
    writes = len(sandbox.student_writes(namespace))
    assert writes > 0  # the audit log sees the student's writes (so "none" below means none)
    wait_for_free_v100s(core, 2, besides=namespace)

    run = scale(inventory, 2)

    assert run.rc == 0, run.output[-4000:]
    env = {entry["name"] for entry in owned(deployment(apps, namespace))["env"]}
    assert "HF_TOKEN" in env
    kinds = {entry["objectRef"]["resource"] for entry in sandbox.student_writes(namespace)[writes:]}
    assert kinds == {"deployments"}, kinds  # the one patch, no Secret

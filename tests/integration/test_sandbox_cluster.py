"""The sandbox behaves like the ICC where the collection relies on it, shown on the real API."""

from __future__ import annotations

import ipaddress

import pytest
from kubernetes import client
from views import V100, gpu_container, pod_manifest
from waiting import wait_until

TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.0"


def is_ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def pod_is_ready(core: client.CoreV1Api, namespace: str, name: str) -> bool:
    return is_ready(core.read_namespaced_pod(name, namespace))


def pod_event(core: client.CoreV1Api, namespace: str, pod: str, reason: str):
    """The pod's first event with this reason, else None."""
    events = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={pod}"
    ).items
    return next((e for e in events if e.reason == reason), None)


def terminated_state(core: client.CoreV1Api, namespace: str, name: str):
    """The container's last termination once it is in CrashLoopBackOff, else None."""
    status = core.read_namespaced_pod(name, namespace).status
    for container in status.container_statuses or []:
        waiting = container.state.waiting
        if waiting and waiting.reason == "CrashLoopBackOff" and container.last_state.terminated:
            return container.last_state.terminated
    return None


@pytest.mark.sandbox
def test_gpu_deployment_lands_on_a_v100_node_and_becomes_ready(
    sandbox, admin_client, core, namespace
):
    labels = {"app": "two-gpus"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "two-gpus"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": pod_manifest("unused", gpu_container("work", "busybox:1.36", 2))["spec"],
            },
        },
    }
    apps = client.AppsV1Api(admin_client)
    apps.create_namespaced_deployment(namespace, deployment)

    def ready_pod():
        # Read each pod afresh: a listed copy may predate the status that made it Ready.
        pods = core.list_namespaced_pod(namespace, label_selector="app=two-gpus").items
        fresh = (core.read_namespaced_pod(p.metadata.name, namespace) for p in pods)
        return next((p for p in fresh if is_ready(p)), None)

    def explain() -> str:
        pods = core.list_namespaced_pod(namespace).items
        events = core.list_namespaced_event(namespace).items
        return "\n".join(
            [f"pod {p.metadata.name}: {p.status.phase} on {p.spec.node_name}" for p in pods]
            + [f"event {e.involved_object.name}: {e.reason}: {e.message}" for e in events]
        )

    pod = wait_until(ready_pod, 60, "the Deployment's pod to become Ready", explain=explain)
    node = core.read_node(pod.spec.node_name)
    assert node.metadata.labels["gpu-type"] == V100
    assert pod.status.container_statuses[0].ready
    # Pod IPs stay on this machine: the sandbox's local-only pod network, else loopback.
    network = ipaddress.ip_network(sandbox.pod_network or "127.0.0.0/8")
    assert ipaddress.ip_address(pod.status.pod_ip) in network
    wait_until(
        lambda: (
            apps.read_namespaced_deployment(
                deployment["metadata"]["name"], namespace
            ).status.ready_replicas
            == 1
        ),
        30,
        "the Deployment to count one ready replica",
    )


@pytest.mark.sandbox
def test_pod_asking_five_gpus_stays_pending_with_the_schedulers_reason(core, namespace):
    core.create_namespaced_pod(
        namespace,
        pod_manifest("greedy", gpu_container("work", "busybox:1.36", 5), (V100, "gpu-tesla-v100s")),
    )

    event = wait_until(
        lambda: pod_event(core, namespace, "greedy", "FailedScheduling"),
        30,
        "a FailedScheduling event",
    )
    assert "Insufficient nvidia.com/gpu" in event.message
    pod = core.read_namespaced_pod("greedy", namespace)
    assert pod.status.phase == "Pending"
    assert not pod.spec.node_name


@pytest.mark.sandbox
def test_student_is_admin_in_its_namespace_only(student_client, sandbox):
    apps = client.AppsV1Api(student_client)
    labels = {"app": "mine"}
    apps.create_namespaced_deployment(
        sandbox.student_namespace,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "student-deployment"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
                },
            },
        },
    )
    try:
        with pytest.raises(client.ApiException) as nodes:
            client.CoreV1Api(student_client).list_node()
        assert nodes.value.status == 403
        with pytest.raises(client.ApiException) as elsewhere:
            client.CoreV1Api(student_client).list_namespaced_pod("kube-system")
        assert elsewhere.value.status == 403
    finally:
        apps.delete_namespaced_deployment("student-deployment", sandbox.student_namespace)


@pytest.mark.sandbox
def test_tgi_with_an_unknown_flag_crash_loops_with_a_readable_reason(core, namespace):
    args = [
        "--model-id",
        "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        "--max-parallel-loading-workers",
        "2",
    ]
    core.create_namespaced_pod(
        namespace, pod_manifest("tgi", gpu_container("tgi", TGI_IMAGE, 1, args))
    )

    terminated = wait_until(
        lambda: terminated_state(core, namespace, "tgi"), 30, "CrashLoopBackOff"
    )
    assert terminated.exit_code != 0
    assert "--max-parallel-loading-workers" in terminated.message
    assert not pod_is_ready(core, namespace, "tgi")


@pytest.mark.sandbox
def test_tgi_whose_model_cannot_fit_is_oom_killed(core, namespace):
    args = ["--model-id", "meta-llama/Llama-2-70b-chat-hf"]
    manifest = pod_manifest("tgi-70b", gpu_container("tgi", TGI_IMAGE, 1, args))
    manifest["metadata"]["annotations"] = {"sandbox.haw.icc/ready-after-seconds": "1"}
    core.create_namespaced_pod(namespace, manifest)

    terminated = wait_until(
        lambda: terminated_state(core, namespace, "tgi-70b"), 30, "the OOM kill"
    )
    assert terminated.reason == "OOMKilled"
    assert terminated.exit_code == 137


@pytest.mark.sandbox
def test_valid_tgi_becomes_ready_only_when_probed_where_it_listens(core, namespace):
    def tgi(name: str, probe_port: int) -> dict:
        container = gpu_container(
            "tgi", TGI_IMAGE, 1, ["--model-id", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"]
        )
        container["readinessProbe"] = {"httpGet": {"path": "/health", "port": probe_port}}
        manifest = pod_manifest(name, container)
        manifest["metadata"]["annotations"] = {"sandbox.haw.icc/ready-after-seconds": "1"}
        return manifest

    core.create_namespaced_pod(namespace, tgi("tgi-right-port", 80))
    core.create_namespaced_pod(namespace, tgi("tgi-wrong-port", 3000))
    wait_until(lambda: pod_is_ready(core, namespace, "tgi-right-port"), 30, "TGI to become Ready")

    event = wait_until(
        lambda: pod_event(core, namespace, "tgi-wrong-port", "Unhealthy"),
        30,
        "the probe failure event",
    )
    assert "connection refused" in event.message
    assert not pod_is_ready(core, namespace, "tgi-wrong-port")


@pytest.mark.sandbox
def test_gpu_quota_refuses_pods_beyond_it(sandbox, core, namespace):
    sandbox.set_gpu_quota(namespace, 1)
    core.create_namespaced_pod(
        namespace, pod_manifest("one-gpu", gpu_container("work", "busybox:1.36", 1))
    )
    with pytest.raises(client.ApiException) as refused:
        core.create_namespaced_pod(
            namespace, pod_manifest("two-gpus", gpu_container("work", "busybox:1.36", 2))
        )
    assert refused.value.status == 403
    assert "exceeded quota" in refused.value.body
    quota = wait_until(
        lambda: core.read_namespaced_resource_quota("gpu-quota", namespace).status.used,
        30,
        "quota usage to be counted",
    )
    assert quota["requests.nvidia.com/gpu"] == "1"


@pytest.mark.sandbox
def test_claims_on_the_default_storage_class_get_bound(core, namespace):
    core.create_namespaced_persistent_volume_claim(
        namespace,
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "model-cache"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "20Gi"}},
            },
        },
    )
    wait_until(
        lambda: (
            core.read_namespaced_persistent_volume_claim("model-cache", namespace).status.phase
            == "Bound"
        ),
        30,
        "the claim to be bound",
    )


@pytest.mark.sandbox
def test_recreate_rollout_replaces_the_pod(admin_client, core, namespace):
    apps = client.AppsV1Api(admin_client)
    labels = {"app": "recreate"}

    def deployment(image: str) -> dict:
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "recreate"},
            "spec": {
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "c", "image": image}]},
                },
            },
        }

    def rolled_out(generation: int) -> bool:
        status = apps.read_namespaced_deployment("recreate", namespace).status
        pods = core.list_namespaced_pod(namespace, label_selector="app=recreate").items
        return (
            status.observed_generation == generation
            and status.updated_replicas == 1
            and status.ready_replicas == 1
            and len(pods) == 1
        )

    apps.create_namespaced_deployment(namespace, deployment("busybox:1.36"))
    wait_until(lambda: rolled_out(1), 60, "the first rollout")
    first = core.list_namespaced_pod(namespace, label_selector="app=recreate").items[0].metadata.uid
    apps.patch_namespaced_deployment("recreate", namespace, deployment("busybox:1.37"))
    wait_until(lambda: rolled_out(2), 60, "the Recreate rollout (old pod finished by the agent)")
    second = core.list_namespaced_pod(namespace, label_selector="app=recreate").items[0]
    assert second.metadata.uid != first
    assert second.spec.containers[0].image == "busybox:1.37"

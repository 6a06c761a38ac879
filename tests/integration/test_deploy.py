"""deploy.yml and cleanup.yml against the sandbox's real API server, with the student's rights."""

from __future__ import annotations

import base64
import secrets

import pytest
from kubernetes import client

from playbooks import run_playbook, write_inventory

MANAGED = "app.kubernetes.io/managed-by=haw.icc"
FAST = {"tgi_cache_size": "1Gi", "open_webui_data_size": "1Gi"}


@pytest.fixture
def inventory(tmp_path, namespace, sandbox):
    return write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)


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


@pytest.mark.sandbox
def test_second_deploy_changes_nothing_and_restarts_nothing(inventory, namespace, core):
    first = run_playbook("deploy.yml", inventory)
    assert first.rc == 0, first.output
    assert first.changed(namespace) > 0
    assert f"[{namespace}] tgi: 1/1 ready" in first.output  # the wait's progress line
    before = tgi_pod(core, namespace)

    second = run_playbook("deploy.yml", inventory)
    assert second.rc == 0, second.output
    assert second.changed(namespace) == 0, second.output
    after = tgi_pod(core, namespace)
    assert after.metadata.uid == before.metadata.uid
    assert (
        after.status.container_statuses[0].restart_count
        == before.status.container_statuses[0].restart_count
    )

    checked = run_playbook("deploy.yml", inventory, "--check", "--diff")
    assert checked.rc == 0, checked.output
    assert checked.changed(namespace) == 0, checked.output


@pytest.mark.sandbox
def test_one_changed_setting_makes_one_replicaset_and_a_dropped_one_leaves(
    inventory, namespace, admin_client
):
    apps = client.AppsV1Api(admin_client)
    assert (
        run_playbook("deploy.yml", inventory, extra_vars={"tgi_max_concurrent_requests": 64}).rc
        == 0
    )
    assert len(tgi_replicasets(apps, namespace)) == 1

    changed = run_playbook(
        "deploy.yml",
        inventory,
        extra_vars={"tgi_max_concurrent_requests": 64, "tgi_max_total_tokens": 8192},
    )
    assert changed.rc == 0, changed.output
    assert len(tgi_replicasets(apps, namespace)) == 2
    args = apps.read_namespaced_deployment("tgi", namespace).spec.template.spec.containers[0].args
    assert args[args.index("--max-total-tokens") + 1] == "8192"
    assert "--max-concurrent-requests" in args

    dropped = run_playbook("deploy.yml", inventory, extra_vars={"tgi_max_total_tokens": 8192})
    assert dropped.rc == 0, dropped.output
    args = apps.read_namespaced_deployment("tgi", namespace).spec.template.spec.containers[0].args
    assert "--max-concurrent-requests" not in args


@pytest.mark.sandbox
def test_three_namespaces_in_one_run_with_the_student_kubeconfig_alone(sandbox, core, tmp_path):
    namespaces = [f"t-course-{i}-{secrets.token_hex(3)}" for i in range(3)]
    for name in namespaces:
        sandbox.create_namespace(name)
        sandbox.wait_until_usable(name)
    try:
        inventory = write_inventory(tmp_path, namespaces, sandbox.student_kubeconfig, **FAST)
        run = run_playbook("deploy.yml", inventory)
        assert run.rc == 0, run.output
        for name in namespaces:
            assert run.recap[name]["failed"] == 0
            assert tgi_pod(core, name).status.container_statuses[0].ready
    finally:
        for name in namespaces:
            core.delete_namespace(name)


@pytest.mark.sandbox
def test_no_secret_value_reaches_the_verbose_output(inventory, namespace, core):
    given = {
        "tgi_api_key": "key-" + secrets.token_hex(16),
        "tgi_hf_token": "hf_" + secrets.token_hex(16),
        "open_webui_admin_email": "admin@example.invalid",
        "open_webui_admin_password": "pw-" + secrets.token_hex(16),
    }
    run = run_playbook("deploy.yml", inventory, "-vvv", extra_vars=given)
    assert run.rc == 0, run.output[-3000:]
    generated = base64.b64decode(
        core.read_namespaced_secret("open-webui-secret-key", namespace).data["secret-key"]
    )
    values = [*(v for k, v in given.items() if k != "open_webui_admin_email"), generated.decode()]
    for value in values:
        assert value not in run.output
        assert base64.b64encode(value.encode()).decode() not in run.output
    stored = base64.b64decode(
        core.read_namespaced_secret("tgi-api-key", namespace).data["api-key"]
    ).decode()
    assert stored == given["tgi_api_key"]


@pytest.mark.sandbox
def test_cleanup_keeps_data_until_purge_and_is_idempotent(inventory, namespace, admin_client):
    assert run_playbook("deploy.yml", inventory).rc == 0
    api_key_before = (
        client.CoreV1Api(admin_client).read_namespaced_secret("tgi-api-key", namespace).data
    )

    cleaned = run_playbook("cleanup.yml", inventory)
    assert cleaned.rc == 0, cleaned.output
    assert managed_objects(admin_client, namespace) == {
        "PersistentVolumeClaim/tgi-cache",
        "PersistentVolumeClaim/open-webui-data",
        "Secret/tgi-api-key",
        "Secret/open-webui-secret-key",
    }
    again = run_playbook("cleanup.yml", inventory)
    assert again.rc == 0 and again.changed(namespace) == 0, again.output

    # A new deploy finds the kept key (clients keep working).
    assert run_playbook("deploy.yml", inventory).rc == 0
    api_key_after = (
        client.CoreV1Api(admin_client).read_namespaced_secret("tgi-api-key", namespace).data
    )
    assert api_key_after == api_key_before

    purged = run_playbook("cleanup.yml", inventory, extra_vars={"purge": True})
    assert purged.rc == 0, purged.output
    assert managed_objects(admin_client, namespace) == set()
    again = run_playbook("cleanup.yml", inventory, extra_vars={"purge": True})
    assert again.rc == 0 and again.changed(namespace) == 0, again.output


@pytest.mark.sandbox
def test_check_mode_on_a_new_namespace_reports_and_writes_nothing(
    inventory, namespace, admin_client
):
    run = run_playbook("deploy.yml", inventory, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.changed(namespace) > 0
    assert managed_objects(admin_client, namespace) == set()


@pytest.mark.sandbox
def test_zero_gpus_deploys_tgi_on_cpu_without_gpu_request_toleration_or_sharding(
    inventory, namespace, core, admin_client
):
    run = run_playbook("deploy.yml", inventory, extra_vars={"tgi_gpu_count": 0})
    assert run.rc == 0, run.output
    pod = tgi_pod(core, namespace)
    container = pod.spec.containers[0]
    assert "nvidia.com/gpu" not in (container.resources.limits or {})
    assert "nvidia.com/gpu" not in (container.resources.requests or {})
    assert not any(t.key and t.key.startswith("gpu-tesla") for t in pod.spec.tolerations or [])
    assert "--num-shard" not in container.args
    assert container.image.endswith("-intel-cpu")
    assert core.read_node(pod.spec.node_name).metadata.labels.get("gpu-type") is None

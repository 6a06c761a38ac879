"""deploy.yml and cleanup.yml against the sandbox's real API server, with the student's rights."""

from __future__ import annotations

import base64
import secrets

import pytest
from kubernetes import client
from views import (
    FAST,
    TOO_BIG_MODEL,
    chat_status,
    managed_objects,
    model_of,
    served_model,
    tgi_args,
    tgi_pod,
    tgi_replicasets,
)
from waiting import wait_until

from playbooks import run_playbook, write_inventory


@pytest.fixture
def inventory(tmp_path, namespace, sandbox):
    return write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)


@pytest.mark.sandbox
def test_second_deploy_changes_nothing_and_restarts_nothing(inventory, namespace, core, sandbox):
    first = run_playbook("deploy.yml", inventory)
    assert first.rc == 0, first.output
    assert first.changed(namespace) > 0
    assert f"[{namespace}] tgi: 1/1 ready" in first.output  # the wait's progress line
    before = tgi_pod(core, namespace)
    writes = sandbox.student_writes(namespace, lease=True)

    second = run_playbook("deploy.yml", inventory)
    assert second.rc == 0, second.output
    assert second.changed(namespace) == 0, second.output
    # Dry runs decided that nothing differs: the only writes are the Lease's, taken and given back.
    again = sandbox.student_writes(namespace, lease=True)[len(writes) :]
    assert [(e["verb"], e["objectRef"]["resource"]) for e in again] == [
        ("create", "leases"),
        ("delete", "leases"),
    ]
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
    inventory, namespace, admin_client, sandbox
):
    run = run_playbook("deploy.yml", inventory, "--check", "--diff")
    assert run.rc == 0, run.output
    assert run.changed(namespace) > 0
    assert managed_objects(admin_client, namespace) == set()
    assert sandbox.student_writes(namespace) == []  # dry runs only
    assert "on 1 x gpu-tesla-v100 (single-gpu, not checked (check mode))" in run.output
    assert "(ready)" not in run.output


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


def webui_pod_uid(core: client.CoreV1Api, namespace: str) -> str:
    pods = core.list_namespaced_pod(
        namespace, label_selector="app.kubernetes.io/name=open-webui"
    ).items
    live = [pod for pod in pods if pod.metadata.deletion_timestamp is None]
    assert len(live) == 1, [pod.metadata.name for pod in pods]
    return live[0].metadata.uid


@pytest.mark.sandbox
def test_a_changed_api_key_reaches_the_running_server_and_open_webui(
    inventory, namespace, core, admin_client
):
    old_key, new_key = "old-" + secrets.token_hex(8), "new-" + secrets.token_hex(8)
    assert run_playbook("deploy.yml", inventory, extra_vars={"tgi_api_key": old_key}).rc == 0
    wait_until(
        lambda: chat_status(core, namespace, old_key) == 200, 60, "TGI to answer the first key"
    )
    webui_before = webui_pod_uid(core, namespace)

    changed = run_playbook("deploy.yml", inventory, extra_vars={"tgi_api_key": new_key})

    assert changed.rc == 0, changed.output
    # TGI reads its key at start, as the stand-in does: only a new pod knows the new key.
    wait_until(
        lambda: chat_status(core, namespace, new_key) == 200, 60, "TGI to answer the new key"
    )
    assert chat_status(core, namespace, old_key) == 401
    assert webui_pod_uid(core, namespace) != webui_before  # Open WebUI sends the new key
    annotations = (
        client.AppsV1Api(admin_client)
        .read_namespaced_deployment("tgi", namespace)
        .spec.template.metadata.annotations
    )
    assert old_key not in str(annotations) and new_key not in str(annotations)
    assert len(tgi_replicasets(client.AppsV1Api(admin_client), namespace)) == 2

    again = run_playbook("deploy.yml", inventory, extra_vars={"tgi_api_key": new_key})
    assert again.rc == 0 and again.changed(namespace) == 0, again.output


@pytest.mark.sandbox
def test_a_deploy_whose_new_model_is_oom_killed_puts_the_old_one_back_and_says_why(
    inventory, namespace, core, admin_client
):
    apps = client.AppsV1Api(admin_client)
    assert run_playbook("deploy.yml", inventory).rc == 0
    first = model_of(tgi_args(apps, namespace))
    webui_env_before = apps.read_namespaced_deployment("open-webui", namespace).spec.template

    # An expert overrides the memory rule; the node agent then kills TGI for lack of memory.
    run = run_playbook(
        "deploy.yml",
        inventory,
        extra_vars={"tgi_model_id": TOO_BIG_MODEL, "tgi_ignore_rules": "model-fits"},
    )

    assert run.rc != 0
    assert "OOMKilled" in run.output
    assert "Rolled back: tgi revision 1 serves again" in run.output
    assert model_of(tgi_args(apps, namespace)) == first
    assert wait_until(
        lambda: served_model(core, namespace) == first, 60, "the old model to serve again"
    )
    # Open WebUI was not re-rolled towards the model that failed.
    assert apps.read_namespaced_deployment("open-webui", namespace).spec.template == (
        webui_env_before
    )

"""change_model.yml and deploy.yml's capacity check against the sandbox, with the student's rights.

The sandbox's node agent runs TGI's launcher rules and memory estimate, and serves a TGI stand-in
on each Ready TGI pod's IP: what a pod reports over HTTP is what the switch really deployed.
"""

from __future__ import annotations

import pytest
import yaml
from kubernetes import client
from views import (
    FAST,
    FIRST_MODEL,
    SMALLER_MODEL,
    TOO_BIG_MODEL,
    host_vars_file,
    model_of,
    served_model,
    tgi_args,
    tgi_replicasets,
    webui_default_model,
)
from waiting import wait_until

from playbooks import run_playbook, write_inventory


@pytest.fixture
def inventory(tmp_path, namespace, sandbox):
    return write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)


@pytest.fixture
def deployed(inventory, namespace):
    """The namespace with TGI and Open WebUI deployed (FIRST_MODEL on one V100)."""
    run = run_playbook("deploy.yml", inventory)
    assert run.rc == 0, run.output
    return inventory


@pytest.mark.sandbox
def test_a_model_too_big_for_one_v100_is_refused_without_a_single_write(
    deployed, namespace, sandbox, admin_client
):
    apps = client.AppsV1Api(admin_client)
    writes_before = len(sandbox.student_writes(namespace))

    run = run_playbook("change_model.yml", deployed, extra_vars={"tgi_model": TOO_BIG_MODEL})

    assert run.rc != 0
    # The refusal line itself (a failed task prints its whole result, rule ids included).
    assert "- model-fits: needs " in run.output
    assert " Instead: " in run.output  # the concrete alternative
    assert "Traceback" not in run.output
    assert len(sandbox.student_writes(namespace)) == writes_before
    assert model_of(tgi_args(apps, namespace)) == FIRST_MODEL
    assert not host_vars_file(deployed, namespace).exists()


@pytest.mark.sandbox
def test_a_switch_makes_one_replicaset_serves_the_new_model_and_is_recorded(
    deployed, namespace, sandbox, core, admin_client
):
    apps = client.AppsV1Api(admin_client)
    before = {rs.metadata.name for rs in tgi_replicasets(apps, namespace)}
    # The ICC's quota: the student's check must see it, count the GPU the old pod gives back,
    # and say that it could not look at the nodes.
    sandbox.set_gpu_quota(namespace, 1)
    # The namespace's file as a person wrote it: a comment, a folded value, another choice.
    record = host_vars_file(deployed, namespace)
    record.parent.mkdir()
    record.write_text(
        f"---\n# Bob's namespace.\ntgi_model_id: >-\n  {FIRST_MODEL}\n"
        "open_webui_enable_signup: false  # invite only\n"
    )

    run = run_playbook(
        "change_model.yml",
        deployed,
        extra_vars={"tgi_model": SMALLER_MODEL, "tgi_max_total_tokens": "3072"},
    )

    assert run.rc == 0, run.output
    assert "cannot list nodes" in run.output
    after = {rs.metadata.name for rs in tgi_replicasets(apps, namespace)}
    assert len(after - before) == 1 and before < after
    assert model_of(tgi_args(apps, namespace)) == SMALLER_MODEL
    assert wait_until(
        lambda: served_model(core, namespace) == SMALLER_MODEL, 60, "the new model to be served"
    )
    assert webui_default_model(apps, namespace) == SMALLER_MODEL
    text = record.read_text()
    # The model and what was typed, nothing else: no defaults pinned, the rest kept.
    assert yaml.safe_load(text) == {
        "tgi_model_id": SMALLER_MODEL,
        "open_webui_enable_signup": False,
        "tgi_max_total_tokens": 3072,
    }
    assert "# Bob's namespace." in text and "# invite only" in text
    args = tgi_args(apps, namespace)
    assert args[args.index("--max-total-tokens") + 1] == "3072"

    again = run_playbook(
        "change_model.yml",
        deployed,
        extra_vars={"tgi_model": SMALLER_MODEL, "tgi_max_total_tokens": "3072"},
    )
    assert again.rc == 0, again.output
    assert again.changed(namespace) == 0, again.output

    # The inventory is the source of truth now: a plain deploy keeps the new model.
    redeploy = run_playbook("deploy.yml", deployed)
    assert redeploy.rc == 0, redeploy.output
    assert model_of(tgi_args(apps, namespace)) == SMALLER_MODEL
    assert {rs.metadata.name for rs in tgi_replicasets(apps, namespace)} == after


@pytest.mark.sandbox
def test_a_switch_that_crash_loops_is_rolled_back_and_the_old_model_serves_again(
    deployed, namespace, core, admin_client
):
    apps = client.AppsV1Api(admin_client)
    # An expert overrides the memory rule; the simulated TGI then dies of CUDA out-of-memory.
    run = run_playbook(
        "change_model.yml",
        deployed,
        extra_vars={"tgi_model": TOO_BIG_MODEL, "tgi_ignore_rules": "model-fits"},
    )

    assert run.rc != 0
    assert "OOMKilled" in run.output
    assert "rolled back" in run.output
    assert model_of(tgi_args(apps, namespace)) == FIRST_MODEL
    assert wait_until(
        lambda: served_model(core, namespace) == FIRST_MODEL, 60, "the old model to serve again"
    )
    assert not host_vars_file(deployed, namespace).exists()


@pytest.mark.sandbox
def test_the_inventory_can_turn_recording_off(tmp_path, namespace, sandbox, admin_client):
    inventory = write_inventory(
        tmp_path, [namespace], sandbox.student_kubeconfig, icc_record_model=False, **FAST
    )
    assert run_playbook("deploy.yml", inventory).rc == 0
    run = run_playbook("change_model.yml", inventory, extra_vars={"tgi_model": SMALLER_MODEL})
    assert run.rc == 0, run.output
    assert model_of(tgi_args(client.AppsV1Api(admin_client), namespace)) == SMALLER_MODEL
    assert not host_vars_file(inventory, namespace).exists()
    assert "Not recorded (icc_record_model is false" in run.output


@pytest.mark.sandbox
def test_check_mode_switch_reports_the_change_and_writes_nothing(deployed, namespace, admin_client):
    apps = client.AppsV1Api(admin_client)
    before = {rs.metadata.name for rs in tgi_replicasets(apps, namespace)}

    run = run_playbook(
        "change_model.yml", deployed, "--check", "--diff", extra_vars={"tgi_model": SMALLER_MODEL}
    )

    assert run.rc == 0, run.output
    assert run.changed(namespace) > 0
    # The diff of the switch itself (the summary names the new model too, so look for the diff).
    assert f'-    "model_id": "{FIRST_MODEL}"' in run.output
    assert f'+    "model_id": "{SMALLER_MODEL}"' in run.output
    assert model_of(tgi_args(apps, namespace)) == FIRST_MODEL
    assert {rs.metadata.name for rs in tgi_replicasets(apps, namespace)} == before
    assert not host_vars_file(deployed, namespace).exists()


@pytest.mark.sandbox
def test_deploy_refuses_a_model_that_cannot_shard_on_v100s_before_writing(
    inventory, namespace, sandbox
):
    run = run_playbook(
        "deploy.yml",
        inventory,
        extra_vars={
            "tgi_model_id": "meta-llama/Meta-Llama-3-8B-Instruct",
            "tgi_gpu_count": 2,
            "tgi_multi_gpu_mode": "tensor-sharding",
        },
    )
    assert run.rc != 0
    assert "- multi-gpu-mode: TGI shards llama models only with flash attention" in run.output
    assert sandbox.student_writes(namespace) == []


@pytest.mark.sandbox
def test_deploy_refuses_more_gpus_than_the_quota_leaves(inventory, namespace, sandbox):
    sandbox.set_gpu_quota(namespace, 1)
    run = run_playbook(
        "deploy.yml",
        inventory,
        extra_vars={"tgi_model_id": "bigscience/bloom-7b1", "tgi_gpu_count": 2},
    )
    assert run.rc != 0
    assert "- gpu-quota: ResourceQuota gpu-quota in " in run.output
    assert "fewer than the 2 asked for" in run.output
    assert sandbox.student_writes(namespace) == []


@pytest.mark.sandbox
def test_the_admin_sees_free_gpus_per_node_and_the_student_a_warning(tmp_path, namespace, sandbox):
    playbook = tmp_path / "capacity.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Capacity",
                    "hosts": "all",
                    "connection": "local",
                    "gather_facts": False,
                    "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                    "tasks": [
                        {
                            "haw.icc.gpu_capacity_check": {
                                "kubeconfig": "{{ icc_kubeconfig }}",
                                "namespace": namespace,
                                "settings": {"tgi_model_id": FIRST_MODEL},
                                "hub_lookup": False,
                            },
                            "register": "capacity",
                        },
                        {"ansible.builtin.debug": {"var": "capacity"}},
                    ],
                }
            ]
        )
    )
    views = {}
    for who, kubeconfig in (
        ("admin", sandbox.admin_kubeconfig),
        ("student", sandbox.student_kubeconfig),
    ):
        (tmp_path / who).mkdir()
        inventory = write_inventory(tmp_path / who, [namespace], kubeconfig)
        run = run_playbook(playbook, inventory, "-v")
        assert run.rc == 0, run.output
        views[who] = run.output
    assert '"allocatable": 4' in views["admin"]  # the V100 nodes, as only the admin may list
    assert "cannot list nodes" in views["student"]
    assert "cannot list nodes" not in views["admin"]

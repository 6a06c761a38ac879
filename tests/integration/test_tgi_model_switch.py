"""haw.icc.tgi_model_switch run by the real ansible-playbook against the sandbox, as a student.

Each test deploys with playbooks/deploy.yml, then calls the plugin directly in a small playbook
that takes the role's settings (tgi_server's validate tasks) and merges the new model in. The
sandbox's node agent plays TGI: a model that fits becomes Ready after a few seconds, a 13B model
in float16 on one 16 GiB V100 is OOMKilled after "loading" and crash-loops.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from playbooks import Run, run_playbook, write_inventory

REPO_ROOT = Path(__file__).resolve().parents[2]
FAST = {"tgi_cache_size": "1Gi", "open_webui_data_size": "1Gi"}
OLD_MODEL = "Qwen/Qwen2.5-1.5B-Instruct"  # the role's default
NEW_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"
TOO_BIG = "meta-llama/Llama-2-13b-chat-hf"  # ~26 GB of float16 weights for a 16 GiB V100
TGI_SELECTOR = "app.kubernetes.io/name=tgi"


def switch_playbook(result_file: Path) -> list[dict[str, Any]]:
    """Settings as the role builds them, `new_settings` (an extra var) merged in."""
    return [
        {
            "name": "Switch the model",
            "hosts": "all",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
            "tasks": [
                {
                    "name": "Get the TGI settings",
                    "ansible.builtin.include_role": {
                        "name": "haw.icc.tgi_server",
                        "tasks_from": "validate",
                        "public": True,
                    },
                },
                {
                    "name": "Switch TGI's model",
                    "haw.icc.tgi_model_switch": {
                        "namespace": "{{ icc_namespace }}",
                        "settings": "{{ __tgi_settings | combine(new_settings) }}",
                        "catalog": "{{ icc_gpu_catalog }}",
                        "kubeconfig": "{{ icc_kubeconfig }}",
                        "poll_interval": 1,
                        "timeout": 120,
                        "rollback_timeout": 120,
                    },
                    "register": "switch_result",
                    "ignore_errors": True,
                },
                {
                    "name": "Keep the result for the test",
                    "ansible.builtin.copy": {
                        "content": "{{ switch_result | to_json }}",
                        "dest": str(result_file),
                        "mode": "0600",
                    },
                    "check_mode": False,
                    "changed_when": False,
                },
            ],
        }
    ]


class Switcher:
    def __init__(self, tmp_path: Path, inventory: Path) -> None:
        self.inventory = inventory
        self.result_file = tmp_path / "switch-result.json"
        self.playbook = tmp_path / "switch.yml"
        self.playbook.write_text(yaml.safe_dump(switch_playbook(self.result_file), sort_keys=False))

    def __call__(self, *options: str, **new_settings: Any) -> tuple[Run, dict[str, Any]]:
        self.result_file.unlink(missing_ok=True)
        run = run_playbook(
            self.playbook, self.inventory, *options, extra_vars={"new_settings": new_settings}
        )
        assert self.result_file.exists(), run.output
        return run, json.loads(self.result_file.read_text())


@pytest.fixture
def apps(admin_client) -> client.AppsV1Api:
    return client.AppsV1Api(admin_client)


@pytest.fixture
def switch(tmp_path, namespace, sandbox) -> Switcher:
    inventory = write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)
    return Switcher(tmp_path, inventory)


@pytest.fixture
def deployed(switch, namespace) -> Switcher:
    run = run_playbook("deploy.yml", switch.inventory)
    assert run.rc == 0, run.output[-4000:]
    return switch


def tgi_container(apps: client.AppsV1Api, namespace: str) -> client.V1Container:
    return apps.read_namespaced_deployment("tgi", namespace).spec.template.spec.containers[0]


def replicasets(apps: client.AppsV1Api, namespace: str) -> list[client.V1ReplicaSet]:
    return apps.list_namespaced_replica_set(namespace, label_selector=TGI_SELECTOR).items


def model_arg(container: client.V1Container) -> str:
    return container.args[container.args.index("--model-id") + 1]


def tgi_pods(core: client.CoreV1Api, namespace: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(namespace, label_selector=TGI_SELECTOR).items


@pytest.mark.sandbox
def test_a_switch_makes_one_replicaset_and_a_second_run_changes_nothing(
    deployed, namespace, apps, core, sandbox
):
    before = {rs.metadata.name for rs in replicasets(apps, namespace)}
    assert len(before) == 1

    run, result = deployed(tgi_model_id=NEW_MODEL)

    assert run.rc == 0 and not result.get("failed"), run.output[-4000:]
    assert run.changed(namespace) == 1
    after = {rs.metadata.name: rs for rs in replicasets(apps, namespace)}
    [new] = set(after) - before  # exactly one new ReplicaSet
    assert result["replicaset"] == new
    assert after[new].metadata.annotations["deployment.kubernetes.io/revision"] == "2"
    assert result["model"] == {"before": OLD_MODEL, "after": NEW_MODEL}
    assert result["revision"] == {"before": "1", "after": "2"}
    assert result["rolled_back"] is False
    assert result["deployment"]["ready"] is True
    container = tgi_container(apps, namespace)
    assert container.args[:4] == ["--model-id", NEW_MODEL, "--num-shard", "1"]
    assert f"[{namespace}] tgi: changing from model {OLD_MODEL} to {NEW_MODEL}" in run.output
    assert f"[{namespace}] tgi: 1/1 ready" in run.output
    [pod] = [p for p in tgi_pods(core, namespace) if not p.metadata.deletion_timestamp]
    assert pod.status.container_statuses[0].ready

    # The same switch again: nothing written, nothing restarted.
    writes = len(sandbox.student_writes(namespace))
    again, result = deployed(tgi_model_id=NEW_MODEL)
    assert again.rc == 0, again.output[-4000:]
    assert again.changed(namespace) == 0, again.output[-4000:]
    assert result["changed"] is False
    assert len(sandbox.student_writes(namespace)) == writes
    assert {rs.metadata.name for rs in replicasets(apps, namespace)} == set(after)
    [same] = tgi_pods(core, namespace)
    assert same.metadata.uid == pod.metadata.uid

    # Check mode with --diff: the server's dry run accepts it, nothing is stored.
    generation = apps.read_namespaced_deployment("tgi", namespace).metadata.generation
    checked, result = deployed("--check", "--diff", tgi_model_id=OLD_MODEL)
    assert checked.rc == 0, checked.output[-4000:]
    assert checked.changed(namespace) == 1
    assert result["model"] == {"before": NEW_MODEL, "after": OLD_MODEL}
    assert f'-    "model_id": "{NEW_MODEL}"' in checked.output, checked.output[-4000:]
    assert f'+    "model_id": "{OLD_MODEL}"' in checked.output
    assert apps.read_namespaced_deployment("tgi", namespace).metadata.generation == generation
    assert model_arg(tgi_container(apps, namespace)) == NEW_MODEL


@pytest.mark.sandbox
def test_a_model_that_runs_out_of_gpu_memory_is_rolled_back(deployed, namespace, apps, core):
    run, result = deployed(tgi_model_id=TOO_BIG, tgi_dtype="float16")

    assert result.get("failed") is True, run.output[-4000:]
    assert result["rolled_back"] is True
    assert "OOMKilled" in result["msg"], result["msg"]
    assert "torch.OutOfMemoryError: CUDA out of memory" in result["msg"]
    assert f"model {OLD_MODEL} on 1 GPU serves again" in result["msg"]
    assert result["model"] == {"before": OLD_MODEL, "after": TOO_BIG}
    assert result["revision"] == {"before": "1", "after": "2"}
    assert result["failed_rollout"]["failed"] is True
    assert f"rolling back to model {OLD_MODEL} on 1 GPU" in run.output
    # The old args are back, the old ReplicaSet serves again (revision 3), and it is ready.
    container = tgi_container(apps, namespace)
    assert model_arg(container) == OLD_MODEL and "--dtype" not in container.args
    deployment = apps.read_namespaced_deployment("tgi", namespace)
    assert deployment.status.ready_replicas == 1
    assert deployment.metadata.annotations["deployment.kubernetes.io/revision"] == "3"
    assert len(replicasets(apps, namespace)) == 2  # the old one reused, not a third
    assert result["deployment"]["ready"] is True
    assert result["deployment"]["revision"] == "3"


@pytest.mark.sandbox
def test_refusals_write_nothing(deployed, namespace, apps, sandbox):
    writes = len(sandbox.student_writes(namespace))

    run, result = deployed(tgi_model_id=NEW_MODEL, tgi_gpu_count=5)
    assert result.get("failed") is True, run.output[-4000:]
    assert "tgi_gpu_count: 5 is more than one gpu-tesla-v100 node has" in result["msg"]

    run, result = deployed(tgi_model_id=NEW_MODEL, tgi_dtype="float16", tgi_quantize="awq")
    assert result.get("failed") is True, run.output[-4000:]
    assert "cannot both be set" in result["msg"]

    assert len(sandbox.student_writes(namespace)) == writes
    assert model_arg(tgi_container(apps, namespace)) == OLD_MODEL


@pytest.mark.sandbox
def test_without_a_deployment_it_says_to_deploy_first(switch, namespace, sandbox):
    run, result = switch(tgi_model_id=NEW_MODEL)

    assert result.get("failed") is True, run.output[-4000:]
    assert result["msg"].endswith("run playbooks/deploy.yml first"), result["msg"]
    assert sandbox.student_writes(namespace) == []
    assert "Traceback" not in run.output

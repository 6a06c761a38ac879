"""haw.icc.wait_for_rollout run by the real ansible-playbook against the sandbox, as a student.

The sandbox's node agent plays TGI: a valid start becomes Ready after a delay, an unknown flag
crash-loops with TGI's error as the termination message, five GPUs never fit on a node.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from playbooks import run_playbook

REPO_ROOT = Path(__file__).resolve().parents[2]
TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:3.3.0"
MODEL_ARGS = ["--model-id", "TinyLlama/TinyLlama-1.1B-Chat-v1.0"]
BAD_FLAG = ["--max-parallel-loading-workers", "2"]
READY_AFTER = "sandbox.haw.icc/ready-after-seconds"
PROCESS_TIMEOUT = 300  # for ansible-playbook itself; every wait in here is much shorter


def tgi_deployment(
    name: str, extra_args: list[str] | None = None, gpus: int = 1, ready_after: int = 3
) -> dict[str, Any]:
    gpu = {"nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {
                    "labels": {"app": name},
                    "annotations": {READY_AFTER: str(ready_after)},
                },
                "spec": {
                    "tolerations": [
                        {"key": "gpu-tesla-v100", "operator": "Exists", "effect": "NoSchedule"}
                    ],
                    "containers": [
                        {
                            "name": "tgi",
                            "image": TGI_IMAGE,
                            "args": MODEL_ARGS + (extra_args or []),
                            "resources": {"requests": gpu, "limits": gpu},
                            "readinessProbe": {"httpGet": {"path": "/health", "port": 80}},
                            "terminationMessagePolicy": "FallbackToLogsOnError",
                        }
                    ],
                },
            },
        },
    }


@dataclass
class WaitRun:
    rc: int
    output: str
    result: dict[str, Any]
    seconds: float

    @property
    def failed(self) -> bool:
        return bool(self.result.get("failed"))

    @property
    def msg(self) -> str:
        return str(self.result.get("msg", ""))


def run_wait(tmp_path: Path, namespace: str, *playbook_options: str, **options: Any) -> WaitRun:
    """One wait_for_rollout task in a throwaway playbook; its registered result is saved."""
    result_file = tmp_path / "result.json"
    result_file.unlink(missing_ok=True)
    playbook = [
        {
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Wait for the rollout",
                    "haw.icc.wait_for_rollout": {"namespace": namespace, **options},
                    "register": "wait_result",
                    "ignore_errors": True,
                },
                {
                    "name": "Keep the result for the test",
                    "ansible.builtin.copy": {
                        "content": "{{ wait_result | to_json }}",
                        "dest": str(result_file),
                        "mode": "0600",
                    },
                    "check_mode": False,
                },
            ],
        }
    ]
    (tmp_path / "wait.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {namespace: None},
                    "vars": {
                        "ansible_connection": "local",
                        "ansible_python_interpreter": sys.executable,
                    },
                }
            }
        )
    )
    began = time.monotonic()
    run = run_playbook(tmp_path / "wait.yml", inventory, *playbook_options, timeout=PROCESS_TIMEOUT)
    assert result_file.exists(), run.output
    return WaitRun(
        run.rc, run.output, json.loads(result_file.read_text()), time.monotonic() - began
    )


@pytest.fixture
def apps(admin_client: client.ApiClient) -> client.AppsV1Api:
    """Makes the Deployments the waits watch: the test's set-up, as admin (the student's Role
    updates Deployments only by patch, as the collection does); the waits read as the student."""
    return client.AppsV1Api(admin_client)


@pytest.fixture
def kubeconfig(sandbox) -> str:
    return str(sandbox.student_kubeconfig)


@pytest.mark.sandbox
def test_ready_deployments_return_ok_with_progress_lines(tmp_path, namespace, apps, kubeconfig):
    apps.create_namespaced_deployment(namespace, tgi_deployment("tgi", ready_after=6))
    apps.create_namespaced_deployment(namespace, tgi_deployment("tgi-two", ready_after=1))

    run = run_wait(
        tmp_path,
        namespace,
        names=["tgi", "tgi-two"],
        kubeconfig=kubeconfig,
        poll_interval=1,
        timeout=120,
    )

    assert not run.failed, run.output
    assert run.result["changed"] is False
    assert run.result["deployments"]["tgi"]["ready"] is True
    assert run.result["deployments"]["tgi"]["summary"] == "tgi: 1/1 ready"
    assert run.result["deployments"]["tgi-two"]["ready"] is True
    assert 0 < run.result["elapsed"] < 120
    # What a student sees while waiting: the pod, what it does, then the end.
    assert re.search(
        rf"^\[{namespace}\] tgi: 0/1 ready — pod tgi-[a-z0-9]+-[a-z0-9]+: Running for \d+s, "
        r"not ready yet \(readiness probe: loading the model\)",
        run.output,
        re.MULTILINE,
    ), run.output
    assert re.search(rf"^\[{namespace}\] tgi: 1/1 ready", run.output, re.MULTILINE), run.output
    assert f"[{namespace}] tgi-two: 1/1 ready" in run.output


@pytest.mark.sandbox
def test_a_crash_loop_fails_fast_with_tgis_message(tmp_path, namespace, apps, kubeconfig):
    apps.create_namespaced_deployment(namespace, tgi_deployment("tgi", BAD_FLAG))

    run = run_wait(tmp_path, namespace, names=["tgi"], kubeconfig=kubeconfig, timeout=600)

    assert run.failed, run.output
    assert run.result["elapsed"] < 60, run.result  # nowhere near the 600 s timeout
    assert "Deployment tgi in namespace" in run.msg
    assert re.search(r"pod tgi-[a-z0-9]+-[a-z0-9]+: (CrashLoopBackOff|Crashed) \(restart", run.msg)
    assert "error: unexpected argument '--max-parallel-loading-workers' found" in run.msg
    report = run.result["deployments"]["tgi"]
    assert report["failed"] is True and report["ready"] is False
    assert report["pod"].startswith("tgi-")
    assert "Usage: text-generation-launcher" in report["detail"]
    assert "Traceback" not in run.output


@pytest.mark.sandbox
def test_an_unschedulable_pod_fails_after_the_grace(tmp_path, namespace, apps, kubeconfig):
    apps.create_namespaced_deployment(namespace, tgi_deployment("tgi", gpus=5))

    run = run_wait(
        tmp_path,
        namespace,
        names=["tgi"],
        kubeconfig=kubeconfig,
        poll_interval=1,
        unschedulable_grace=5,
        timeout=600,
    )

    assert run.failed, run.output
    assert run.result["elapsed"] < 60, run.result
    assert "Insufficient nvidia.com/gpu" in run.msg
    waited = re.search(r"unschedulable for (\d+)s", run.msg)
    assert waited and int(waited.group(1)) >= 5, run.msg
    assert "Pending: unschedulable: 0/4 nodes are available" in run.output


@pytest.mark.sandbox
def test_without_fail_fast_it_reports_and_waits_for_the_timeout(
    tmp_path, namespace, apps, kubeconfig
):
    apps.create_namespaced_deployment(namespace, tgi_deployment("tgi", gpus=5))

    run = run_wait(
        tmp_path,
        namespace,
        names=["tgi"],
        kubeconfig=kubeconfig,
        poll_interval=1,
        unschedulable_grace=0,
        fail_fast=False,
        timeout=4,
    )

    assert run.failed
    assert run.result["elapsed"] >= 4
    assert run.msg.startswith("timed out after 4s waiting for Deployment(s) tgi"), run.msg
    assert "would not heal: pod tgi-" in run.msg
    assert "Insufficient nvidia.com/gpu" in run.msg


@pytest.mark.sandbox
def test_a_bad_new_revision_fails_while_the_old_pod_still_serves(
    tmp_path, namespace, apps, kubeconfig
):
    apps.create_namespaced_deployment(namespace, tgi_deployment("tgi", ready_after=1))
    assert not run_wait(tmp_path, namespace, names=["tgi"], kubeconfig=kubeconfig).failed

    # A model switch with a flag TGI does not know: the rollout must not be called done.
    broken = tgi_deployment("tgi", BAD_FLAG, ready_after=1)
    apps.replace_namespaced_deployment("tgi", namespace, broken)
    run = run_wait(tmp_path, namespace, names=["tgi"], kubeconfig=kubeconfig, timeout=600)

    assert run.failed, run.output
    assert "--max-parallel-loading-workers" in run.msg
    assert run.result["deployments"]["tgi"]["revision"] == "2"
    assert "1 pod of an older revision left" in run.result["deployments"]["tgi"]["summary"]

    # A good revision rolls out completely: new pod ready, the old ones gone.
    apps.replace_namespaced_deployment("tgi", namespace, tgi_deployment("tgi", ready_after=2))
    run = run_wait(tmp_path, namespace, names=["tgi"], kubeconfig=kubeconfig, poll_interval=1)
    assert not run.failed, run.output
    assert run.result["deployments"]["tgi"]["summary"] == "tgi: 1/1 ready"
    assert run.result["deployments"]["tgi"]["revision"] == "3"


@pytest.mark.sandbox
def test_a_missing_kubeconfig_is_a_readable_failure(tmp_path, namespace):
    missing = tmp_path / "nowhere" / "student.kubeconfig"

    run = run_wait(tmp_path, namespace, names=["tgi"], kubeconfig=str(missing))

    assert run.failed
    assert run.msg.startswith(
        f"Cannot connect: no kubeconfig: icc_kubeconfig {missing} does not exist."
    ), run.msg
    assert "Traceback" not in run.output


@pytest.mark.sandbox
def test_an_unreachable_api_is_a_readable_failure(tmp_path, namespace):
    run = run_wait(
        tmp_path,
        namespace,
        names=["tgi"],
        host="https://127.0.0.1:9",
        api_key="not-a-token",
        validate_certs=False,
    )

    assert run.failed
    assert run.msg.startswith(
        "Cannot connect: cannot reach the cluster at https://127.0.0.1:9 (the host and api_key "
        "options): "
    ), run.msg
    assert "not-a-token" not in run.output
    assert "Traceback" not in run.output


@pytest.mark.sandbox
def test_missing_and_forbidden_deployments_are_named(tmp_path, namespace, kubeconfig):
    for wake in (False, True):  # a wake of what is not there leaves the naming to the wait
        run = run_wait(tmp_path, namespace, names=["nope"], kubeconfig=kubeconfig, wake=wake)
        assert run.failed
        assert run.msg == f"Deployment nope not found in namespace {namespace}"

    # Outside the student's namespace the API answers 403: say so, do not wait.
    run = run_wait(tmp_path, "kube-system", names=["coredns"], kubeconfig=kubeconfig)
    assert run.failed
    assert "forbidden" in run.msg and "infwabc123" in run.msg, run.msg


@pytest.mark.sandbox
def test_check_mode_does_not_wait(tmp_path, namespace, kubeconfig):
    run = run_wait(tmp_path, namespace, "--check", names=["not-created-yet"], kubeconfig=kubeconfig)

    assert not run.failed, run.output
    assert run.result["skipped"] is True
    assert "check mode" in run.msg and "not-created-yet" in run.msg


@pytest.mark.sandbox
def test_an_exceeded_gpu_quota_fails_after_the_grace(
    tmp_path, namespace, sandbox, apps, kubeconfig
):
    sandbox.set_gpu_quota(namespace, 1)
    apps.create_namespaced_deployment(namespace, tgi_deployment("tgi", gpus=2))

    run = run_wait(
        tmp_path,
        namespace,
        names=["tgi"],
        kubeconfig=kubeconfig,
        poll_interval=1,
        unschedulable_grace=3,
    )

    assert run.failed, run.output
    assert run.result["elapsed"] < 60, run.result
    assert "cannot create pods" in run.msg and "exceeded quota" in run.msg, run.msg


@pytest.mark.sandbox
def test_without_rights_on_pods_it_waits_on_the_status_and_warns(
    tmp_path, namespace, sandbox, admin_client, kubeconfig
):
    client.AppsV1Api(admin_client).create_namespaced_deployment(
        namespace, tgi_deployment("tgi", ready_after=2)
    )
    rbac = client.RbacAuthorizationV1Api(admin_client)
    for binding in rbac.list_namespaced_role_binding(namespace).items:  # the sandbox's grant
        if any(subject.name == sandbox.student_user for subject in binding.subjects or []):
            rbac.delete_namespaced_role_binding(binding.metadata.name, namespace)
    rbac.create_namespaced_role(
        namespace,
        {
            "metadata": {"name": "deployments-only"},
            "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}],
        },
    )
    rbac.create_namespaced_role_binding(
        namespace,
        {
            "metadata": {"name": "deployments-only"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "deployments-only",
            },
            "subjects": [
                {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "User",
                    "name": sandbox.student_user,
                }
            ],
        },
    )

    run = run_wait(tmp_path, namespace, names=["tgi"], kubeconfig=kubeconfig, poll_interval=1)

    assert not run.failed, run.output
    assert run.result["deployments"]["tgi"]["ready"] is True
    for what in ("events", "replicasets", "pods"):
        assert f"cannot list {what} in namespace {namespace}" in run.output, run.output

"""status.yml names the cause and the fix of what a student meets, read with the student's rights.

Each situation is made the way it happens: a first deploy of a model too big (OOMKilled), a
Deployment whose pod asks for more GPUs than a node has, or more than the quota allows, a flag
TGI refuses (a hand edit with kubectl; deploy.yml itself refuses unknown flags), a download that
takes minutes (the sandbox's ready-after annotation). Changes "by hand" are made as the admin.
"""

from __future__ import annotations

import json
import re

import pytest
from kubernetes import client
from views import FAST, TOO_BIG_MODEL
from waiting import wait_until

from playbooks import run_playbook, write_inventory

READY_AFTER = "sandbox.haw.icc/ready-after-seconds"


@pytest.fixture
def inventory(tmp_path, namespace, sandbox):
    return write_inventory(tmp_path, [namespace], sandbox.student_kubeconfig, **FAST)


def deployed(inventory, **extra):
    run = run_playbook("deploy.yml", inventory, extra_vars=extra)
    assert run.rc == 0, run.output
    return run


def status(inventory, *options, **extra):
    run = run_playbook("status.yml", inventory, *options, extra_vars=extra)
    assert "Traceback" not in run.output
    return run


def edit_tgi(admin_client, namespace, container=None, annotations=None):
    """A hand edit of TGI's pod template (strategic merge on the container named tgi)."""
    template = {"spec": {"containers": [{"name": "tgi", **(container or {})}]}}
    if annotations:
        template["metadata"] = {"annotations": annotations}
    client.AppsV1Api(admin_client).patch_namespaced_deployment(
        "tgi", namespace, {"spec": {"template": template}}
    )


def gpus(count):
    value = str(count)
    return {
        "resources": {"limits": {"nvidia.com/gpu": value}, "requests": {"nvidia.com/gpu": value}}
    }


def until_status_says(inventory, text, timeout=90, **extra):
    """Runs status.yml until its output holds `text` (the cluster needs a moment to get there)."""
    seen = {}

    def probe():
        seen["run"] = status(inventory, **extra)
        return text in seen["run"].output

    wait_until(
        probe,
        timeout,
        f"status.yml to say {text!r}",
        interval=2,
        explain=lambda: seen["run"].output if "run" in seen else "",
    )
    return seen["run"]


@pytest.mark.sandbox
def test_a_healthy_namespace_shows_model_gpus_node_and_how_to_reach_it(inventory, namespace):
    deployed(inventory)
    run = status(inventory)
    assert run.rc == 0, run.output
    assert "TGI: READY" in run.output and "Open WebUI: READY" in run.output
    assert "1 x gpu-tesla-v100 (single-gpu)" in run.output
    assert re.search(r"node icc-gpu-v100-\d, ready since 20\d\d-", run.output)
    assert f"kubectl -n {namespace} port-forward svc/tgi 3333" in run.output
    assert "problem:" not in run.output
    assert run.changed(namespace) == 0


@pytest.mark.sandbox
def test_pending_for_more_gpus_than_a_node_has_says_so_and_what_fits(
    inventory, namespace, admin_client
):
    deployed(inventory)
    edit_tgi(admin_client, namespace, gpus(8))  # no node has 8 V100s

    run = until_status_says(inventory, "TGI: PENDING")
    assert "a gpu-tesla-v100 node has 4 GPUs" in run.output and "can never be" in run.output
    assert "Insufficient nvidia.com/gpu" in run.output  # the scheduler's own words, quoted
    scale = f"ansible-playbook haw.icc.scale -l {namespace} -e tgi_gpu_count=4"
    assert f"fix: ask for at most 4: {scale}" in run.output


@pytest.mark.sandbox
def test_over_quota_gives_the_quota_numbers_and_what_fits(
    inventory, namespace, admin_client, sandbox
):
    deployed(inventory)
    sandbox.set_gpu_quota(namespace, 2)
    edit_tgi(admin_client, namespace, gpus(3))

    run = until_status_says(inventory, "TGI: PENDING")
    assert "ResourceQuota gpu-quota allows requests.nvidia.com/gpu=2 (" in run.output
    assert "the pod asks for 3)" in run.output
    assert f"ask for at most 2 GPUs: ansible-playbook haw.icc.scale -l {namespace}" in run.output


@pytest.mark.sandbox
def test_a_flag_tgi_refuses_is_quoted_with_the_fix(inventory, namespace, admin_client, core):
    deployed(inventory)
    args = client.AppsV1Api(admin_client).read_namespaced_deployment("tgi", namespace)
    args = args.spec.template.spec.containers[0].args
    edit_tgi(admin_client, namespace, {"args": [*args, "--max-parallel-loading-workers", "2"]})

    run = until_status_says(inventory, "TGI: FAILED", timeout=120)
    assert "--max-parallel-loading-workers" in run.output
    assert "tgi_extra_args" in run.output
    assert run.rc == 0  # a status that reports a failure is not itself a failure


@pytest.mark.sandbox
def test_an_oom_killed_model_gets_the_capacity_numbers_and_alternatives(inventory, namespace):
    too_big = {"tgi_model_id": TOO_BIG_MODEL, "tgi_ignore_rules": "model-fits"}
    first = run_playbook("deploy.yml", inventory, extra_vars=too_big)
    assert first.rc != 0 and "OOMKilled" in first.output

    run = until_status_says(inventory, "OOMKilled", **too_big)
    assert "TGI: FAILED" in run.output
    assert re.search(r"the model needs about [\d.]+ GiB per GPU, and one GPU offers", run.output)
    assert "fix: " in run.output and "tgi_gpu_count: 2" in run.output


# 7.6B parameters in bfloat16: three weight files of about 5 GB, downloaded one after the other.
SEVERAL_FILES = {"tgi_model_id": "Qwen/Qwen2.5-7B-Instruct", "tgi_gpu_type": "gpu-tesla-v100s"}


@pytest.mark.sandbox
def test_a_download_in_progress_grows_and_the_json_has_its_entry(
    inventory, namespace, admin_client, tmp_path
):
    deployed(inventory, **SEVERAL_FILES)
    # A download of minutes, as for a real 15 GB model (the new pod downloads afresh).
    edit_tgi(admin_client, namespace, annotations={READY_AFTER: "240"})
    document = tmp_path / "status.json"

    first = until_status_says(
        inventory,
        "download in progress: 1/3 files",
        timeout=150,
        icc_status_file=str(document),
        **SEVERAL_FILES,
    )
    assert "TGI: DOWNLOADING" in first.output
    assert re.search(r"1/3 files, [\d.]+ of [\d.]+ GiB, 33%, about \dm\d\ds left", first.output)
    entry = json.loads(document.read_text())["namespaces"][namespace]
    assert entry["tgi"]["state"] == "downloading"
    assert entry["tgi"]["download"]["files_done"] == 1

    later = until_status_says(
        inventory, "download in progress: 2/3 files", timeout=150, **SEVERAL_FILES
    )
    assert "67%" in later.output


@pytest.mark.sandbox
def test_a_course_gets_one_row_and_one_json_entry_per_namespace(tmp_path, namespace, sandbox, core):
    second = f"{namespace[:50]}-b"
    sandbox.create_namespace(second)
    sandbox.wait_until_usable(second)
    try:
        course = write_inventory(tmp_path, [namespace, second], sandbox.student_kubeconfig, **FAST)
        assert run_playbook("deploy.yml", course, "--limit", namespace).rc == 0
        document = tmp_path / "course.json"

        run = status(course, icc_status_file=str(document))

        rows = [line for line in run.output.splitlines() if line.strip().startswith('"')]
        assert any(namespace in row and "ready" in row for row in rows), run.output
        assert any(second in row and "absent" in row for row in rows), run.output
        entries = json.loads(document.read_text())["namespaces"]
        assert sorted(entries) == sorted([namespace, second])
        assert entries[namespace]["healthy"] is True
        assert entries[second]["tgi"]["state"] == "absent"
        assert f"ansible-playbook haw.icc.deploy -l {second}" in entries[second]["tgi"]["fix"]
    finally:
        core.delete_namespace(second)

"""Every way a user connects works, and says which credentials it used (README: Connecting).

The playbooks get their client from kubernetes.core, so they connect as its own modules do:
a host with a token alone, a pod's service account, $KUBECONFIG, or the inventory's
icc_kubeconfig, which wins over an exported KUBECONFIG.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml
from views import FAST, tgi_pod

from playbooks import run_playbook, write_inventory


def token_and_ca(kubeconfig: Path) -> tuple[str, str, str]:
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    return cluster["server"], config["users"][0]["user"]["token"], cluster["certificate-authority"]


def bare_inventory(tmp_path: Path, namespace: str) -> Path:
    """An inventory that names no kubeconfig: the environment decides."""
    inventory = write_inventory(tmp_path, [namespace], Path("unused"), **FAST)
    data = yaml.safe_load(inventory.read_text())
    del data["all"]["vars"]["icc_kubeconfig"]
    inventory.write_text(yaml.safe_dump(data))
    return inventory


@pytest.fixture
def nowhere(tmp_path) -> dict[str, str]:
    """An environment without a kubeconfig in the usual places."""
    home = tmp_path / "home"
    home.mkdir()
    return {"HOME": str(home)}


@pytest.mark.sandbox
def test_deploy_with_only_a_host_and_a_token(tmp_path, namespace, sandbox, core, nowhere):
    server, token, ca = token_and_ca(sandbox.student_kubeconfig)
    env = nowhere | {
        "K8S_AUTH_HOST": server,
        "K8S_AUTH_API_KEY": token,
        "K8S_AUTH_SSL_CA_CERT": ca,
    }
    run = run_playbook("deploy.yml", bare_inventory(tmp_path, namespace), env=env)
    assert run.rc == 0, run.output
    assert f"{server} (Kubernetes v1.20.2), namespace {namespace}, with K8S_AUTH_HOST and " in (
        run.output
    )
    assert tgi_pod(core, namespace).status.container_statuses[0].ready


@pytest.mark.sandbox
def test_an_exported_kubeconfig_is_used_and_the_inventory_one_wins_saying_so(
    tmp_path, namespace, sandbox, nowhere
):
    exported = {"KUBECONFIG": str(sandbox.student_kubeconfig)}
    run = run_playbook(
        "deploy.yml", bare_inventory(tmp_path, namespace), "--check", env=nowhere | exported
    )
    assert run.rc == 0, run.output
    assert f"with KUBECONFIG {sandbox.student_kubeconfig}" in run.output

    (tmp_path / "inv").mkdir()
    inventory = write_inventory(tmp_path / "inv", [namespace], sandbox.student_kubeconfig, **FAST)
    wins = run_playbook("deploy.yml", inventory, "--check", env=nowhere | {"KUBECONFIG": "/x"})
    assert wins.rc == 0, wins.output
    assert "(KUBECONFIG is set but icc_kubeconfig wins)" in wins.output

    missing = tmp_path / "missing.kubeconfig"
    (tmp_path / "gone").mkdir()
    inventory = write_inventory(tmp_path / "gone", [namespace], missing, **FAST)
    refused = run_playbook("deploy.yml", inventory, env=nowhere | exported)
    assert refused.rc != 0
    # Truthful: the inventory's file is the one missing, and the exported one does not count.
    assert (
        f"no kubeconfig: icc_kubeconfig {missing} (KUBECONFIG is set but icc_kubeconfig wins) "
        "does not exist" in refused.output
    )
    assert sandbox.student_writes(namespace) == []


@pytest.mark.sandbox
def test_no_credentials_anywhere_says_how_to_get_them(tmp_path, namespace, nowhere):
    run = run_playbook("deploy.yml", bare_inventory(tmp_path, namespace), env=nowhere)
    assert run.rc != 0
    assert "no kubeconfig: the default kubeconfig ~/.kube/config does not exist" in run.output
    assert "download your kubeconfig from the ICC login page" in run.output
    assert "Traceback" not in run.output


@pytest.mark.sandbox
def test_a_broken_kubeconfig_and_an_unknown_context_are_explained(tmp_path, namespace, sandbox):
    broken = tmp_path / "broken.kubeconfig"
    broken.write_text("apiVersion: v1\nclusters: [\n")
    (tmp_path / "a").mkdir()
    run = run_playbook("deploy.yml", write_inventory(tmp_path / "a", [namespace], broken, **FAST))
    assert run.rc != 0
    assert f"the kubeconfig {broken} cannot be read (line 3)" in run.output

    (tmp_path / "b").mkdir()
    inventory = write_inventory(
        tmp_path / "b", [namespace], sandbox.student_kubeconfig, icc_context="lecturer", **FAST
    )
    run = run_playbook("deploy.yml", inventory)
    assert run.rc != 0
    assert (
        f"the context 'lecturer' is not in the kubeconfig {sandbox.student_kubeconfig}; it has "
        "infwabc123@icc-sandbox" in run.output
    )
    assert sandbox.student_writes(namespace) == []


@pytest.mark.sandbox
def test_a_namespace_that_is_not_yours_is_named_as_such(tmp_path, sandbox):
    inventory = write_inventory(tmp_path, ["kube-system"], sandbox.student_kubeconfig, **FAST)
    run = run_playbook("deploy.yml", inventory)
    assert run.rc != 0
    assert "Namespace kube-system does not exist or is not yours" in run.output
    assert "Not allowed in namespace" not in run.output  # not 25 denied verbs


@pytest.mark.sandbox
def test_impersonation_with_several_groups(tmp_path, namespace, sandbox, nowhere):
    """kubernetes.core sends one header per group; the collection's own plugins go through the
    same client, so several groups work for the waits and the switch too."""
    inventory = write_inventory(tmp_path, [namespace], sandbox.admin_kubeconfig, **FAST)
    student = {
        "K8S_AUTH_IMPERSONATE_USER": sandbox.student_user,
        "K8S_AUTH_IMPERSONATE_GROUPS": "students,course-ml",
    }
    run = run_playbook("deploy.yml", inventory, env=nowhere | student)
    assert run.rc == 0, run.output  # the student's rights suffice in the student's namespace
    (tmp_path / "other").mkdir()
    elsewhere = write_inventory(tmp_path / "other", ["kube-system"], sandbox.admin_kubeconfig)
    refused = run_playbook("deploy.yml", elsewhere, env=nowhere | student)
    # The admin could deploy there: the refusal shows the impersonation took effect.
    assert "Namespace kube-system does not exist or is not yours" in refused.output


SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@pytest.mark.sandbox
def test_deploy_from_inside_a_pod_uses_its_service_account(tmp_path, namespace, sandbox, nowhere):
    """AWX or a CI job: no kubeconfig, the pod's token and CA where the kubernetes library
    looks for them. There is no pod here, so the test lays out those files (as root)."""
    if os.geteuid() != 0:
        pytest.skip("laying out a pod's service account files needs root (CI runs as root)")
    if SERVICE_ACCOUNT.exists():
        pytest.skip(f"{SERVICE_ACCOUNT} exists: this runs in a real pod; not touching it")
    server, token, ca = token_and_ca(sandbox.student_kubeconfig)
    host, port = server.removeprefix("https://").rsplit(":", 1)
    created = next(
        d for d in [*reversed(SERVICE_ACCOUNT.parents), SERVICE_ACCOUNT] if not d.exists()
    )
    SERVICE_ACCOUNT.mkdir(parents=True)
    try:
        (SERVICE_ACCOUNT / "token").write_text(token)
        shutil.copy(ca, SERVICE_ACCOUNT / "ca.crt")
        (SERVICE_ACCOUNT / "namespace").write_text(namespace)
        env = nowhere | {"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port}
        run = run_playbook("deploy.yml", bare_inventory(tmp_path, namespace), "--check", env=env)
    finally:
        shutil.rmtree(created)  # only what the test made
    assert run.rc == 0, run.output
    assert "with the pod's service account (in-cluster)" in run.output

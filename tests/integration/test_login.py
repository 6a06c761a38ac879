"""login.yml as a student runs it: the kubeconfig downloaded from the ICC login page (here the
sandbox student's, which is that kind of file) goes into ~/.kube/config beside what is there,
works, and its namespace becomes a host of the inventory.

Each test has a HOME of its own holding a kubeconfig for a made-up cluster (never contacted:
its address does not resolve), and an inventory of its own, run from its directory as users do.
"""

from __future__ import annotations

import shutil
import stat
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from playbooks import REPO_ROOT, command_line_vars, run_ansible

STUDENT_CONTEXT = "infwabc123@icc-sandbox"
STUDENT_NAMESPACE = "wabc123-default"

OWN_KUBECONFIG = {
    "apiVersion": "v1",
    "kind": "Config",
    "clusters": [{"name": "lab", "cluster": {"server": "https://lab.example.invalid:6443"}}],
    "users": [{"name": "me", "user": {"token": "lab-token-not-for-the-icc"}}],
    "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me", "namespace": "x"}}],
    "current-context": "lab",
}
HOSTS = """\
---
# Our namespaces on the ICC (comment kept by login.yml).
all:
  children:
    students:
      hosts:
        wdef456-default:   # Bob's
"""
GROUP_VARS = """\
---
# Shared choices.
icc_kubeconfig: ~/.kube/icc.yaml
"""


@pytest.fixture
def student(tmp_path: Path, sandbox) -> dict[str, Path]:
    """A HOME with its own kubeconfig, the downloaded file, and an inventory in a work dir."""
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    own = home / ".kube" / "config"
    own.write_text(yaml.safe_dump(OWN_KUBECONFIG, sort_keys=False))
    own.chmod(0o644)
    downloads = home / "Downloads"
    downloads.mkdir()
    downloaded = downloads / "kubeconfig.yaml"
    shutil.copyfile(sandbox.student_kubeconfig, downloaded)
    work = tmp_path / "work"
    inventory = work / "inventories" / "icc"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(HOSTS)
    (inventory / "group_vars" / "all.yml").write_text(GROUP_VARS)
    return {
        "home": home,
        "own": own,
        "downloaded": downloaded,
        "work": work,
        "inventory": inventory,
    }


def login(paths: dict[str, Path], *options: str, env: dict | None = None, **extra_vars):
    """ansible-playbook haw.icc.login from the work directory, with that HOME and no inventory."""
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), *options]
    argv += command_line_vars({"icc_login_kubeconfig": str(paths["downloaded"]), **extra_vars})
    argv.append(str(REPO_ROOT / "playbooks" / "login.yml"))
    return run_ansible(argv, env={"HOME": str(paths["home"]), **(env or {})}, cwd=paths["work"])


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def backups(kubeconfig: Path) -> list[Path]:
    return sorted(kubeconfig.parent.glob(f"{kubeconfig.name}.*.bak"))


def token(sandbox) -> str:
    return yaml.safe_load(sandbox.student_kubeconfig.read_text())["users"][0]["user"]["token"]


@pytest.mark.sandbox
def test_login_keeps_the_own_kubeconfig_and_the_new_context_works(student, sandbox):
    run = login(student, "--diff")
    assert run.rc == 0, run.output
    assert run.changed("localhost") == 2  # the kubeconfig and the inventory
    assert token(sandbox) not in run.output and "lab-token-not-for-the-icc" not in run.output
    assert "<hidden value" in run.output  # the diff masks the tokens

    own = student["own"]
    merged = yaml.safe_load(own.read_text())
    for section in ("clusters", "users", "contexts"):
        assert merged[section][0] == OWN_KUBECONFIG[section][0]  # kept, unchanged, first
    assert merged["current-context"] == "lab"  # there was one: it stays
    assert mode(own) == 0o600
    [backup] = backups(own)
    assert mode(backup) == 0o600
    assert yaml.safe_load(backup.read_text()) == OWN_KUBECONFIG

    [context] = [c for c in merged["contexts"] if c["name"] == STUDENT_CONTEXT]
    assert context["context"]["namespace"] == STUDENT_NAMESPACE
    with config.new_client_from_config(config_file=str(own), context=STUDENT_CONTEXT) as api:
        core = client.CoreV1Api(api)
        core.list_namespaced_pod(STUDENT_NAMESPACE)  # the student may, in its namespace
        with pytest.raises(ApiException) as refused:
            core.list_node()  # and is the student: nodes are not theirs to list
        assert refused.value.status == 403

    hosts = (student["inventory"] / "hosts.yml").read_text()
    assert hosts.startswith("---\n# Our namespaces on the ICC (comment kept by login.yml).\n")
    assert "wdef456-default:   # Bob's" in hosts
    students = yaml.safe_load(hosts)["all"]["children"]["students"]["hosts"]
    assert list(students) == ["wdef456-default", STUDENT_NAMESPACE]
    host_vars = yaml.safe_load(
        (student["inventory"] / "host_vars" / f"{STUDENT_NAMESPACE}.yml").read_text()
    )
    # group_vars name another kubeconfig, so the host names its own, and its context
    assert host_vars == {"icc_kubeconfig": "~/.kube/config", "icc_context": STUDENT_CONTEXT}
    assert (
        f"Next: ansible-playbook -i inventories/icc haw.icc.deploy --limit {STUDENT_NAMESPACE}"
        in run.output
    )

    again = login(student)
    assert again.rc == 0, again.output
    assert again.changed("localhost") == 0
    assert backups(own) == [backup]


@pytest.mark.sandbox
def test_only_what_the_inventory_lacks_is_recorded(student):
    run = login(
        student,
        # credentials exported for another cluster must not stand in for the kubeconfig checked
        env={"K8S_AUTH_HOST": "https://127.0.0.1:9", "K8S_AUTH_API_KEY": "not-the-student"},
        icc_login_dest="~/.kube/icc.yaml",  # what group_vars name already
        icc_login_use_context="true",
    )
    assert run.rc == 0, run.output
    installed = student["home"] / ".kube" / "icc.yaml"
    assert yaml.safe_load(installed.read_text())["current-context"] == STUDENT_CONTEXT
    assert mode(installed) == 0o600 and backups(installed) == []  # a new file: nothing to keep
    assert yaml.safe_load(student["own"].read_text()) == OWN_KUBECONFIG  # another file: untouched
    host_vars = student["inventory"] / "host_vars" / f"{STUDENT_NAMESPACE}.yml"
    assert yaml.safe_load(host_vars.read_text()) == {"icc_context": STUDENT_CONTEXT}


@pytest.mark.sandbox
def test_check_mode_shows_the_change_and_writes_nothing(student, sandbox):
    before = student["own"].read_text()
    run = login(student, "--check", "--diff")
    assert run.rc == 0, run.output
    assert "check mode: would change" in run.output
    assert f"+- name: {STUDENT_CONTEXT}" in run.output and "+    namespace: wabc123-default" in (
        run.output
    )
    assert token(sandbox) not in run.output
    assert student["own"].read_text() == before and backups(student["own"]) == []
    assert (student["inventory"] / "hosts.yml").read_text() == HOSTS
    assert not (student["inventory"] / "host_vars").exists()


@pytest.mark.sandbox
def test_a_bad_kubeconfig_is_refused_and_nothing_is_written(student):
    broken = yaml.safe_load(student["downloaded"].read_text())
    broken["users"] = []  # its context names a user the file does not hold
    student["downloaded"].write_text(yaml.safe_dump(broken))
    before = student["own"].read_text()
    run = login(student, icc_namespace="Not_A_Namespace")
    assert run.rc != 0
    assert "context 'infwabc123@icc-sandbox' uses the user 'infwabc123', which the file" in (
        run.output
    )
    assert "namespace 'Not_A_Namespace' is not a valid name" in run.output
    assert student["own"].read_text() == before and backups(student["own"]) == []
    assert (student["inventory"] / "hosts.yml").read_text() == HOSTS
    assert not (student["inventory"] / "host_vars").exists()


@pytest.mark.sandbox
def test_no_kubeconfig_given_says_where_to_get_one(student):
    argv = [str(Path(sys.executable).parent / "ansible-playbook")]
    argv.append(str(REPO_ROOT / "playbooks" / "login.yml"))
    run = run_ansible(argv, env={"HOME": str(student["home"])}, cwd=student["work"])
    assert run.rc != 0 and "Download it from the ICC login page" in run.output

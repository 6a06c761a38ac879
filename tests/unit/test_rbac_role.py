"""The Role the collection ships (rbac/haw-icc-deployer.yml): minimal in the ways a reader can
check, in line with what the playbooks' preflight asks for, and in the built collection.

That the Role is enough for every playbook is proven elsewhere: the sandbox binds the student
to exactly this Role (icc_sandbox.cluster.grant_role), so every integration test runs under it.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml
from icc_sandbox import cluster

REPO_ROOT = Path(__file__).resolve().parents[2]
ROLE_FILE = REPO_ROOT / "rbac" / "haw-icc-deployer.yml"

# Verbs that hand out more than the named resources, or stream every change of them.
POWERFUL_VERBS = {"*", "watch", "escalate", "bind", "impersonate", "deletecollection"}
# Resources a namespaced Role may only read of itself; everything else cluster-scoped is out
# (a Role cannot grant it, and a file that lists it misleads whoever reads it).
CLUSTER_SCOPED = {
    "nodes",
    "namespaces",
    "persistentvolumes",
    "storageclasses",
    "clusterroles",
    "clusterrolebindings",
    "customresourcedefinitions",
    "priorityclasses",
    "runtimeclasses",
    "csidrivers",
    "csinodes",
    "volumeattachments",
    "certificatesigningrequests",
    "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations",
}
# API groups the collection never touches; granting them would let the user run arbitrary
# workloads beside the Deployments (batch) or change admission.
FORBIDDEN_GROUPS = {"batch", "admissionregistration.k8s.io", "*"}
# RBAC: Roles and RoleBindings only (the idle proxy's own), and without escalate and bind
# (POWERFUL_VERBS), so that Kubernetes' escalation check keeps the user to the rights it holds.
RBAC_RESOURCES = {"roles", "rolebindings"}


def load_documents() -> dict[str, dict]:
    listed = yaml.safe_load(ROLE_FILE.read_text())
    assert (listed["apiVersion"], listed["kind"]) == ("v1", "List")  # one YAML document
    return {item["kind"]: item for item in listed["items"]}


def grants(role: dict) -> set[tuple[str, str, str]]:
    """Every (group, resource, verb) the Role allows."""
    return {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def preflight_permissions() -> list[tuple[str, str, str, str]]:
    """(where, group, resource, verb) of everything a cluster_preflight task checks: the shared
    __icc_permissions and the lists written into a task (cleanup.yml, gpu_scale)."""
    found = []
    shared = yaml.safe_load((REPO_ROOT / "playbooks" / "vars" / "preflight.yml").read_text())
    sources = [
        ("playbooks/vars/preflight.yml", shared["__icc_permissions"]),
        ("playbooks/vars/preflight.yml (icc_idle_minutes)", shared["__icc_idle_permissions"]),
    ]

    def walk(node, where):
        if isinstance(node, dict):
            task = node.get("haw.icc.cluster_preflight")
            if isinstance(task, dict) and isinstance(task.get("permissions"), list):
                sources.append((where, task["permissions"]))
            for value in node.values():
                walk(value, where)
        elif isinstance(node, list):
            for value in node:
                walk(value, where)

    for path in [*REPO_ROOT.glob("playbooks/*.yml"), *REPO_ROOT.glob("roles/*/tasks/*.yml")]:
        walk(yaml.safe_load(path.read_text()), str(path.relative_to(REPO_ROOT)))
    for where, permissions in sources:
        for permission in permissions:
            for verb in permission["verbs"]:
                found.append((where, permission.get("group") or "", permission["resource"], verb))
    return found


def test_the_file_holds_one_role_and_a_binding_to_it():
    documents = load_documents()
    assert set(documents) == {"Role", "RoleBinding"}
    role, binding = documents["Role"], documents["RoleBinding"]
    # No namespace in the file: `kubectl -n <namespace> apply -f` puts both where they belong.
    assert "namespace" not in role["metadata"] and "namespace" not in binding["metadata"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert [subject["kind"] for subject in binding["subjects"]] == ["User"]


def test_the_role_names_every_verb_and_resource_and_no_powerful_verb():
    role = load_documents()["Role"]
    for rule in role["rules"]:
        assert set(rule) <= {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, no URLs
        assert "*" not in rule["resources"] and "*" not in rule["verbs"], rule
        assert not set(rule["apiGroups"]) & FORBIDDEN_GROUPS, rule
        if "rbac.authorization.k8s.io" in rule["apiGroups"]:
            assert rule["apiGroups"] == ["rbac.authorization.k8s.io"], rule
            assert set(rule["resources"]) <= RBAC_RESOURCES, rule
        assert not set(rule["verbs"]) & POWERFUL_VERBS, rule
        assert len(set(rule["verbs"])) == len(rule["verbs"]), rule  # no verb twice


def test_of_the_cluster_scoped_kinds_only_its_own_namespace_is_read():
    cluster_scoped = {
        (group, resource, verb)
        for group, resource, verb in grants(load_documents()["Role"])
        if resource.split("/")[0] in CLUSTER_SCOPED
    }
    # get namespaces/<own>: the preflight tells a missing namespace from a forbidden one.
    assert cluster_scoped == {("", "namespaces", "get")}


def test_secrets_may_be_listed_only_because_cleanup_selects_them_by_label():
    """list on Secrets reads every Secret of the namespace at once: needed only while cleanup.yml
    removes the collection's Secrets by label rather than by name."""
    secret_verbs = {
        verb for group, resource, verb in grants(load_documents()["Role"]) if resource == "secrets"
    }
    assert "watch" not in secret_verbs
    cleanup = (REPO_ROOT / "playbooks" / "cleanup.yml").read_text()
    selects_secrets = "kind: Secret}" in cleanup and "label_selectors" in cleanup
    assert ("list" in secret_verbs) == selects_secrets


def test_pods_are_never_created_or_changed_directly():
    """Pods come from the Deployments' ReplicaSets (the controller makes them, not the user):
    the Role gives no write on pods, nor on ReplicaSets, beyond exec and port-forward."""
    writes = {"create", "update", "patch", "delete"}
    for group, resource, verb in grants(load_documents()["Role"]):
        if resource in ("pods", "replicasets", "events", "resourcequotas", "namespaces"):
            assert verb not in writes, (group, resource, verb)


def test_everything_the_preflight_asks_for_is_in_the_role():
    """Otherwise the preflight refuses where the Role would let the playbook work."""
    role = grants(load_documents()["Role"])
    asked = preflight_permissions()
    assert len({where for where, *_ in asked}) >= 3  # the shared list, cleanup.yml, gpu_scale
    missing = [entry for entry in asked if tuple(entry[1:]) not in role]
    assert missing == []


def test_the_sandbox_binds_the_student_to_exactly_this_role():
    role, binding = cluster.deployer_role_objects("someone")
    documents = load_documents()
    assert role == documents["Role"]
    assert binding["roleRef"] == documents["RoleBinding"]["roleRef"]
    assert binding["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "someone"}
    ]
    assert cluster.DEPLOYER_ROLE_FILE == ROLE_FILE


@pytest.mark.timeout(120)
def test_the_built_collection_ships_the_role(tmp_path):
    ansible_galaxy = Path(sys.executable).parent / "ansible-galaxy"
    result = subprocess.run(
        [
            str(ansible_galaxy),
            "collection",
            "build",
            "--output-path",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (tarball,) = tmp_path.glob("haw-icc-*.tar.gz")
    with tarfile.open(tarball) as archive:
        shipped = archive.extractfile("rbac/haw-icc-deployer.yml").read().decode()
    assert shipped == ROLE_FILE.read_text()

"""Least privilege and pod hardening, on rendered manifests and on the live objects.

The student works under exactly the collection's Role (rbac/haw-icc-deployer.yml, bound by the
sandbox in every test namespace); here one namespace is deployed once and then looked at: the
rights, the pods' securityContext, the NetworkPolicy. The steps build on each other.
"""

from __future__ import annotations

import json
import secrets

import pytest
import yaml
from kubernetes import client
from views import FAST

from playbooks import REPO_ROOT, run_playbook, write_inventory

ROLE_FILE = REPO_ROOT / "rbac" / "haw-icc-deployer.yml"
ROLE_RULES = next(
    item for item in yaml.safe_load(ROLE_FILE.read_text())["items"] if item["kind"] == "Role"
)["rules"]


def assert_hardened(pod_spec: dict, where: str) -> None:
    """Every container: no privilege escalation, no capabilities, the runtime's seccomp profile
    (set on the pod or the container)."""
    pod_seccomp = ((pod_spec.get("securityContext") or {}).get("seccompProfile") or {}).get("type")
    for container in pod_spec["containers"] + (pod_spec.get("initContainers") or []):
        context = container.get("securityContext") or {}
        name = f"{where} container {container['name']}"
        assert context.get("allowPrivilegeEscalation") is False, name
        assert context.get("capabilities", {}).get("drop") == ["ALL"], name
        assert not context.get("capabilities", {}).get("add"), name
        assert not context.get("privileged"), name
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        assert seccomp == "RuntimeDefault", name
    assert not pod_spec.get("hostNetwork") and not pod_spec.get("hostPID"), where
    assert pod_spec.get("automountServiceAccountToken") is False, where


def test_rendered_deployments_are_hardened(tmp_path):
    """Without a cluster: render.yml's manifests, for a GPU and a CPU TGI."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {"wgpu-default": None, "wcpu-default": {"tgi_gpu_count": 0}},
                    "vars": {"icc_hub_lookup": False, "tgi_model_id": "Qwen/Qwen2.5-0.5B-Instruct"},
                }
            }
        )
    )
    out = tmp_path / "rendered"
    run = run_playbook("render.yml", inventory, extra_vars={"icc_render_dir": str(out)})
    assert run.rc == 0, run.output
    deployments = [
        (path, document)
        for path in sorted(out.glob("*/*.yml"))
        if (document := yaml.safe_load(path.read_text()))["kind"] == "Deployment"
    ]
    assert len(deployments) == 4, [str(path) for path, _ in deployments]
    for path, deployment in deployments:
        assert_hardened(deployment["spec"]["template"]["spec"], str(path.relative_to(out)))


@pytest.fixture(scope="module")
def deployed(sandbox, core, tmp_path_factory):
    """One namespace, deployed once by the student (under the collection's Role)."""
    namespace = f"t-least-privilege-{secrets.token_hex(3)}"
    sandbox.create_namespace(namespace)
    sandbox.wait_until_usable(namespace)
    inventory = write_inventory(
        tmp_path_factory.mktemp("least-privilege"), [namespace], sandbox.student_kubeconfig, **FAST
    )
    run = run_playbook("deploy.yml", inventory)
    assert run.rc == 0, run.output
    yield namespace, inventory
    core.delete_namespace(namespace)


@pytest.mark.sandbox
def test_the_student_has_exactly_the_role_and_deploying_needed_nothing_more(
    deployed, sandbox, admin_client, student_client
):
    namespace, _ = deployed
    rbac = client.RbacAuthorizationV1Api(admin_client)
    bindings = [
        binding
        for binding in rbac.list_namespaced_role_binding(namespace).items
        if any(subject.name == sandbox.student_user for subject in binding.subjects or [])
    ]
    assert [(b.role_ref.kind, b.role_ref.name) for b in bindings] == [("Role", "haw-icc-deployer")]
    live = rbac.read_namespaced_role("haw-icc-deployer", namespace).to_dict()["rules"]
    assert [{key: rule[key] for key in ("api_groups", "resources", "verbs")} for rule in live] == [
        {"api_groups": rule["apiGroups"], "resources": rule["resources"], "verbs": rule["verbs"]}
        for rule in ROLE_RULES
    ]

    # Outside the Role: refused (what admin would have allowed). Roles it may create, for the
    # idle proxy, but not escalate or bind: only with rights it holds itself.
    authz = client.AuthorizationV1Api(student_client)
    for verb, group, resource in (
        ("create", "", "pods"),
        ("watch", "", "secrets"),
        ("escalate", "rbac.authorization.k8s.io", "roles"),
        ("bind", "rbac.authorization.k8s.io", "roles"),
        ("create", "apps", "statefulsets"),
        ("create", "batch", "jobs"),
    ):
        review = client.V1SelfSubjectAccessReview(
            spec=client.V1SelfSubjectAccessReviewSpec(
                resource_attributes=client.V1ResourceAttributes(
                    namespace=namespace, verb=verb, group=group, resource=resource
                )
            )
        )
        assert not authz.create_self_subject_access_review(review).status.allowed, resource

    # Nothing deploy.yml asked of the API server in the namespace was refused (the audit log
    # holds the student's requests: at least the writes).
    entries = [json.loads(line) for line in sandbox.audit_log.read_text().splitlines() if line]
    refused = [
        f"{entry['verb']} {entry['objectRef'].get('resource')}"
        for entry in entries
        if (entry.get("objectRef") or {}).get("namespace") == namespace
        and entry.get("responseStatus", {}).get("code") == 403
    ]
    assert any((e.get("objectRef") or {}).get("namespace") == namespace for e in entries)
    assert refused == []


@pytest.mark.sandbox
def test_live_pods_are_hardened_and_a_dry_run_changes_nothing(deployed, admin_client):
    namespace, inventory = deployed
    api = client.ApiClient()
    apps = client.AppsV1Api(admin_client)
    core = client.CoreV1Api(admin_client)
    for name in ("tgi", "open-webui"):
        deployment = apps.read_namespaced_deployment(name, namespace)
        assert_hardened(api.sanitize_for_serialization(deployment.spec.template.spec), name)
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"app.kubernetes.io/name={name}"
        ).items
        assert pods, name
        for pod in pods:
            assert_hardened(api.sanitize_for_serialization(pod.spec), pod.metadata.name)

    # The API server's defaulting of the new fields makes no difference to server-side apply.
    checked = run_playbook("deploy.yml", inventory, "--check", "--diff")
    assert checked.rc == 0, checked.output
    assert checked.changed(namespace) == 0, checked.output


@pytest.mark.sandbox
def test_the_network_policy_admits_only_the_namespaces_pods_to_tgis_port(deployed, admin_client):
    namespace, inventory = deployed
    networking = client.NetworkingV1Api(admin_client)
    apps = client.AppsV1Api(admin_client)

    def policy() -> dict:
        live = networking.read_namespaced_network_policy("tgi", namespace)
        return client.ApiClient().sanitize_for_serialization(live.spec)

    tgi = apps.read_namespaced_deployment("tgi", namespace)
    (container,) = tgi.spec.template.spec.containers
    named_ports = {port.name: port.container_port for port in container.ports}
    webui_labels = apps.read_namespaced_deployment(
        "open-webui", namespace
    ).spec.template.metadata.labels

    spec = policy()
    # It selects exactly TGI's pods, limits ingress only, and names one port: TGI's.
    assert spec["podSelector"] == {"matchLabels": tgi.spec.selector.match_labels}
    assert spec["policyTypes"] == ["Ingress"]
    (rule,) = spec["ingress"]
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]
    assert "http" in named_ports  # the policy's port is the one TGI listens on
    # The default: any pod of this namespace (a podSelector without namespaceSelector or
    # ipBlock never reaches beyond the namespace).
    assert rule["from"] == [{"podSelector": {}}]

    narrowed = run_playbook(
        "deploy.yml", inventory, extra_vars={"tgi_network_policy_allow": "webui"}
    )
    assert narrowed.rc == 0, narrowed.output
    (rule,) = policy()["ingress"]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # this namespace only
    selector = peer["podSelector"]["matchLabels"]
    assert selector.items() <= webui_labels.items()  # Open WebUI's pods match ...
    assert not selector.items() <= tgi.spec.template.metadata.labels.items()  # ... TGI's do not
    assert rule["ports"] == [{"port": "http", "protocol": "TCP"}]

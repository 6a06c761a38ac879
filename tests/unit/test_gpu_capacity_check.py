# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""haw.icc.gpu_capacity_check driven through its action plugin, with a fake Kubernetes API.

The fake stands in for the collection's request layer (ClusterApi): it answers the reads the
module makes with JSON shaped like the API server's, and raises the layer's ApiError, worded from
the API server's Status, for forbidden (403) or missing (404) objects. It has no write methods at
all: a write attempt would fail the test.
"""

from __future__ import annotations

import json
import re

import pytest
from ansible_collections.haw.icc.plugins.module_utils.capacity import gpu_rules
from ansible_collections.haw.icc.plugins.module_utils.capacity.cluster_reader import UNFINISHED_PODS
from ansible_collections.haw.icc.plugins.module_utils.cluster import connection as cluster_access
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import api_error
from ansible_collections.haw.icc.plugins.module_utils.gpu import hub
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import NAME_MARGIN
from ansible_collections.haw.icc.plugins.plugin_utils import kubernetes_action
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.exceptions import CoreException
from kubernetes.client.rest import ApiException

NAMESPACE = "wabc123-default"
SERVER = "https://fake:6443"
V100 = "gpu-tesla-v100"
V100S = "gpu-tesla-v100s"
SMALL_MODEL = "bigscience/bloom-560m"  # fits on one V100, shards on V100s (not a flash model)


# --- API objects ---------------------------------------------------------------------------------


def node(name, gpu_type, gpus):
    taints = [{"key": gpu_type, "value": "true", "effect": "NoSchedule"}] if gpu_type else []
    allocatable = {"cpu": "32", "memory": "192Gi", "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {"name": name},
        "spec": {"taints": taints},
        "status": {
            "allocatable": allocatable,
            "capacity": allocatable,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def pod(name, node_name, gpus, namespace="other-ns", labels=None, phase="Running"):
    resources = {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{namespace}-{name}",
                     "labels": labels or {}},
        "spec": {"nodeName": node_name, "containers": [{"name": "c", "resources": resources}]},
        "status": {"phase": phase},
    }  # fmt: skip


def quota(hard, used=None, name="gpu-quota"):
    spec_hard = {"requests.nvidia.com/gpu": str(hard), "pods": "20"}
    result = {"metadata": {"name": name, "namespace": NAMESPACE}, "spec": {"hard": spec_hard}}
    if used is not None:  # None: the quota controller has not counted yet
        result["status"] = {
            "hard": spec_hard,
            "used": {"requests.nvidia.com/gpu": str(used), "pods": "3"},
        }
    return result


TGI_LABELS = {"app.kubernetes.io/name": "tgi", "app.kubernetes.io/instance": "tgi"}
TGI_DEPLOYMENT = {
    "metadata": {"name": "tgi", "namespace": NAMESPACE},
    "spec": {"selector": {"matchLabels": TGI_LABELS}},
}
NODES = [
    node("v100-1", V100, 4),
    node("v100-2", V100, 4),
    node("v100s-1", V100S, 2),
    node("cpu-1", None, 0),
]


def forbidden():
    error = ApiException(status=403, reason="Forbidden")
    error.body = json.dumps({"kind": "Status", "message": "nodes is forbidden: User \"student\" "
                             "cannot list resource \"nodes\"", "code": 403})  # fmt: skip
    return api_error(error, SERVER)


def not_found():
    error = ApiException(status=404, reason="Not Found")
    error.body = json.dumps({"kind": "Status", "message": "not found", "code": 404})
    return api_error(error, SERVER)


def matches(labels, selector):
    wanted = dict(part.split("=", 1) for part in selector.split(",")) if selector else {}
    return all(labels.get(key) == value for key, value in wanted.items())


class FakeCluster:
    """ClusterApi's reads, read-only; `forbidden_calls` names the reads that get 403, as the
    typed client's methods are named (list_node...)."""

    def __init__(self, nodes=(), pods=(), quotas=(), deployment=None, forbidden_calls=()):
        self.nodes, self.pods, self.quotas = list(nodes), list(pods), list(quotas)
        self.deployment = deployment
        self.forbidden_calls = set(forbidden_calls)
        self.calls = []

    def _answer(self, call, body):
        self.calls.append(call)
        if call in self.forbidden_calls:
            raise forbidden()
        return body

    def list(self, path, query=None):
        query = query or {}
        if path == "/api/v1/nodes":
            return self._answer("list_node", self.nodes)
        if path == "/api/v1/pods":
            assert query.get("fieldSelector") == UNFINISHED_PODS
            return self._answer("list_pod_for_all_namespaces", self.pods)
        namespace, plural = re.fullmatch(r"/api/v1/namespaces/([^/]+)/(\w+)", path).groups()
        if plural == "resourcequotas":
            return self._answer("list_namespaced_resource_quota", self.quotas)
        assert plural == "pods", path
        items = [
            p for p in self.pods
            if p["metadata"]["namespace"] == namespace
            and matches(p["metadata"]["labels"], query.get("labelSelector"))
        ]  # fmt: skip
        return self._answer("list_namespaced_pod", items)

    def get(self, path, query=None, missing_ok=False):
        namespace, name = re.fullmatch(
            r"/apis/apps/v1/namespaces/([^/]+)/deployments/(.+)", path
        ).groups()
        assert namespace == NAMESPACE
        if self.deployment is None or self.deployment["metadata"]["name"] != name:
            self.calls.append("read_namespaced_deployment")
            raise not_found()
        return self._answer("read_namespaced_deployment", self.deployment)


@pytest.fixture
def run(monkeypatch, run_action):
    """Runs the task with the given arguments against a FakeCluster; returns its result."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def run_task(cluster, **args):
        found = cluster_access.Credentials("the fake cluster", server=SERVER)
        monkeypatch.setattr(
            kubernetes_action, "api_client", lambda auth, probe=True: (cluster, found)
        )
        # tgi_* keyword arguments are the TGI settings, the others the module's options.
        settings = {"tgi_model_id": SMALL_MODEL}
        settings.update({key: value for key, value in args.items() if key.startswith("tgi_")})
        arguments = {"namespace": NAMESPACE, "settings": settings, "hub_lookup": False}
        arguments.update({key: value for key, value in args.items() if not key.startswith("tgi_")})
        result = run_action("gpu_capacity_check", arguments)
        result["failed"] = bool(result.get("failed"))
        result["warnings"] = list(result.get("warnings", []))
        return result

    return run_task


def verdicts(result):
    return {entry["id"]: entry["verdict"] for entry in result["rules"]}


def cluster_rule(result, rule_id):
    return next(entry for entry in result["rules"] if entry["id"] == rule_id)


def warned(result, text):
    return any(text in warning for warning in result["warnings"])


# --- cases ---------------------------------------------------------------------------------------


def test_admin_sees_free_gpus_per_node(run):
    cluster = FakeCluster(
        NODES, [pod("a", "v100-1", 3), pod("b", "v100-2", 1), pod("c", "v100s-1", 2)]
    )
    result = run(cluster)
    assert not result["failed"]
    assert result["changed"] is False
    assert result["ok"] is True
    assert result["schedulable"] is True
    assert result["nodes"] == [
        {"name": "v100-1", "allocatable": 4, "requested": 3, "released": 0, "free": 4 - 3,
         "schedulable": True, "note": None},
        {"name": "v100-2", "allocatable": 4, "requested": 1, "released": 0, "free": 4 - 1,
         "schedulable": True, "note": None},
    ]  # fmt: skip
    assert result["free_gpus"] == 4 - 1
    assert result["quota"] is None
    assert result["architecture"] == "bloom"
    assert result["multi_gpu"]["mode"] == "single-gpu"
    assert verdicts(result)["gpus-free"] == "pass"
    assert "node v100-2 has 3 of 4 GPUs free" in cluster_rule(result, "gpus-free")["reason"]
    assert verdicts(result)["gpu-quota"] == "pass"
    assert result["msg"].startswith(f"{SMALL_MODEL} in float16 on 1 x {V100}: needs ")
    assert result["msg"].endswith(", 3 GPUs free on one node: ok")
    assert not warned(result, "cannot list")
    # one entry per model rule, then the two cluster rules
    assert [entry["id"] for entry in result["rules"]] == [
        *gpu_rules.RULES,
        "gpus-free",
        "gpu-quota",
    ]


def test_no_free_gpus_refuses_and_names_what_is_free(run):
    busy = [pod("a", "v100-1", 3), pod("b", "v100-2", 4)]
    result = run(FakeCluster(NODES, busy), tgi_gpu_count=2)
    assert result["failed"]
    assert result["ok"] is False
    assert result["schedulable"] is False
    assert result["free_gpus"] == 4 - 3
    entry = cluster_rule(result, "gpus-free")
    assert entry["verdict"] == "refuse"
    assert entry["reason"] == (
        "no gpu-tesla-v100 node has 2 GPUs free; free per node: v100-1 1, v100-2 0"
    )
    # bloom shards on a V100 and fits on one: fewer GPUs of the type, or the idle V100S node
    # with as many GPUs as asked for (2 of its 2 free)
    assert result["recommendations"] == [
        "1 x gpu-tesla-v100: the model fits and runs, and a node has them free "
        "(set tgi_gpu_count: 1)",
        "2 x gpu-tesla-v100s: the model fits and runs, and a node has 2 free "
        "(set tgi_gpu_type: gpu-tesla-v100s, tgi_gpu_count: 2)",
        "try again later, when other pods have released GPUs",
    ]
    assert entry["recommendation"] == " or ".join(result["recommendations"])
    assert any(line.startswith("gpus-free: no gpu-tesla-v100 node") for line in result["refusals"])
    lines = result["msg"].splitlines()
    assert lines[0].startswith(f"{SMALL_MODEL} in float16 on 2 x {V100} (tensor-sharding): ")
    assert lines[0].endswith(": refused (gpus-free)")
    assert any(line.startswith("- gpus-free: ") and " Instead: " in line for line in lines)


def test_no_node_of_the_type(run):
    result = run(FakeCluster([node("cpu-1", None, 0)]))
    entry = cluster_rule(result, "gpus-free")
    assert entry["verdict"] == "refuse"
    assert (
        entry["reason"] == "no node is tainted gpu-tesla-v100: the cluster has no GPUs of that type"
    )
    assert result["nodes"] == []
    assert result["free_gpus"] == 0


def test_student_view_answers_from_the_quota_alone_with_warnings(run):
    cluster = FakeCluster(
        NODES,
        [pod("a", "v100-1", 4), pod("b", "v100-2", 4)],  # invisible to the student
        quotas=[quota(2, 0)],
        forbidden_calls={"list_node", "list_pod_for_all_namespaces"},
    )
    result = run(cluster)
    assert not result["failed"]
    assert result["ok"] is True
    assert result["schedulable"] is None
    assert result["nodes"] is None
    assert result["free_gpus"] is None
    assert verdicts(result)["gpus-free"] == "unknown"
    assert verdicts(result)["gpu-quota"] == "pass"
    assert result["quota"] == {"name": "gpu-quota", "resource": "requests.nvidia.com/gpu",
                               "hard": 2, "used": 0, "released": 0, "left": 2 - 0}  # fmt: skip
    assert warned(result, "cannot list nodes")
    assert warned(result, "free GPUs per node unknown; quota only")
    assert result["msg"].endswith(", quota left 2: ok")
    # with nodes forbidden the pods of all namespaces are not even asked for
    assert "list_pod_for_all_namespaces" not in cluster.calls


def test_pods_forbidden_but_nodes_readable(run):
    cluster = FakeCluster(NODES, forbidden_calls={"list_pod_for_all_namespaces"})
    result = run(cluster)
    assert verdicts(result)["gpus-free"] == "unknown"
    assert result["nodes"] is None
    assert warned(result, "cannot list the pods of all namespaces")


def test_quota_exceeded_refuses_and_names_the_pods_holding_it(run):
    notebook = pod("notebook", "v100-1", 1, namespace=NAMESPACE)
    cluster = FakeCluster(NODES, [notebook], quotas=[quota(1, 1)])
    result = run(cluster)
    assert result["failed"]
    assert result["ok"] is False
    assert result["schedulable"] is False
    assert verdicts(result)["gpus-free"] == "pass"
    entry = cluster_rule(result, "gpu-quota")
    assert entry["verdict"] == "refuse"
    assert entry["reason"] == (
        "ResourceQuota gpu-quota in wabc123-default allows 1 (requests.nvidia.com/gpu), 1 in "
        "use: 0 left, fewer than the 1 asked for"
    )
    assert "ask the cluster admins for more GPU quota" in entry["recommendation"]
    assert (
        "delete the other GPU pods in wabc123-default: notebook (1 GPU)" in entry["recommendation"]
    )
    assert "tgi_gpu_count" not in entry["recommendation"]  # nothing is left
    assert result["quota"]["left"] == 0


def test_quota_recommends_what_is_left_and_not_the_pod_being_replaced(run):
    tgi = pod("tgi-5d9c-x", "v100-1", 1, namespace=NAMESPACE, labels=TGI_LABELS)
    notebook = pod("notebook", "v100-2", 1, namespace=NAMESPACE)
    cluster = FakeCluster(NODES, [tgi, notebook], quotas=[quota(2, 2)], deployment=TGI_DEPLOYMENT)
    result = run(cluster, tgi_gpu_count=3, fail_on_refusal=False)
    assert result["quota"]["left"] == 2 - 2 + 1
    entry = cluster_rule(result, "gpu-quota")
    assert entry["verdict"] == "refuse"
    assert entry["recommendation"] == (
        "ask the cluster admins for more GPU quota"
        " or 1 x gpu-tesla-v100: the model fits and runs within the quota (set tgi_gpu_count: 1)"
        " or delete the other GPU pods in wabc123-default: notebook (1 GPU)"
    )


def test_gpus_of_the_current_tgi_pod_are_released(run):
    tgi = pod("tgi-5d9c-x", "v100-1", 1, namespace=NAMESPACE, labels=TGI_LABELS)
    others = [pod("a", "v100-1", 3), pod("b", "v100-2", 4)]
    cluster = FakeCluster(NODES, [tgi, *others], quotas=[quota(1, 1)], deployment=TGI_DEPLOYMENT)
    result = run(cluster)
    assert not result["failed"], result["msg"]
    assert result["ok"] is True
    assert result["released_gpus"] == 1
    assert result["nodes"][0] == {"name": "v100-1", "allocatable": 4, "requested": 1 + 3,
                                  "released": 1, "free": 4 - 4 + 1, "schedulable": True,
                                  "note": None}  # fmt: skip
    assert result["free_gpus"] == 1
    assert result["quota"] == {"name": "gpu-quota", "resource": "requests.nvidia.com/gpu",
                               "hard": 1, "used": 1, "released": 1, "left": 1 - 1 + 1}  # fmt: skip
    assert "1 of them held by the pod being replaced" in cluster_rule(result, "gpus-free")["reason"]
    assert "1 of them by the pod being replaced" in cluster_rule(result, "gpu-quota")["reason"]


def test_another_deployment_name_releases_its_pods(run):
    labels = {"app": "llm"}
    deployment = {"metadata": {"name": "llm"}, "spec": {"selector": {"matchLabels": labels}}}
    llm = pod("llm-1", "v100-1", 2, namespace=NAMESPACE, labels=labels)
    cluster = FakeCluster(NODES, [llm], quotas=[quota(2, 2)], deployment=deployment)
    assert run(cluster, release_deployment="tgi", tgi_gpu_count=2)["ok"] is False
    result = run(cluster, release_deployment="llm", tgi_gpu_count=2)
    assert result["released_gpus"] == 2
    assert result["quota"]["left"] == 2 - 2 + 2


def test_missing_deployment_releases_nothing(run):
    cluster = FakeCluster(NODES, [], quotas=[quota(2, 1)])
    result = run(cluster)
    assert result["released_gpus"] == 0
    assert result["quota"]["left"] == 2 - 1
    assert "read_namespaced_deployment" in cluster.calls


def test_quota_not_computed_yet_is_unknown_with_a_warning(run):
    result = run(FakeCluster(NODES, [], quotas=[quota(2)]))
    assert result["ok"] is True
    assert verdicts(result)["gpu-quota"] == "unknown"
    assert result["schedulable"] is None
    assert warned(result, "not computed yet")


def test_quota_forbidden_is_unknown_with_a_warning(run):
    cluster = FakeCluster(NODES, [], forbidden_calls={"list_namespaced_resource_quota"})
    result = run(cluster)
    assert verdicts(result)["gpu-quota"] == "unknown"
    assert warned(result, "cannot read the ResourceQuotas of wabc123-default")


def test_ignore_rules_turns_a_cluster_refusal_into_a_warning(run):
    busy = [pod("a", "v100-1", 4), pod("b", "v100-2", 4)]
    result = run(FakeCluster(NODES, busy), ignore_rules=["gpus-free"])
    assert not result["failed"]
    assert result["ok"] is True
    assert result["schedulable"] is False  # a fact, whatever is ignored
    assert verdicts(result)["gpus-free"] == "ignored"
    assert result["refusals"] == []
    assert warned(result, "gpus-free ignored (tgi_ignore_rules): no gpu-tesla-v100 node has")
    assert result["msg"].endswith(": ok")


def test_ignore_rules_passes_model_rules_on_to_the_assessment(run):
    big = "Qwen/Qwen2.5-32B-Instruct"  # 32e9 * 2 bytes = 59.6 GiB of weights: not on 16 GiB
    refused = run(FakeCluster(NODES, []), tgi_model_id=big, fail_on_refusal=False)
    assert verdicts(refused)["model-fits"] == "refuse"
    assert refused["fits"] is False
    assert "refused (model-fits)" in refused["msg"]
    ignored = run(
        FakeCluster(NODES, []), tgi_model_id=big, ignore_rules=["model-fits", "gpu-quota"]
    )
    assert verdicts(ignored)["model-fits"] == "ignored"
    assert ignored["ok"] is True


def test_unknown_rule_id_fails_naming_the_known_ones(run):
    result = run(FakeCluster(NODES, []), ignore_rules=["gpus-free", "free-lunch"])
    assert result["failed"]
    assert "free-lunch" in result["msg"]
    assert "gpus-free" in result["msg"]
    assert "model-fits" in result["msg"]


def test_fail_on_refusal_false_only_reports(run):
    result = run(FakeCluster(NODES, [], quotas=[quota(1, 1)]), fail_on_refusal=False)
    assert not result["failed"]
    assert result["ok"] is False
    assert result["refusals"][-1].startswith("gpu-quota: ResourceQuota gpu-quota")
    assert " Instead: ask the cluster admins" in result["refusals"][-1]
    assert result["msg"].endswith("refused (gpu-quota)")
    assert "\n" not in result["msg"]


def test_cpu_does_not_read_the_cluster(run, monkeypatch):
    cluster = FakeCluster(forbidden_calls={"list_node"})
    result = run(cluster, tgi_gpu_count=0)
    assert cluster.calls == []
    assert verdicts(result)["gpus-free"] == "not-applicable"
    assert verdicts(result)["gpu-quota"] == "not-applicable"
    assert result["nodes"] is None
    assert result["quota"] is None
    assert result["schedulable"] is None
    assert " on CPU: needs " in result["msg"]


def test_hub_failure_is_a_warning_and_the_name_gives_the_size(run, monkeypatch):
    asked = []

    def unavailable(model_id, revision=None, token=None, timeout=5.0):
        asked.append((model_id, revision, token, timeout))
        raise hub.HubUnavailable("offline mode (HF_HUB_OFFLINE=1)")

    monkeypatch.setattr(hub, "hub_fetcher", unavailable)
    result = run(
        FakeCluster(NODES, []), hub_lookup=True, hf_token="hf_secret", hub_timeout=2.5,
        tgi_model_revision="main",
    )  # fmt: skip
    assert asked == [(SMALL_MODEL, "main", "hf_secret", 2.5)]
    assert warned(result, f"Hugging Face Hub lookup of {SMALL_MODEL} failed")
    assert warned(result, "offline mode (HF_HUB_OFFLINE=1)")
    assert result["sizing"]["parameters_source"] == "name"
    assert result["sizing"]["parameters"] == 560e6 * NAME_MARGIN
    assert "hf_secret" not in json.dumps(result)


def test_hub_answer_gives_the_size(run, monkeypatch):
    monkeypatch.setattr(
        hub,
        "hub_fetcher",
        lambda *args, **kwargs: {"parameters": 559_214_592, "config": None, "source": "hub"},
    )
    result = run(FakeCluster(NODES, []), hub_lookup=True)
    assert result["sizing"]["parameters_source"] == "hub"
    assert result["sizing"]["parameters"] == 559_214_592
    assert not warned(result, "Hugging Face Hub")


def test_hub_lookup_off_never_calls_the_fetcher(run, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the Hub was asked")

    monkeypatch.setattr(hub, "hub_fetcher", must_not_run)
    assert run(FakeCluster(NODES, []), hub_lookup=False)["ok"] is True


def test_other_api_errors_fail_with_the_servers_message(run):
    class Broken(FakeCluster):
        def list(self, path, query=None):
            if not path.endswith("/resourcequotas"):
                return super().list(path, query)
            error = ApiException(status=500, reason="Internal Server Error")
            error.body = json.dumps({"message": "etcdserver: request timed out"})
            raise api_error(error, SERVER)

    result = run(Broken(NODES, []))
    assert result["failed"]
    assert result["msg"] == (
        "Reading the cluster for the capacity check failed (500): etcdserver: request timed out"
    )
    assert result["gpu"]["type"] == V100  # the model's assessment is kept


def test_unusable_kubeconfig_fails_readably(monkeypatch, run_action, tmp_path):
    def no_config(**_auth):
        raise CoreException("Could not create API client: Invalid kube-config file.")

    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("contexts: [{name: c, context: {cluster: x, user: y}}]\n")
    monkeypatch.setattr(cluster_access, "get_api_client", no_config)
    arguments = {
        "namespace": NAMESPACE,
        "settings": {"tgi_model_id": SMALL_MODEL},
        "hub_lookup": False,
        "kubeconfig": str(kubeconfig),
    }
    result = run_action("gpu_capacity_check", arguments)
    assert result["failed"] is True
    assert result["msg"] == (
        f"Cannot connect: cannot use icc_kubeconfig {kubeconfig}: Could not create API client: "
        "Invalid kube-config file."
    )
    assert result["fits"] is True  # the model's assessment is kept


def test_unknown_gpu_type_is_refused_before_the_cluster_is_read(run):
    cluster = FakeCluster(NODES, [])
    result = run(cluster, tgi_gpu_type="gpu-tesla-h100", fail_on_refusal=False)
    assert result["ok"] is False
    assert result["refusals"] == [
        "request: tgi_gpu_type: 'gpu-tesla-h100' is not a GPU type of the catalog: allowed "
        "gpu-tesla-a100, gpu-tesla-v100, gpu-tesla-v100s (add others with icc_gpu_catalog). "
        "Instead: fix the setting."
    ]
    assert verdicts(result)["gpus-free"] == "not-applicable"
    assert cluster_rule(result, "gpus-free")["reason"] == "the request is invalid"
    assert cluster.calls == []
    assert result["msg"] == (
        "bigscience/bloom-560m on 1 x gpu-tesla-h100: size unknown: refused (request)"
    )


def test_deployment_forbidden_releases_nothing_with_a_warning(run):
    tgi = pod("tgi-5d9c-x", "v100-1", 1, namespace=NAMESPACE, labels=TGI_LABELS)
    cluster = FakeCluster(
        NODES,
        [tgi],
        quotas=[quota(1, 1)],
        deployment=TGI_DEPLOYMENT,
        forbidden_calls={"read_namespaced_deployment"},
    )
    result = run(cluster, fail_on_refusal=False)
    assert result["released_gpus"] == 0
    assert verdicts(result)["gpu-quota"] == "refuse"
    assert warned(result, "cannot read Deployment tgi in wabc123-default")
    assert warned(result, "not counted as released")

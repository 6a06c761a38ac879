#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: gpu_capacity_check
short_description: Tell before writing anything whether a model fits and runs on the GPUs asked
version_added: 0.1.0
author: haw.icc developers (@haw-hamburg)
description:
  - Answers in seconds whether a TGI server for O(model_id) fits into the memory of O(gpu_count)
    GPUs of type O(gpu_type), whether TGI can run it on that GPU at all (the V100 rules of the
    collection's GPU catalog), whether that many GPUs are free on one node, and whether the
    namespace's GPU quota allows them.
  - The model's size comes from the Hugging Face Hub when O(hub_lookup=true) and the Hub answers,
    else from the model id (V(7B), V(1.1B), V(8x7B)), and O(model_parameters) overrides both.
  - Free GPUs are counted per node of the type (the nodes tainted with O(gpu_type) as key) as
    allocatable C(nvidia.com/gpu) minus what the unfinished pods on the node request. The GPUs
    held by the pods of O(release_deployment) in the namespace count as free, in the quota too,
    because deploying or switching the model replaces that pod.
  - Reads only, never writes; the same under check mode. Works with rights in one namespace
    only. When nodes or pods of other namespaces may not be listed (a student's usual rights),
    the free GPUs per node are unknown, the answer rests on the quota alone, and a warning says
    so. The same holds for a quota that cannot be read.
  - Each check is reported as a rule with a verdict, the reason and what to do instead. A refused
    rule fails the task with every reason and recommendation, unless O(fail_on_refusal=false)
    or the rule's id is in O(ignore_rules).
options:
  namespace:
    description: The namespace the TGI server runs in (its quota and current TGI pod are read).
    type: str
    required: true
  gpu_type:
    description:
      - The GPU type, as the key of the GPU nodes' taint and an entry of the GPU catalog.
      - The built-in catalog knows V(gpu-tesla-v100), V(gpu-tesla-v100s) and V(gpu-tesla-a100);
        O(catalog) adds more.
    type: str
    default: gpu-tesla-v100
  gpu_count:
    description:
      - How many GPUs of O(gpu_type) the TGI pod gets (all on one node); the model is sharded
        over them.
      - V(0) runs TGI on CPU; then the cluster is not read.
    type: int
    default: 1
  model_id:
    description: The model as a Hugging Face Hub id, for example V(Qwen/Qwen2.5-7B-Instruct).
    type: str
    required: true
  model_revision:
    description: The model's revision (commit, tag or branch) to look up on the Hub.
    type: str
  dtype:
    description:
      - The precision TGI loads the weights in (TGI's C(--dtype)); default V(float16) on GPUs.
      - Mutually exclusive with O(quantize), as in TGI.
    type: str
    choices: [float16, bfloat16]
  quantize:
    description: The quantization TGI applies or the checkpoint carries (TGI's C(--quantize)).
    type: str
    choices:
      - awq
      - compressed-tensors
      - eetq
      - exl2
      - gptq
      - marlin
      - bitsandbytes
      - bitsandbytes-nf4
      - bitsandbytes-fp4
      - fp8
  model_parameters:
    description:
      - The model's parameter count, overriding the Hub and the model id. A number like
        V(7000000000) or a string like V(7B), V(1.1B), V(350M) or V(8x7B).
    type: raw
  max_total_tokens:
    description:
      - Tokens per sequence (input and output) that the KV cache must hold (TGI's
        C(--max-total-tokens)). Unset means 4096 for the estimate.
    type: int
  concurrent_sequences:
    description: How many sequences of O(max_total_tokens) the KV cache must hold at once.
    type: int
    default: 1
  cuda_memory_fraction:
    description:
      - Share of each GPU's memory TGI may use (TGI's C(--cuda-memory-fraction)). Unset means 1.0.
    type: float
  image:
    description:
      - The TGI image that will run. Unset means the catalog's image for O(gpu_type).
      - Its version decides whether it can start on the GPU (TGI 3.3.1 and later cannot on a V100).
    type: str
  catalog:
    description:
      - Extra or overriding GPU catalog entries (the inventory variable C(icc_gpu_catalog)), each
        C(type -> {memory_gib, compute_capability, gpus_per_node, tgi_image}).
    type: dict
    default: {}
  ignore_rules:
    description:
      - Ids of rules to report as ignored instead of refusing (an expert override), for example
        V(sharding-flash-attention) to try a sharded Llama on V100s anyway.
      - The model rules of the collection's GPU rules (V(tgi-image-cuda),
        V(sharding-flash-attention), V(mistral-flash-attention-v2),
        V(quantization-compute-capability), V(model-fits)) and the cluster rules V(gpus-free)
        and V(gpu-quota). An unknown id fails the task.
    type: list
    elements: str
    default: []
  hf_token:
    description:
      - Hugging Face token for the Hub lookup of gated or private models. Never logged.
    type: str
  hub_lookup:
    description:
      - Ask the Hugging Face Hub for the model's size and configuration. When the Hub cannot be
        reached or refuses, a warning says so and the size comes from the model id or
        O(model_parameters).
    type: bool
    default: true
  hub_timeout:
    description: Seconds to wait for the Hub's answer.
    type: float
    default: 5
  release_deployment:
    description:
      - Name of the namespace's current TGI Deployment. The GPUs its pods hold count as free
        (per node and in the quota), since the deployment or switch replaces that pod.
      - A Deployment that does not exist releases nothing.
    type: str
    default: tgi
  fail_on_refusal:
    description:
      - Fail the task when a rule refuses. With V(false) the task only reports (RV(ok) tells).
    type: bool
    default: true
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
requirements:
  - kubernetes >= 24.2.0
  - huggingface_hub (optional, for O(hub_lookup))
notes:
  - Supports check mode; the module never writes, so it behaves the same.
  - Only reads. Lists nodes, pods of all namespaces (both optional), and in O(namespace) the
    Deployment O(release_deployment), its pods and the ResourceQuotas.
seealso:
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Does Qwen 7B fit on one V100, and is one free?
  haw.icc.gpu_capacity_check:
    namespace: wabc123-default
    model_id: Qwen/Qwen2.5-7B-Instruct
    gpu_type: gpu-tesla-v100
    gpu_count: 1
  register: capacity

- name: Report only, with the size given (no Hub lookup), for a 4-bit checkpoint on the V100S
  haw.icc.gpu_capacity_check:
    namespace: wabc123-default
    kubeconfig: ~/.kube/icc.yaml
    model_id: my-group/private-model-awq
    model_parameters: 13B
    quantize: bitsandbytes-nf4
    gpu_type: gpu-tesla-v100s
    hub_lookup: false
    fail_on_refusal: false
  register: capacity

- name: Show why not
  ansible.builtin.debug:
    msg: "{{ capacity.refusals + capacity.recommendations }}"
  when: not capacity.ok

- name: Try a sharded Llama on V100s anyway (expert override)
  haw.icc.gpu_capacity_check:
    namespace: wabc123-default
    model_id: meta-llama/Llama-3.1-8B-Instruct
    gpu_count: 2
    hf_token: "{{ tgi_hf_token }}"
    ignore_rules: [sharding-flash-attention]
"""

RETURN = r"""
ok:
  description: No rule refuses (ignored rules do not count).
  returned: always
  type: bool
  sample: false
fits:
  description: The model fits into the GPUs' memory; null when its size is unknown.
  returned: always
  type: bool
runs:
  description: TGI can run the model on this GPU type and count (the compatibility rules pass).
  returned: always
  type: bool
schedulable:
  description:
    - Whether the GPUs are free on one node and the quota allows them (rules C(gpus-free) and
      C(gpu-quota), before O(ignore_rules)); null when that could not be seen, or on CPU.
  returned: always
  type: bool
gpu:
  description: What was asked for, with the catalog's facts about the GPU type.
  returned: always
  type: dict
  sample:
    type: gpu-tesla-v100
    count: 1
    memory_gib: 16
    compute_capability: "7.0"
    image: ghcr.io/huggingface/text-generation-inference:3.3.0
sizing:
  description:
    - The model's size estimate (parameters and where the count came from, architecture,
      precision, quantization, GiB of weights, KV cache and overhead, shards, notes); null
      when the size is unknown.
  returned: always
  type: dict
memory:
  description: Memory per part and per GPU in GiB, and what one GPU offers; null when unknown.
  returned: always
  type: dict
  sample:
    weights_gib: 14.2
    kv_cache_gib: 0.2
    overhead_gib: 2.8
    total_gib: 17.3
    per_gpu_gib: 17.3
    usable_per_gpu_gib: 16.0
    headroom_gib: -1.3
rules:
  description:
    - One verdict per rule, the model rules first, then C(gpus-free) and C(gpu-quota).
    - C(verdict) is one of V(pass), V(refuse), V(ignored), V(unknown), V(not-applicable).
  returned: always
  type: list
  elements: dict
  sample:
    - id: gpus-free
      verdict: refuse
      reason: >-
        no gpu-tesla-v100 node has 2 GPUs free; the most free on one node is 1 (icc-gpu-v100-2)
      recommendation: >-
        1 x gpu-tesla-v100: the model fits and runs, and a node has them free
        (set tgi_gpu_count: 1) or try again later, when other pods have released GPUs
refusals:
  description: "Each refusing rule as C(<id>: <reason> Instead: <recommendation>)."
  returned: always
  type: list
  elements: str
recommendations:
  description: Concrete alternatives that pass (fewer or other GPUs, another quantization, ...).
  returned: always
  type: list
  elements: str
warnings:
  description: What could not be judged or seen, and the rules ignored (also shown as warnings).
  returned: when there are any
  type: list
  elements: str
  sample:
    - "cannot list nodes (forbidden for this user): free GPUs per node unknown; quota only"
nodes:
  description:
    - The nodes of O(gpu_type) with their GPUs; null when nodes or pods could not be listed,
      or on CPU. C(released) counts the GPUs of the pod being replaced; C(free) is 0 on a
      cordoned or not-ready node, and C(note) says why.
  returned: always
  type: list
  elements: dict
  sample:
    - name: icc-gpu-v100-1
      allocatable: 4
      requested: 3
      released: 1
      free: 2
      schedulable: true
      note: null
free_gpus:
  description: The most GPUs of O(gpu_type) free on one node; null when unknown.
  returned: always
  type: int
  sample: 2
quota:
  description:
    - The tightest GPU limit of the namespace's ResourceQuotas; null when none limits GPUs, it
      could not be read, or on CPU. C(used) and C(left) are null while the quota's usage is not
      computed yet.
  returned: always
  type: dict
  sample:
    name: gpu-quota
    resource: requests.nvidia.com/gpu
    hard: 2
    used: 1
    released: 1
    left: 2
released_gpus:
  description: GPUs held by the pods of O(release_deployment), counted as free.
  returned: always
  type: int
  sample: 1
msg:
  description:
    - The verdict in one line. When the task fails on a refusal, the lines after it give every
      refusal with its reason and what to do instead.
  returned: always
  type: str
  sample: "Qwen/Qwen2.5-7B-Instruct in float16 on 1 x gpu-tesla-v100: needs 17.9 GiB per GPU of
    16 GiB: refused (model-fits)"
"""

import copy
import json

from ansible_collections.haw.icc.plugins.module_utils import gpu_rules, model_sizing
from ansible_collections.haw.icc.plugins.module_utils.cluster_access import api_message, connect
from ansible_collections.haw.icc.plugins.module_utils.cluster_gpus import (
    free_gpus_by_node,
    pod_gpus,
    pod_key,
    quota_left,
    released_gpus,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu_catalog import (
    CatalogError,
    gpu_types,
    merged_catalog,
)
from ansible_collections.haw.icc.plugins.module_utils.k8s_client import label_selector
from ansible_collections.haw.icc.plugins.module_utils.tgi_settings import (
    DTYPES,
    QUANTIZE_METHODS,
)
from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule

try:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError
except ImportError:  # reported by AnsibleK8SModule's requirement check
    ApiException = HTTPError = OSError

GPUS_FREE = "gpus-free"
GPU_QUOTA = "gpu-quota"
CLUSTER_RULES = {
    GPUS_FREE: "a node of the GPU type has as many GPUs free as asked for",
    GPU_QUOTA: "the namespace's GPU quota leaves as many GPUs as asked for",
}
REQUEST_TIMEOUT = (10, 30)  # connect, read (seconds) for every API call
UNFINISHED_PODS = "status.phase!=Succeeded,status.phase!=Failed"


def argspec():
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        namespace=dict(type="str", required=True),
        gpu_type=dict(type="str", default="gpu-tesla-v100"),
        gpu_count=dict(type="int", default=1),
        model_id=dict(type="str", required=True),
        model_revision=dict(type="str"),
        dtype=dict(type="str", choices=list(DTYPES)),
        quantize=dict(type="str", choices=list(QUANTIZE_METHODS)),
        model_parameters=dict(type="raw"),
        max_total_tokens=dict(type="int", no_log=False),  # a count, not a secret
        concurrent_sequences=dict(type="int", default=1),
        cuda_memory_fraction=dict(type="float"),
        image=dict(type="str"),
        catalog=dict(type="dict", default={}),
        ignore_rules=dict(type="list", elements="str", default=[]),
        hf_token=dict(type="str", no_log=True),
        hub_lookup=dict(type="bool", default=True),
        hub_timeout=dict(type="float", default=5),
        release_deployment=dict(type="str", default="tgi"),
        fail_on_refusal=dict(type="bool", default=True),
    )
    return spec


# --- the model -----------------------------------------------------------------------------------


def hub_facts(params, warnings):
    """What the Hub knows about the model, or None (with a warning) when it cannot tell."""
    if not params["hub_lookup"]:
        return None
    try:
        # Looked up at call time, so that tests can replace the fetcher.
        return model_sizing.hub_fetcher(
            params["model_id"],
            revision=params["model_revision"],
            token=params["hf_token"],
            timeout=params["hub_timeout"],
        )
    except model_sizing.HubUnavailable as error:
        warnings.append(
            f"Hugging Face Hub lookup of {params['model_id']} failed ({error}); the size comes "
            "from the model id or tgi_model_parameters (option model_parameters)"
        )
        return None


def model_request(params, gpu_type=None, gpu_count=None):
    """The request gpu_rules.assess takes; ignore_rules limited to the ids it knows."""
    return {
        "model_id": params["model_id"],
        "gpu_type": gpu_type or params["gpu_type"],
        "gpu_count": params["gpu_count"] if gpu_count is None else gpu_count,
        "dtype": params["dtype"],
        "quantize": params["quantize"],
        "parameters": params["model_parameters"],
        "max_total_tokens": params["max_total_tokens"],
        "concurrent_sequences": params["concurrent_sequences"],
        "cuda_memory_fraction": params["cuda_memory_fraction"],
        "image": params["image"],
        "ignore_rules": [rule for rule in params["ignore_rules"] if rule in gpu_rules.RULES],
    }


# --- the cluster ---------------------------------------------------------------------------------


def kubernetes_apis(api_client):
    """The typed APIs the check reads through (a seam for tests)."""
    return k8s.CoreV1Api(api_client), k8s.AppsV1Api(api_client)


class ClusterReader:
    """Reads what the cluster rules need. A forbidden read gives None and a warning."""

    def __init__(self, core, apps, namespace, warnings):
        self.core = core
        self.apps = apps
        self.namespace = namespace
        self.warnings = warnings

    def _call(self, method, *args, **kwargs):
        response = method(*args, _preload_content=False, _request_timeout=REQUEST_TIMEOUT, **kwargs)
        return json.loads(response.data or b"{}")

    def _items(self, method, *args, **kwargs):
        return self._call(method, *args, **kwargs).get("items") or []

    def _listed(self, what, consequence, method, *args, **kwargs):
        """Items of a list call; None, with a warning, when this user may not make it."""
        try:
            return self._items(method, *args, **kwargs)
        except ApiException as error:
            if error.status != 403:
                raise
            self.warnings.append(f"cannot {what} ({api_message(error)}): {consequence}")
            return None

    def nodes(self):
        return self._listed(
            "list nodes", "free GPUs per node unknown; quota only", self.core.list_node
        )

    def pods_everywhere(self):
        return self._listed(
            "list the pods of all namespaces",
            "GPUs in use per node unknown; quota only",
            self.core.list_pod_for_all_namespaces,
            field_selector=UNFINISHED_PODS,
        )

    def quotas(self):
        return self._listed(
            f"read the ResourceQuotas of {self.namespace}",
            "whether the quota leaves enough GPUs is unknown",
            self.core.list_namespaced_resource_quota,
            self.namespace,
        )

    def pods_of_deployment(self, name):
        """The unfinished pods of the Deployment `name`; none when it does not exist."""
        not_released = f"the GPUs of Deployment {name}'s pod are not counted as released"
        try:
            deployment = self._call(self.apps.read_namespaced_deployment, name, self.namespace)
        except ApiException as error:
            if error.status == 404:
                return []
            if error.status != 403:
                raise
            self.warnings.append(
                f"cannot read Deployment {name} in {self.namespace} ({api_message(error)}): "
                + not_released
            )
            return []
        selector = label_selector((deployment.get("spec") or {}).get("selector") or {})
        if not selector:
            return []
        pods = self._listed(
            f"list the pods in {self.namespace}",
            not_released,
            self.core.list_namespaced_pod,
            self.namespace,
            label_selector=selector,
            field_selector=UNFINISHED_PODS,
        )
        return pods or []

    def gpu_pods_here(self, exclude=()):
        """Names and GPUs of the namespace's unfinished pods that hold GPUs, but `exclude`;
        None when they cannot be listed (they only serve a recommendation)."""
        try:
            pods = self._items(
                self.core.list_namespaced_pod, self.namespace, field_selector=UNFINISHED_PODS
            )
        except (ApiException, HTTPError, OSError):
            return None
        skipped = {pod_key(pod) for pod in exclude}
        return [
            (pod["metadata"]["name"], pod_gpus(pod))
            for pod in pods
            if pod_gpus(pod) and pod_key(pod) not in skipped
        ]


# --- the cluster rules ---------------------------------------------------------------------------


def rule(rule_id, verdict, reason, options=()):
    """A verdict shaped like gpu_rules' entries, and the alternatives one by one."""
    entry = {"id": rule_id, "verdict": verdict, "reason": reason, "recommendation": ""}
    if verdict in ("refuse", "unknown"):
        entry["recommendation"] = " or ".join(options)
    return entry, list(options)


def gpus_word(count):
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


def most_gpus_that_pass(params, hub, gpu_type, most):
    """The largest GPU count up to `most` (the closest to what was asked) on which the model
    rules pass, or None."""
    for count in range(most, 0, -1):
        request = model_request(params, gpu_type, count)
        if gpu_rules.assess(request, params["catalog"], hub)["ok"]:
            return count
    return None


def gpus_free_rule(params, hub, nodes, pods, released_pods):
    """Verdict of "gpus-free" and the per-node table (None when nodes or pods are unknown)."""
    gpu_type, wanted = params["gpu_type"], params["gpu_count"]
    if nodes is None or pods is None:  # the reader has warned
        unknown = rule(
            GPUS_FREE,
            "unknown",
            "nodes or the pods of other namespaces cannot be listed with these rights, so the "
            "free GPUs per node are unknown",
            [
                "ask the cluster admins which GPU types have free GPUs",
                "watch the TGI pod after deploying: it stays Pending while no node has enough "
                "GPUs free",
            ],
        )
        return unknown, None
    table = free_gpus_by_node(nodes, pods, gpu_type, released_pods)
    most = table["free_gpus"]
    if most >= wanted:
        best = max(table["nodes"], key=lambda row: row["free"])
        reason = f"node {best['name']} has {best['free']} of {best['allocatable']} GPUs free"
        if best["released"]:
            reason += f" ({best['released']} of them held by the pod being replaced)"
        return rule(GPUS_FREE, "pass", reason), table
    if not table["nodes"]:
        reason = f"no node is tainted {gpu_type}: the cluster has no GPUs of that type"
    else:
        holders = [row["name"] for row in table["nodes"] if row["free"] == most]
        reason = (
            f"no {gpu_type} node has {gpus_word(wanted)} free; the most free on one node is "
            f"{most}" + (f" ({', '.join(holders)})" if most else "")
        )
    options = gpus_free_alternatives(params, hub, nodes, pods, released_pods, most)
    if table["nodes"]:
        options.append("try again later, when other pods have released GPUs")
    return rule(GPUS_FREE, "refuse", reason, options), table


def gpus_free_alternatives(params, hub, nodes, pods, released_pods, most):
    """What would pass instead: fewer GPUs of the type, or another type with free GPUs."""
    gpu_type = params["gpu_type"]
    options = []
    count = most_gpus_that_pass(params, hub, gpu_type, min(most, params["gpu_count"] - 1))
    if count:
        options.append(
            f"{count} x {gpu_type}: the model fits and runs, and a node has them free "
            f"(set tgi_gpu_count: {count})"
        )
    for other in other_gpu_types(params["catalog"], gpu_type):
        other_most = free_gpus_by_node(nodes, pods, other, released_pods)["free_gpus"]
        count = most_gpus_that_pass(params, hub, other, min(other_most, params["gpu_count"]))
        if count:
            options.append(
                f"{count} x {other}: the model fits and runs, and a node has {other_most} free "
                f"(set tgi_gpu_type: {other}, tgi_gpu_count: {count})"
            )
    return options


def other_gpu_types(catalog, gpu_type):
    try:
        known = merged_catalog(catalog)
    except CatalogError:  # the model rules report a bad catalog
        return []
    return [name for name in gpu_types(known) if name != gpu_type]


def gpu_quota_rule(params, hub, quotas, quota, reader, released_pods, warnings):
    namespace, wanted = params["namespace"], params["gpu_count"]
    if quotas is None:  # the reader has warned
        return rule(
            GPU_QUOTA,
            "unknown",
            f"the ResourceQuotas of {namespace} cannot be read with these rights",
            ["ask the cluster admins how many GPUs your namespace may use"],
        )
    if quota is None:
        return rule(GPU_QUOTA, "pass", f"no ResourceQuota in {namespace} limits GPUs")
    if quota["left"] is None:
        warnings.append(
            f"{GPU_QUOTA}: the usage of ResourceQuota {quota['name']} in {namespace} is not "
            "computed yet, so whether it leaves enough GPUs is unknown; run the check again"
        )
        return rule(
            GPU_QUOTA,
            "unknown",
            f"ResourceQuota {quota['name']} in {namespace} limits {quota['resource']} to "
            f"{quota['hard']}, but its usage is not computed yet",
            ["run the check again in a few seconds"],
        )
    used = f"{quota['used']} in use"
    if quota["released"]:
        used += f", {quota['released']} of them by the pod being replaced"
    reason = (
        f"ResourceQuota {quota['name']} in {namespace} allows {quota['hard']} "
        f"({quota['resource']}), {used}: {quota['left']} left"
    )
    if quota["left"] >= wanted:
        return rule(GPU_QUOTA, "pass", reason)
    options = ["ask the cluster admins for more GPU quota"]
    count = most_gpus_that_pass(params, hub, params["gpu_type"], quota["left"])
    if count:
        options.append(
            f"{count} x {params['gpu_type']}: the model fits and runs within the quota "
            f"(set tgi_gpu_count: {count})"
        )
    others = reader.gpu_pods_here(exclude=released_pods)
    if others:
        listed = ", ".join(f"{name} ({gpus_word(gpus)})" for name, gpus in others)
        options.append(f"delete the other GPU pods in {namespace}: {listed}")
    else:
        options.append(f"clean up other GPU workloads in {namespace}")
    return rule(GPU_QUOTA, "refuse", f"{reason}, fewer than the {wanted} asked for", options)


def apply_ignore(entry, ignore_rules, warnings):
    """An ignored rule that would refuse becomes "ignored", and a warning says what it hides."""
    if entry["id"] in ignore_rules and entry["verdict"] == "refuse":
        warnings.append(f"{entry['id']} ignored (tgi_ignore_rules): {entry['reason']}")
        return dict(entry, verdict="ignored")
    return entry


def refusal_line(entry):
    """The same shape as gpu_rules' refusals."""
    return f"{entry['id']}: {entry['reason']}. Instead: {entry['recommendation']}"


def cluster_check(module, params, hub, result, warnings):
    """Reads the cluster; returns the two cluster rules as (entry, alternatives) and fills
    the result's nodes, free_gpus, quota and released_gpus."""
    core, apps = kubernetes_apis(connect(module, result)[0])
    reader = ClusterReader(core, apps, params["namespace"], warnings)
    try:
        nodes = reader.nodes()
        pods = reader.pods_everywhere() if nodes is not None else None
        released_pods = reader.pods_of_deployment(params["release_deployment"])
        quotas = reader.quotas()
    except ApiException as error:
        module.fail_json(
            msg=f"Reading the cluster for the capacity check failed ({error.status}): "
            f"{api_message(error)}",
            **result,
        )
    except (HTTPError, OSError) as error:
        module.fail_json(
            msg=f"Reading the cluster for the capacity check failed: "
            f"{getattr(error, 'reason', error)}",
            **result,
        )
    result["released_gpus"] = released_gpus(released_pods)

    free_rule, table = gpus_free_rule(params, hub, nodes, pods, released_pods)
    if table is not None:
        result["nodes"] = table["nodes"]
        result["free_gpus"] = table["free_gpus"]

    quota = quota_left(quotas, result["released_gpus"]) if quotas is not None else None
    result["quota"] = quota
    quota_rule = gpu_quota_rule(params, hub, quotas, quota, reader, released_pods, warnings)
    return [free_rule, quota_rule]


# --- the verdict ---------------------------------------------------------------------------------


def one_line(params, assessment, result):
    """For example "m in float16 on 1 x gpu-tesla-v100: needs 17.9 GiB per GPU of 16 GiB: ok"."""
    sizing, memory, gpu = assessment.get("sizing"), assessment.get("memory"), assessment["gpu"]
    count = params["gpu_count"]
    head = params["model_id"]
    if sizing:
        head += f" in {sizing.get('quantization') or sizing.get('precision')}"
    head += " on CPU" if count == 0 else f" on {count} x {params['gpu_type']}"
    if memory is None:
        details = ["size unknown"]
    elif count == 0:
        details = [f"needs {memory['total_gib']:.1f} GiB of memory"]
    else:
        offered = memory.get("usable_per_gpu_gib") or gpu.get("memory_gib")
        details = [f"needs {memory['per_gpu_gib']:.1f} GiB per GPU of {offered:g} GiB"]
    if result["free_gpus"] is not None:
        details.append(f"{gpus_word(result['free_gpus'])} free on one node")
    if result["quota"] and result["quota"]["left"] is not None:
        details.append(f"quota left {result['quota']['left']}")
    # Refusals start with their rule id; "request" (a bad request) has no entry in the rules.
    refused = [line.split(":", 1)[0] for line in result["refusals"]]
    verdict = f"refused ({', '.join(refused)})" if refused else "ok"
    return f"{head}: {', '.join(details)}: {verdict}"


def failure_message(result):
    """The one-line verdict, then every refusal with its reason and what to do instead."""
    # The warnings are shown by Ansible beside the message already.
    return f"{result['msg']}\n{gpu_rules.format_refusal(dict(result, warnings=[]))}"


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True
    )
    params = module.params
    known = list(gpu_rules.RULES) + list(CLUSTER_RULES)
    unknown = [rule_id for rule_id in params["ignore_rules"] if rule_id not in known]
    if unknown:
        module.fail_json(
            msg=f"ignore_rules (tgi_ignore_rules): unknown rule id(s) {', '.join(unknown)}; "
            f"the rules are {', '.join(known)}"
        )

    warnings = []
    hub = hub_facts(params, warnings)
    assessment = gpu_rules.assess(model_request(params), params["catalog"], hub)
    warnings.extend(assessment.get("warnings") or [])
    result = dict(
        changed=False,
        ok=assessment["ok"],
        fits=assessment["fits"],
        runs=assessment["runs"],
        schedulable=None,
        gpu=assessment["gpu"],
        sizing=assessment["sizing"],
        memory=assessment["memory"],
        rules=list(assessment["rules"]),
        refusals=list(assessment["refusals"]),
        recommendations=list(assessment["recommendations"]),
        nodes=None,
        free_gpus=None,
        quota=None,
        released_gpus=0,
    )

    if params["gpu_count"] > 0:
        cluster_rules = cluster_check(module, params, hub, result, warnings)
        verdicts = {entry["verdict"] for entry, _options in cluster_rules}
        if "refuse" in verdicts:
            result["schedulable"] = False
        elif "unknown" not in verdicts:
            result["schedulable"] = True
    else:
        cluster_rules = [
            rule(rule_id, "not-applicable", "gpu_count is 0: the pod asks for no GPU")
            for rule_id in CLUSTER_RULES
        ]
    cluster_refused = False
    for checked, options in cluster_rules:
        entry = apply_ignore(checked, params["ignore_rules"], warnings)
        result["rules"].append(entry)
        if entry["verdict"] == "refuse":
            cluster_refused = True
            result["refusals"].append(refusal_line(entry))
            result["recommendations"] += [o for o in options if o not in result["recommendations"]]
    result["ok"] = assessment["ok"] and not cluster_refused
    result["msg"] = one_line(params, assessment, result)
    for warning in warnings:
        module.warn(warning)
    if params["fail_on_refusal"] and not result["ok"]:
        module.fail_json(**dict(result, msg=failure_message(result)))
    module.exit_json(**result)


if __name__ == "__main__":
    main()

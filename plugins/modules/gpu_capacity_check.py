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
  - Answers in seconds whether a TGI server with these O(settings) fits into the memory of its
    GPUs, whether TGI can run it on that GPU type at all (the V100 rules of the collection's GPU
    rules), how it will use several GPUs (tensor sharding or a layer split; RV(multi_gpu)),
    whether that many GPUs are free on one node, and whether the namespace's GPU quota allows
    them.
  - The model's size comes from the Hugging Face Hub when O(hub_lookup=true) and the Hub answers,
    else from the model id (V(7B), V(1.1B), V(8x7B), counted 35% higher since ids round down),
    and O(model_parameters) overrides both. Without the model's config (no Hub), the KV cache,
    activations and logits are those of a conservative stand-in, so that knowing less never
    gives a kinder verdict.
  - With the model's config (from the Hub), token limits beyond its context length
    (C(max_position_embeddings)) are refused (rule V(context-length)); without one they are not
    judged.
  - Free GPUs are counted per node of the type (the nodes tainted with the GPU type as key) as
    allocatable C(nvidia.com/gpu) minus what the unfinished pods on the node request. The GPUs
    held by the pods of O(release_deployment) in the namespace count as free, in the quota too,
    because deploying or switching the model replaces that pod.
  - Reads only, never writes; the same under check mode. The verdict (and how TGI will use the
    GPUs) is printed as the task ends, so that a playbook needs no task of its own to show it.
    Works with rights in one namespace only. When nodes or pods of other namespaces may not be
    listed (a student's usual rights), the free GPUs per node are unknown, the answer rests on
    the quota alone, and a warning says so. The same holds for a quota that cannot be read.
  - Each check is reported as a rule with a verdict, the reason and what to do instead. A refused
    rule fails the task with every reason and recommendation, unless O(fail_on_refusal=false)
    or the rule's id is in O(ignore_rules).
options:
  namespace:
    description: The namespace the TGI server runs in (its quota and current TGI pod are read).
    type: str
    required: true
  settings:
    description:
      - The TGI settings, keyed by the C(tgi_server) role's variable names - the same dict the
        role renders its pod from (C(haw.icc.tgi_workload)) and M(haw.icc.tgi_model_switch)
        patches a running server to. Settings the role checked (its output
        C(tgi_server_settings), which carries the digest of that check) are judged as they are;
        others are checked first, and a problem is refused as the rule C(request).
      - The model (C(tgi_model_id), C(tgi_quantize), C(tgi_dtype)), the GPUs (C(tgi_gpu_type),
        C(tgi_gpu_count), C(tgi_multi_gpu_mode)), the token limits, C(tgi_cuda_memory_fraction),
        C(tgi_image) and C(tgi_model_architecture) are judged; unset ones take their defaults.
      - C(tgi_gpu_count=0) runs TGI on CPU; then the cluster is not read.
    type: dict
    required: true
  model_parameters:
    description:
      - The model's parameter count, overriding the Hub and the model id (the inventory's
        C(tgi_model_parameters)). A number like V(7000000000) or a string like V(7B), V(1.1B),
        V(350M) or V(8x7B).
    type: raw
  concurrent_sequences:
    description: How many sequences of C(tgi_max_total_tokens) the KV cache must hold at once.
    type: int
    default: 1
  catalog:
    description:
      - Extra or overriding GPU catalog entries (the inventory variable C(icc_gpu_catalog)), each
        C(type -> {memory_gib, compute_capability, gpus_per_node, tgi_image}).
    type: dict
    default: {}
  ignore_rules:
    description:
      - Ids of rules to report as ignored instead of refusing (an expert override), for example
        V(multi-gpu-mode) to try a tensor-sharded Llama on V100s anyway.
      - The model rules of the collection's GPU rules (V(tgi-image-cuda), V(multi-gpu-mode),
        V(flash-attention-required), V(quantization-compute-capability), V(model-fits),
        V(context-length)) and the cluster rules V(gpus-free) and V(gpu-quota). An unknown id
        fails the task.
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
    settings:
      tgi_model_id: Qwen/Qwen2.5-7B-Instruct
      tgi_gpu_type: gpu-tesla-v100
      tgi_gpu_count: 1
  register: capacity

- name: Report only, with the size given (no Hub lookup), for bitsandbytes on two V100S
  haw.icc.gpu_capacity_check:
    namespace: wabc123-default
    kubeconfig: ~/.kube/icc.yaml
    settings:
      tgi_model_id: my-group/private-llama
      tgi_model_architecture: llama
      tgi_quantize: bitsandbytes-nf4
      tgi_gpu_type: gpu-tesla-v100s
      tgi_gpu_count: 2
    model_parameters: 13B
    hub_lookup: false
    fail_on_refusal: false
  register: capacity

- name: Show why not
  ansible.builtin.debug:
    msg: "{{ capacity.refusals + capacity.recommendations }}"
  when: not capacity.ok

- name: Type and check the tgi_server role's variables (its output tgi_server_settings)
  ansible.builtin.import_role:
    name: haw.icc.tgi_server
    tasks_from: validate
    rolespec_validate: false

- name: What the tgi_server role would deploy, judged on the settings it checked
  haw.icc.gpu_capacity_check:
    namespace: "{{ tgi_server_settings.icc_namespace }}"
    settings: "{{ tgi_server_settings }}"
    catalog: "{{ tgi_server_settings.icc_gpu_catalog }}"
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
architecture:
  description:
    - The model's architecture (its config's C(model_type)) as judged - C(tgi_model_architecture),
      else the Hub's config, else a guess from the model id; null when unknown.
  returned: always
  type: str
  sample: qwen2
multi_gpu:
  description:
    - How TGI will use the GPUs (C(mode) cpu, single-gpu, tensor-sharding or layer-split),
      whether that works (C(works), null when unknown), and why (C(reason)); null when the
      request is invalid.
  returned: always
  type: dict
  sample:
    mode: layer-split
    works: true
    reason: "layer split: --num-shard 1 with 2 GPUs visible, ..."
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
    context_gib: 0.5
    activations_gib: 0.4
    logits_gib: 1.2
    overhead_gib: 2.1
    total_gib: 16.5
    per_gpu_gib: 16.5
    usable_per_gpu_gib: 16.0
    headroom_gib: -0.5
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
    - The nodes of the GPU type with their GPUs; null when nodes or pods could not be listed,
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
  description: The most GPUs of the GPU type free on one node; null when unknown.
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

from ansible_collections.haw.icc.plugins.module_utils.capacity import cluster_rules, gpu_rules
from ansible_collections.haw.icc.plugins.module_utils.capacity.cluster_reader import ClusterReader
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.cluster.connection import connect
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import runs_on_cpu
from ansible_collections.haw.icc.plugins.module_utils.gpu import hub
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import (
    quota_left,
    released_gpus,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    CatalogError,
    gpu_types,
    merged_catalog,
)
from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule


def argspec():
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        namespace=dict(type="str", required=True),
        settings=dict(type="dict", required=True),
        model_parameters=dict(type="raw"),
        concurrent_sequences=dict(type="int", default=1),
        catalog=dict(type="dict", default={}),
        ignore_rules=dict(type="list", elements="str", default=[]),
        hf_token=dict(type="str", no_log=True),
        hub_lookup=dict(type="bool", default=True),
        hub_timeout=dict(type="float", default=5),
        release_deployment=dict(type="str", default="tgi"),
        fail_on_refusal=dict(type="bool", default=True),
    )
    return spec


def hub_facts(params, warnings):
    """What the Hub knows about the model, or None (with a warning) when it cannot tell."""
    if not params["hub_lookup"]:
        return None
    settings = params["settings"]
    try:
        # Looked up at call time, so that tests can replace the fetcher.
        return hub.hub_fetcher(
            settings.get("tgi_model_id"),
            revision=settings.get("tgi_model_revision"),
            token=params["hf_token"],
            timeout=params["hub_timeout"],
        )
    except hub.HubUnavailable as error:
        warnings.append(
            f"Hugging Face Hub lookup of {settings.get('tgi_model_id')} failed ({error}); the "
            "size comes from the model id or tgi_model_parameters (option model_parameters)"
        )
        return None


def other_gpu_types(catalog, gpu_type):
    try:
        known = merged_catalog(catalog)
    except CatalogError:  # the model rules report a bad catalog
        return []
    return [name for name in gpu_types(known) if name != gpu_type]


def cluster_check(module, params, gpu, judge, result, warnings):
    """Reads the cluster for the `gpu` asked for (the assessment's: the checked type and
    count); returns the two cluster rules as (entry, alternatives) and fills the result's nodes,
    free_gpus, quota and released_gpus."""
    gpu_type, wanted = gpu["type"], gpu["count"]
    reader = ClusterReader(connect(module, result)[0], params["namespace"], warnings)
    try:
        nodes = reader.nodes()
        pods = reader.pods_everywhere() if nodes is not None else None
        released_pods = reader.pods_of_deployment(params["release_deployment"])
        quotas = reader.quotas()
    except ApiError as error:
        said = f" ({error.status}): {error.said}" if error.status else f": {error}"
        module.fail_json(msg=f"Reading the cluster for the capacity check failed{said}", **result)
    result["released_gpus"] = released_gpus(released_pods)
    free_rule, table = cluster_rules.gpus_free_rule(
        gpu_type,
        wanted,
        other_gpu_types(params["catalog"], gpu_type),
        nodes,
        pods,
        released_pods,
        judge,
    )
    if table is not None:
        result["nodes"] = table["nodes"]
        result["free_gpus"] = table["free_gpus"]
    quota = quota_left(quotas, result["released_gpus"]) if quotas is not None else None
    result["quota"] = quota
    quota_rule = cluster_rules.gpu_quota_rule(
        params["namespace"],
        gpu_type,
        wanted,
        quotas,
        quota,
        reader.gpu_pods_here(exclude=released_pods)
        if quota and quota["left"] is not None
        else None,
        judge,
        warnings,
    )
    return [free_rule, quota_rule]


def one_line(assessment, result):
    """For example "m in float16 on 2 x gpu-tesla-v100 (layer-split): needs 9.1 GiB per GPU of
    16 GiB: ok"."""
    sizing, memory, gpu = assessment.get("sizing"), assessment.get("memory"), assessment["gpu"]
    count = gpu["count"] or 0
    head = assessment["model_id"] or "the model"
    if sizing:
        head += f" in {sizing.get('quantization') or sizing.get('precision')}"
    head += " on CPU" if runs_on_cpu(count) else f" on {count} x {gpu['type']}"
    if count > 1 and assessment.get("multi_gpu"):
        head += f" ({assessment['multi_gpu']['mode']})"
    if memory is None:
        details = ["size unknown"]
    elif runs_on_cpu(count):
        details = [f"needs {memory['total_gib']:.1f} GiB of memory"]
    else:
        offered = memory.get("usable_per_gpu_gib") or gpu.get("memory_gib")
        details = [f"needs {memory['per_gpu_gib']:.1f} GiB per GPU of {offered:g} GiB"]
    if result["free_gpus"] is not None:
        details.append(f"{cluster_rules.gpus_word(result['free_gpus'])} free on one node")
    if result["quota"] and result["quota"]["left"] is not None:
        details.append(f"quota left {result['quota']['left']}")
    refused = [entry["id"] for entry in result["rules"] if entry["verdict"] == "refuse"]
    if any(line.startswith(gpu_rules.REQUEST_RULE + ":") for line in result["refusals"]):
        refused.insert(0, gpu_rules.REQUEST_RULE)
    verdict = f"refused ({', '.join(refused)})" if refused else "ok"
    return f"{head}: {', '.join(details)}: {verdict}"


def failure_message(result):
    """The one-line verdict, then every refusal with its reason and what to do instead."""
    # The warnings are shown by Ansible beside the message already.
    return f"{result['msg']}\n{gpu_rules.format_refusal(dict(result, warnings=[]))}"


def run(module):
    """The check, for an AnsibleK8SModule (main) or the action plugin's in-process module."""
    params = module.params
    known = list(gpu_rules.RULES) + list(cluster_rules.CLUSTER_RULES)
    unknown = [rule_id for rule_id in params["ignore_rules"] if rule_id not in known]
    if unknown:
        module.fail_json(
            msg=f"ignore_rules (tgi_ignore_rules): unknown rule id(s) {', '.join(unknown)}; "
            f"the rules are {', '.join(known)}"
        )
    model_ignored = [rule for rule in params["ignore_rules"] if rule in gpu_rules.RULES]

    def assess(**changes):
        return gpu_rules.assess(
            {**params["settings"], **changes},
            params["catalog"],
            facts,
            parameters=params["model_parameters"],
            ignore_rules=model_ignored,
            concurrent_sequences=params["concurrent_sequences"],
        )

    def judge(gpu_type, count):
        """Whether the model rules pass on `count` GPUs of `gpu_type` (the alternatives)."""
        return assess(tgi_gpu_type=gpu_type, tgi_gpu_count=count)["ok"]

    warnings = []
    facts = hub_facts(params, warnings)
    assessment = assess()
    warnings.extend(assessment.get("warnings") or [])
    result = dict(
        changed=False,
        ok=assessment["ok"],
        fits=assessment["fits"],
        runs=assessment["runs"],
        schedulable=None,
        architecture=assessment["architecture"],
        multi_gpu=assessment["multi_gpu"],
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

    if assessment["multi_gpu"] is not None and not runs_on_cpu(assessment["gpu"]["count"]):
        cluster = cluster_check(module, params, assessment["gpu"], judge, result, warnings)
        verdicts = {entry["verdict"] for entry, _options in cluster}
        if "refuse" in verdicts:
            result["schedulable"] = False
        elif "unknown" not in verdicts:
            result["schedulable"] = True
    else:
        why = "the request is invalid" if assessment["multi_gpu"] is None else "no GPU asked for"
        cluster = [
            cluster_rules.rule(rule_id, "not-applicable", why)
            for rule_id in cluster_rules.CLUSTER_RULES
        ]
    cluster_refused = False
    for checked, options in cluster:
        entry = cluster_rules.apply_ignore(checked, params["ignore_rules"], warnings)
        result["rules"].append(entry)
        if entry["verdict"] == "refuse":
            cluster_refused = True
            result["refusals"].append(cluster_rules.refusal_line(entry))
            result["recommendations"] += [o for o in options if o not in result["recommendations"]]
    result["ok"] = assessment["ok"] and not cluster_refused
    result["msg"] = one_line(assessment, result)
    for warning in warnings:
        module.warn(warning)
    if params["fail_on_refusal"] and not result["ok"]:
        module.fail_json(**dict(result, msg=failure_message(result)))
    module.exit_json(**result)


def main():
    run(
        AnsibleK8SModule(
            module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True
        )
    )


if __name__ == "__main__":
    main()

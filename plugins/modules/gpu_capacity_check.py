#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.gpu_capacity_check; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: gpu_capacity_check
short_description: Tell before writing anything whether a model fits and runs on the GPUs asked
version_added: 0.1.0
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
  - O(namespace) is the one the TGI server runs in (its quota and current TGI pod are read).
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options]
options:
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
attributes:
  check_mode:
    support: full
    details: The check never writes, so it behaves the same.
requirements:
  - huggingface_hub (optional, for O(hub_lookup))
notes:
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

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
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

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("gpu_capacity_check", ARGUMENT_SPEC)

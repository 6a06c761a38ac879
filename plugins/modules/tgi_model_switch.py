#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.tgi_model_switch; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: tgi_model_switch
short_description: Change a running TGI to new settings (a model, a GPU count), rolling back
version_added: 0.1.0
description:
  - Changes a running text-generation-inference (TGI) Deployment to new O(settings) - another
    model (its id, revision, C(tgi_dtype) or C(tgi_quantize), token limits) for
    C(playbooks/change_model.yml), another number of GPUs for the C(haw.icc.gpu_scale) role
    (C(playbooks/scale.yml)), or both. It writes only what C(haw.icc.tgi_workload) computes from
    the settings - the same function the C(haw.icc.tgi_server) role renders its Deployment
    with - the container's image, args, env and resources (GPU request and limit), the pod's
    tolerations, the size of its in-memory C(/dev/shm), and O(pod_annotations). The switch,
    the scale and C(deploy.yml) never disagree about the pod.
  - Refuses before writing anything when the settings are invalid (listing every problem) and
    when the Deployment does not exist (run C(playbooks/deploy.yml) first). Whether the model
    fits and whether GPUs are free is M(haw.icc.gpu_capacity_check)'s job; the playbooks run it
    first.
  - Idempotent. When the pod already is what the settings give, nothing is written and nothing
    restarts. Otherwise one JSON patch changes what differs, which makes exactly one new
    ReplicaSet; the patch tests the Deployment's C(resourceVersion) first, so a change made by
    someone else in between is never overwritten (the switch reads again and retries).
  - Waits for the new revision and prints what its pod is doing, like
    M(haw.icc.wait_for_rollout). If the new pod crash-loops (for example C(OOMKilled) when the
    model does not fit into the GPU memory), stays unschedulable (GPUs taken meanwhile) or is not
    ready within O(timeout), the previous values are written back, which brings back the
    previous ReplicaSet; the task waits for it and then fails with the new pod's reason.
  - Runs on the Ansible controller as an action plugin, whatever the inventory host is; only
    the controller needs the C(kubernetes) Python library. Needs C(get) and C(patch) on
    Deployments and, for detailed progress lines, C(list) on ReplicaSets, pods and events in the
    namespace.
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options,
   haw.icc.tgi_server]
options:
  engine:
    description:
      - The inference server of the namespace (the inventory's C(icc_engine)), which decides
        whose function makes the new pod from O(settings), TGI's or vLLM's (the same settings
        for both; for vLLM C(tgi_gpu_count) is the tensor-parallel size).
    type: str
    choices: [tgi, vllm]
    default: tgi
  settings:
    description:
      - All TGI settings, keyed by the C(tgi_server) role's variable names, the new values
        already merged in - the dict the role renders its pod from; see
        C(ansible-doc -t role haw.icc.tgi_server) for each one. The role's entry point C(switch)
        passes its settings as its entry point C(validate) checked them (they carry the digest
        of that check, C(_checked)) and they are not checked again; any others are checked here
        first, every problem at once.
      - Settings left out take their defaults, so the whole set is needed to keep the others as
        they are. Secrets are named, never given (the env refers to them).
    type: dict
    required: true
  catalog:
    description:
      - Extra or overriding GPU types (the entries of C(icc_gpu_catalog)), laid over the
        built-in catalog to check C(tgi_gpu_type) and C(tgi_gpu_count).
    type: dict
    default: {}
  pod_annotations:
    description:
      - Annotations of the pod template to set along with the model (a value of null removes
        one); other annotations are left alone. A change of one rolls the pod.
      - The playbooks pass C(haw.icc/secret-versions), the versions of the Secrets TGI reads at
        start, so that a changed API key reaches the running server.
    type: dict
    default: {}
  timeout:
    description:
      - Seconds the new revision has to become ready before it counts as failed.
      - A new model is downloaded at its first start; allow for the download and the load.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two looks at the cluster while waiting (at least 1).
    type: int
    default: 5
  rollback:
    description:
      - Write the previous values back when the new revision crash-loops, stays unschedulable or
        is not ready within O(timeout), and wait for the previous revision.
      - With V(false), the failed revision is left in place (the task still fails).
      - No rollback is tried when the cluster could not be watched (API unreachable, access
        denied), since then nobody knows whether the new revision works.
    type: bool
    default: true
  rollback_timeout:
    description:
      - Seconds the restored previous revision has to become ready again.
    type: int
    default: 600
  unschedulable_grace:
    description:
      - Seconds the new pod may stay unschedulable (for example because the GPUs were taken
        since the capacity check) before the new revision counts as failed.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    details: The patch is sent as a server-side dry run (C(dryRun=All)), so the API server's
      admission and validation judge it; nothing is written and nothing is waited for.
  diff_mode:
    support: full
    details: Shows the model id, the GPUs and everything the switch owns before and after. The
      env holds only references to Secrets, never their values.
notes:
  - The switch does not check whether the model fits the GPUs; run M(haw.icc.gpu_capacity_check)
    first (C(playbooks/change_model.yml) does), so that a model that cannot fit is refused in
    seconds instead of after its download.
  - Record the new model in the inventory afterwards (C(playbooks/change_model.yml) does), or the
    next C(deploy.yml) switches back to the inventory's model.
  - The patch is written with the field manager C(haw.icc), the one the C(tgi_server) role
    applies with.
seealso:
  - module: haw.icc.wait_for_rollout
  - module: kubernetes.core.k8s_json_patch
"""

EXAMPLES = r"""
# The way change_model.yml does it: the tgi_server role's entry points validate (with the new
# model as -e tgi_model_id=...), capacity, then switch, which calls this module.

- name: Switch TGI to another model, rolling back if it does not start
  haw.icc.tgi_model_switch:
    namespace: wabc123-default
    # The whole set: settings left out take their defaults (the role's token limits too).
    settings:
      tgi_model_id: Qwen/Qwen2.5-3B-Instruct
      tgi_gpu_type: gpu-tesla-v100
      tgi_gpu_count: 1
      tgi_max_input_tokens: 2048
      tgi_max_total_tokens: 4096
      tgi_max_batch_prefill_tokens: 4096
      tgi_api_key_secret: tgi-api-key
      tgi_cpu_request: "2"
      tgi_memory_request: 8Gi
      tgi_memory_limit: 32Gi
    kubeconfig: ~/.kube/icc.yaml
    timeout: 2700
  register: switch

- name: Show why the new model failed
  ansible.builtin.debug:
    msg: "{{ switch.failed_rollout.detail | default(switch.msg) }}"
  when: switch is failed
"""

RETURN = r"""
changed:
  description: Whether the Deployment was patched (also when it was rolled back afterwards), or
    in check mode would be.
  returned: always
  type: bool
model:
  description: The model id before and after the switch (as asked for; after a rollback the
    Deployment runs RV(model.before) again).
  returned: success or when the switch was tried
  type: dict
  contains:
    before:
      description: The C(--model-id) the container had.
      type: str
      sample: Qwen/Qwen2.5-1.5B-Instruct
    after:
      description: The C(--model-id) of the new settings.
      type: str
      sample: Qwen/Qwen2.5-3B-Instruct
gpus:
  description: GPUs of the pod before and after (0 on CPU).
  returned: success or when the switch was tried
  type: dict
  sample: {before: 1, after: 2}
multi_gpu:
  description: How TGI uses the GPUs after the change (C(mode), C(works), C(reason)).
  returned: when the settings are valid
  type: dict
  sample: {mode: layer-split, works: true, reason: "layer split: ..."}
revision:
  description: The Deployment's revision before the switch and the revision the switch made.
  returned: success or when the switch was tried
  type: dict
  contains:
    before:
      description: Revision before the switch (empty when unknown).
      type: str
      sample: "1"
    after:
      description: Revision of the new ReplicaSet; the same as RV(revision.before) when nothing
        changed, null in check mode or when it was never seen.
      type: str
      sample: "2"
replicaset:
  description: Name of the ReplicaSet of the new revision, when the switch wrote one and saw it.
  returned: success or when the switch was tried
  type: str
  sample: tgi-7c9f6d5b8
asleep:
  description:
    - The server sleeps (0 replicas, C(icc_idle_minutes)). The change is stored, and the new
      revision starts with the next request; nothing was started to try it.
  returned: when the server sleeps
  type: bool
  sample: true
rolled_back:
  description: Whether the previous args and env were written back after the new revision
    failed.
  returned: success or when the switch was tried
  type: bool
  sample: false
deployment:
  description: The last state seen of the Deployment's rollout (after a rollback, the restored
    revision's), with the keys of M(haw.icc.wait_for_rollout)'s C(deployments) entries.
  returned: success or when the switch was tried
  type: dict
  contains:
    ready:
      description: Whether the newest revision is completely rolled out.
      type: bool
    summary:
      description: One line saying what the Deployment's pods are doing.
      type: str
      sample: "tgi: 1/1 ready"
    replicas:
      description: Desired replicas.
      type: int
    ready_replicas:
      description: Ready pods of the newest revision.
      type: int
    revision:
      description: Revision number of the newest ReplicaSet.
      type: str
    failed:
      description: Whether a state was seen that waiting cannot heal.
      type: bool
    reason:
      description: Why it will not heal, naming the pod; empty otherwise.
      type: str
    pod:
      description: The pod the summary is about, empty when none.
      type: str
    detail:
      description: The failing container's last output, when there is one.
      type: str
      returned: when a container failed with a termination message
failed_rollout:
  description: The state of the new revision when it was judged failed (same keys as
    RV(deployment)); its C(reason) and C(detail) say why the new model did not start.
  returned: when the new revision failed or timed out
  type: dict
  sample:
    ready: false
    failed: true
    revision: "2"
    pod: tgi-5d8c7f9b4-x2lq9
    reason: >-
      pod tgi-5d8c7f9b4-x2lq9: OOMKilled (restart 0): torch.OutOfMemoryError: CUDA out of memory.
diff:
  description: The container's model id, args and env before and after (env holds only
    references to Secrets).
  returned: when the Deployment is or would be changed
  type: dict
  sample:
    before:
      model_id: Qwen/Qwen2.5-1.5B-Instruct
      args: [--model-id, Qwen/Qwen2.5-1.5B-Instruct, --num-shard, "1"]
      env:
        - {name: HOSTNAME, value: 0.0.0.0}
        - {name: API_KEY, valueFrom: {secretKeyRef: {name: tgi-api-key, key: api-key}}}
    after:
      model_id: Qwen/Qwen2.5-7B-Instruct
      args: [--model-id, Qwen/Qwen2.5-7B-Instruct, --num-shard, "1", --quantize, bitsandbytes-nf4]
      env:
        - {name: HOSTNAME, value: 0.0.0.0}
        - {name: API_KEY, valueFrom: {secretKeyRef: {name: tgi-api-key, key: api-key}}}
elapsed:
  description: Seconds spent waiting (for the new revision and, after a rollback, the restored
    one).
  returned: when the switch waited
  type: float
  sample: 184.2
msg:
  description: What happened. After a failure it names the new pod's reason and quotes its
    last output, and says whether the rollback worked.
  returned: always
  type: str
  sample: >-
    switched Deployment tgi in namespace wabc123-default from model Qwen/Qwen2.5-1.5B-Instruct
    to Qwen/Qwen2.5-3B-Instruct: revision 2 (ReplicaSet tgi-7c9f6d5b8) ready after 3m04s
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    engine=dict(type="str", choices=["tgi", "vllm"], default="tgi"),
    name=dict(type="str", default="tgi"),
    container=dict(type="str", default="tgi"),
    settings=dict(type="dict", required=True),
    catalog=dict(type="dict", default={}),
    pod_annotations=dict(type="dict", default={}),
    timeout=dict(type="int", default=1800),
    poll_interval=dict(type="int", default=5),
    rollback=dict(type="bool", default=True),
    rollback_timeout=dict(type="int", default=600),
    unschedulable_grace=dict(type="int", default=60),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("tgi_model_switch", ARGUMENT_SPEC)

#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.wait_for_rollout; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: wait_for_rollout
short_description: Wait for Deployments to become ready, showing what their pods are doing
version_added: 0.1.0
description:
  - Waits until every listed Deployment has rolled out its newest revision. Done means the
    Deployment controller has seen the latest spec, every desired replica runs the newest
    revision and is available, and no pod of an older revision is left.
  - >-
    While waiting, prints one line per Deployment whenever what its pods do changes, and at
    least every 60 seconds with the time waited, for example
    C([wabc123-default] tgi: 0/1 ready — pod tgi-7c9f-x2lq: Running for 4m10s, not ready yet),
    followed by which probe holds the pod back and the time waited so far. A model download of
    many minutes is never a silent spinner.
  - Stops early, with the reason, at states that waiting cannot heal (see O(fail_fast)), for
    example a crash loop, where the message quotes the container's last output (TGI's error).
  - Runs on the Ansible controller as an action plugin, whatever the inventory host is; only
    the controller needs the C(kubernetes) Python library. It reads, never writes, except for
    the rollback of O(rollback) and the wake of O(wake).
  - Works with rights in one namespace only. When pods, ReplicaSets or events may not be listed,
    it still waits on the Deployment's status and warns that the lines show less detail.
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options]
options:
  names:
    description:
      - Names of the Deployments to wait for. The task succeeds when all are ready.
    type: list
    elements: str
    required: true
    aliases: [name]
  timeout:
    description:
      - How many seconds to wait in total before failing.
      - A first start of TGI downloads the model; allow for the download and the load.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two looks at the cluster (at least 1).
    type: int
    default: 5
  fail_fast:
    description:
      - Fail as soon as a pod of the newest revision is in a state that will not heal by
        waiting, instead of waiting for O(timeout).
      - Such states are a crash loop (C(CrashLoopBackOff), or a container that failed with
        C(Error) or C(OOMKilled) and restarted), an image that cannot be pulled
        (C(ImagePullBackOff), C(ErrImagePull), C(InvalidImageName)), a container configuration
        error (C(CreateContainerConfigError), for example a missing Secret key), a pod the
        scheduler cannot place for longer than O(unschedulable_grace) seconds (for example
        C(Insufficient nvidia.com/gpu) or an untolerated taint), pods the ReplicaSet cannot create
        for that long (for example an exceeded ResourceQuota), and a paused Deployment.
      - With V(false), such states are reported in the progress lines and the task fails only at
        O(timeout).
    type: bool
    default: true
  unschedulable_grace:
    description:
      - Seconds a pod may stay unschedulable (or its ReplicaSet unable to create pods) before
        that counts as a state that will not heal. Pods waiting for a volume to be bound are
        never failed for that.
    type: int
    default: 60
  rollback:
    description:
      - When a Deployment's newest revision fails (see O(fail_fast)) or is not ready within
        O(timeout), put the revision before it back, as C(kubectl rollout undo) does, wait for
        that one, and fail saying why the new one failed and which revision serves again.
      - Meant for Deployments the play has just changed; a Deployment without an earlier
        revision is not touched.
    type: bool
    default: false
  rollback_timeout:
    description: Seconds the restored revision has to become ready.
    type: int
    default: 600
  wake:
    description:
      - Wake a Deployment that sleeps with 0 replicas (put to sleep by the idle proxy of
        C(icc_idle_minutes), or scaled to 0 by hand) by scaling it to 1, and wait for it, saying
        so and how long the wake took (RV(woken)). This writes the replicas and nothing else.
      - With V(false), a sleeping Deployment counts as done, its line says it is asleep (what a
        deploy wants, which must not wake a server that sleeps), and the module only reads.
    type: bool
    default: false
attributes:
  check_mode:
    support: partial
    details: In check mode nothing is waited for (the Deployments may not exist yet); the task
      is skipped.
notes:
  - Durations are measured against the API server's clock (its C(Date) header), so a wrong
    clock on the controller does not distort them.
  - For a useful crash message from TGI, its container should set
    C(terminationMessagePolicy=FallbackToLogsOnError), so the end of its log becomes the
    termination message.
seealso:
  - module: kubernetes.core.k8s
  - module: kubernetes.core.k8s_info
"""

EXAMPLES = r"""
- name: Wait for TGI and Open WebUI, printing what the pods do
  haw.icc.wait_for_rollout:
    namespace: wabc123-default
    names:
      - tgi
      - open-webui
    kubeconfig: "{{ icc_kubeconfig }}"
    timeout: 2700

- name: Keep waiting through a crash loop (report it, fail only at the timeout)
  haw.icc.wait_for_rollout:
    namespace: "{{ icc_namespace }}"
    name: tgi
    fail_fast: false
    timeout: 600

- name: Give the scheduler five minutes when GPUs are busy
  haw.icc.wait_for_rollout:
    namespace: "{{ icc_namespace }}"
    names: [tgi]
    unschedulable_grace: 300
  register: __tgi_rollout

- name: Show why TGI did not start
  ansible.builtin.debug:
    msg: "{{ __tgi_rollout.deployments.tgi.detail | default('') }}"
  when: __tgi_rollout is failed

- name: After a change of TGI, put the revision before it back if the new one does not start
  haw.icc.wait_for_rollout:
    namespace: "{{ icc_namespace }}"
    names: [tgi]
    rollback: true
"""

RETURN = r"""
elapsed:
  description: Seconds spent waiting.
  returned: when the task waited
  type: float
  sample: 184.2
deployments:
  description: The last state seen of each Deployment, by name.
  returned: when the task waited
  type: dict
  contains:
    ready:
      description: Whether the rollout of the newest revision is complete.
      type: bool
      sample: false
    summary:
      description: One line saying what the Deployment's pods are doing.
      type: str
      sample: >-
        tgi: 0/1 ready — pod tgi-7c9f-x2lq: Running for 45s, not ready yet
        (startup probe: loading the model)
    replicas:
      description: Desired replicas.
      type: int
      sample: 1
    ready_replicas:
      description: Ready pods of the newest revision.
      type: int
      sample: 0
    revision:
      description: Revision number of the newest ReplicaSet, empty when unknown.
      type: str
      sample: "3"
    failed:
      description: Whether a state was seen that waiting cannot heal.
      type: bool
      sample: true
    reason:
      description: Why it will not heal, naming the pod; empty otherwise.
      type: str
      sample: >-
        pod tgi-7c9f-x2lq: CrashLoopBackOff (restart 3): error: unexpected argument
        '--max-parallel-loading-workers' found
    pod:
      description: The pod the summary is about, empty when none.
      type: str
      sample: tgi-7c9f-x2lq
    detail:
      description: The failing container's last output (its termination message), when there is one.
      type: str
      returned: when a container failed with a termination message
woken:
  description: The Deployments woken from 0 replicas (O(wake)), each with the seconds until ready.
  returned: when O(wake) woke one
  type: dict
  sample: {tgi: 26.4}
rolled_back:
  description: The Deployments rolled back, with the revision that was put back.
  returned: when O(rollback) rolled something back
  type: dict
  sample: {tgi: 3}
msg:
  description: What happened. On failure it names the Deployment, the pod and the reason, and
    quotes the container's last output.
  returned: always
  type: str
  sample: "ready after 3m04s: tgi: 1/1 ready"
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    names=dict(type="list", elements="str", required=True, aliases=["name"]),
    timeout=dict(type="int", default=1800),
    poll_interval=dict(type="int", default=5),
    fail_fast=dict(type="bool", default=True),
    unschedulable_grace=dict(type="int", default=60),
    rollback=dict(type="bool", default=False),
    rollback_timeout=dict(type="int", default=600),
    wake=dict(type="bool", default=False),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("wait_for_rollout", ARGUMENT_SPEC)

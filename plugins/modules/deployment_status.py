#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.deployment_status; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: deployment_status
short_description: Is TGI and Open WebUI up in a namespace, and if not, why and what to do
version_added: 0.3.0
description:
  - Reads the namespace's Deployments, ReplicaSets, pods, events and Services (and the Ingresses
    when present) and the newest log lines of a container that is not ready, through the API
    server. Namespace-only rights suffice; nothing is written.
  - For each application gives its state (C(ready), C(asleep), C(stopped), C(starting),
    C(downloading), C(pending), C(failed), C(absent)), the model, image, GPUs and multi-GPU
    mode, node, ready since, restarts and how to reach it.
  - A server at 0 replicas behind an idle proxy (C(icc_idle_minutes)) is C(asleep), which is
    healthy; without a proxy it is C(stopped).
  - When an application is not healthy, gives a diagnosis read from conditions, events, the
    container state and its log - Pending for lack of GPUs or over quota, a crash loop with
    TGI's message, an out-of-memory kill with the capacity check's numbers (O(capacity)), an
    image that cannot be pulled, a download in progress with files, bytes and time left - and
    the fix in the collection's terms.
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options]
options:
  tgi_name:
    description: Name of TGI's Deployment and Service (the role's C(tgi_name)).
    type: str
    default: tgi
  open_webui_name:
    description: Name of Open WebUI's Deployment and Service (the role's C(open_webui_name)).
    type: str
    default: open-webui
  expected_model:
    description: The model the inventory asks for; a different model served is reported.
    type: str
  capacity:
    description:
      - The result of M(haw.icc.gpu_capacity_check) for the namespace's settings. Its memory
        estimate and recommendations explain an out-of-memory kill, and its weights size is the
        total of a download in progress.
    type: dict
  log_lines:
    description: How many of the newest log lines of a container that is not ready to read.
    type: int
    default: 400
  catalog:
    description:
      - Entries laid over the built-in GPU catalog (C(icc_gpu_catalog)); its C(gpus_per_node)
        tells a pod asking for more GPUs than any node has from one waiting for free GPUs.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
    details: Only reads.
"""

EXAMPLES = r"""
- name: How is my deployment?
  haw.icc.deployment_status:
    namespace: wabc123-default
    expected_model: Qwen/Qwen2.5-1.5B-Instruct
  register: status

- name: Show it
  ansible.builtin.debug:
    msg: "{{ status.lines }}"
"""

RETURN = r"""
namespace:
  description: The namespace looked at.
  returned: always
  type: str
healthy:
  description:
    - Every application is ready, or the inference server asleep (C(icc_idle_minutes)) behind
      a ready idle proxy.
  returned: always
  type: bool
tgi:
  description:
    - TGI's state and diagnosis (C(app), C(state), C(summary), C(problem), C(cause), C(fix),
      C(evidence), C(download), C(pod), C(restarts)) with C(model), C(revision), C(image),
      C(gpu) (C(type), C(count), C(mode)), C(node), C(ready_since) and C(access).
  returned: always
  type: dict
open_webui:
  description: Open WebUI's state and diagnosis, shaped like RV(tgi).
  returned: always
  type: dict
idle_proxy:
  description:
    - The idle proxy's state and diagnosis (C(icc_idle_minutes)), shaped like RV(tgi); with a
      proxy, RV(tgi) also has C(last_request) and C(generated_tokens), and asleep
      C(asleep_since) and C(wake_problem).
  returned: when the namespace has an idle proxy
  type: dict
lines:
  description: A readable block for the namespace, one line per fact.
  returned: always
  type: list
  elements: str
warnings:
  description: What could not be read (for example logs, when forbidden).
  returned: when there are any
  type: list
  elements: str
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    tgi_name=dict(type="str", default="tgi"),
    open_webui_name=dict(type="str", default="open-webui"),
    expected_model=dict(type="str"),
    capacity=dict(type="dict"),
    log_lines=dict(type="int", default=400),
    catalog=dict(type="dict", default={}),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("deployment_status", ARGUMENT_SPEC)

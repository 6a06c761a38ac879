#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.cluster_preflight; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: cluster_preflight
short_description: Check that a namespace on the cluster is reachable and usable before deploying
version_added: 0.1.0
description:
  - Connects through kubernetes.core's client, with its options and E(K8S_AUTH_*) variables in
    its order (a host with a token; else O(kubeconfig) or O(context); else the pod's service
    account; else E(KUBECONFIG) or C(~/.kube/config)), and says which credentials it used and
    which it ignored (RV(credentials)); it prints that line (RV(msg)) as the task ends, so a
    playbook needs no task of its own to show it.
  - Reports a readable error when there is no kubeconfig, it is broken, its context does not
    exist (listing those that do), the cluster cannot be reached, or it refuses the credentials.
  - Finds out whether the namespace exists. Reading a namespace is cluster-scoped and often
    forbidden to students; then the namespace is assumed to exist and a warning says so.
  - Creates the namespace when it is missing and I(create_namespace=true).
  - Asks the API server, through one SelfSubjectRulesReview, whether the current user may do
    everything in I(permissions) inside the namespace, and fails naming what is denied (a right
    the review does not show is asked for by a SelfSubjectAccessReview only when the server
    says its list is incomplete); when
    everything is denied in a namespace it cannot see, it says the namespace does not exist or
    is not the user's. No cluster-scoped read is needed.
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options]
options:
  create_namespace:
    description: Create the namespace when it does not exist.
    type: bool
    default: false
  permissions:
    description:
      - What the user must be allowed to do in the namespace.
      - Each item has C(resource), C(verbs), and C(group) (empty for the core API group), and
        optionally C(needed_for), what asks for it (a setting the user may turn off), which the
        refusal names.
    type: list
    elements: dict
    default: []
  volumes:
    description:
      - PersistentVolumeClaims about to be applied with a size. One that exists already may not
        shrink, and may grow only when its StorageClass allows expansion; otherwise the task
        fails naming the variable, before anything is written.
      - When the StorageClass cannot be read (a cluster-scoped read students often lack), a
        warning says so.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name of the PersistentVolumeClaim.
        type: str
        required: true
      size:
        description: The size it will be applied with, a Kubernetes quantity.
        type: str
        required: true
      variable:
        description: The variable the size comes from, for the message.
        type: str
        required: true
attributes:
  check_mode:
    support: full
    details: A missing namespace is reported as to be created; nothing else is ever written.
"""

EXAMPLES = r"""
- name: Check the namespace and the rights the deployment needs
  haw.icc.cluster_preflight:
    namespace: wabc123-default
    permissions:
      - {group: apps, resource: deployments, verbs: [get, list, create, patch, delete]}
      - {group: "", resource: secrets, verbs: [get, create, patch]}
"""

RETURN = r"""
server:
  description: Address of the API server.
  returned: success
  type: str
  sample: https://icc-k8s-api.informatik.haw-hamburg.de
credentials:
  description:
    - Where the credentials came from, in kubernetes.core's order, and what was set but
      ignored (for example an exported E(KUBECONFIG) while O(kubeconfig) is given).
  returned: success
  type: str
  sample: icc_kubeconfig /home/student/.kube/icc.yaml (KUBECONFIG is set but icc_kubeconfig wins)
msg:
  description: The server, its version, the namespace and the credentials in one line.
  returned: success
  type: str
server_version:
  description: Version of the API server (gitVersion).
  returned: success
  type: str
  sample: v1.20.2
namespace_exists:
  description: Whether the namespace exists; null when it could not be read (forbidden).
  returned: always
  type: bool
namespace_created:
  description: Whether this task created the namespace (or would, in check mode).
  returned: always
  type: bool
volume_problems:
  description: Why the API server would refuse the size of an existing volume.
  returned: always
  type: list
  elements: str
denied:
  description: The permissions refused, as C(verb group/resource).
  returned: always
  type: list
  elements: str
  sample: ["delete apps/deployments"]
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    create_namespace=dict(type="bool", default=False),
    permissions=dict(type="list", elements="dict", default=[]),
    volumes=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(
            name=dict(type="str", required=True),
            size=dict(type="str", required=True),
            variable=dict(type="str", required=True),
        ),
    ),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("cluster_preflight", ARGUMENT_SPEC)

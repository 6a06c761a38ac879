#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: cluster_preflight
short_description: Check that a namespace on the cluster is reachable and usable before deploying
version_added: 0.1.0
author: haw.icc developers (@haw-hamburg)
description:
  - Connects with the given kubeconfig/context and reports a readable error when the cluster
    cannot be reached or the credentials are refused.
  - Finds out whether the namespace exists. Reading a namespace is cluster-scoped and often
    forbidden to students; then the namespace is assumed to exist and a warning says so.
  - Creates the namespace when it is missing and I(create_namespace=true).
  - Asks the API server, through SelfSubjectAccessReviews, whether the current user may do
    everything in I(permissions) inside the namespace, and fails naming what is denied.
    No cluster-scoped read is needed.
options:
  namespace:
    description: The namespace to check (a DNS-1123 label).
    type: str
    required: true
  create_namespace:
    description: Create the namespace when it does not exist.
    type: bool
    default: false
  permissions:
    description:
      - What the user must be allowed to do in the namespace.
      - Each item has C(resource), C(verbs), and C(group) (empty for the core API group).
    type: list
    elements: dict
    default: []
extends_documentation_fragment:
  - kubernetes.core.k8s_auth_options
requirements:
  - kubernetes >= 24.2.0
notes:
  - Supports check mode. In check mode a missing namespace is reported as to be created.
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
denied:
  description: The permissions refused, as C(verb group/resource).
  returned: always
  type: list
  elements: str
  sample: ["delete apps/deployments"]
"""

import copy

from ansible_collections.haw.icc.plugins.module_utils.cluster_access import api_message, connect
from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule

try:
    from kubernetes import client as k8s
    from kubernetes.client.rest import ApiException
except ImportError:  # reported by AnsibleK8SModule's requirement check
    pass


def argspec():
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        namespace=dict(type="str", required=True),
        create_namespace=dict(type="bool", default=False),
        permissions=dict(type="list", elements="dict", default=[]),
    )
    return spec


def namespace_state(core, name):
    """True/False when the namespace could be read, None when reading it is forbidden."""
    try:
        core.read_namespace(name)
        return True
    except ApiException as error:
        if error.status == 404:
            return False
        if error.status == 403:
            return None
        raise


def denied_permissions(authz, namespace, permissions):
    denied = []
    for permission in permissions:
        group = permission.get("group") or ""
        for verb in permission.get("verbs", []):
            review = k8s.V1SelfSubjectAccessReview(
                spec=k8s.V1SelfSubjectAccessReviewSpec(
                    resource_attributes=k8s.V1ResourceAttributes(
                        namespace=namespace,
                        group=group,
                        resource=permission["resource"],
                        verb=verb,
                    )
                )
            )
            answer = authz.create_self_subject_access_review(review)
            if not answer.status.allowed:
                denied.append(f"{verb} {group + '/' if group else ''}{permission['resource']}")
    return denied


def main():
    module = AnsibleK8SModule(
        module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True
    )
    namespace = module.params["namespace"]
    result = dict(changed=False, namespace_exists=None, namespace_created=False, denied=[])
    api_client, result["server_version"] = connect(module, result)

    core = k8s.CoreV1Api(api_client)
    try:
        exists = namespace_state(core, namespace)
        result["namespace_exists"] = exists
        if exists is None:
            module.warn(
                f"Cannot read namespace {namespace} (reading namespaces is cluster-scoped and not "
                "allowed for this user); assuming it exists."
            )
        elif not exists:
            if not module.params["create_namespace"]:
                module.fail_json(
                    msg=f"Namespace {namespace} does not exist. Ask for it, or set "
                    "icc_create_namespace=true if you may create namespaces.",
                    **result,
                )
            if not module.check_mode:
                core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=namespace)))
            result.update(changed=True, namespace_created=True)
        result["denied"] = denied_permissions(
            k8s.AuthorizationV1Api(api_client), namespace, module.params["permissions"]
        )
    except ApiException as error:
        module.fail_json(
            msg=f"Checking namespace {namespace} failed: {api_message(error)}", **result
        )
    if result["denied"]:
        module.fail_json(
            msg=f"Not allowed in namespace {namespace}: {', '.join(result['denied'])}. "
            "Deploying needs these rights (on the ICC a student has them in their own namespace).",
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()

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
  - Connects through kubernetes.core's client, with its options and E(K8S_AUTH_*) variables in
    its order (a host with a token; else O(kubeconfig) or O(context); else the pod's service
    account; else E(KUBECONFIG) or C(~/.kube/config)), and says which credentials it used and
    which it ignored (RV(credentials)).
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

import copy

from ansible_collections.haw.icc.plugins.module_utils.cluster import rights as access_rules
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.cluster.connection import connect
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import quantity_value
from ansible_collections.kubernetes.core.plugins.module_utils.ansiblemodule import AnsibleModule
from ansible_collections.kubernetes.core.plugins.module_utils.args_common import AUTH_ARG_SPEC
from ansible_collections.kubernetes.core.plugins.module_utils.k8s.core import AnsibleK8SModule


def argspec():
    spec = copy.deepcopy(AUTH_ARG_SPEC)
    spec.update(
        namespace=dict(type="str", required=True),
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
    return spec


def namespace_state(api, name):
    """True/False when the namespace could be read, None when reading it is forbidden."""
    try:
        return api.get(f"/api/v1/namespaces/{name}", missing_ok=True) is not None
    except ApiError as error:
        if error.status == 403:
            return None
        raise


def volume_problems(api, namespace, volumes, warn):
    """Why the API server would refuse the size of a volume that exists already: a claim never
    shrinks, and grows only where its StorageClass allows expansion."""
    problems = []
    for volume in volumes:
        try:
            claim = api.get(
                f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{volume['name']}",
                missing_ok=True,
            )
        except ApiError as error:
            if error.status == 403:
                continue  # a volume this user may not see: nothing to compare
            raise
        if claim is None:
            continue  # a new volume
        spec = claim.get("spec") or {}
        live = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        wanted, have = quantity_value(volume["size"]), quantity_value(live)
        if wanted is None or have is None or wanted == have:
            continue
        where = f"{volume['variable']}: {volume['size']} for volume {volume['name']}"
        if wanted < have:
            problems.append(
                f"{where}, which has {live}: a volume cannot shrink. Keep {live}, or remove the "
                "volume with its data first (cleanup.yml -e purge=true)"
            )
            continue
        storage_class = spec.get("storageClassName")
        expandable = storage_class_expands(api, storage_class)
        if expandable is False:
            problems.append(
                f"{where}, which has {live}: its StorageClass {storage_class} does not allow "
                f"expansion. Keep {live}, or remove the volume with its data first "
                "(cleanup.yml -e purge=true)"
            )
        elif expandable is None:
            warn(
                f"{where}, which has {live}: whether its StorageClass may grow volumes cannot be "
                "read with these rights; the apply will tell"
            )
    return problems


def storage_class_expands(api, name):
    """Whether the StorageClass allows volume expansion; None when it cannot be read."""
    if not name:
        return None
    try:
        found = api.get(f"/apis/storage.k8s.io/v1/storageclasses/{name}", missing_ok=True)
    except ApiError as error:
        if error.status == 403:
            return None
        raise
    return None if found is None else bool(found.get("allowVolumeExpansion"))


def denied_permissions(api, namespace, permissions):
    """The rights of `permissions` the user lacks in the namespace: one SelfSubjectRulesReview,
    and a SelfSubjectAccessReview only for a right it does not show when the server says its
    list is incomplete (an authorizer that cannot list its rules)."""
    authorization = "/apis/authorization.k8s.io/v1"
    review = api.create(
        f"{authorization}/selfsubjectrulesreviews",
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectRulesReview",
            "spec": {"namespace": namespace},
        },
    )
    status = review.get("status") or {}
    rules = status.get("resourceRules") or []
    denied = []
    for group, resource, verb in access_rules.needed(permissions):
        if access_rules.allows(rules, group, resource, verb):
            continue
        if status.get("incomplete"):
            name, _, subresource = resource.partition("/")
            attributes = {"namespace": namespace, "group": group, "resource": name, "verb": verb}
            if subresource:
                attributes["subresource"] = subresource
            answer = api.create(
                f"{authorization}/selfsubjectaccessreviews",
                {
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SelfSubjectAccessReview",
                    "spec": {"resourceAttributes": attributes},
                },
            )
            if (answer.get("status") or {}).get("allowed"):
                continue
        denied.append(access_rules.label(group, resource, verb))
    return denied


def run(module):
    """The check, for an AnsibleK8SModule (main) or the action plugin's in-process module."""
    namespace = module.params["namespace"]
    result = dict(
        changed=False, namespace_exists=None, namespace_created=False, denied=[], volume_problems=[]
    )
    api, found = connect(module, result)
    result.update(server=found.server, server_version=found.version, credentials=found.describe())
    try:
        exists = namespace_state(api, namespace)
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
                api.create(
                    "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                )
            result.update(changed=True, namespace_created=True)
        result["denied"] = denied_permissions(api, namespace, module.params["permissions"])
        result["volume_problems"] = volume_problems(
            api, namespace, module.params["volumes"], module.warn
        )
    except ApiError as error:
        module.fail_json(msg=f"Checking namespace {namespace} failed: {error}", **result)
    asked = sum(len(permission.get("verbs", [])) for permission in module.params["permissions"])
    if result["denied"] and len(result["denied"]) == asked and not result["namespace_exists"]:
        module.fail_json(
            msg=f"Namespace {namespace} does not exist or is not yours: {found.describe()} may "
            f"do nothing there. Check icc_namespace (or the inventory host name): on the ICC a "
            "student's namespace is the login without 'inf' plus '-default', like "
            "wabc123-default for infwabc123.",
            **result,
        )
    if result["denied"]:
        module.fail_json(
            msg=f"Not allowed in namespace {namespace}: {', '.join(result['denied'])}. "
            "Deploying needs these rights (on the ICC a student has them in their own namespace).",
            **result,
        )
    if result["volume_problems"]:
        module.fail_json(
            msg="The API server would refuse these volume sizes:\n"
            + "\n".join(f"- {problem}" for problem in result["volume_problems"]),
            **result,
        )
    result["msg"] = (
        f"{found.server} (Kubernetes {found.version}), namespace {namespace}, with "
        f"{found.describe()}"
    )
    module.exit_json(**result)


def main():
    run(
        AnsibleK8SModule(
            module_class=AnsibleModule, argument_spec=argspec(), supports_check_mode=True
        )
    )


if __name__ == "__main__":
    main()

#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.apply_objects; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: apply_objects
short_description: Server-side apply a namespace's objects in one task, writing only what changes
version_added: 0.2.0
description:
  - Applies every object of O(objects) into O(namespace) by server-side apply with O(field_manager)
    (conflicts forced), then deletes every object of O(absent) that exists. The objects' own
    C(metadata.namespace) is overwritten with O(namespace).
  - Runs on the Ansible controller as an action plugin, in one process for all objects (instead of
    one kubernetes.core.k8s module process per object), with kubernetes.core's auth options.
  - Check mode sends only dry runs; with C(--diff) it shows each changed object before and after.
  - Secret objects are refused here, since a diff would show their data; see
    M(haw.icc.keep_secrets).
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options,
   haw.icc.server_side_apply]
options:
  objects:
    description: The objects to apply, in this order, each with apiVersion, kind and metadata.name.
    type: list
    elements: dict
    required: true
  absent:
    description: Objects to delete when they exist (apiVersion, kind and metadata.name count).
    type: list
    elements: dict
    default: []
  absent_group:
    description:
      - Objects that exist together and are deleted together, only when the first of them
        exists; the others are not read otherwise. For objects of kinds a user without them
        may not read (a Role), named after one every user of the collection may read (a
        Service). They are deleted before anything is applied, in reverse order, so that the
        first goes last and a run that stopped half-way is finished by the next.
    type: list
    elements: dict
    default: []
attributes:
  check_mode:
    support: full
    details: Only dry runs are sent; the result says what would change.
  diff_mode:
    support: full
    details: Each changed object before and after.
notes:
  - Applies Services, PersistentVolumeClaims, ConfigMaps, ServiceAccounts, Deployments, Roles,
    RoleBindings, NetworkPolicies and Ingresses.
"""

EXAMPLES = r"""
- name: Apply the TGI objects
  haw.icc.apply_objects:
    namespace: wabc123-default
    objects: >-
      {{ query('ansible.builtin.template', 'pvc.yml.j2', 'service.yml.j2') | map('from_yaml') }}
    absent: "{{ query('ansible.builtin.template', 'ingress.yml.j2') | map('from_yaml') }}"
  register: applied
"""

RETURN = r"""
objects:
  description: What happened to each object, in the order given.
  returned: always
  type: list
  elements: dict
  sample:
    - {kind: Deployment, name: tgi, state: present, changed: false, resource_version: "4711"}
msg:
  description: The objects changed, or that none changed; on failure, which object and why.
  returned: always
  type: str
  sample: "changed: Deployment/tgi"
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    field_manager=dict(type="str", default="haw.icc"),
    objects=dict(type="list", elements="dict", required=True),
    absent=dict(type="list", elements="dict", default=[]),
    absent_group=dict(type="list", elements="dict", default=[]),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("apply_objects", ARGUMENT_SPEC)

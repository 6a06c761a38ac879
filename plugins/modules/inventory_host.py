#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.inventory_host; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: inventory_host
short_description: Make a namespace a host of a YAML inventory, with the variables it needs
version_added: 0.1.0
description:
  - Adds O(host) to O(group) of a YAML inventory file unless the inventory has it already (in
    any group). A group the file lacks becomes a child of C(all); a missing file is created.
  - Records O(host_vars) in the host's C(host_vars) file beside the inventory - an existing
    C(host_vars/<host>.yml) or C(.yaml), else C(host_vars/<host>/haw_icc.yml) when the host has a
    folder there, else a new C(host_vars/<host>.yml) - but only each variable the inventory does
    not already give with the same value (in C(group_vars), the inventory file or that file).
    A path written with C(~) counts as the same as the expanded path.
  - Both files are edited as YAML round trips (ruamel.yaml) - comments, order and quoting stay.
extends_documentation_fragment:
  [haw.icc.controller_files, haw.icc.controller_action]
options:
  inventory:
    description:
      - The inventory - a YAML file, or a directory whose C(hosts.yml) or C(hosts.yaml) is used
        (a new C(hosts.yml) when it has neither). Other inventory formats are refused.
    type: path
    required: true
  host:
    description: The host, one per namespace - the namespace's name.
    type: str
    required: true
  group:
    description: The group a new host joins (V(all) for the top level).
    type: str
    default: students
  host_vars:
    description: Variables the host needs, name to value.
    type: dict
    default: {}
requirements:
  - ruamel.yaml (Python library, on the controller)
"""

EXAMPLES = r"""
- name: Make wabc123-default a host of the ICC inventory, with its kubeconfig and context
  haw.icc.inventory_host:
    inventory: inventories/icc
    host: wabc123-default
    host_vars:
      icc_kubeconfig: ~/.kube/config
      icc_context: infwabc123@icc
"""

RETURN = r"""
host:
  description: The host.
  returned: always
  type: str
inventory_file:
  description: The inventory file.
  returned: always
  type: str
host_vars_file:
  description: The host's variables file.
  returned: always
  type: str
host_added:
  description: Whether the host was added to the inventory file (or would be, in check mode).
  returned: success
  type: bool
recorded:
  description: The variables written to the host's variables file.
  returned: success
  type: dict
  sample: {icc_context: infwabc123@icc}
msg:
  description: What was done.
  returned: always
  type: str
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = dict(
    inventory=dict(type="path", required=True),
    host=dict(type="str", required=True),
    group=dict(type="str", default="students"),
    host_vars=dict(type="dict", default={}),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("inventory_host", ARGUMENT_SPEC)

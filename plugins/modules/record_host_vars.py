#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.record_host_vars; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: record_host_vars
short_description: Record a namespace's choices in its host_vars file, keeping everything else
version_added: 0.1.0
description:
  - Writes variables into a host's C(host_vars) file so that the next run of the collection's
    playbooks keeps the choice (a new model, a new GPU count) instead of reverting it.
  - The file is edited as a YAML round trip (ruamel.yaml) - comments, order, quoting, block
    scalars and all other keys stay as they were; a new file is created with a short header.
  - Writes only what changes - O(record) always counts, O(record_if_given) only for variables
    typed on the command line (C(-e)), so defaults are never pinned into the file. A variable is
    written when the file holds another value, or when the file lacks it and the rest of the
    inventory gives another value.
extends_documentation_fragment:
  [haw.icc.controller_files, haw.icc.controller_action]
options:
  path:
    description:
      - The host_vars file, for example C(inventories/icc/host_vars/wabc123-default.yml).
      - Unset, the host's own file beside its inventory - an existing C(host_vars/<host>.yml)
        or C(.yaml), else C(host_vars/<host>/haw_icc.yml) when the host has a folder there,
        else a new C(host_vars/<host>.yml). The task is skipped when the inventory is no file.
    type: path
  record:
    description: Variables to record, name to value (null writes C(null)).
    type: dict
    default: {}
  record_if_given:
    description: Variables to record only when they were given on the command line.
    type: dict
    default: {}
requirements:
  - ruamel.yaml (Python library, on the controller)
"""

EXAMPLES = r"""
- name: Record the new model so that the next deploy.yml keeps it
  haw.icc.record_host_vars:
    record:
      tgi_model_id: Qwen/Qwen2.5-3B-Instruct
      tgi_model_revision: null
    record_if_given:
      tgi_max_total_tokens: "{{ tgi_max_total_tokens }}"
"""

RETURN = r"""
recorded:
  description: The variables written, with their values.
  returned: always
  type: dict
  sample: {tgi_model_id: Qwen/Qwen2.5-3B-Instruct}
path:
  description: The file.
  returned: always
  type: str
msg:
  description: What was recorded where.
  returned: always
  type: str
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = dict(
    path=dict(type="path"),
    record=dict(type="dict", default={}),
    record_if_given=dict(type="dict", default={}),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("record_host_vars", ARGUMENT_SPEC)

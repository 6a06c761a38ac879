#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.keep_secrets; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: keep_secrets
short_description: Keep a namespace's single-key Secrets, generating a value once when none is given
version_added: 0.2.0
description:
  - For each Secret of O(secrets), the value stored is the one given; without one, the live value
    is kept; without a live one, a random value is generated when O(secrets[].generate) is true,
    else the Secret is left absent.
  - Applies them by server-side apply with O(field_manager), writing only when the stored data or
    labels change, and returns each Secret's resourceVersion, which the roles put
    into their pod annotations so that the pods roll when a key changes.
  - Never returns or shows a value; in check mode a pending change marks the version with V(+).
  - Runs on the Ansible controller as an action plugin, all Secrets in one process.
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options,
   haw.icc.server_side_apply]
options:
  apply:
    description: V(false) only reads whether each Secret is there, and its version.
    type: bool
    default: true
  secrets:
    description: The Secrets to keep, each with one key.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The Secret's name.
        type: str
        required: true
      key:
        description: The key in its data.
        type: str
        required: true
      value:
        description: The value to store; empty keeps the live value.
        type: str
        default: ""
      generate:
        description: Generate a random value when none is given or stored.
        type: bool
        default: true
      length:
        description: The length of a generated value (letters and digits).
        type: int
        default: 48
      labels:
        description: The Secret's labels.
        type: dict
        default: {}
  read:
    description: Names of further Secrets whose version to report, without writing them.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
    details: Only dry runs are sent; a pending change marks the version with V(+).
"""

EXAMPLES = r"""
- name: Keep the API key Secret (generated once when not given)
  haw.icc.keep_secrets:
    namespace: wabc123-default
    secrets:
      - {name: tgi-api-key, key: api-key, value: "{{ tgi_api_key | default('') }}"}
  register: kept
"""

RETURN = r"""
versions:
  description: The resourceVersion of each Secret that is there (or would be, in check mode),
    with V(+) appended in check mode when it would change.
  returned: always
  type: dict
  sample: {tgi-api-key: "4711"}
present:
  description: Whether each Secret of O(secrets) and O(read) is there after this task.
  returned: always
  type: dict
  sample: {tgi-api-key: true, tgi-hf-token: false}
msg:
  description: The Secrets written, or that none was.
  returned: always
  type: str
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    field_manager=dict(type="str", default="haw.icc"),
    apply=dict(type="bool", default=True),
    secrets=dict(
        type="list",
        elements="dict",
        default=[],
        no_log=False,  # the values are no_log, the names are not
        options=dict(
            name=dict(type="str", required=True),
            key=dict(type="str", required=True, no_log=False),
            value=dict(type="str", default="", no_log=True),
            generate=dict(type="bool", default=True),
            length=dict(type="int", default=48),
            labels=dict(type="dict", default={}),
        ),
    ),
    read=dict(type="list", elements="str", default=[]),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("keep_secrets", ARGUMENT_SPEC)

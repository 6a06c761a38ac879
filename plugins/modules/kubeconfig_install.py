#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.kubeconfig_install; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kubeconfig_install
short_description: Merge a downloaded kubeconfig into the user's own, keeping what is there
version_added: 0.1.0
description:
  - Takes a kubeconfig as the ICC login portal hands it out (O(src)) and merges its clusters,
    users and contexts into O(dest) by name, so that the other clusters and contexts of O(dest)
    stay as they are.
  - An entry O(dest) lacks is added. One with the same name and the same content is left alone,
    so a second run changes nothing. One with the same name and other content (a renewed token,
    say) is replaced in place; the previous O(dest) is kept as a backup, so nothing is lost.
  - Relative file references of O(src) (C(certificate-authority), C(client-certificate),
    C(client-key), C(tokenFile)) are made absolute, so they keep working from O(dest).
  - The installed context gets the namespace - O(namespace), else the one of the ICC login
    (O(login), else the context's user name; C(infwXYZ123) gives C(wXYZ123-default)), else the
    one the context already has.
  - Before anything is written, O(src), O(dest) and the values given are checked, and every
    problem is reported at once, one line each.
  - When O(dest) changes, its previous content is first copied to
    C(<dest>.<YYYYmmdd-HHMMSS>.bak) (mode 0600). O(dest) is written in one step (a file beside
    it, then renamed) with mode 0600; a directory it creates gets mode 0700.
  - The diff shows both versions with every token, password, key and certificate replaced by a
    numbered placeholder (the same value, the same number); secrets appear in no output.
extends_documentation_fragment:
  [haw.icc.controller_files, haw.icc.controller_action]
options:
  src:
    description: The downloaded kubeconfig.
    type: path
    required: true
  dest:
    description: The kubeconfig to install into; created when missing.
    type: path
    default: ~/.kube/config
  context:
    description:
      - The context of O(src) to set up (namespace, current context).
      - Unset, the current context of O(src), else its only context.
    type: str
  namespace:
    description: The namespace of the context (a DNS-1123 label). Unset, derived as above.
    type: str
  login:
    description:
      - The ICC login, for deriving the namespace. Unset, the user name of the context.
    type: str
  use_context:
    description:
      - Whether to make the context the current context of O(dest) - V(true), V(false), or
        unset (null or an empty string) for only when O(dest) has no current context yet.
      - Any of Ansible's boolean spellings (V(yes), V(no), V(1), V(0), ...).
    type: raw
  backup:
    description: Keep the previous O(dest) as a timestamped copy when it changes.
    type: bool
    default: true
requirements:
  - PyYAML (comes with Ansible)
"""

EXAMPLES = r"""
- name: Install the kubeconfig from the ICC login portal into ~/.kube/config
  haw.icc.kubeconfig_install:
    src: ~/Downloads/kubeconfig.yaml

- name: A course namespace, in a kubeconfig of its own, made the current context
  haw.icc.kubeconfig_install:
    src: ~/Downloads/kubeconfig.yaml
    dest: ~/.kube/icc.yaml
    namespace: ml-course-2026
    use_context: true
"""

RETURN = r"""
dest:
  description: The kubeconfig installed into, as an absolute path.
  returned: always
  type: str
  sample: /home/student/.kube/config
context:
  description: The context set up.
  returned: success
  type: str
  sample: infwabc123@icc
namespace:
  description: The namespace set on the context.
  returned: success
  type: str
  sample: wabc123-default
namespace_source:
  description: Where the namespace came from.
  returned: success
  type: str
  sample: from the login infwabc123
cluster:
  description: The cluster of the context.
  returned: success
  type: str
user:
  description: The user of the context.
  returned: success
  type: str
server:
  description: The API server of the context's cluster.
  returned: success
  type: str
  sample: https://icc-k8s-api.informatik.haw-hamburg.de
current_context:
  description: The current context of O(dest) afterwards.
  returned: success
  type: str
added:
  description: Entries added, as C(<kind> <name>).
  returned: success
  type: list
  elements: str
  sample: ["cluster icc", "user infwabc123", "context infwabc123@icc"]
replaced:
  description: Entries of the same name whose content was replaced.
  returned: success
  type: list
  elements: str
unchanged:
  description: Entries that were already there with the same content.
  returned: success
  type: list
  elements: str
backup_file:
  description: The copy of the previous O(dest), when one was made (or would be, in check mode).
  returned: when O(dest) existed and changed
  type: str
  sample: /home/student/.kube/config.20261129-101500.bak
msg:
  description: What was done, or every problem found, one per line.
  returned: always
  type: str
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = dict(
    src=dict(type="path", required=True),
    dest=dict(type="path", default="~/.kube/config"),
    context=dict(type="str"),
    namespace=dict(type="str"),
    login=dict(type="str"),
    use_context=dict(type="raw"),
    backup=dict(type="bool", default=True),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("kubeconfig_install", ARGUMENT_SPEC)

#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.role_settings; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: role_settings
short_description: Type and check the variables of one of the collection's roles before writing
version_added: 0.1.0
description:
  - Converts every variable of the role's C(main) argument spec with Ansible's own converters
    (those of module options), so C(-e tgi_gpu_count=2) is the integer V(2), C(-e x=true) the
    boolean V(true), and a value those converters refuse is reported naming the variable.
  - Then checks every value that ends up in a Kubernetes object by its kind (namespaces, Service
    names, ports, host names, quantities, keys, image references) and the role's own rules (for
    C(tgi_server) the launcher's rules of TGI), so that the API server never refuses an object
    half-way through a run.
  - Reports every problem at once, one line each, and returns the typed variables for the role
    to use instead of the raw ones. The values of C(no_log) variables (keys, tokens, passwords)
    are never quoted nor returned.
  - This is the one check of the TGI settings in a run. The typed C(tgi_server) settings carry
    the digest of the check (C(_checked)), so that the steps after it (the pod's template,
    M(haw.icc.gpu_capacity_check), M(haw.icc.tgi_model_switch)) take them as checked, while
    settings without it (or changed since) are checked where they come in.
  - Warns about what is allowed but likely regretted, such as an image that is not pinned to
    a version.
  - Runs on the controller as an action plugin; reads nothing from the cluster.
extends_documentation_fragment:
  [haw.icc.controller_action]
options:
  role:
    description:
      - The collection's role whose variables to check.
      - Exactly one of O(role) and O(options) is given.
    type: str
    choices: [tgi_server, open_webui, gpu_scale]
  options:
    description:
      - A playbook's own variables, shaped like a role argument spec's C(options) (C(type),
        C(choices), C(elements), C(no_log)), plus C(default) (used when the variable is unset;
        the inventory may set it, unlike play vars), C(minimum) for numbers and C(kind), a kind
        of value such as C(duration), C(port) or C(dns_label).
    type: dict
  heading:
    description: First line of the failure message, for example what was refused and where.
    type: str
  warn_unknown:
    description:
      - Also warn, one line each, about every variable the play sees whose name starts with
        C(tgi_), C(open_webui_), C(gpu_scale_) or C(icc_) but that the collection does not read
        (a typo such as C(-e tgi_gpu_cout=2)), naming the closest variable it knows and whether
        it came from C(-e).
      - The known variables are the options of the roles' argument specs, the O(options) of the
        playbooks' C(haw.icc.role_settings) tasks, and the few that playbooks read directly.
      - Each playbook sets it on one check that runs before anything is written.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
"""

EXAMPLES = r"""
- name: Type and check the TGI variables
  haw.icc.role_settings:
    role: tgi_server
    heading: "Refusing to deploy TGI to {{ icc_namespace }}"
  register: __tgi_checked

- name: Type and check the TGI variables, warning about unknown ones (typos)
  haw.icc.role_settings:
    role: tgi_server
    warn_unknown: true

- name: Type and check a playbook's own options
  haw.icc.role_settings:
    heading: Refusing to read the logs
    options:
      icc_logs_tail: {type: int, default: 200, minimum: 1}
      icc_logs_since: {type: str, kind: duration}
  register: __icc_logs_checked

- name: Use the typed values from now on (the tgi_server role's output tgi_server_settings)
  ansible.builtin.debug:
    msg: "{{ __tgi_checked.settings.tgi_gpu_count + 1 }}"
"""

RETURN = r"""
settings:
  description:
    - Every variable of the role's argument spec, converted to its type (null when unset),
      except those marked C(no_log).
    - For C(tgi_server) also C(_checked), the digest of the check of the TGI settings (see the
      description).
  returned: success
  type: dict
  sample: {tgi_gpu_count: 2, tgi_ingress_enabled: false, tgi_cuda_memory_fraction: 0.85}
errors:
  description: One message per problem, each naming the variable.
  returned: failure
  type: list
  elements: str
  sample: ["tgi_service_port: 70000 is not allowed: a port number, an integer in 1..65535"]
msg:
  description: Whether the variables are valid; on failure the heading and every problem.
  returned: always
  type: str
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = dict(
    role=dict(type="str", choices=["tgi_server", "open_webui", "gpu_scale"]),
    options=dict(type="dict"),
    heading=dict(type="str"),
    warn_unknown=dict(type="bool", default=False),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("role_settings", ARGUMENT_SPEC)

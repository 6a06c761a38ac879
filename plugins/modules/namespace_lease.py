#!/usr/bin/python
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Documentation of haw.icc.namespace_lease; the work is done by its action plugin."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: namespace_lease
short_description: Hold a namespace for one run at a time with a coordination.k8s.io Lease
version_added: 0.1.0
description:
  - With O(state=present), takes the Lease O(name) in O(namespace) for this run of
    C(ansible-playbook), so that a second run writing to the same namespace at the same time
    waits or fails instead of silently overwriting the first one's settings.
  - The Lease's C(holderIdentity) names the run as C(user@machine pid N playbook) (the
    C(ansible-playbook) process); it is valid for O(duration) seconds from when it was taken, so
    the Lease of a run that died expires on its own.
  - A Lease is taken over at once when it is free, past its expiry, held by this same run, or held
    by a process of this machine that no longer exists (or whose PID now runs something other
    than Ansible); with O(force) whatever holds it. Otherwise the task waits up to O(wait)
    seconds, printing a line at most every 30 seconds, and then fails in one line naming the
    holder, since when and until when it holds the namespace, and how to wait or break it.
  - Writes use the Lease's resourceVersion (and a create fails with 409 when another run created
    it first), so of two runs that try at the same moment exactly one gets the Lease.
  - With O(state=absent), deletes the Lease when this run holds it (and only then, with the
    resourceVersion read as precondition); a Lease of another run is left alone with a warning.
  - When Leases may not be used in the namespace (403), the task warns that the run is not
    protected and succeeds, so that a namespace without that right can still be deployed to.
  - Never reports a change - the Lease is bookkeeping of the run, not a setting of the namespace.
    In check mode nothing is written; the task warns when another run holds the namespace.
extends_documentation_fragment:
  [haw.icc.controller_action, haw.icc.kubernetes, kubernetes.core.k8s_auth_options]
options:
  name:
    description: Name of the Lease.
    type: str
    default: haw-icc
  state:
    description: V(present) takes the Lease, V(absent) gives it back.
    type: str
    choices: [present, absent]
    default: present
  playbook:
    description: The playbook that runs, named in the Lease's holder, for example V(deploy.yml).
    type: str
    default: ansible-playbook
  duration:
    description:
      - Seconds the Lease is valid from the moment it is taken (C(leaseDurationSeconds)). Give
        at least what the run can take, its waits included; after that another run may take it.
    type: int
    default: 3600
  wait:
    description:
      - Seconds to wait for another run's Lease to be released or to expire; V(0) fails at once.
    type: int
    default: 0
  poll_interval:
    description: Seconds between two looks at the Lease while waiting (at least 1).
    type: int
    default: 5
  force:
    description:
      - Take the Lease whoever holds it. Meant for a Lease left by a run whose machine died,
        which would otherwise block the namespace until it expires.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    details: Reads the Lease and warns when another run holds it; takes nothing.
notes:
  - Needs C(get), C(create), C(update) and C(delete) on C(leases) of the API group
    C(coordination.k8s.io) in the namespace.
  - Times are taken from the API server's clock (its C(Date) header), so runs on machines with
    different clocks agree on when a Lease expires.
"""

EXAMPLES = r"""
- name: Hold the namespace while writing (fail at once when another run holds it)
  haw.icc.namespace_lease:
    namespace: wabc123-default
    playbook: deploy.yml
    duration: 3900
  register: __icc_lease

- name: Wait up to ten minutes for another run
  haw.icc.namespace_lease:
    namespace: wabc123-default
    playbook: scale.yml
    wait: 600

- name: Give the namespace back
  haw.icc.namespace_lease:
    namespace: wabc123-default
    state: absent
"""

RETURN = r"""
held:
  description: Whether this run holds the Lease after the task.
  returned: always
  type: bool
  sample: true
holder:
  description: This run's identity, as written into C(holderIdentity).
  returned: always
  type: str
  sample: alice@laptop pid 4242 deploy.yml
lease:
  description: Name of the Lease.
  returned: always
  type: str
  sample: haw-icc
expires:
  description: When the Lease expires unless given back before (UTC).
  returned: when the Lease was taken
  type: str
  sample: "2026-11-29 13:45:10 UTC"
took_over:
  description: Whose Lease was taken over, and why that was allowed.
  returned: when the Lease of another run was taken over
  type: str
  sample: it was held by bob@laptop (PID 977, deploy.yml) since 2026-11-29 12:00:01 UTC, but
    process 977 on this machine is gone
busy_holder:
  description: The holder of the Lease that kept this run out.
  returned: when the namespace was held by another run
  type: str
  sample: bob@laptop pid 977 deploy.yml
msg:
  description: What happened, in one line.
  returned: always
  type: str
"""

from ansible_collections.haw.icc.plugins.module_utils import action_docs

ARGUMENT_SPEC = action_docs.kubernetes_spec(
    name=dict(type="str", default="haw-icc"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    playbook=dict(type="str", default="ansible-playbook"),
    duration=dict(type="int", default=3600),
    wait=dict(type="int", default=0),
    poll_interval=dict(type="int", default=5),
    force=dict(type="bool", default=False),
)

if __name__ == "__main__":
    action_docs.fail_as_documentation_stub("namespace_lease", ARGUMENT_SPEC)

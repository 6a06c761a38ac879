# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What every haw.icc module has in common: its authors, and that it runs on the controller, as
an action plugin (module_utils/action_docs.py says why), with what that means for the task's
attributes.

A module lists it in extends_documentation_fragment and states its own check_mode support, and
diff_mode when it shows a diff, or takes them from a fragment of its kind (controller_files)
listed before this one (its own DOCUMENTATION wins over a fragment; of two fragments that set
the same key, the one listed first wins).
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
author:
  - haw.icc developers (@haw-hamburg)
options: {}
attributes:
  check_mode:
    description: Whether the task can run with C(--check), changing nothing and saying what it
      would change.
  diff_mode:
    description: Whether the task shows what it changes, before and after, with C(--diff).
    support: none
  platform:
    description: The systems the task works on.
    support: N/A
    platforms: all
    details: Whatever the inventory host is, only the controller does the work.
  action:
    description: Whether an action plugin of the same name does the work on the controller.
    support: full
    details: The work runs in Ansible's own process on the controller; the module file only
      documents it and refuses to run on a host.
  async:
    description: Whether the task can run in the background with the C(async) keyword.
    support: none
  bypass_host_loop:
    description: Whether the task runs once for all hosts instead of once per host.
    support: none
"""

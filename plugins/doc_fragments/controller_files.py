# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What the modules that edit files on the controller (inventory, host_vars, kubeconfig) have
in common: check mode and diff, and a file never left half-written.

A module lists it before haw.icc.controller_action, so that its diff_mode support wins over
controller_action's "none" (of two fragments, the one listed first wins).
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    support: full
    details: Nothing is written; the result says what would change.
  diff_mode:
    support: full
    details: Each file that changes, before and after.
notes:
  - A file is replaced in one step (written beside it, then renamed), so it is never left
    half-written.
"""

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""How the modules that write objects write them (module_utils/cluster/apply.py): server-side
apply with a field manager, a dry run first.

A module lists it after kubernetes.core.k8s_auth_options; its ARGUMENT_SPEC has field_manager.
"""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  field_manager:
    description: The field manager of the server-side apply (conflicts are forced).
    type: str
    default: haw.icc
notes:
  - Each object is applied as a dry run first, and for real only when the outcome differs from
    the live object; a run that changes nothing writes nothing and leaves every
    resourceVersion as it was. Check mode sends only the dry runs.
"""

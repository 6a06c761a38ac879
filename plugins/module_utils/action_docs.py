# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The main() of a module file that only documents an action plugin."""

from __future__ import annotations

from typing import Any


def fail_as_documentation_stub(name: str, argument_spec: dict[str, Any]) -> None:
    """main() of a module file that only documents an action plugin: it must never run on a host."""
    from ansible.module_utils.basic import AnsibleModule

    # bypass_checks: whatever the arguments, say why this file must not run on a host.
    module = AnsibleModule(
        argument_spec=argument_spec, bypass_checks=True, supports_check_mode=True
    )
    module.fail_json(
        msg=f"haw.icc.{name} runs as an action plugin on the controller; "
        "this module file only documents it and must not be executed on a host"
    )

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.role_settings: a role's variables, typed and checked.

It runs on the controller because it reads the role's argument spec from the collection and the
variables from the play; the conversion and the rules live in module_utils/role_settings.py.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.haw.icc.plugins.module_utils.role_settings import (
    playbook_settings,
    role_settings,
)
from ansible_collections.haw.icc.plugins.modules.role_settings import ARGUMENT_SPEC
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import ControllerAction

COLLECTION_ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def role_options(role: str) -> dict[str, Any]:
    """The options of the `main` entry point of the collection's role `role`."""
    path = COLLECTION_ROOT / "roles" / role / "meta" / "argument_specs.yml"
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    specs = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)["argument_specs"]
    return specs["main"]["options"]


# Ansible imports this plugin in its main process and forks a worker per task and namespace:
# read once here, the specs reach every worker without being parsed again.
for _role in ("tgi_server", "open_webui"):
    with contextlib.suppress(OSError, KeyError, TypeError, yaml.YAMLError):
        role_options(_role)


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    ONE_OF = ("role", "options")

    def act(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        if args["options"]:
            options, what = args["options"], "the playbook's options"
        else:
            what = f"the variables of haw.icc.{args['role']}"
            try:
                options = role_options(args["role"])
            except (OSError, KeyError, TypeError, yaml.YAMLError) as error:
                result.update(
                    failed=True,
                    msg=f"role {args['role']!r} of haw.icc: no argument spec ({error})",
                )
                return result
        # The variables as the play sees them, templated like Ansible's own role validation does.
        values = self._templar.template({n: task_vars[n] for n in options if n in task_vars})
        if args["options"]:
            settings, errors = playbook_settings(options, values)
        else:
            settings, errors = role_settings(args["role"], options, values)
        if errors:
            heading = args["heading"] or f"Invalid {what}"
            result.update(
                failed=True,
                errors=errors,
                msg=heading + ":\n" + "\n".join(f"- {error}" for error in errors),
            )
            return result
        result.update(settings=settings, msg=f"{what} are valid")
        return result

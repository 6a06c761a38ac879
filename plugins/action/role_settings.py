# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.role_settings: a role's variables, typed and checked.

It runs on the controller because it reads the role's argument spec from the collection and the
variables from the play; the conversion and the rules live in
module_utils/workload/role_settings.py.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path
from typing import Any

import yaml
from ansible.utils.vars import load_extra_vars
from ansible_collections.haw.icc.plugins.module_utils.workload.known_variables import (
    READ_DIRECTLY,
    deprecated_variable_warnings,
    role_outputs,
    role_settings_options,
    spec_options,
    unknown_variable_warnings,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.role_settings import (
    playbook_settings,
    role_settings,
    role_warnings,
)
from ansible_collections.haw.icc.plugins.modules.role_settings import ARGUMENT_SPEC
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import ControllerAction

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Where the playbooks declare their own options (haw.icc.role_settings tasks with options:).
PLAYBOOK_FILES = ("playbooks/*.yml", "playbooks/tasks/*.yml", "roles/*/tasks/*.yml")


def _load(path: Path) -> Any:
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)


@functools.cache
def role_options(role: str) -> dict[str, Any]:
    """The options of the `main` entry point of the collection's role `role`."""
    specs = _load(COLLECTION_ROOT / "roles" / role / "meta" / "argument_specs.yml")
    return specs["argument_specs"]["main"]["options"]


@functools.cache
def known_variables() -> frozenset:
    """Every variable the collection reads (workload/known_variables.py says from where)."""
    known = set(READ_DIRECTLY)
    for path in sorted(COLLECTION_ROOT.glob("roles/*/meta/argument_specs.yml")):
        known |= spec_options(_load(path))
    for path in sorted(COLLECTION_ROOT.glob("roles/*/vars/main.yml")):
        known |= role_outputs(_load(path))
    for pattern in PLAYBOOK_FILES:
        for path in sorted(COLLECTION_ROOT.glob(pattern)):
            known |= role_settings_options(_load(path))
    return frozenset(known)


# Ansible imports this plugin in its main process and forks a worker per task and namespace:
# read once here, the specs reach every worker without being parsed again.
for _role in ("tgi_server", "open_webui", "gpu_scale"):
    with contextlib.suppress(OSError, KeyError, TypeError, yaml.YAMLError):
        role_options(_role)
with contextlib.suppress(OSError, yaml.YAMLError):
    known_variables()


class ActionModule(ControllerAction):
    ARGUMENT_SPEC = ARGUMENT_SPEC
    ONE_OF = ("role", "options")

    def act(
        self, result: dict[str, Any], args: dict[str, Any], task_vars: dict[str, Any]
    ) -> dict[str, Any]:
        if args["warn_unknown"]:
            self._warn_unknown(result, task_vars)
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
        if args["role"]:
            warnings = role_warnings(args["role"], settings)
            if warnings:
                result["warnings"] = [*result.get("warnings", []), *warnings]
        result.update(settings=settings, msg=f"{what} are valid")
        return result

    def _warn_unknown(self, result: dict[str, Any], task_vars: dict[str, Any]) -> None:
        """A warning per variable with one of the collection's prefixes that it does not read."""
        try:
            known = known_variables()
        except (OSError, yaml.YAMLError) as error:
            result.setdefault("warnings", []).append(
                f"the variables of haw.icc could not be read, so mistyped ones are not found "
                f"({error})"
            )
            return
        # Ansible parsed the -e options once in its main process; this is that parse, cached.
        given_with_e = load_extra_vars(self._loader)
        lines = deprecated_variable_warnings(task_vars, given_with_e)
        lines += unknown_variable_warnings(task_vars, known, given_with_e)
        if lines:
            result.setdefault("warnings", []).extend(lines)

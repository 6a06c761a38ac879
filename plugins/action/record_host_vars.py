# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.record_host_vars: write a choice into a host's host_vars file.

The file is also edited by people: it is read and written as a YAML round trip
(module_utils/workload/inventory_files.py), so comments, order, quoting and every other key stay
as they were, and only the variables that change are touched. It runs on the controller, where
the inventory lives.
"""

from __future__ import annotations

import os
from pathlib import Path

from ansible.utils.vars import load_extra_vars
from ansible_collections.haw.icc.plugins.module_utils.workload.inventory_files import (
    YAMLError,
    changes_to_record,
    default_record_file,
    host_vars_yaml,
    recorded_text,
    replace_text,
    ruamel_problem,
)
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import (
    JSON,
    ControllerAction,
)


class ActionModule(ControllerAction):
    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        problem = ruamel_problem("host_vars files")
        if problem:
            return self._fail(result, problem)
        if args["path"]:
            path = Path(os.path.expanduser(args["path"]))
        else:
            path = default_record_file(
                task_vars.get("inventory_dir"), task_vars.get("inventory_hostname")
            )
            if path is None:
                result["skipped"] = True
                result["msg"] = (
                    "not recorded: the inventory is not a file beside which a host_vars folder "
                    "could be kept; give path"
                )
                return result
        try:
            before = path.read_text(encoding="utf-8") if path.exists() else ""
            current = host_vars_yaml().load(before) if before.strip() else None
        except (OSError, UnicodeDecodeError, YAMLError) as error:
            return self._fail(result, f"cannot read {path}: {error}")
        current = current if isinstance(current, dict) else {}
        host = task_vars.get("inventory_hostname")
        # What the inventory gives without this file's say: the host's variables (not the play's).
        host_vars = (task_vars.get("hostvars") or {}).get(host) or {}
        record, record_if_given = args["record"], args["record_if_given"]
        wanted = {**record, **record_if_given}
        inventory = {key: host_vars.get(key) for key in wanted if key in host_vars}
        given = set(load_extra_vars(self._loader))
        changes = changes_to_record(dict(current), record, record_if_given, given, inventory)
        result["recorded"] = changes
        result["path"] = str(path)
        if not changes:
            result["msg"] = f"{path} already holds these choices"
            return result
        try:
            after = recorded_text(before, changes)
        except (ValueError, YAMLError) as error:
            return self._fail(result, f"cannot record in {path}: {error}")
        result["changed"] = True
        if self._task.diff:
            result["diff"] = {
                "before": before,
                "after": after,
                "before_header": str(path),
                "after_header": str(path),
            }
        if self._task.check_mode:
            result["msg"] = f"check mode: would record {', '.join(changes)} in {path}"
            return result
        try:
            replace_text(path, after)
        except OSError as error:
            result["changed"] = False
            return self._fail(result, f"cannot write {path}: {error}")
        result["msg"] = f"recorded {', '.join(changes)} in {path}"
        return result

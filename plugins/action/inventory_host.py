# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.inventory_host: make sure a namespace is a host of a YAML inventory.

The inventory file and the host's host_vars file are edited by people: both are read and
written as YAML round trips (module_utils/workload/inventory_files.py), so comments, order
and quoting stay. Variables go into host_vars/<host>.yml beside the inventory, and only where
the inventory does not already give the same value.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.workload.inventory_files import (
    GROUP_NAME,
    YAMLError,
    changes_to_record,
    default_record_file,
    inventory_file,
    inventory_yaml,
    recorded_text,
    replace_text,
    ruamel_problem,
    same_value,
    with_host,
)
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import (
    JSON,
    ControllerAction,
)


class ActionModule(ControllerAction):
    def _inventory_values(self, source: Path, host: str, group: str) -> dict[str, Any]:
        """What the inventory (group_vars, the file's own vars, host_vars) gives the host, as
        if it were in `group`; empty when the inventory does not exist yet."""
        if not source.exists():
            return {}
        from ansible.inventory.manager import InventoryManager
        from ansible.vars.manager import VariableManager

        inventory = InventoryManager(loader=self._loader, sources=[str(source)])
        if inventory.get_host(host) is None:
            if group != "all":
                inventory.add_group(group)
            inventory.add_host(host, group=None if group == "all" else group)
        values = VariableManager(loader=self._loader, inventory=inventory).get_vars(
            host=inventory.get_host(host), include_hostvars=False
        )
        return json.loads(json.dumps(dict(values), default=str))

    def act(self, result: JSON, args: JSON, task_vars: JSON) -> JSON:
        problem = ruamel_problem("the inventory")
        if problem:
            return self._fail(result, problem)
        host, group = args["host"], args["group"]
        if not GROUP_NAME.match(group):
            return self._fail(
                result,
                f"group {group!r} is not a valid group name: letters, digits and '_', not "
                "starting with a digit",
            )
        try:
            path = inventory_file(Path(os.path.expanduser(args["inventory"])).absolute())
        except ValueError as error:
            return self._fail(result, str(error))
        record_path = default_record_file(str(path.parent), host)
        result.update(host=host, inventory_file=str(path), host_vars_file=str(record_path))
        try:
            before = path.read_text(encoding="utf-8") if path.exists() else ""
            after = with_host(before, host, group)
            vars_before = record_path.read_text(encoding="utf-8") if record_path.exists() else ""
            current = inventory_yaml().load(vars_before) if vars_before.strip() else None
        except (OSError, UnicodeDecodeError, ValueError, YAMLError) as error:
            return self._fail(result, f"cannot edit the inventory {path}: {error}")
        current = json.loads(json.dumps(current)) if isinstance(current, dict) else {}
        wanted = args["host_vars"]
        try:
            given = self._inventory_values(path, host, group)
        except Exception as error:  # the inventory is the user's: say what Ansible says
            return self._fail(result, f"cannot read the inventory {path}: {error}")
        for key, value in wanted.items():  # ~/x and /home/me/x are one file
            if key in current and same_value(current[key], value):
                current[key] = value
            if key in given and same_value(given[key], value):
                given[key] = value
        inventory = {key: given[key] for key in wanted if key in given}
        changes = changes_to_record(current, wanted, {}, set(), inventory)
        try:
            vars_after = recorded_text(vars_before, changes) if changes else vars_before
        except (ValueError, YAMLError) as error:
            return self._fail(result, f"cannot record in {record_path}: {error}")
        result.update(host_added=after is not None, recorded=changes)
        done = []
        if after is not None:
            done.append(f"added host {host} to group {group} in {path}")
        if changes:
            done.append(f"recorded {', '.join(changes)} in {record_path}")
        if not done:
            result["msg"] = f"{path} already has host {host} with these variables"
            return result
        result["changed"] = True
        if self._task.diff:
            result["diff"] = [
                {"before": old, "after": new, "before_header": str(p), "after_header": str(p)}
                for p, old, new in ((path, before, after), (record_path, vars_before, vars_after))
                if new is not None and new != old
            ]
        if self._task.check_mode:
            result["msg"] = "check mode: would have " + "; ".join(done)
            return result
        try:
            if after is not None:
                replace_text(path, after)
            if changes:
                replace_text(record_path, vars_after)
        except OSError as error:
            result["changed"] = False
            return self._fail(result, f"cannot write the inventory: {error}")
        result["msg"] = "; ".join(done)
        return result

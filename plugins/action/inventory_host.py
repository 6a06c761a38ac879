# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.inventory_host: make sure a namespace is a host of a YAML inventory.

The inventory file and the host's host_vars file are edited by people: both are read and
written as YAML round trips (ruamel.yaml, the way record_host_vars does it), so comments, order
and quoting stay. Variables go into host_vars/<host>.yml beside the inventory, and only where
the inventory does not already give the same value.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

from ansible_collections.haw.icc.plugins.action.record_host_vars import (
    RUAMEL_ERROR,
    changes_to_record,
    default_record_file,
    recorded_text,
    replace_text,
)
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import (
    JSON,
    ControllerAction,
)

if RUAMEL_ERROR is None:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.representer import RoundTripRepresenter

    class _InventoryRepresenter(RoundTripRepresenter):
        """Hosts without variables stay `host:` (not `host: null`), as people write them."""

    _InventoryRepresenter.add_representer(type(None), RoundTripRepresenter.represent_none)
else:  # reported as a task failure
    YAMLError = ValueError

NEW_INVENTORY_HEADER = (
    "---\n# One host per namespace (haw.icc); their variables are in host_vars/.\n"
)
GROUP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
YAML_SUFFIXES = (".yml", ".yaml")


def inventory_file(path: Path) -> Path:
    """The YAML file of an inventory given as a file or a directory (its hosts.yml or
    hosts.yaml; a new hosts.yml when it has neither)."""
    if path.suffix in YAML_SUFFIXES and not path.is_dir():
        return path
    if path.is_file():
        raise ValueError(f"{path} is not a YAML inventory (.yml or .yaml): add the host by hand")
    for name in ("hosts.yml", "hosts.yaml"):
        if (path / name).is_file():
            return path / name
    return path / "hosts.yml"


def _inventory_yaml() -> Any:
    yaml = YAML(typ="rt")
    yaml.Representer = _InventoryRepresenter
    yaml.preserve_quotes = True
    yaml.width = 4096
    return yaml


def _groups(data: Any) -> list[tuple[str, Any]]:
    """(name, body) of every group in an inventory document, parents before children."""
    found = []
    pending = list(data.items()) if isinstance(data, dict) else []
    while pending:
        name, body = pending.pop(0)
        found.append((name, body))
        if isinstance(body, dict) and isinstance(body.get("children"), dict):
            pending.extend(body["children"].items())
    return found


def holds_host(data: Any, host: str) -> bool:
    return any(
        isinstance(body, dict) and isinstance(body.get("hosts"), dict) and host in body["hosts"]
        for _name, body in _groups(data)
    )


def with_host(text: str, host: str, group: str) -> str | None:
    """`text` (a YAML inventory, possibly empty) with `host` in `group`; None when the host is
    in the inventory already (in any group). A missing group is made a child of `all`."""
    yaml = _inventory_yaml()
    data = yaml.load(text) if text.strip() else None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise ValueError("it does not hold a mapping of groups")
    if holds_host(data, host):
        return None
    bodies = [body for name, body in _groups(data) if name == group]
    if bodies and isinstance(bodies[0], dict):
        body = bodies[0]
    elif bodies:  # `group:` with nothing below it yet
        body = CommentedMap()
        _replace_group(data, group, body)
    else:
        if not isinstance(data.get("all"), dict):
            data["all"] = CommentedMap()
        if group == "all":
            body = data["all"]
        else:
            if not isinstance(data["all"].get("children"), dict):
                data["all"]["children"] = CommentedMap()
            body = data["all"]["children"][group] = CommentedMap()
    if not isinstance(body.get("hosts"), dict):
        body["hosts"] = CommentedMap()
    body["hosts"][host] = None
    yaml.explicit_start = not text.strip() or text.lstrip().startswith("---")
    out = io.StringIO()
    yaml.dump(data, out)
    written = out.getvalue()
    if not text.strip():
        written = NEW_INVENTORY_HEADER + written.removeprefix("---\n")
    return written


def _replace_group(data: Any, group: str, body: Any) -> None:
    for parent in [data] + [b.get("children") for _n, b in _groups(data) if isinstance(b, dict)]:
        if isinstance(parent, dict) and group in parent and parent[group] is None:
            parent[group] = body
            return


def _same(a: Any, b: Any) -> bool:
    """Equal, or the same path written with and without `~`."""
    if a == b:
        return True
    return (
        isinstance(a, str) and isinstance(b, str) and os.path.expanduser(a) == os.path.expanduser(b)
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
        if RUAMEL_ERROR is not None:
            return self._fail(
                result,
                "ruamel.yaml is needed on the Ansible controller to edit the inventory "
                f"(pip install ruamel.yaml): {RUAMEL_ERROR}",
            )
        # Plain strings: Ansible's tagged ones mean nothing to a YAML file.
        host, group = json.loads(json.dumps([args["host"], args["group"]]))
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
            current = _inventory_yaml().load(vars_before) if vars_before.strip() else None
        except (OSError, UnicodeDecodeError, ValueError, YAMLError) as error:
            return self._fail(result, f"cannot edit the inventory {path}: {error}")
        current = json.loads(json.dumps(current)) if isinstance(current, dict) else {}
        wanted = json.loads(json.dumps(args["host_vars"]))
        try:
            given = self._inventory_values(path, host, group)
        except Exception as error:  # the inventory is the user's: say what Ansible says
            return self._fail(result, f"cannot read the inventory {path}: {error}")
        for key, value in wanted.items():  # ~/x and /home/me/x are one file
            if key in current and _same(current[key], value):
                current[key] = value
            if key in given and _same(given[key], value):
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

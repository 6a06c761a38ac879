# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Action plugin for haw.icc.record_host_vars: write a choice into a host's host_vars file.

The file is also edited by people: it is read and written as a YAML round trip (ruamel.yaml),
so comments, order, quoting and every other key stay as they were, and only the variables that
change are touched. It runs on the controller, where the inventory lives.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from ansible.utils.vars import load_extra_vars
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import (
    JSON,
    ControllerAction,
)

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.representer import RoundTripRepresenter
except ImportError as error:  # reported as a task failure
    RUAMEL_ERROR: ImportError | None = error
else:
    RUAMEL_ERROR = None

    class _HostVarsRepresenter(RoundTripRepresenter):
        """`key: null` spelled out, on a class of its own: registering it on ruamel's shared
        representer would change every other round trip in the same process."""

    _HostVarsRepresenter.add_representer(
        type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "null")
    )

NEW_FILE_HEADER = (
    "---\n# Variables of this namespace; haw.icc records model and GPU choices here.\n"
)


def ruamel_problem(edits: str) -> str | None:
    """Why the controller cannot edit `edits` (ruamel.yaml is missing), or None."""
    if RUAMEL_ERROR is None:
        return None
    return (
        f"ruamel.yaml is needed on the Ansible controller to edit {edits} "
        f"(pip install ruamel.yaml): {RUAMEL_ERROR}"
    )


def _yaml() -> Any:
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long model id onto two lines
    yaml.Representer = _HostVarsRepresenter
    return yaml


def default_record_file(inventory_dir: str | None, host: str | None) -> Path | None:
    """Where Ansible reads the host's own variables beside its inventory: an existing
    host_vars/<host>.yml or .yaml, a file of its own in a host_vars/<host>/ folder, else a new
    host_vars/<host>.yml. None without an inventory directory."""
    if not inventory_dir or not host:
        return None
    base = Path(inventory_dir) / "host_vars" / host
    if base.is_dir():
        return base / "haw_icc.yml"
    for candidate in (base.with_name(f"{host}.yml"), base.with_name(f"{host}.yaml")):
        if candidate.exists():
            return candidate
    return base.with_name(f"{host}.yml")


def recorded_text(text: str, changes: dict[str, Any]) -> str:
    """`text` (a host_vars file, possibly empty) with `changes` set; the rest kept as it was."""
    yaml = _yaml()
    data = yaml.load(text) if text.strip() else None
    if data is None:  # empty, or comments only: keep them and add the keys below
        block = io.StringIO()
        yaml.dump(CommentedMap(changes), block)
        prefix = text if text.strip() else NEW_FILE_HEADER
        return prefix + ("" if prefix.endswith("\n") else "\n") + block.getvalue()
    if not isinstance(data, dict):
        raise ValueError("it does not hold a mapping of variables")
    for key, value in changes.items():
        data[key] = value
    yaml.explicit_start = text.lstrip().startswith("---")
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()


def replace_text(path: Path, text: str) -> None:
    """Writes `text` to `path` in one step (beside it, then renamed), keeping its mode: never a
    half-written inventory file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.haw-icc")
    partial.write_text(text, encoding="utf-8")
    if path.exists():
        os.chmod(partial, path.stat().st_mode & 0o7777)
    os.replace(partial, path)


def changes_to_record(
    current: dict[str, Any],
    record: dict[str, Any],
    record_if_given: dict[str, Any],
    given: set[str],
    inventory: dict[str, Any],
) -> dict[str, Any]:
    """The variables to write: those of `record`, and those of `record_if_given` typed on the
    command line (`given`), each only when the file disagrees, or lacks it while the rest of the
    inventory disagrees. (`inventory` holds the host's variables, which include what was typed
    on the command line: a typed variable is compared with the file alone.)"""
    wanted = dict(record)
    wanted.update({key: value for key, value in record_if_given.items() if key in given})
    changes = {}
    for key, value in wanted.items():
        if key in current:
            if current[key] != value:
                changes[key] = value
        elif key in given or inventory.get(key) != value:
            changes[key] = value
    return changes


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
            current = _yaml().load(before) if before.strip() else None
        except (OSError, UnicodeDecodeError, YAMLError) as error:
            return self._fail(result, f"cannot read {path}: {error}")
        current = current if isinstance(current, dict) else {}
        host = task_vars.get("inventory_hostname")
        # What the inventory gives without this file's say: the host's variables (not the play's).
        host_vars = (task_vars.get("hostvars") or {}).get(host) or {}
        # Plain types: Ansible's tagged strings and numbers mean nothing to a YAML file.
        record, record_if_given = json.loads(json.dumps([args["record"], args["record_if_given"]]))
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

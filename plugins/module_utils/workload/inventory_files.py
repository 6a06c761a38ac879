# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The inventory files people also edit, read and written as YAML round trips (ruamel.yaml), so
comments, order, quoting and every other key stay as they were: a host's host_vars file
(record_host_vars writes choices into it) and the inventory that lists the namespaces
(inventory_host adds one). Files are replaced in one step, never half-written.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import Any

try:
    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap
    from ruamel.yaml.error import YAMLError
    from ruamel.yaml.representer import RoundTripRepresenter
except ImportError as error:  # reported as a task failure
    RUAMEL_ERROR: ImportError | None = error
    YAMLError = ValueError
else:
    RUAMEL_ERROR = None

    class _HostVarsRepresenter(RoundTripRepresenter):
        """`key: null` spelled out, on a class of its own: registering it on ruamel's shared
        representer would change every other round trip in the same process."""

    _HostVarsRepresenter.add_representer(
        type(None), lambda dumper, _: dumper.represent_scalar("tag:yaml.org,2002:null", "null")
    )

    class _InventoryRepresenter(RoundTripRepresenter):
        """Hosts without variables stay `host:` (not `host: null`), as people write them."""

    _InventoryRepresenter.add_representer(type(None), RoundTripRepresenter.represent_none)

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


def host_vars_yaml() -> Any:
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
    yaml = host_vars_yaml()
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


def inventory_yaml() -> Any:
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
    yaml = inventory_yaml()
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


def same_value(a: Any, b: Any) -> bool:
    """Equal, or the same path written with and without `~`."""
    if a == b:
        return True
    return (
        isinstance(a, str) and isinstance(b, str) and os.path.expanduser(a) == os.path.expanduser(b)
    )

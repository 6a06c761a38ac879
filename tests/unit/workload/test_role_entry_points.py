"""Roles own their variables: playbooks call them through documented entry points and read
only what the roles give back.

- every `tasks_from` a playbook or role uses has its own argument spec (ansible-doc shows it);
- no internal name of a role (`__tgi*`, `__open_webui*`, `__gpu_scale*`) is read outside it;
- no role includes a task file of a playbook, or one named by a variable;
- what a role gives back (the names in its vars/main.yml without `__`) is documented in its
  argument spec.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
ROLES = sorted(path.name for path in (ROOT / "roles").iterdir() if path.is_dir())
INTERNAL = {"tgi_server": "__tgi", "open_webui": "__open_webui", "gpu_scale": "__gpu_scale"}
ROLE_CALLS = ("ansible.builtin.include_role", "ansible.builtin.import_role")
TASK_FILES = ("ansible.builtin.include_tasks", "ansible.builtin.import_tasks")


def yaml_files() -> list[Path]:
    return sorted(
        path
        for folder in ("playbooks", "roles", "molecule")
        for path in (ROOT / folder).rglob("*.yml")
        if "collections" not in path.parts
    )


def tasks(document: Any):
    """Every mapping at any depth (tasks, blocks, plays)."""
    if isinstance(document, dict):
        yield document
        for value in document.values():
            yield from tasks(value)
    elif isinstance(document, list):
        for value in document:
            yield from tasks(value)


def owner(path: Path) -> str | None:
    """The role a file belongs to, None for playbooks and molecule."""
    parts = path.relative_to(ROOT).parts
    return parts[1] if parts[0] == "roles" else None


def entry_points(role: str) -> set[str]:
    specs = yaml.safe_load((ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text())
    return set(specs["argument_specs"])


def role_calls() -> list[tuple[Path, str, str]]:
    found = []
    for path in yaml_files():
        for task in tasks(yaml.safe_load(path.read_text())):
            for key in ROLE_CALLS:
                if isinstance(task.get(key), dict):
                    call = task[key]
                    role = call["name"].split(".")[-1]
                    found.append((path, role, call.get("tasks_from", "main")))
    return found


def test_every_entry_point_used_has_an_argument_spec():
    calls = role_calls()
    assert {(role, entry) for _, role, entry in calls} >= {
        ("tgi_server", "validate"),
        ("open_webui", "apply"),
        ("gpu_scale", "validate"),
    }
    undocumented = sorted(
        f"{path.relative_to(ROOT)}: {role} {entry}"
        for path, role, entry in calls
        if entry not in entry_points(role)
    )
    assert undocumented == []


def internal_reads() -> list[str]:
    """Every use of a role's internal name outside that role: '<file>: <name>'."""
    pattern = re.compile(r"__(?:tgi|open_webui|gpu_scale)\w*")
    found = []
    for path in yaml_files() + sorted((ROOT / "roles").rglob("*.j2")):
        for name in pattern.findall(path.read_text()):
            role = next(role for role, prefix in INTERNAL.items() if name.startswith(prefix))
            if owner(path) != role:
                found.append(f"{path.relative_to(ROOT)}: {name}")
    return found


def test_no_internal_name_of_a_role_is_read_outside_it():
    assert internal_reads() == []


def test_no_role_includes_a_task_file_of_a_playbook_or_one_named_by_a_variable():
    found = []
    for path in yaml_files():
        if owner(path) is None:
            continue
        for task in tasks(yaml.safe_load(path.read_text())):
            for key in TASK_FILES:
                target = task.get(key)
                if isinstance(target, dict):
                    target = target.get("file")
                if target is None:
                    continue
                inside = (path.parent / str(target)).resolve()
                if "{{" in str(target) or ROOT / "roles" / owner(path) not in inside.parents:
                    found.append(f"{path.relative_to(ROOT)}: {target}")
    assert found == []


@pytest.mark.parametrize("role", ROLES)
def test_what_a_role_gives_back_is_documented_in_its_argument_spec(role):
    role_vars = yaml.safe_load((ROOT / "roles" / role / "vars" / "main.yml").read_text()) or {}
    spec = (ROOT / "roles" / role / "meta" / "argument_specs.yml").read_text()
    outputs = [name for name in role_vars if not name.startswith("__")]
    assert [name for name in outputs if f"C({name})" not in spec] == []

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The variables the collection reads, and the ones a user set that it does not know.

To Ansible a mistyped variable (`-e tgi_gpu_cout=2`, `tgi_modle_id:` in host_vars) is no
error: nothing reads it, and the run goes on with the default. The first check of every
playbook compares the names the play sees that carry one of the collection's prefixes with the
names it knows, and warns about the others, naming the closest known one.

The known names are not listed here a second time; each owner declares its own:
- the roles: every option of every entry point of their meta/argument_specs.yml, and their
  outputs, the names in their vars/main.yml that are not internal (`role_outputs`);
- the playbooks: the `options:` of their haw.icc.role_settings tasks, read from the playbook
  and task files themselves (`role_settings_options`);
- READ_DIRECTLY below: the few that playbooks read without typing them first.

Pure Python: the caller reads the files and hands the parsed YAML in.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

PREFIXES = ("tgi_", "open_webui_", "gpu_scale_", "icc_")
ROLE_SETTINGS = "haw.icc.role_settings"
# How alike a known name must be to be suggested (difflib's ratio): tgi_gpu_cout and
# tgi_gpu_count score 0.96, tgi_modle_id and tgi_model_id 0.92.
SUGGESTION_CUTOFF = 0.75

# Variables that playbooks read directly, without an argument spec or role_settings options:
# name -> who reads it. Keep in step with the playbooks (tests/unit/test_known_variables.py
# fails on a variable read in playbooks/ or roles/ that is known nowhere).
READ_DIRECTLY: dict[str, str] = {
    "icc_kubeconfig": "every playbook (module_defaults): the kubeconfig to connect with",
    "icc_context": "every playbook (module_defaults): the kubeconfig's context",
    "icc_create_namespace": "deploy.yml: create the namespace when it is missing",
    "icc_wait_timeout": "deploy.yml, change_model.yml, scale.yml: seconds to wait for a rollout",
    "icc_record_model": "change_model.yml, scale.yml: record the choice in host_vars",
    "icc_model_record_file": "change_model.yml, scale.yml: the host_vars file to record it in",
    "icc_secret_versions": "render.yml: the Secrets' versions the rendered pods carry",
    "tgi_model": "change_model.yml: the new model (deprecated: tgi_model_id)",
    "tgi_revision": "change_model.yml: the new model's revision (deprecated: tgi_model_revision)",
    "icc_login": "login.yml: the login the namespace is named after",
    "icc_login_kubeconfig": "login.yml: the downloaded kubeconfig",
    "icc_login_context": "login.yml: the context of the downloaded kubeconfig",
    "icc_login_dest": "login.yml: the kubeconfig to install into",
    "icc_login_use_context": "login.yml: make the context the current one",
    "icc_login_inventory": "login.yml: the inventory to add the namespace to",
    "icc_login_group": "login.yml: the inventory group of a new host",
}


# Names users know from before, that still work: old name -> the name that replaces it.
DEPRECATED: dict[str, str] = {
    "tgi_model": "tgi_model_id",
    "tgi_revision": "tgi_model_revision",
    "purge": "icc_cleanup_purge",
}


def role_outputs(role_vars: Any) -> set[str]:
    """What a role gives the playbooks: the names of its parsed vars/main.yml that are not
    internal (internal ones start with `__`)."""
    if not isinstance(role_vars, Mapping):
        return set()
    return {str(name) for name in role_vars if not str(name).startswith("__")}


def spec_options(argument_specs: Any) -> set[str]:
    """Every option name of every entry point of a role's parsed meta/argument_specs.yml."""
    specs = argument_specs.get("argument_specs") if isinstance(argument_specs, Mapping) else None
    names: set[str] = set()
    for entry_point in (specs or {}).values():
        if isinstance(entry_point, Mapping) and isinstance(entry_point.get("options"), Mapping):
            names.update(str(name) for name in entry_point["options"])
    return names


def role_settings_options(document: Any) -> set[str]:
    """The option names of every haw.icc.role_settings task with `options:` in a parsed
    playbook or task file, at any depth (plays, blocks, rescue, always)."""
    names: set[str] = set()
    if isinstance(document, Mapping):
        task = document.get(ROLE_SETTINGS)
        if isinstance(task, Mapping) and isinstance(task.get("options"), Mapping):
            names.update(str(name) for name in task["options"])
        children: Iterable[Any] = document.values()
    elif isinstance(document, list):
        children = document
    else:
        return names
    for child in children:
        names |= role_settings_options(child)
    return names


def is_checked(name: Any) -> bool:
    """Whether a variable name is one of the collection's (internal `__` names are not)."""
    return isinstance(name, str) and name.startswith(PREFIXES)


def unknown_variables(names: Iterable[Any], known: Collection[str]) -> list[tuple[str, str | None]]:
    """(name, the closest known name or None) for each of the collection's names not known,
    sorted."""
    candidates = sorted(known)
    return [
        (name, next(iter(difflib.get_close_matches(name, candidates, 1, SUGGESTION_CUTOFF)), None))
        for name in sorted({name for name in names if is_checked(name)} - set(known))
    ]


def deprecated_variable_warnings(
    names: Iterable[Any], given_with_e: Collection[str] = ()
) -> list[str]:
    """One line per variable set under a name that was replaced (DEPRECATED): it still works."""
    lines = []
    for name in sorted(set(DEPRECATED) & {str(name) for name in names}):
        source = "-e" if name in given_with_e else "the inventory or the playbook"
        lines.append(
            f"{name} (from {source}) is deprecated and will be removed: use {DEPRECATED[name]} "
            f"(-e {DEPRECATED[name]}=...) instead; {name} still works for now"
        )
    return lines


def unknown_variable_warnings(
    names: Iterable[Any], known: Collection[str], given_with_e: Collection[str] = ()
) -> list[str]:
    """One line per unknown variable, saying where it came from as far as it can be told
    (extra vars apart from everything else) and the closest known name."""
    lines = []
    for name, closest in unknown_variables(names, known):
        source = "-e" if name in given_with_e else "the inventory or the playbook"
        hint = f"did you mean {closest}?" if closest else "haw.icc has no variable of a like name"
        lines.append(f"unknown variable {name} (from {source}), ignored: {hint}")
    return lines

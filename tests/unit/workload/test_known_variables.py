"""Unknown variables: a typo is named with the closest known variable (issue 17).

The known set is what the action plugin haw.icc.role_settings reads from the collection (the
roles' argument specs, the playbooks' role_settings options, module_utils' READ_DIRECTLY). What
it must contain is taken from elsewhere: every name that the playbooks, roles and templates
read, the example inventories and README.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from ansible_collections.haw.icc.plugins.action.role_settings import known_variables
from ansible_collections.haw.icc.plugins.module_utils.workload.known_variables import (
    deprecated_variable_warnings,
    role_outputs,
    role_settings_options,
    spec_options,
    unknown_variable_warnings,
    unknown_variables,
)

ROOT = Path(__file__).resolve().parents[3]
# A name with one of the collection's prefixes that is not part of a longer word, a dotted name
# (haw.icc.tgi_workload), a path, or a call (a filter or function).
NAME = re.compile(r"(?<![\w.\-/])((?:tgi|open_webui|gpu_scale|icc)_[a-z0-9_]*[a-z0-9])(?![\w(])")
# Where the collection reads variables: YAML values (keys name what is set, or options).
READ_IN = (
    "playbooks/*.yml",
    "playbooks/tasks/*.yml",
    "playbooks/vars/*.yml",
    "roles/*/tasks/*.yml",
    "roles/*/vars/*.yml",
    "roles/*/defaults/*.yml",
)


def strings(document):
    if isinstance(document, dict):
        for value in document.values():
            yield from strings(value)
    elif isinstance(document, list):
        for value in document:
            yield from strings(value)
    elif isinstance(document, str):
        yield document


def names_read_by_the_collection() -> dict[str, set[str]]:
    """name -> the files that mention it in a value or a template."""
    found: dict[str, set[str]] = {}
    for pattern in READ_IN:
        for path in ROOT.glob(pattern):
            for text in strings(yaml.safe_load(path.read_text())):
                for name in NAME.findall(text):
                    found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    for path in ROOT.glob("roles/*/templates/*"):
        for name in NAME.findall(path.read_text()):
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def collection_object_names() -> set[str]:
    """Names of the collection's roles, plugins and module_utils: not variables."""
    names = {path.name for path in (ROOT / "roles").iterdir()}
    names |= {path.stem for path in ROOT.glob("plugins/**/*.py")}
    names |= {path.stem for path in ROOT.glob("plugins/filter/*.yml")}
    return names


def test_every_variable_the_playbooks_roles_and_templates_read_is_known():
    found = names_read_by_the_collection()
    # The scan sees what it must: a variable of each kind of owner.
    assert {"tgi_gpu_count", "open_webui_name", "icc_kubeconfig", "icc_wait_timeout"} <= set(found)
    unknown = {
        name: sorted(files)
        for name, files in found.items()
        if name not in known_variables() and name not in collection_object_names()
    }
    assert unknown == {}


def test_the_playbooks_own_options_are_known_from_the_playbooks():
    # Declared in the playbooks' haw.icc.role_settings tasks (see each playbook's header).
    declared_there = {
        "icc_logs_tail": "playbooks/logs.yml",
        "icc_monitor_samples": "playbooks/monitor.yml",
        "icc_status_file": "playbooks/status.yml",
        "icc_test_tgi_url": "playbooks/test.yml",
        "icc_port_forward_dir": "playbooks/access.yml",
        "icc_lease_wait": "playbooks/tasks/hold_namespace.yml",
    }
    for name, path in declared_there.items():
        assert name in role_settings_options(yaml.safe_load((ROOT / path).read_text())), name
        assert name in known_variables(), name
    # and every entry point of the roles' argument specs, gpu_scale's included
    assert "gpu_scale_allow_cpu" in known_variables()


def test_role_settings_options_are_found_at_any_depth():
    play = [
        {
            "hosts": "all",
            "tasks": [
                {
                    "block": [
                        {"haw.icc.role_settings": {"options": {"icc_a_b": {"type": "int"}}}},
                    ],
                    "rescue": [{"haw.icc.role_settings": {"role": "tgi_server"}}],
                    "always": [{"ansible.builtin.debug": {"options": {"icc_not_this": {}}}}],
                }
            ],
        }
    ]
    assert role_settings_options(play) == {"icc_a_b"}
    specs = {"argument_specs": {"main": {"options": {"x_y": {}}}, "other": {"options": {"z": {}}}}}
    assert spec_options(specs) == {"x_y", "z"}


def test_the_example_inventories_set_only_known_variables():
    lines = []
    for path in sorted(ROOT.glob("inventories/*/*_vars/*.yml")):
        lines += path.read_text().splitlines()
    # The commented examples too ("# tgi_ignore_rules: [multi-gpu-mode]").
    keys = {match[1] for line in lines if (match := re.match(r"^#?\s*([a-z_0-9]+):", line))}
    assert {"tgi_model_id", "icc_hub_lookup", "tgi_ignore_rules", "icc_context"} <= keys
    assert unknown_variables(keys, known_variables()) == []


def test_readme_names_only_known_variables():
    mentioned = set(NAME.findall((ROOT / "README.md").read_text()))
    assert {"tgi_gpu_count", "icc_test_tgi_url", "gpu_scale_allow_cpu"} <= mentioned
    # icc_sandbox is the sandbox's Python package (python -m icc_sandbox); README shows the
    # warning about two typos.
    others = collection_object_names() | {"icc_sandbox", "tgi_gpu_cout", "tgi_modle_id"}
    assert unknown_variables(mentioned - others, known_variables()) == []


def test_a_typo_is_named_with_the_closest_known_variable():
    seen = ["tgi_gpu_cout", "tgi_modle_id", "tgi_model_id", "inventory_hostname", "__tgi"]
    assert unknown_variable_warnings(seen, known_variables(), given_with_e={"tgi_gpu_cout"}) == [
        "unknown variable tgi_gpu_cout (from -e), ignored: did you mean tgi_gpu_count?",
        "unknown variable tgi_modle_id (from the inventory or the playbook), ignored: did you "
        "mean tgi_model_id?",
    ]


def test_a_name_like_no_known_one_gets_no_guess():
    assert unknown_variables(["icc_zzz", "open_webui_qqq_rrr"], known_variables()) == [
        ("icc_zzz", None),
        ("open_webui_qqq_rrr", None),
    ]
    assert unknown_variable_warnings(["icc_zzz"], known_variables()) == [
        "unknown variable icc_zzz (from the inventory or the playbook), ignored: haw.icc has no "
        "variable of a like name"
    ]


def test_only_the_collection_s_prefixes_are_checked():
    foreign = ["ansible_host", "purge", "__tgi_settings", "tgi", "icc", "my_tgi_thing", 42]
    assert unknown_variables(foreign, known_variables()) == []


def test_what_the_roles_give_back_is_known_and_no_typo_of_it_is():
    # The roles' outputs (vars/main.yml names without __) are read by the playbooks.
    outputs = {"tgi_server_settings", "open_webui_settings", "tgi_server_summary"}
    assert outputs <= known_variables()
    assert role_outputs({"tgi_server_settings": "x", "__tgi": "y"}) == {"tgi_server_settings"}
    assert unknown_variables(["tgi_server_setings"], known_variables()) == [
        ("tgi_server_setings", "tgi_server_settings")
    ]


def test_an_old_name_still_works_and_says_which_replaces_it():
    # README's commands before issue 18: -e tgi_model= (change_model.yml), -e purge=true.
    seen = ["tgi_model", "purge", "tgi_model_id", "icc_cleanup_purge"]
    assert deprecated_variable_warnings(seen, given_with_e={"tgi_model", "purge"}) == [
        "purge (from -e) is deprecated and will be removed: use icc_cleanup_purge "
        "(-e icc_cleanup_purge=...) instead; purge still works for now",
        "tgi_model (from -e) is deprecated and will be removed: use tgi_model_id "
        "(-e tgi_model_id=...) instead; tgi_model still works for now",
    ]
    assert deprecated_variable_warnings(["tgi_model_id", "icc_cleanup_purge"]) == []
    # still known: no "unknown variable" warning on top
    assert unknown_variables(["tgi_model", "tgi_revision"], known_variables()) == []

"""One source for each default: defaults/main.yml, the argument specs and tgi_settings.SETTINGS.

A role's defaults are written where Ansible takes them (defaults/main.yml) and where users read
them (meta/argument_specs.yml, shown by ansible-doc); the TGI settings have a third copy in
Python for the modules called without the role. Nothing generates one from the other, so this
test holds them together: every variable of a defaults file is documented, every documented
default is the file's, and every default in SETTINGS is the role's. A default computed from
other variables ("{{ tgi_name }}-api-key", "{{ tgi_service_port | default(3333) }}") is
compared as it renders with the roles' own defaults, as Ansible renders it in a play.

The same holds across copies elsewhere: a variable in two roles' defaults has one default, a
role's fallback for another role's variable (`tgi_name | default('tgi')`) is that role's
default, and a module option the playbooks feed from a variable (tgi_api_test's
tgi_service_port, deployment_status's open_webui_name, ...) has that variable's default.
The defaults file is the source: Ansible takes the default from it, whatever the spec says.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import SETTINGS
from jinja2.nativetypes import NativeEnvironment

ROLES = Path(__file__).resolve().parents[3] / "roles"
ROLE_NAMES = ("tgi_server", "open_webui", "gpu_scale")
HOST = "wabc123-default"  # the inventory host the defaults are rendered for


def role_defaults(role: str) -> dict[str, Any]:
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()) or {}


def spec_options(role: str) -> dict[str, dict[str, Any]]:
    """Every option of every entry point (they share their definitions through YAML anchors)."""
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    options: dict[str, dict[str, Any]] = {}
    for entry_point in specs["argument_specs"].values():
        options.update(entry_point.get("options") or {})
    return options


def rendered(value: Any, context: dict[str, Any]) -> Any:
    """`value` as a play renders it: templates resolved (nested ones too) to native types."""
    environment = NativeEnvironment()
    for _ in range(5):
        if not (isinstance(value, str) and "{{" in value):
            return value
        value = environment.from_string(value).render(context)
    raise AssertionError(f"{value!r} does not resolve")


CONTEXT: dict[str, Any] = {"inventory_hostname": HOST}
for _role in ROLE_NAMES:
    CONTEXT.update(role_defaults(_role))
CONTEXT = {name: rendered(value, CONTEXT) for name, value in CONTEXT.items()}


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_default_is_a_documented_variable(role):
    undocumented = set(role_defaults(role)) - set(spec_options(role))
    assert undocumented == set()


def differences(defaults: dict[str, Any], options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """name -> (documented, taken) for each option whose documented default is not the one in
    `defaults`; an option documented without a default must be unset there, or computed from
    other variables (its description says from what)."""
    found = {}
    for name, option in options.items():
        documented = rendered(option.get("default"), CONTEXT)
        taken = rendered(defaults.get(name), CONTEXT)
        if "default" in option and documented != taken:
            found[name] = (documented, taken)
        computed = "{{" in str(defaults.get(name))
        if "default" not in option and defaults.get(name) is not None and not computed:
            found[name] = (None, taken)
    return found


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_documented_default_is_the_one_ansible_takes(role):
    assert differences(role_defaults(role), spec_options(role)) == {}


def test_a_default_written_differently_in_one_place_is_found():
    options = spec_options("tgi_server")
    changed = {**role_defaults("tgi_server"), "tgi_gpu_count": 2, "tgi_model_revision": "main"}
    assert differences(changed, options) == {
        "tgi_gpu_count": (1, 2),
        "tgi_model_revision": (None, "main"),
    }
    missing = {k: v for k, v in role_defaults("open_webui").items() if k != "open_webui_name"}
    assert differences(missing, spec_options("open_webui")) == {
        "open_webui_name": ("open-webui", None)
    }


@pytest.mark.parametrize("role", ROLE_NAMES)
def test_every_default_has_the_documented_type(role):
    for name, option in spec_options(role).items():
        if option.get("default") is None:
            continue
        spec = {key: option[key] for key in ("type", "elements", "choices") if key in option}
        value = rendered(option["default"], CONTEXT)
        result = ArgumentSpecValidator({name: spec}).validate({name: value})
        assert not result.errors.errors, (name, value)
        assert result.validated_parameters[name] == value, name


def test_the_python_defaults_of_the_tgi_settings_are_the_role_s():
    # SETTINGS' defaults apply to settings a module gets without the role; None means unset
    # there (TGI's own default), where the role sets one (the token limits, the resources).
    options = spec_options("tgi_server")
    copies = {name: default for name, default in SETTINGS.items() if default is not None}
    assert len(copies) == 8  # the count the issue named: these must stay the role's
    for name, default in copies.items():
        assert options[name].get("default") == default, name
        assert role_defaults("tgi_server")[name] == default, name


# --- a default shared by two roles, or taken by one role from another --------------------------


def test_a_variable_in_two_roles_has_one_default():
    # icc_namespace and icc_render_dir are in both tgi_server's and open_webui's defaults: a
    # play with both roles takes whichever Ansible merges last, so the two must be the same.
    seen: dict[str, dict[str, Any]] = {}
    for role in ROLE_NAMES:
        for name, value in role_defaults(role).items():
            seen.setdefault(name, {})[role] = value
    shared = {name: by_role for name, by_role in seen.items() if len(by_role) > 1}
    assert {"icc_namespace", "icc_render_dir"} <= set(shared)
    for name, by_role in shared.items():
        assert len({repr(value) for value in by_role.values()}) == 1, (name, by_role)


# `{{ tgi_name | default('tgi') }}`: a role's fallback for another role's variable, for a play
# without that role. '' stands for "none" (no model preselected), not for a copy.
FALLBACK = re.compile(r"\{\{\s*(\w+)\s*\|\s*default\((.+?)\)\s*\}\}")


def fallbacks() -> list[tuple[str, str, str, Any]]:
    """(role, its variable, the other role's variable, the fallback) for every fallback."""
    found = []
    for role in ROLE_NAMES:
        for name, value in role_defaults(role).items():
            for variable, fallback in FALLBACK.findall(str(value)):
                owners = [other for other in ROLE_NAMES if variable in role_defaults(other)]
                if owners and role not in owners:
                    found.append((role, name, variable, yaml.safe_load(fallback)))
    return found


def test_a_fallback_for_another_role_s_variable_is_that_role_s_default():
    found = fallbacks()
    # open_webui falls back to TGI's Service, its port, its key's Secret and its model.
    assert {(role, variable) for role, _, variable, _ in found} == {
        ("open_webui", "tgi_name"),
        ("open_webui", "tgi_service_port"),
        ("open_webui", "tgi_api_key_secret"),
        ("open_webui", "tgi_model_id"),
    }
    for role, name, variable, fallback in found:
        if fallback == "":
            continue
        assert fallback == CONTEXT[variable], (role, name, variable)


# --- the defaults of the collection's modules, where a playbook or a role feeds them -----------

REPO = ROLES.parent
MODULES = "ansible_collections.haw.icc.plugins.modules."
# A module argument fed one value: "{{ tgi_server_settings.tgi_name }}"
FED = re.compile(r"\{\{\s*[\w.]+\.(\w+)\s*\}\}")


def mappings() -> list[tuple[Path, dict]]:
    """Every mapping, at any depth (plays, tasks, blocks), of the playbooks and role tasks."""
    found: list[tuple[Path, dict]] = []
    files = sorted(REPO.glob("playbooks/**/*.yml")) + sorted(REPO.glob("roles/*/tasks/*.yml"))
    for path in (path for path in files if "collections" not in path.parts):
        nodes = [yaml.safe_load(path.read_text())]
        while nodes:
            node = nodes.pop()
            if isinstance(node, dict):
                found.append((path, node))
                nodes.extend(node.values())
            elif isinstance(node, list):
                nodes.extend(node)
    return found


def playbook_option_defaults() -> dict[str, Any]:
    """The default of every option of the haw.icc.role_settings tasks with options:."""
    defaults: dict[str, Any] = {}
    for _, node in mappings():
        task = node.get("haw.icc.role_settings")
        if isinstance(task, dict) and isinstance(task.get("options"), dict):
            for name, option in task["options"].items():
                if option.get("default") is not None:
                    defaults[name] = option["default"]
    return defaults


def module_feeds() -> list[tuple[str, str, str, str]]:
    """(file, module, option, the variable fed to it) for every haw.icc module task whose
    argument is one variable's value."""
    feeds = []
    for path, node in mappings():
        for key, args in node.items():
            if str(key).startswith("haw.icc.") and isinstance(args, dict):
                for option, value in args.items():
                    match = FED.fullmatch(str(value).strip())
                    if match:
                        feeds.append((path.name, key[8:], option, match.group(1)))
    return feeds


# A module's default that differs from the playbook's on purpose, and why.
DIFFERENT_ON_PURPOSE = {
    # wait_for_rollout only reads unless asked to wake a sleeping server; test.yml asks by
    # default (icc_test_wake), since a test of a sleeping server tests nothing.
    ("wait_for_rollout", "wake"),
}


def test_a_module_s_default_is_the_one_of_the_variable_that_feeds_it():
    # The modules have defaults of their own, for playbooks of their users; where the
    # collection's playbooks feed an option from a variable with a default, both must agree,
    # or the module documents one default and the playbooks use another.
    variables = {**CONTEXT, **playbook_option_defaults()}
    compared = set()
    for path, module, option, variable in module_feeds():
        spec = importlib.import_module(MODULES + module).ARGUMENT_SPEC[option]
        if spec.get("default") is None or variables.get(variable) is None:
            continue
        if (module, option) in DIFFERENT_ON_PURPOSE:
            assert spec["default"] != variables[variable], (module, option, "now the same")
            continue
        compared.add((module, option))
        assert spec["default"] == variables[variable], (path, module, option, variable)
    # Those fed so: TGI's and Open WebUI's Services, ports and Secret (test.yml, status.yml),
    # and test.yml's own options.
    assert {
        ("tgi_api_test", "tgi_service"),
        ("tgi_api_test", "tgi_service_port"),
        ("tgi_api_test", "tgi_api_key_secret"),
        ("tgi_api_test", "open_webui_service"),
        ("tgi_api_test", "open_webui_service_port"),
        ("tgi_api_test", "prompt"),
        ("tgi_api_test", "max_tokens"),
        ("deployment_status", "tgi_name"),
        ("deployment_status", "open_webui_name"),
    } <= compared


def test_the_grace_of_a_scale_is_the_one_of_a_switch():
    # gpu_scale hands gpu_scale_unschedulable_grace to the switch (tgi_switch_unschedulable_grace);
    # change_model.yml leaves it unset, so the module's own default applies: one grace for both.
    spec = importlib.import_module(MODULES + "tgi_model_switch").ARGUMENT_SPEC
    assert spec["unschedulable_grace"]["default"] == CONTEXT["gpu_scale_unschedulable_grace"]


# --- spot check, by hand: what README tells users ----------------------------------------------


def test_the_defaults_readme_names():
    # README: access.yml forwards "TGI (3333) and Open WebUI (8080)"; a deploy's summary line
    # reads "ok wabc123-default: Qwen/Qwen2.5-1.5B-Instruct ready"; a V100 is gpu-tesla-v100.
    readme = " ".join((REPO / "README.md").read_text().split())  # as read, not as wrapped
    assert "TGI (3333) and Open WebUI (8080)" in readme
    assert '"ok wabc123-default: Qwen/Qwen2.5-1.5B-Instruct ready"' in readme
    assert CONTEXT["tgi_service_port"] == 3333
    assert CONTEXT["open_webui_service_port"] == 8080
    assert CONTEXT["tgi_model_id"] == "Qwen/Qwen2.5-1.5B-Instruct"
    assert CONTEXT["tgi_gpu_type"] == "gpu-tesla-v100"
    assert CONTEXT["tgi_gpu_count"] == 1

"""One source for each default: defaults/main.yml, the argument specs and tgi_settings.SETTINGS.

A role's defaults are written where Ansible takes them (defaults/main.yml) and where users read
them (meta/argument_specs.yml, shown by ansible-doc); the TGI settings have a third copy in
Python for the modules called without the role. Nothing generates one from the other, so this
test holds them together: every variable of a defaults file is documented, every documented
default is the file's, and every default in SETTINGS is the role's. A default computed from
other variables ("{{ tgi_name }}-api-key", "{{ tgi_service_port | default(3333) }}") is
compared as it renders with the roles' own defaults, as Ansible renders it in a play.
"""

from __future__ import annotations

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

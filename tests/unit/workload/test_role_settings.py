"""Role variables typed with Ansible's converters, then checked by kind (role_settings).

The specs are the roles' real meta/argument_specs.yml and the values start from their real
defaults, as the action plugin sees them after templating.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.haw.icc.plugins.module_utils.workload.role_settings import (
    playbook_settings,
    role_settings,
    role_warnings,
    typed_variables,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import (
    CHECKED,
    is_sealed,
)

ROLES = Path(__file__).resolve().parents[3] / "roles"


def options(role: str) -> dict:
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    return specs["argument_specs"]["main"]["options"]


def defaults(role: str, **overrides) -> dict:
    values = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
    # What the templates in the defaults give for the inventory host "wabc123-default".
    values.update(
        icc_namespace="wabc123-default",
        tgi_api_key_secret="tgi-api-key",
        tgi_hf_token_secret="tgi-hf-token",
        open_webui_tgi_service="tgi",
        open_webui_tgi_service_port=3333,
        open_webui_tgi_api_key_secret="tgi-api-key",
        open_webui_default_model="Qwen/Qwen2.5-1.5B-Instruct",
        open_webui_secret_key_secret="open-webui-secret-key",
        open_webui_admin_password_secret="open-webui-admin",
    )
    return {name: value for name, value in {**values, **overrides}.items() if name in options(role)}


# What a user types after -e, and what the role then sees.
ACCEPTED = [
    ("tgi_server", "tgi_gpu_count", "2", 2),
    ("tgi_server", "tgi_gpu_count", "0", 0),
    ("tgi_server", "tgi_max_total_tokens", "3000", 3000),
    ("tgi_server", "tgi_cuda_memory_fraction", "0.85", 0.85),
    ("tgi_server", "tgi_cuda_memory_fraction", "1", 1.0),
    ("tgi_server", "tgi_ingress_enabled", "false", False),
    ("tgi_server", "tgi_network_policy_enabled", "no", False),
    ("tgi_server", "icc_hub_lookup", "yes", True),
    ("tgi_server", "tgi_service_port", "8000", 8000),
    ("tgi_server", "tgi_ignore_rules", "model-fits", ["model-fits"]),
    ("open_webui", "open_webui_enable_signup", "true", True),
    ("open_webui", "open_webui_offline", "true", True),
    ("open_webui", "open_webui_follow_up_generation", "yes", True),
    ("open_webui", "open_webui_tags_generation", "false", False),
    ("open_webui", "open_webui_service_port", "9090", 9090),
]


@pytest.mark.parametrize(("role", "name", "typed", "expected"), ACCEPTED)
def test_command_line_strings_become_the_types_the_role_declares(role, name, typed, expected):
    settings, errors = role_settings(role, options(role), defaults(role, **{name: typed}))
    assert errors == []
    assert settings[name] == expected
    assert type(settings[name]) is type(expected)


REFUSED = [
    ("tgi_gpu_count", "two", "tgi_gpu_count: 'two' is not an integer"),
    ("tgi_gpu_count", "1.5", "tgi_gpu_count: '1.5' is not an integer"),
    ("tgi_cuda_memory_fraction", "most", "tgi_cuda_memory_fraction: 'most' is not a number"),
    ("tgi_ingress_enabled", "maybe", "tgi_ingress_enabled: 'maybe' is not true or false"),
    ("tgi_dtype", "float32", "tgi_dtype: 'float32' is not allowed: one of float16, bfloat16"),
]


@pytest.mark.parametrize(("name", "typed", "message"), REFUSED)
def test_what_ansible_cannot_convert_is_refused_in_one_line_naming_the_variable(
    name, typed, message
):
    _settings, errors = role_settings(
        "tgi_server", options("tgi_server"), defaults("tgi_server", **{name: typed})
    )
    assert errors == [message] or errors[0].startswith(message), errors
    assert all("\n" not in error and len(error) < 400 for error in errors)


def test_every_problem_is_reported_at_once():
    bad = defaults(
        "tgi_server",
        tgi_gpu_count="two",
        tgi_service_port="70000",
        tgi_ingress_enabled="true",
        tgi_ingress_host="my host",
        tgi_model_id="Qwen/Qwen2.5-1.5B-Instruct\n",
        tgi_memory_request="64Gi",
        tgi_cache_size="50GB",
        tgi_startup_timeout_seconds="5",
    )
    _settings, errors = role_settings("tgi_server", options("tgi_server"), bad)
    named = [error.split(" ", 1)[0].rstrip(":") for error in errors]
    assert named == [
        "tgi_gpu_count",
        "tgi_model_id",
        "tgi_memory_request",  # the TGI pod's settings first (tgi_settings), then the role's
        "tgi_service_port",
        "tgi_ingress_host",
        "tgi_cache_size",
        "tgi_startup_timeout_seconds",
    ]


def test_secret_values_are_neither_quoted_nor_returned():
    key = "two words\nand a line"
    settings, errors = role_settings(
        "tgi_server", options("tgi_server"), defaults("tgi_server", tgi_api_key=key)
    )
    assert errors == [
        "tgi_api_key: its value is not allowed: a non-empty key or token of printable "
        "characters without spaces or line breaks"
    ]
    assert "tgi_api_key" not in settings and "tgi_hf_token" not in settings
    good, errors = role_settings(
        "open_webui",
        options("open_webui"),
        defaults(
            "open_webui",
            open_webui_admin_email="admin@example.org",
            open_webui_admin_password="correct horse",
        ),
    )
    assert errors == []
    assert "open_webui_admin_password" not in good


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"open_webui_admin_email": "admin@example.org"}, "open_webui_admin_password: required"),
        (
            {"open_webui_admin_email": "not an address", "open_webui_admin_password": "x"},
            "open_webui_admin_email: 'not an address' is not an e-mail",
        ),
        ({"open_webui_ingress_enabled": True}, "open_webui_ingress_host: required when"),
        ({"open_webui_extra_env": {"A": 1}}, "open_webui_extra_env: the values of A are not"),
        ({"open_webui_extra_env": {"1A": "x"}}, "open_webui_extra_env: '1A' is not an environment"),
        (
            {"open_webui_ingress_annotations": {"bad key!": "x"}},
            "open_webui_ingress_annotations: 'bad key!' is not an",
        ),
        ({"open_webui_name": "1webui"}, "open_webui_name: '1webui' is not allowed: a DNS-1035"),
        ({"open_webui_memory_request": "8Gi"}, "open_webui_memory_request (8Gi) is more than"),
    ],
)
def test_open_webui_rules(overrides, message):
    _settings, errors = role_settings(
        "open_webui", options("open_webui"), defaults("open_webui", **overrides)
    )
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_unset_options_are_none_and_a_missing_required_one_is_named():
    typed, errors = typed_variables(
        {"a": {"type": "int"}, "b": {"type": "str", "required": True}}, {}
    )
    assert typed == {"a": None, "b": None}
    assert errors == ["b is required"]


# --- a playbook's own options -------------------------------------------------------------------

PLAYBOOK_OPTIONS = {
    "icc_logs_app": {"type": "str", "choices": ["tgi", "both"], "default": "both"},
    "icc_logs_tail": {"type": "int", "default": 200, "minimum": 1},
    "icc_logs_since": {"type": "str", "kind": "duration"},
    "icc_logs_previous": {"type": "bool", "default": False},
}


def test_playbook_options_typed_from_strings_with_defaults_for_the_unset():
    typed, errors = playbook_settings(
        PLAYBOOK_OPTIONS, {"icc_logs_tail": "50", "icc_logs_previous": "yes"}
    )
    assert errors == []
    assert typed == {
        "icc_logs_app": "both",
        "icc_logs_tail": 50,
        "icc_logs_since": None,
        "icc_logs_previous": True,
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"icc_logs_tail": "x"}, "icc_logs_tail: 'x' is not an integer"),
        ({"icc_logs_tail": "0"}, "icc_logs_tail: '0' is not allowed: at least 1"),
        ({"icc_logs_app": "db"}, "icc_logs_app: 'db' is not allowed: one of tgi, both"),
        (
            {"icc_logs_since": "soon"},
            "icc_logs_since: 'soon' is not allowed: a duration such as 90s, 15m, 2h or 1h30m",
        ),
        (
            {"icc_logs_previous": "maybe"},
            "icc_logs_previous: 'maybe' is not true or false (yes/no, on/off and 1/0 work too)",
        ),
    ],
)
def test_a_bad_playbook_option_gets_one_line_naming_it(values, message):
    _typed, errors = playbook_settings(PLAYBOOK_OPTIONS, values)
    assert errors == [message]


# A given key shorter than 16 characters is refused, never quoted (issue 17); the generated
# ones have 48 (haw.icc.keep_secrets' default length).
SHORT_KEYS = [
    ("tgi_server", "tgi_api_key", "x"),
    ("tgi_server", "tgi_api_key", "fifteen-chars-k"),
    ("open_webui", "open_webui_secret_key", "session"),
]


@pytest.mark.parametrize(("role", "name", "key"), SHORT_KEYS)
def test_a_short_key_is_refused_naming_the_minimum_not_the_value(role, name, key):
    settings, errors = role_settings(role, options(role), defaults(role, **{name: key}))
    assert errors == [
        f"{name}: its value is not allowed: a key of at least 16 characters (a short one is "
        "guessed); leave it unset and a long one is generated"
    ]
    assert key not in errors[0] and name not in settings


@pytest.mark.parametrize("key", ["sixteen-chars-ok", "A" * 48])
def test_keys_of_16_characters_and_more_are_accepted(key):
    for role, name in (("tgi_server", "tgi_api_key"), ("open_webui", "open_webui_secret_key")):
        _settings, errors = role_settings(role, options(role), defaults(role, **{name: key}))
        assert errors == [], (name, errors)


def test_a_password_and_the_hub_token_keep_their_own_rules():
    # Open WebUI's admin password is a person's (Open WebUI's rules apply); the Hugging Face
    # token is issued by the Hub: neither gets the key minimum.
    _settings, errors = role_settings(
        "open_webui",
        options("open_webui"),
        defaults(
            "open_webui", open_webui_admin_email="a@example.org", open_webui_admin_password="pw"
        ),
    )
    assert errors == []
    _settings, errors = role_settings(
        "tgi_server", options("tgi_server"), defaults("tgi_server", tgi_hf_token="hf_short")
    )
    assert errors == []


# --- issue 18: the TGI settings checked once, warnings, the scale's CPU rule ------------------


def test_the_typed_tgi_settings_carry_the_digest_of_their_check():
    settings, errors = role_settings("tgi_server", options("tgi_server"), defaults("tgi_server"))
    assert errors == []
    assert is_sealed(settings, settings["icc_gpu_catalog"])
    # Refused settings carry none: nothing after a refusal may take them as checked.
    refused, errors = role_settings(
        "tgi_server", options("tgi_server"), defaults("tgi_server", tgi_gpu_count="-1")
    )
    assert errors and CHECKED not in refused
    webui, _ = role_settings("open_webui", options("open_webui"), defaults("open_webui"))
    assert CHECKED not in webui


@pytest.mark.parametrize(
    ("role", "name", "image", "warned"),
    [
        ("tgi_server", "tgi_image", "ghcr.io/huggingface/text-generation-inference:latest", True),
        ("tgi_server", "tgi_image", "registry.example.org:5000/tgi", True),
        ("tgi_server", "tgi_image", "ghcr.io/huggingface/text-generation-inference:3.3.0", False),
        ("tgi_server", "tgi_image", None, False),
        ("open_webui", "open_webui_image", "ghcr.io/open-webui/open-webui:main", True),
        ("open_webui", "open_webui_image", "ghcr.io/open-webui/open-webui", True),
        ("open_webui", "open_webui_image", "ghcr.io/open-webui/open-webui:v0.11.0", False),
    ],
)
def test_an_image_not_pinned_to_a_version_is_warned_about(role, name, image, warned):
    lines = role_warnings(role, {name: image})
    assert bool(lines) is warned
    if warned:
        assert lines[0].startswith(f"{name} {image} is not pinned to a")


@pytest.mark.parametrize(
    ("count", "allow", "refused"),
    [("0", "false", True), ("0", "true", False), ("1", "false", False), ("2", None, False)],
)
def test_the_scale_refuses_the_cpu_unless_it_is_meant(count, allow, refused):
    values = {"tgi_gpu_count": count} | ({"gpu_scale_allow_cpu": allow} if allow else {})
    _settings, errors = role_settings("gpu_scale", options("gpu_scale"), values)
    assert errors == (
        [
            "tgi_gpu_count: 0 runs TGI on the CPU (another image, slow for large models); to "
            "mean it, add -e gpu_scale_allow_cpu=true"
        ]
        if refused
        else []
    )

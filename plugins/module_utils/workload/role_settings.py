# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""A role's variables, typed the way Ansible types module options, then checked by kind.

Values typed as `-e key=value` are strings. Ansible's automatic role argument validation only
asks whether '2' *could* be an int and then hands the role the string, so every later check saw
'2', 'true' or '0.85'. Here each variable of a role's `main` argument spec is converted with
Ansible's own `ArgumentSpecValidator` (the converters of module options: exactly what they
accept, nothing more), and the typed values are what the role uses from then on.

Then every value that ends up in a Kubernetes object is checked by its kind (k8s_values), and
the role's own rules run (for TGI: tgi_settings, the launcher's rules), so that one run reports
every problem at once, naming the variable, before anything is written.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    is_dns_subdomain,
    is_secret_value,
    quantity_value,
    value_errors,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import runs_on_cpu
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import (
    SETTINGS,
    sealed,
    validate_tgi_settings,
)

# What each option type accepts, for messages (the conversion itself is Ansible's).
TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false (yes/no, on/off and 1/0 work too)",
    "list": "a list",
    "dict": "a mapping",
    "str": "a string",
    "path": "a path",
    "raw": "a value",
}
# The keys of an argument spec option that take part in validation (not the docs).
_SPEC_KEYS = ("type", "elements", "choices", "required", "no_log", "options", "aliases")
MIN_STARTUP_SECONDS = 10
# A key that is all that stands between the network and the API (tgi_api_key) or that signs
# the login sessions (open_webui_secret_key): a short one is guessed. The generated ones have
# 48 letters and digits (haw.icc.keep_secrets).
MIN_KEY_LENGTH = 16


def _option_spec(option: Mapping[str, Any]) -> dict[str, Any]:
    spec = {key: option[key] for key in _SPEC_KEYS if key in option}
    if "options" in spec:
        spec["options"] = {k: _option_spec(v) for k, v in spec["options"].items()}
    return spec


def _conversion_error(name: str, option: Mapping[str, Any], value: Any, error: Any) -> str:
    shown = "its value" if option.get("no_log") else repr(value)
    kind = type(error).__name__
    if kind == "ArgumentTypeError":
        wanted = TYPE_WORDS.get(str(option.get("type", "str")), str(option.get("type")))
        if option.get("elements") and isinstance(value, list):
            wanted += f" of {TYPE_WORDS.get(option['elements'], option['elements'])} items"
        return f"{name}: {shown} is not {wanted}"
    if kind == "ArgumentValueError" and option.get("choices"):
        allowed = ", ".join(str(choice) for choice in option["choices"])
        return f"{name}: {shown} is not allowed: one of {allowed}"
    if kind == "RequiredError":
        return f"{name} is required"
    return f"{name}: {error.msg}"


def typed_variables(
    options: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """(every option's value converted to its type, None when unset or not convertible; one
    message per variable that Ansible cannot convert). Options are the role argument spec's
    `options`."""
    typed: dict[str, Any] = {}
    errors: list[str] = []
    for name, option in options.items():
        given = {name: values[name]} if name in values else {}
        # One option at a time: each message names exactly one variable.
        result = ArgumentSpecValidator({name: _option_spec(option)}).validate(given)
        if result.errors.errors:
            errors.append(
                _conversion_error(name, option, values.get(name), result.errors.errors[0])
            )
            typed[name] = None  # the rules below then leave it alone
        else:
            typed[name] = result.validated_parameters.get(name)
    return typed, errors


def secret_options(options: Mapping[str, Mapping[str, Any]]) -> frozenset:
    """The options marked no_log: their values are never quoted nor handed back."""
    return frozenset(name for name, option in options.items() if option.get("no_log"))


# --- rules shared by the roles ----------------------------------------------------------------


def _required_if(values: Mapping[str, Any], switch: str, needed: str) -> list[str]:
    if values.get(switch) and not values.get(needed):
        return [f"{needed}: required when {switch} is true"]
    return []


def _string_map(values: Mapping[str, Any], name: str, what: str) -> list[str]:
    mapping = values.get(name) or {}
    bad = sorted(str(key) for key, value in mapping.items() if not isinstance(value, str))
    if bad:
        return [
            f"{name}: the values of {', '.join(bad)} are not strings: {what} (quote them in YAML)"
        ]
    return []


def _annotations(values: Mapping[str, Any], name: str) -> list[str]:
    errors = _string_map(values, name, "annotation values are strings")
    keys = [key for key in values.get(name) or {} if not _is_annotation_key(key)]
    if keys:
        errors.append(
            f"{name}: {', '.join(repr(k) for k in keys)} is not an annotation key: an optional "
            "DNS prefix and '/', then up to 63 letters, digits, '-', '_' or '.'"
        )
    return errors


def _is_annotation_key(key: Any) -> bool:
    if not isinstance(key, str):
        return False
    prefix, _, name = key.rpartition("/")
    return (
        (not prefix or is_dns_subdomain(prefix))
        and 0 < len(name) <= 63
        and name[0].isalnum()
        and name[-1].isalnum()
        and all(ch.isalnum() or ch in "-_." for ch in name)
        and name.isascii()
    )


def _is_env_name(name: Any) -> bool:
    """What Kubernetes accepts as the name of a container's environment variable."""
    return isinstance(name, str) and re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", name) is not None


def _startup(values: Mapping[str, Any], name: str) -> list[str]:
    seconds = values.get(name)
    if isinstance(seconds, int) and seconds < MIN_STARTUP_SECONDS:
        return [f"{name}: {seconds} is not allowed: at least {MIN_STARTUP_SECONDS} seconds"]
    return []


def _key_length(values: Mapping[str, Any], name: str) -> list[str]:
    """A given key shorter than MIN_KEY_LENGTH, named without its value (nor its length)."""
    key = values.get(name)
    if is_secret_value(key) and len(key) < MIN_KEY_LENGTH:
        return [
            f"{name}: its value is not allowed: a key of at least {MIN_KEY_LENGTH} characters "
            "(a short one is guessed); leave it unset and a long one is generated"
        ]
    return []


def _memory(values: Mapping[str, Any], request: str, limit: str) -> list[str]:
    asked, capped = quantity_value(values.get(request)), quantity_value(values.get(limit))
    if asked is not None and capped is not None and asked > capped:
        return [
            f"{request} ({values[request]}) is more than {limit} ({values[limit]}): Kubernetes "
            "refuses a request above the limit"
        ]
    return []


# --- tgi_server ---------------------------------------------------------------------------------

TGI_SERVER_KINDS = {
    "icc_namespace": "dns_label",
    "tgi_name": "dns1035_label",
    "tgi_api_key": "secret_value",
    "tgi_hf_token": "secret_value",
    "tgi_service_port": "port",
    "tgi_ingress_host": "ingress_host",
    "tgi_ingress_class_name": "dns_subdomain",
    "tgi_ingress_tls_secret": "dns_subdomain",
    "tgi_cache_storage_class": "dns_subdomain",
    "tgi_cache_size": "quantity",
}


def tgi_server_problems(values: Mapping[str, Any], secret: frozenset) -> list[str]:
    # The settings of TGI and its pod have their rules in tgi_settings: checked here, once per
    # run; the steps after it (the pod, the capacity check, the switch) take them as checked
    # (tgi_settings.sealed). The rest of the role's variables are checked here too.
    settings = {name: values.get(name) for name in SETTINGS}
    errors = validate_tgi_settings(settings, values.get("icc_gpu_catalog"))
    errors += value_errors(values, TGI_SERVER_KINDS, secret)
    errors += _key_length(values, "tgi_api_key")
    errors += _required_if(values, "tgi_ingress_enabled", "tgi_ingress_host")
    errors += _annotations(values, "tgi_ingress_annotations")
    errors += _startup(values, "tgi_startup_timeout_seconds")
    minutes = values.get("icc_idle_minutes")
    if isinstance(minutes, (int, float)) and minutes <= 0:
        errors.append(
            f"icc_idle_minutes: {minutes} is not allowed: more than 0 minutes (leave it unset to "
            "keep the server always on)"
        )
    return errors


# --- open_webui ---------------------------------------------------------------------------------

OPEN_WEBUI_KINDS = {
    "icc_namespace": "dns_label",
    "open_webui_name": "dns1035_label",
    "open_webui_image": "image",
    "open_webui_tgi_service": "dns1035_label",
    "open_webui_tgi_service_port": "port",
    "open_webui_tgi_api_key_secret": "dns_subdomain",
    "open_webui_secret_key": "secret_value",
    "open_webui_secret_key_secret": "dns_subdomain",
    "open_webui_admin_password": "password",
    "open_webui_admin_password_secret": "dns_subdomain",
    "open_webui_data_size": "quantity",
    "open_webui_data_storage_class": "dns_subdomain",
    "open_webui_service_port": "port",
    "open_webui_ingress_host": "ingress_host",
    "open_webui_ingress_class_name": "dns_subdomain",
    "open_webui_ingress_tls_secret": "dns_subdomain",
    "open_webui_cpu_request": "quantity",
    "open_webui_memory_request": "quantity",
    "open_webui_memory_limit": "quantity",
}


def open_webui_problems(values: Mapping[str, Any], secret: frozenset) -> list[str]:
    errors = value_errors(values, OPEN_WEBUI_KINDS, secret)
    errors += _key_length(values, "open_webui_secret_key")
    errors += _required_if(values, "open_webui_ingress_enabled", "open_webui_ingress_host")
    errors += _annotations(values, "open_webui_ingress_annotations")
    email = values.get("open_webui_admin_email")
    if email is not None and not (
        email.count("@") == 1 and all(email.split("@")) and email.isprintable() and " " not in email
    ):
        errors.append(f"open_webui_admin_email: {email!r} is not an e-mail address")
    if email and not values.get("open_webui_admin_password"):
        errors.append("open_webui_admin_password: required with open_webui_admin_email")
    errors += _string_map(values, "open_webui_extra_env", "environment values are strings")
    names = [key for key in values.get("open_webui_extra_env") or {} if not _is_env_name(key)]
    if names:
        errors.append(
            f"open_webui_extra_env: {', '.join(repr(n) for n in names)} is not an environment "
            "variable name: letters, digits, '_', '-' and '.', not starting with a digit"
        )
    errors += _memory(values, "open_webui_memory_request", "open_webui_memory_limit")
    errors += _startup(values, "open_webui_startup_timeout_seconds")
    return errors


# --- gpu_scale ----------------------------------------------------------------------------------


def gpu_scale_problems(values: Mapping[str, Any], secret: frozenset) -> list[str]:
    # The count itself is the tgi_server role's to check; here only whether the CPU is meant.
    if runs_on_cpu(values.get("tgi_gpu_count")) and not values.get("gpu_scale_allow_cpu"):
        return [
            "tgi_gpu_count: 0 runs TGI on the CPU (another image, slow for large models); to "
            "mean it, add -e gpu_scale_allow_cpu=true"
        ]
    return []


# Role name -> its rules after typing. Roles without an entry only get their types checked.
ROLE_PROBLEMS: dict[str, Callable[[Mapping[str, Any], frozenset], list[str]]] = {
    "tgi_server": tgi_server_problems,
    "open_webui": open_webui_problems,
    "gpu_scale": gpu_scale_problems,
}


def _unpinned(image: Any, floating: str) -> bool:
    """An image reference without a tag, or with a tag that moves (`floating`, a regex)."""
    return isinstance(image, str) and (
        re.search(f":({floating})$", image) is not None or ":" not in image.split("/")[-1]
    )


def role_warnings(role: str, values: Mapping[str, Any]) -> list[str]:
    """What is allowed but likely regretted, for the typed `values` of `role`."""
    warnings = []
    image = values.get("tgi_image") if role == "tgi_server" else None
    if image and _unpinned(image, "latest"):
        warnings.append(
            f"tgi_image {image} is not pinned to a version: every pull may bring another TGI, "
            "and TGI 3.3.1 and later likely do not start on V100s. Pin a version such as 3.3.0."
        )
    image = values.get("open_webui_image") if role == "open_webui" else None
    if image and _unpinned(image, "latest|main"):
        warnings.append(
            f"open_webui_image {image} is not pinned to a release: Open WebUI migrates its "
            "database on upgrade, so an unplanned pull may change your data. Pin a version."
        )
    return warnings


# Keys of a playbook's own options beyond an argument spec's: checked after the conversion.
PLAYBOOK_OPTION_KEYS = ("default", "minimum", "kind")


def playbook_settings(
    options: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """(a playbook's own options typed, defaults filled in; every problem, naming each variable).

    `options` are shaped like a role argument spec's, plus `default`, `minimum` (for numbers) and
    `kind` (a k8s_values kind). Defaults live here rather than in play vars, which would outrank
    the inventory's values."""
    specs = {
        name: {k: v for k, v in option.items() if k not in PLAYBOOK_OPTION_KEYS}
        for name, option in options.items()
    }
    typed, errors = typed_variables(specs, values)
    refused = {error.split(":", 1)[0].split(" ", 1)[0] for error in errors}
    for name, option in options.items():
        if typed[name] is None and name not in refused:
            typed[name] = option.get("default")
        minimum = option.get("minimum")
        if minimum is not None and typed[name] is not None and typed[name] < minimum:
            errors.append(f"{name}: {values.get(name)!r} is not allowed: at least {minimum}")
    kinds = {name: option["kind"] for name, option in options.items() if "kind" in option}
    errors += value_errors({n: typed[n] for n in kinds if n not in refused}, kinds)
    return typed, errors


def role_settings(
    role: str, options: Mapping[str, Mapping[str, Any]], values: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """(the role's variables typed, without the no_log ones; every problem, naming each
    variable)."""
    typed, errors = typed_variables(options, values)
    secret = secret_options(options)
    if role in ROLE_PROBLEMS:
        errors += ROLE_PROBLEMS[role](typed, secret)
    settings = {k: v for k, v in typed.items() if k not in secret}
    if role == "tgi_server" and not errors:
        settings = sealed(settings, settings.get("icc_gpu_catalog"))
    return settings, errors

# Copyright: haw.icc contributors
# MIT License (see LICENSE)
"""The settings of a TGI server and their rules: what the `tgi_server` role's variables may be.

Settings are a mapping keyed by the `tgi_server` role's variable names, so every message can
name the variable to fix. `validate_tgi_settings` reports every problem at once; the TGI pod
they give is computed by module_utils/workload/tgi_workload.py.

Checked once: `check_tgi_settings` gives `TgiSettings` (every setting, defaults filled in,
typed), and every step after it takes those as they are - the pod, the capacity rules, the
sizing, the switch. Between Ansible's tasks the settings travel as a plain mapping; the check
leaves its digest in it (`sealed`, key CHECKED), so that the next step knows them for checked
instead of checking them again. Settings without a matching digest (a module called with
settings of its own) are checked where they come in.

The rules are the launcher's (text-generation-launcher of TGI 3.3), so that a bad combination
is refused here, before anything is written, instead of crash-looping in the pod. Each
setting's rule is in tgi_setting_rules; this file owns the settings themselves (names, defaults,
the typed TgiSettings, the seal) and runs the rules over them.

Pure Python: no Ansible imports, no I/O.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import (
    AUTO,
    runs_on_cpu,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    CatalogError,
    ProblemsError,
    merged_catalog,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_setting_rules import (
    check_cache_path,
    check_extra_args,
    check_gpus,
    check_memory_fraction,
    check_model_choices,
    check_model_id,
    check_nccl_env,
    check_pod,
    check_port,
    check_positive_int,
    check_precision,
    check_secret_name,
    check_tokens,
)

# Quiet NCCL defaults for sharded servers; `tgi_nccl_env` entries override them.
NCCL_ENV_DEFAULTS: dict[str, str] = {"NCCL_DEBUG": "WARN"}

API_KEY_SECRET_KEY = "api-key"
HF_TOKEN_SECRET_KEY = "token"

# Every setting this module knows, with its default. `None` marks unset; required settings
# (REQUIRED) have no usable default. A setting given as null takes its default.
SETTINGS: dict[str, Any] = {
    "tgi_model_id": None,
    "tgi_model_revision": None,
    "tgi_gpu_type": "gpu-tesla-v100",
    "tgi_gpu_count": 1,
    "tgi_dtype": None,
    "tgi_quantize": None,
    "tgi_max_input_tokens": None,
    "tgi_max_total_tokens": None,
    "tgi_max_batch_prefill_tokens": None,
    "tgi_cuda_memory_fraction": None,
    "tgi_max_concurrent_requests": None,
    "tgi_container_port": 80,
    "tgi_cache_mount_path": "/data",
    "tgi_nccl_env": {},
    "tgi_api_key_secret": None,
    "tgi_hf_token_secret": None,
    "tgi_extra_args": [],
    # The pod around the container (tgi_workload): None leaves a resource out; the image comes
    # from the GPU catalog unless given.
    "tgi_image": None,
    "tgi_cpu_request": None,
    "tgi_memory_request": None,
    "tgi_memory_limit": None,
    "tgi_shm_size_per_gpu": "1Gi",
    "tgi_multi_gpu_mode": AUTO,
    # The model's architecture (its config's model_type) when known: from the Hub, or given by
    # an expert; None guesses it from the model id.
    "tgi_model_architecture": None,
}
REQUIRED = ("tgi_model_id", "tgi_api_key_secret")
_PREFIX = "tgi_"
# The key of the check's digest in settings that passed it (see `sealed`).
CHECKED = "_checked"
# What the collection learns after the check and sets itself: the architecture the capacity
# check read from the Hub (else the one given), and the token Secret, left out (null) when it
# does not exist. The digest leaves them out, so that filling them in keeps the settings checked.
LEARNED = ("tgi_model_architecture", "tgi_hf_token_secret")


class TgiSettingsError(ProblemsError):
    """The TGI settings are invalid; `errors` lists every problem."""

    WHAT = "TGI settings"


class TgiSettings(dict):
    """Settings that passed `validate_tgi_settings`: every setting of SETTINGS, defaults filled
    in, of the type the rules demand (`tgi_gpu_count` an int, ...). Made by
    `check_tgi_settings` only; whoever gets them takes them as they are."""

    @property
    def gpu_count(self) -> int:
        return self["tgi_gpu_count"]

    @property
    def on_cpu(self) -> bool:
        """TGI runs on the CPU (the one rule: engine/tgi_multi_gpu.runs_on_cpu)."""
        return runs_on_cpu(self["tgi_gpu_count"])

    def but(self, **changes: Any) -> TgiSettings:
        """The same settings with `changes`: for alternatives the rules judge (the capacity
        check's other GPU counts, types or quantizations), built from checked settings by the
        rules themselves."""
        return TgiSettings({**self, **changes})


def resolved_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The known settings with defaults filled in for absent or null ones."""
    values = {}
    for name, default in SETTINGS.items():
        value = settings.get(name)
        values[name] = default if value is None else value
    return values


def _digest(settings: Mapping[str, Any], catalog: Mapping | None) -> str:
    """What the check saw: the settings it covers (all but LEARNED) and the catalog."""
    values = resolved_settings(settings)
    covered = {name: value for name, value in values.items() if name not in LEARNED}
    text = json.dumps([covered, catalog or {}], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def sealed(settings: Mapping[str, Any], catalog: Mapping | None = None) -> dict[str, Any]:
    """`settings` that just passed the check, with its digest (key CHECKED) for the steps after
    it: the same settings with the same `catalog` are taken as checked there."""
    return {**settings, CHECKED: _digest(settings, catalog)}


def is_sealed(settings: Any, catalog: Mapping | None = None) -> bool:
    """Whether `settings` carry the digest of a check of these same settings and `catalog`."""
    return (
        isinstance(settings, Mapping)
        and isinstance(settings.get(CHECKED), str)
        and settings[CHECKED] == _digest(settings, catalog)
    )


def check_tgi_settings(settings: Any, catalog: Mapping | None = None) -> TgiSettings:
    """The settings as TgiSettings, checked once: TgiSettings, or settings sealed by a check of
    the same settings and catalog, are taken as they are; any others are checked now
    (`validate_tgi_settings`). Raises TgiSettingsError listing every problem."""
    if isinstance(settings, TgiSettings):
        return settings
    if not is_sealed(settings, catalog):
        errors = validate_tgi_settings(settings, catalog)
        if errors:
            raise TgiSettingsError(errors)
    return TgiSettings(resolved_settings(settings))


def _check_unknown(settings: Mapping[str, Any]) -> list[str]:
    errors = []
    for key in settings:
        if isinstance(key, str) and key.startswith(_PREFIX) and key not in SETTINGS:
            close = difflib.get_close_matches(key, list(SETTINGS), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            errors.append(
                f"{key} is not a TGI setting{hint}: known settings are {', '.join(SETTINGS)}"
            )
    return errors


def model_settings_errors(settings: Mapping, catalog: Mapping | None = None) -> list[str]:
    """Problems of the settings that choose the model and its GPUs: model id, GPU type and
    count, multi-GPU mode, architecture, image, dtype/quantize, token limits and memory fraction
    (the others, names and resources, are not looked at).

    The capacity check (gpu_rules) judges these same settings, with these same rules.
    `catalog` as for `validate_tgi_settings`; a broken catalog only skips the GPU type check.
    """
    try:
        merged = merged_catalog(catalog)
    except CatalogError:
        merged = None
    values = resolved_settings(settings)
    return (
        check_model_id(values["tgi_model_id"])
        + check_gpus(values, merged)
        + check_precision(values["tgi_dtype"], values["tgi_quantize"])
        + check_tokens(values)
        + check_memory_fraction(values["tgi_cuda_memory_fraction"])
        + check_model_choices(values)
    )


def validate_tgi_settings(settings: Mapping, catalog: Mapping | None = None) -> list[str]:
    """Every problem of `settings`, as messages naming the variable, its value and the rule.

    `catalog` is the GPU catalog or the entries of `icc_gpu_catalog` (laid over the built-in
    catalog either way); None uses the built-in catalog. An empty list means valid.
    """
    if not isinstance(settings, Mapping):
        return [f"TGI settings: {settings!r} is not a mapping of tgi_* variables"]
    errors = _check_unknown(settings)
    try:
        merged = merged_catalog(catalog)
    except CatalogError as exc:
        errors.extend(exc.errors)
        merged = None  # the GPU type cannot be checked against a broken catalog
    values = resolved_settings(settings)
    errors += check_model_id(values["tgi_model_id"])
    revision = values["tgi_model_revision"]
    if revision is not None and not (
        isinstance(revision, str) and revision and not any(c.isspace() for c in revision)
    ):
        errors.append(
            f"tgi_model_revision: {revision!r} is not allowed: a branch, tag or commit id "
            "without spaces (like 'main', 'refs/pr/2' or a commit hash), or null for the "
            "default branch"
        )
    errors += check_gpus(values, merged)
    errors += check_precision(values["tgi_dtype"], values["tgi_quantize"])
    errors += check_tokens(values)
    errors += check_memory_fraction(values["tgi_cuda_memory_fraction"])
    errors += check_positive_int(
        "tgi_max_concurrent_requests", values["tgi_max_concurrent_requests"]
    )
    errors += check_port(values["tgi_container_port"])
    errors += check_cache_path(values["tgi_cache_mount_path"])
    errors += check_nccl_env(values["tgi_nccl_env"])
    errors += check_secret_name("tgi_api_key_secret", values["tgi_api_key_secret"], required=True)
    errors += check_secret_name(
        "tgi_hf_token_secret", values["tgi_hf_token_secret"], required=False
    )
    errors += check_extra_args(values["tgi_extra_args"])
    errors += check_pod(values)
    return errors

# Copyright: haw.icc contributors
# MIT License (see LICENSE)
"""The rule of each TGI setting, as messages naming the variable, its value and what is allowed:
the model id, the GPUs, precision, token limits, memory fraction, port, cache path, NCCL
variables, Secret names, the launcher flags in tgi_extra_args (MANAGED_FLAGS: the ones the
collection sets itself) and the pod's resources, image, multi-GPU mode and architecture.

tgi_settings runs them (validate_tgi_settings, model_settings_errors) and owns what the settings
are: their names, defaults and the check's seal. The rules are the launcher's
(text-generation-launcher of TGI 3.3).

Pure Python: no Ansible imports, no I/O.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.cluster.values import (
    PORT_MAX,
    is_image,
    is_port,
    quantity_value,
    value_errors,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_launcher import (
    DTYPES,
    LAUNCHER_FLAGS,
    QUANTIZE_METHODS,
    REPEATABLE_FLAGS,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import (
    FORCEABLE,
    runs_on_cpu,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import CATALOG_VARIABLE, gpu_types

# Flags `tgi_workload` sets itself (as a flag or through its env) -> what to use instead.
MANAGED_FLAGS: dict[str, str] = {
    "model-id": "tgi_model_id",
    "revision": "tgi_model_revision",
    "num-shard": "tgi_gpu_count and tgi_multi_gpu_mode",
    "sharded": "tgi_gpu_count and tgi_multi_gpu_mode",
    "dtype": "tgi_dtype",
    "quantize": "tgi_quantize",
    "max-input-tokens": "tgi_max_input_tokens",
    "max-input-length": "tgi_max_input_tokens",
    "max-total-tokens": "tgi_max_total_tokens",
    "max-batch-prefill-tokens": "tgi_max_batch_prefill_tokens",
    "cuda-memory-fraction": "tgi_cuda_memory_fraction",
    "max-concurrent-requests": "tgi_max_concurrent_requests",
    "port": "tgi_container_port",
    "hostname": "the collection (TGI must listen on 0.0.0.0 in a pod)",
    "api-key": "tgi_api_key_secret",
    "huggingface-hub-cache": "tgi_cache_mount_path",
    "usage-stats": "the collection (usage statistics stay off)",
    "help": "nothing (the container would print help and exit)",
    "version": "nothing (the container would print its version and exit)",
}

NCCL_ENV_PREFIXES = ("NCCL_", "TORCH_NCCL_")

# A Hub repository id: "name" or "org/name"; each part 1-96 of letters, digits, ".", "_", "-",
# not starting or ending with "-" or ".", without "--" or ".." (the Hub's own rules).
# Matched whole (fullmatch): `$` alone lets a trailing line break through.
_HUB_PART = re.compile(r"(?![-.])[A-Za-z0-9._-]{1,96}(?<![-.])")
_SECRET_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _choices(values: tuple[str, ...]) -> str:
    return ", ".join(values) + " or null"


def check_model_id(model_id: Any) -> list[str]:
    rule = (
        'a Hugging Face Hub id "org/name" or "name": each part 1-96 letters, digits, ".", "_" '
        'or "-", not starting or ending with "-" or ".", without "--" or ".."'
    )
    if model_id is None:
        return [f"tgi_model_id is required: {rule}"]
    parts = model_id.split("/") if isinstance(model_id, str) else []
    if not 1 <= len(parts) <= 2 or not all(
        _HUB_PART.fullmatch(part) and "--" not in part and ".." not in part for part in parts
    ):
        return [f"tgi_model_id: {model_id!r} is not allowed: {rule}"]
    return []


def check_secret_name(name: str, value: Any, *, required: bool) -> list[str]:
    rule = (
        "the name of a Secret in the namespace: lowercase letters, digits, '-' and '.', "
        "starting and ending with a letter or digit, at most 253 characters"
    )
    if value is None:
        return [f"{name} is required: {rule}"] if required else []
    if not isinstance(value, str) or not _SECRET_NAME.fullmatch(value):
        return [f"{name}: {value!r} is not allowed: {rule}" + ("" if required else ", or null")]
    return []


def check_positive_int(name: str, value: Any) -> list[str]:
    if value is not None and not (_is_int(value) and value > 0):
        return [f"{name}: {value!r} is not allowed: an integer > 0, or null to use TGI's default"]
    return []


def check_gpus(values: Mapping[str, Any], catalog: Mapping[str, Any] | None) -> list[str]:
    count, gpu_type = values["tgi_gpu_count"], values["tgi_gpu_type"]
    if not (_is_int(count) and count >= 0):
        return [
            f"tgi_gpu_count: {count!r} is not allowed: an integer >= 0 (0 runs TGI on the CPU, "
            "n >= 1 shards the model over n GPUs of one node)"
        ]
    if runs_on_cpu(count) or catalog is None:  # the GPU type does not matter without GPUs
        return []
    known = gpu_types(catalog)
    if not isinstance(gpu_type, str) or gpu_type not in known:
        is_entry = isinstance(gpu_type, str) and gpu_type in catalog
        hint = " (for the CPU set tgi_gpu_count: 0)" if is_entry else ""
        return [
            f"tgi_gpu_type: {gpu_type!r} is not a GPU type of the catalog{hint}: allowed "
            f"{', '.join(known)} (add others with {CATALOG_VARIABLE})"
        ]
    per_node = catalog[gpu_type]["gpus_per_node"]
    if count > per_node:
        return [
            f"tgi_gpu_count: {count} is more than one {gpu_type} node has: allowed 0..{per_node} "
            "(all GPUs of a pod are on one node)"
        ]
    return []


def check_precision(dtype: Any, quantize: Any) -> list[str]:
    errors = []
    if dtype is not None and dtype not in DTYPES:
        errors.append(f"tgi_dtype: {dtype!r} is not allowed: {_choices(DTYPES)}")
    if quantize is not None and quantize not in QUANTIZE_METHODS:
        errors.append(
            f"tgi_quantize: {quantize!r} is not allowed: {_choices(QUANTIZE_METHODS)} "
            "(pre-quantized checkpoints need none: TGI reads their config)"
        )
    if dtype is not None and quantize is not None:
        errors.append(
            f"tgi_dtype ({dtype!r}) and tgi_quantize ({quantize!r}) cannot both be set "
            "(TGI refuses --dtype with --quantize): set one of them to null"
        )
    return errors


def check_tokens(values: Mapping[str, Any]) -> list[str]:
    names = ("tgi_max_input_tokens", "tgi_max_total_tokens", "tgi_max_batch_prefill_tokens")
    errors = [e for name in names for e in check_positive_int(name, values[name])]
    if errors:
        return errors
    max_input, max_total, prefill = (values[name] for name in names)
    if max_input is not None and max_total is not None and max_input >= max_total:
        errors.append(
            f"tgi_max_input_tokens ({max_input}) must be less than tgi_max_total_tokens "
            f"({max_total}): the total is the prompt plus the tokens generated"
        )
    if max_input is not None and prefill is not None and prefill < max_input:
        errors.append(
            f"tgi_max_batch_prefill_tokens ({prefill}) must be at least tgi_max_input_tokens "
            f"({max_input}): a prompt of the maximum length must fit one prefill batch"
        )
    return errors


def check_memory_fraction(fraction: Any) -> list[str]:
    number = isinstance(fraction, (int, float)) and not isinstance(fraction, bool)
    if fraction is not None and not (number and 0 < fraction <= 1):
        return [
            f"tgi_cuda_memory_fraction: {fraction!r} is not allowed: a number in (0, 1], the "
            "share of each GPU's memory TGI may use, or null for all of it"
        ]
    return []


def check_port(port: Any) -> list[str]:
    if not is_port(port):
        return [f"tgi_container_port: {port!r} is not allowed: an integer in 1..{PORT_MAX}"]
    return []


def check_cache_path(path: Any) -> list[str]:
    if not (
        isinstance(path, str)
        and path.startswith("/")
        and path.rstrip("/")
        and ".." not in path.split("/")
        and not any(ch.isspace() for ch in path)
    ):
        return [
            f"tgi_cache_mount_path: {path!r} is not allowed: an absolute path other than '/', "
            "without '..' or spaces, like '/data'"
        ]
    return []


def check_nccl_env(nccl_env: Any) -> list[str]:
    rule = (
        f"a mapping of NCCL variable names (starting with {' or '.join(NCCL_ENV_PREFIXES)}) "
        "to string values (quote numbers in YAML)"
    )
    if not isinstance(nccl_env, Mapping):
        return [f"tgi_nccl_env: {nccl_env!r} is not allowed: {rule}"]
    errors = []
    for key, value in nccl_env.items():
        if not (
            isinstance(key, str) and _ENV_NAME.fullmatch(key) and key.startswith(NCCL_ENV_PREFIXES)
        ):
            errors.append(f"tgi_nccl_env: variable name {key!r} is not allowed: {rule}")
        elif not isinstance(value, str):
            errors.append(f"tgi_nccl_env[{key!r}]: {value!r} is not allowed: {rule}")
    return errors


def _split_flag(arg: str) -> tuple[str, str | None]:
    """'--name=value' -> ('name', 'value'); '--name' -> ('name', None)."""
    name, sep, value = arg[2:].partition("=")
    return name, (value if sep else None)


def _unknown_flag_message(arg: str, name: str) -> str:
    allowed = [flag for flag in LAUNCHER_FLAGS if flag not in MANAGED_FLAGS]
    close = difflib.get_close_matches(name, allowed, n=1)
    hint = f" (did you mean --{close[0]}?)" if close else ""
    if any(ch.isspace() for ch in arg):
        hint = (
            " (each list item is one argument: write '--flag=value' or the flag and its "
            "value as two items)"
        )
    return (
        f"tgi_extra_args: {arg!r} is not a flag of text-generation-launcher{hint}, and TGI "
        "aborts at start-up on unknown flags (flags of other servers such as vLLM included); "
        f"allowed: {', '.join('--' + flag for flag in allowed)}"
    )


def _flag_error(arg: str, seen: set[str]) -> tuple[str | None, bool]:
    """(the problem of one flag item or None, whether the next item may be its value)."""
    if not arg.startswith("--"):
        return (
            f"tgi_extra_args: {arg!r} is not allowed: use the long form of the flag "
            "(like '--trust-remote-code')"
        ), False
    name, value = _split_flag(arg)
    next_is_value = value is None and LAUNCHER_FLAGS.get(name, True)
    if name not in LAUNCHER_FLAGS:
        return _unknown_flag_message(arg, name), next_is_value
    if name in MANAGED_FLAGS:
        return (
            f"tgi_extra_args: {arg!r} is set by the collection: use {MANAGED_FLAGS[name]} instead"
        ), next_is_value
    if name in seen and name not in REPEATABLE_FLAGS:
        return f"tgi_extra_args: --{name} is given more than once: give it once", next_is_value
    seen.add(name)
    if not LAUNCHER_FLAGS[name] and value is not None:
        return (
            f"tgi_extra_args: {arg!r} is not allowed: --{name} is a switch and takes no value"
        ), False
    return None, next_is_value


def check_extra_args(extra_args: Any) -> list[str]:
    if not isinstance(extra_args, list) or not all(isinstance(a, str) for a in extra_args):
        return [
            f"tgi_extra_args: {extra_args!r} is not allowed: a list of strings, one "
            "text-generation-launcher argument per item, like ['--max-batch-size', '8']"
        ]
    errors = []
    seen: set[str] = set()
    pending: str | None = None  # a valid flag still waiting for its value
    swallow = False  # the next non-flag item is the value of a refused flag: one message is enough
    for arg in extra_args:
        if not arg.startswith("-"):
            if pending is None and not swallow:
                errors.append(
                    f"tgi_extra_args: {arg!r} follows no flag that takes a value: give flags "
                    "as '--flag', '--flag=value' or '--flag', 'value'"
                )
            pending, swallow = None, False
            continue
        if pending is not None:
            errors.append(f"tgi_extra_args: {pending} needs a value, got {arg!r}")
        error, next_is_value = _flag_error(arg, seen)
        if error:
            errors.append(error)
        pending = arg if next_is_value and not error else None
        swallow = bool(next_is_value and error)
    if pending is not None:
        errors.append(f"tgi_extra_args: {pending} needs a value, but it is the last item")
    return errors


# The settings of the pod around TGI, by kind (module_utils/k8s_values words the rules).
POD_KINDS = {
    "tgi_cpu_request": "quantity",
    "tgi_memory_request": "quantity",
    "tgi_memory_limit": "quantity",
    "tgi_shm_size_per_gpu": "quantity",
}


def check_pod(values: Mapping[str, Any]) -> list[str]:
    errors = value_errors(values, POD_KINDS) + check_model_choices(values)
    asked, capped = (quantity_value(values[k]) for k in ("tgi_memory_request", "tgi_memory_limit"))
    if asked is not None and capped is not None and asked > capped:
        errors.append(
            f"tgi_memory_request ({values['tgi_memory_request']}) is more than tgi_memory_limit "
            f"({values['tgi_memory_limit']}): Kubernetes refuses a request above the limit"
        )
    return errors


def check_model_choices(values: Mapping[str, Any]) -> list[str]:
    """The image, the multi-GPU mode and the architecture."""
    errors = []
    image = values["tgi_image"]
    if image is not None and not is_image(image):
        errors.append(
            f"tgi_image: {image!r} is not allowed: a container image reference like "
            "ghcr.io/huggingface/text-generation-inference:3.3.0, or null for the catalog's"
        )
    architecture = values["tgi_model_architecture"]
    if architecture is not None and not (
        isinstance(architecture, str) and re.fullmatch(r"[a-z0-9_]{1,64}", architecture)
    ):
        errors.append(
            f"tgi_model_architecture: {architecture!r} is not allowed: the model_type of the "
            "model's config.json, like llama, qwen2 or bloom, or null to take it from the Hub "
            "or the model id"
        )
    if values["tgi_multi_gpu_mode"] not in FORCEABLE:
        errors.append(
            f"tgi_multi_gpu_mode: {values['tgi_multi_gpu_mode']!r} is not allowed: "
            f"{', '.join(FORCEABLE)} (auto chooses by architecture and GPU type)"
        )
    return errors

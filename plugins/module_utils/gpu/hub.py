# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""What the Hugging Face Hub says about a model: its size and config, for model_sizing.

`hub_fetcher` asks the Hub through huggingface_hub (imported only when called) and normalizes
the answer with `hub_data`, which is pure and shared with the tests' recorded answers.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import (
    FLOAT_DTYPES,
    GIB,
    PACKED_INT32_METHODS,
    SAFETENSORS_DTYPE_BYTES,
    checkpoint_quantization,
    positive_number,
)


class HubUnavailable(Exception):
    """The Hub could not answer; the message is one line saying why."""


def hub_data(model_info: Mapping | None, config: Mapping | None = None) -> dict[str, Any]:
    """Normalizes Hub API answers into what `size_model` takes as `hub`.

    `model_info` is shaped like `GET /api/models/<id>?expand=safetensors&expand=config`
    (`{"safetensors": {"total", "parameters": {dtype: count}}, "config": {...}}`); `config` is
    the repository's config.json, laid over the API's shorter config. Returns
    {"parameters": int|None, "config": dict|None, "source": "hub", "safetensors_total",
    "parameters_by_dtype", "weights_bytes" (the weights as stored), "notes": [str]}.

    Pre-quantized checkpoints pack 32/bits weights into each int32 (GPTQ, AWQ) or two 4-bit
    weights into each uint8 (bitsandbytes), so the Hub's total counts tensor elements, not
    parameters: the per-dtype breakdown recovers both the parameters and the stored bytes.
    """
    info = model_info if isinstance(model_info, Mapping) else {}
    merged: dict[str, Any] = {}
    for part in (info.get("config"), config):
        if isinstance(part, Mapping):
            merged.update(part)
    notes: list[str] = []
    safetensors = info.get("safetensors") if isinstance(info.get("safetensors"), Mapping) else {}
    total = positive_number(safetensors.get("total"))
    raw_counts = safetensors.get("parameters")
    by_dtype = (
        {str(k): int(v) for k, v in raw_counts.items() if positive_number(v)}
        if isinstance(raw_counts, Mapping)
        else {}
    )
    parameters = int(total) if total else None
    weights_bytes = None
    if by_dtype:
        weights_bytes = sum(
            count * SAFETENSORS_DTYPE_BYTES.get(k, 2) for k, count in by_dtype.items()
        )
        method, bits = checkpoint_quantization(merged)
        bits = bits or 4.0
        if method in PACKED_INT32_METHODS and by_dtype.get("I32"):
            per_element = max(int(32 // bits), 1)
            floats = sum(n for k, n in by_dtype.items() if k in FLOAT_DTYPES)
            parameters = by_dtype["I32"] * per_element + floats
            notes.append(
                f"the Hub counts {by_dtype['I32']} packed int32 elements of this {method} "
                f"checkpoint: about {per_element} weights each, so ~{parameters / 1e9:.2f}B "
                f"parameters stored in {weights_bytes / GIB:.2f} GiB"
            )
        elif method and method.startswith("bitsandbytes-") and by_dtype.get("U8"):
            floats = sum(n for k, n in by_dtype.items() if k in FLOAT_DTYPES)
            parameters = by_dtype["U8"] * 2 + floats
            notes.append(
                f"the Hub counts {by_dtype['U8']} uint8 elements holding two 4-bit weights "
                f"each: ~{parameters / 1e9:.2f}B parameters stored in "
                f"{weights_bytes / GIB:.2f} GiB"
            )
        elif parameters is None:
            parameters = sum(by_dtype.values())
    elif parameters is None:
        notes.append("the Hub lists no safetensors weights for this model (size unknown there)")
    return {
        "parameters": parameters,
        "config": merged or None,
        "source": "hub",
        "safetensors_total": int(total) if total else None,
        "parameters_by_dtype": by_dtype or None,
        "weights_bytes": weights_bytes,
        "notes": notes,
    }


def _offline_by_environment() -> bool:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    return False


def _one_line_reason(model_id: str, error: BaseException) -> str:
    """Why the Hub did not answer, in one line, from the error's class and first line."""
    names = [cls.__name__ for cls in type(error).__mro__]
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if "OfflineModeIsEnabled" in names:
        return "huggingface_hub is in offline mode (HF_HUB_OFFLINE is set)"
    if "GatedRepoError" in names:
        return f"{model_id} is gated: accept its license on the Hub and set tgi_hf_token"
    if "RepositoryNotFoundError" in names:
        return (
            f"{model_id} was not found on the Hub (or is private: set tgi_hf_token); "
            "check tgi_model_id"
        )
    if "RevisionNotFoundError" in names:
        return f"revision not found for {model_id}: check tgi_model_revision"
    if any("Timeout" in name for name in names):
        return f"the Hub did not answer in time ({type(error).__name__})"
    if any(name in ("ConnectError", "ConnectionError", "NetworkError") for name in names):
        return f"the Hub is not reachable ({text[:160]})"
    return f"{type(error).__name__}: {text[:200]}"


def hub_fetcher(
    model_id: str, revision: str | None = None, token: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """The model's size and config from the Hugging Face Hub, normalized by `hub_data`.

    Two requests through huggingface_hub, each limited to `timeout` seconds: the model info
    (safetensors counts, short config) and config.json (layers, heads). A failing config.json
    only leaves a note. Raises HubUnavailable with a one-line reason on any other failure:
    library missing, offline mode (HF_HUB_OFFLINE), unknown or private model, timeout.
    """
    if _offline_by_environment():
        # huggingface_hub reads HF_HUB_OFFLINE only at import: check it here, at call time.
        raise HubUnavailable("offline mode: HF_HUB_OFFLINE is set, the Hub is not asked")
    try:
        from huggingface_hub import HfApi, hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status
    except ImportError as error:
        raise HubUnavailable(
            f"the Python library huggingface_hub is not installed ({error}): "
            "pip install huggingface_hub, or set tgi_model_parameters"
        ) from error
    try:
        info = HfApi().model_info(
            model_id,
            revision=revision,
            timeout=timeout,
            expand=["safetensors", "config"],
            token=token,
        )
    except Exception as error:
        raise HubUnavailable(_one_line_reason(model_id, error)) from error
    safetensors = getattr(info, "safetensors", None)
    model_info = {
        "id": getattr(info, "id", model_id),
        "safetensors": (
            {
                "total": getattr(safetensors, "total", None),
                "parameters": dict(getattr(safetensors, "parameters", None) or {}),
            }
            if safetensors is not None
            else None
        ),
        "config": getattr(info, "config", None),
    }
    config = None
    config_note = None
    try:
        url = hf_hub_url(model_id, "config.json", revision=revision)
        response = get_session().get(url, headers=build_hf_headers(token=token), timeout=timeout)
        hf_raise_for_status(response)
        config = response.json()
        if not isinstance(config, Mapping):
            raise ValueError("config.json is not a JSON object")
    except Exception as error:
        config = None
        config_note = f"config.json not read ({_one_line_reason(model_id, error)})"
    data = hub_data(model_info, config)
    if config_note:
        data["notes"].append(config_note)
    return data

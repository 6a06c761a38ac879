# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Will this model run on these GPUs under TGI? The known failures, judged before deploying.

`assess` takes a request (model, GPU type and count, precision, image, token budget) and judges
every rule in RULES: the TGI image's CUDA build against the GPU's compute capability, sharding
and Mistral's flash attention needs below compute capability 8.0, the quantize method's
minimum compute capability, and whether the memory per GPU fits. Each refusal comes with its
reason and concrete alternatives, found by judging the same model on other GPU types, other GPU
counts, another quantization or as a smaller model. `ignore_rules` lets an expert turn a
refusal into a warning.

The rules come from TGI's model loader (v3.3) and its release notes; some are inferred, not
tested on a V100 (see FACTS.md), hence the override. Pure Python: no Ansible imports, no I/O
(the Hub data comes in as `hub`). Runs on Python 3.8+.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.gpu_catalog import (
    CPU,
    TGI_IMAGE_SM70,
    CatalogError,
    gpu_types,
    merged_catalog,
)
from ansible_collections.haw.icc.plugins.module_utils.model_sizing import (
    OVERHEAD_FRACTION,
    SizingError,
    describe_model,
    parse_parameter_count,
    size_model,
)
from ansible_collections.haw.icc.plugins.module_utils.tgi_settings import (
    SETTINGS,
    model_settings_errors,
)

RULES: dict[str, str] = {
    "tgi-image-cuda": "TGI 3.3.1 and newer images are built without kernels for compute "
    "capability 7.0: they need 7.5 or newer",
    "sharding-flash-attention": "below compute capability 8.0 TGI has no flash attention and "
    "then cannot shard Llama, Mistral, Mixtral, Qwen2, Gemma and most current architectures",
    "mistral-flash-attention-v2": "Mistral and Mixtral need flash attention v2, which needs "
    "compute capability 8.0",
    "quantization-compute-capability": "each quantize method needs a minimum compute "
    "capability; on 7.0 only bitsandbytes works",
    "model-fits": "the memory per GPU must fit the GPU's memory x cuda_memory_fraction",
}
REQUEST_RULE = "request"  # the id of refusals about the request itself

PASS = "pass"
REFUSE = "refuse"
IGNORED = "ignored"
UNKNOWN = "unknown"
NOT_APPLICABLE = "not-applicable"

# Request key -> the variable users set, for messages.
VARIABLES = {
    "model_id": "tgi_model_id",
    "gpu_type": "tgi_gpu_type",
    "gpu_count": "tgi_gpu_count",
    "dtype": "tgi_dtype",
    "quantize": "tgi_quantize",
    "parameters": "tgi_model_parameters",
    "max_total_tokens": "tgi_max_total_tokens",
    "concurrent_sequences": "concurrent_sequences",
    "cuda_memory_fraction": "tgi_cuda_memory_fraction",
    "image": "tgi_image",
    "ignore_rules": "tgi_ignore_rules",
}
# Request keys that are tgi_server settings, checked by tgi_settings' rules.
SHARED_SETTINGS = (
    "model_id", "gpu_type", "gpu_count", "dtype", "quantize", "max_total_tokens",
    "cuda_memory_fraction",
)  # fmt: skip
# Request key -> value when missing or null.
REQUEST_DEFAULTS: dict[str, Any] = {
    "model_id": None,
    "gpu_type": SETTINGS["tgi_gpu_type"],
    "gpu_count": SETTINGS["tgi_gpu_count"],
    "dtype": None,
    "quantize": None,
    "parameters": None,
    "max_total_tokens": None,
    "concurrent_sequences": 1,
    "cuda_memory_fraction": None,
    "image": None,
    "ignore_rules": [],
}

# TGI 3.3.1 moved to PyTorch 2.7 for CUDA 12.8, which has no sm_70 kernels.
FIRST_VERSION_WITHOUT_SM70 = (3, 3, 1)
SM70_DROPPED_BELOW = (7, 5)
FLASH_ATTENTION_FROM = (8, 0)

# model_type values TGI serves sharded only through flash attention ("Sharded X requires Flash
# Attention enabled models"), and those it shards on its plain transformers path too.
SHARDING_NEEDS_FLASH_ATTENTION = frozenset(
    {
        "llama",
        "baichuan",
        "phi3",
        "granite",
        "mistral",
        "mixtral",
        "qwen2",
        "qwen2_moe",
        "gemma",
        "gemma2",
        "gemma3",
        "cohere",
        "dbrx",
        "deepseek_v2",
        "deepseek_v3",
        "starcoder2",
        "gpt_bigcode",
        "gpt2",
        "falcon",
    }
)
SHARDING_WITHOUT_FLASH_ATTENTION = frozenset({"bloom", "mpt", "gpt_neox", "opt", "t5"})
NEEDS_FLASH_ATTENTION_V2 = frozenset({"mistral", "mixtral"})

# Quantize method -> lowest compute capability whose kernels TGI has for it.
QUANTIZATION_MIN_COMPUTE_CAPABILITY = {
    "bitsandbytes": "7.0",
    "bitsandbytes-nf4": "7.0",
    "bitsandbytes-fp4": "7.0",
    "awq": "7.5",
    "gptq": "7.5",
    "exl2": "7.5",
    "eetq": "7.5",
    "marlin": "8.0",
    "fp8": "8.0",
    "compressed-tensors": "8.0",
}
# Methods TGI applies to an unquantized checkpoint while loading, in the order recommended
# (closest to the original quality first).
ON_THE_FLY_QUANTIZATION = ("fp8", "eetq", "bitsandbytes-nf4", "bitsandbytes")

_VERSION_TAG = re.compile(r"^v?(?P<major>[0-9]+)\.(?P<minor>[0-9]+)(?:\.(?P<patch>[0-9]+))?")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _capability(text: Any) -> tuple[int, int] | None:
    """'7.0' -> (7, 0); None for anything else."""
    match = re.match(r"^([0-9]+)\.([0-9]+)$", str(text)) if text is not None else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _version_text(version: tuple) -> str:
    return ".".join(str(part) for part in version)


def image_version(image: Any) -> tuple[int, int, int] | None:
    """The TGI version of an image reference from its tag ('...:3.3.0' -> (3, 3, 0)), else None.

    Digest-only references, 'latest' and tags without a version ('sha-...') give None.
    """
    if not isinstance(image, str):
        return None
    reference = image.split("@", 1)[0]
    name, _, tag = reference.rpartition(":")
    if not name or "/" in tag:
        return None  # no tag (a ':' of a registry port only)
    match = _VERSION_TAG.match(tag)
    if not match:
        return None
    return (int(match["major"]), int(match["minor"]), int(match["patch"] or 0))


# ---------------------------------------------------------------------------------------------
# The request


def _read_request(request: Any) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """(values with defaults filled in, problems as (what is wrong, what to do instead))."""
    if not isinstance(request, Mapping):
        return dict(REQUEST_DEFAULTS), [
            (f"the request {request!r} is not a mapping", f"give {', '.join(REQUEST_DEFAULTS)}")
        ]
    values = {
        key: (default if request.get(key) is None else request.get(key))
        for key, default in REQUEST_DEFAULTS.items()
    }
    count = values["gpu_count"]
    if isinstance(count, str) and count.strip().isdigit():  # templated values arrive as text
        values["gpu_count"] = int(count)
    problems = []
    if values["parameters"] is not None and parse_parameter_count(values["parameters"]) is None:
        problems.append(
            (
                f"tgi_model_parameters: {values['parameters']!r} is not a parameter count",
                "give a number like 7000000000 or a size like '7B', or leave it unset",
            )
        )
    for key in ("max_total_tokens", "concurrent_sequences"):
        value = values[key]
        if value is not None and not (_is_int(value) and value >= 1):
            problems.append(
                (f"{VARIABLES[key]}: {value!r} is not a count", "set a whole number >= 1")
            )
    image = values["image"]
    if image is not None and not (isinstance(image, str) and image.strip()):
        problems.append(
            (
                f"tgi_image: {image!r} is not an image reference",
                "set a pinned TGI image or leave it unset for the catalog's",
            )
        )
    problems += _ignore_rules_problems(values["ignore_rules"])
    return values, problems


def _ignore_rules_problems(ignore_rules: Any) -> list[tuple[str, str]]:
    instead = f"list only these rule ids: {', '.join(RULES)}"
    if not isinstance(ignore_rules, (list, tuple)) or not all(
        isinstance(rule, str) for rule in ignore_rules
    ):
        return [(f"tgi_ignore_rules: {ignore_rules!r} is not a list of rule ids", instead)]
    unknown = [rule for rule in ignore_rules if rule not in RULES]
    if unknown:
        return [(f"tgi_ignore_rules: unknown rule id(s) {', '.join(map(repr, unknown))}", instead)]
    return []


def _settings_problems(values: Mapping, catalog: Mapping | None) -> list[tuple[str, str]]:
    """The tgi_server role's own rules for the model and GPU settings (tgi_settings)."""
    settings = {VARIABLES[key]: values[key] for key in SHARED_SETTINGS}
    return [
        (message.rstrip("."), f"fix {message.split(':')[0].split(' ')[0]}")
        for message in model_settings_errors(settings, catalog)
    ]


# ---------------------------------------------------------------------------------------------
# The rules, for one configuration


def _image_rule(image: str, capability: tuple[int, int]) -> tuple[str, str]:
    if capability >= SM70_DROPPED_BELOW:
        return PASS, f"compute capability {_version_text(capability)} is built into every TGI 3"
    version = image_version(image)
    if version is None:
        return UNKNOWN, (
            f"the TGI version of tgi_image {image!r} cannot be read from its tag: TGI "
            f"{_version_text(FIRST_VERSION_WITHOUT_SM70)} and newer do not start on compute "
            f"capability {_version_text(capability)}; use a version tag such as "
            f"{TGI_IMAGE_SM70!r}"
        )
    if version >= FIRST_VERSION_WITHOUT_SM70:
        return REFUSE, (
            f"TGI {_version_text(version)} (tgi_image {image!r}) is built for CUDA 12.8 "
            f"without kernels for compute capability {_version_text(capability)}: it would "
            "not start"
        )
    return PASS, f"TGI {_version_text(version)} still has kernels for this GPU"


def _sharding_rule(count: int, capability: tuple[int, int], architecture: str | None):
    if count == 1:
        return PASS, "one GPU: no sharding"
    if capability >= FLASH_ATTENTION_FROM:
        return PASS, f"{count} shards with flash attention"
    cc = _version_text(capability)
    if architecture is None:
        return UNKNOWN, (
            f"the model's architecture is unknown, so whether TGI can shard it on compute "
            f"capability {cc} is unknown (most current architectures cannot)"
        )
    if architecture in SHARDING_NEEDS_FLASH_ATTENTION:
        return REFUSE, (
            f"TGI shards {architecture} models only with flash attention, which compute "
            f"capability {cc} lacks: {count} GPUs would fail at start-up"
        )
    if architecture in SHARDING_WITHOUT_FLASH_ATTENTION:
        return PASS, f"TGI shards {architecture} models without flash attention"
    return UNKNOWN, (
        f"TGI's sharding of {architecture} models without flash attention (compute capability "
        f"{cc}) is not known here; TGI's generic path cannot shard"
    )


def _mistral_rule(capability: tuple[int, int], architecture: str | None):
    if capability >= FLASH_ATTENTION_FROM:
        return PASS, "flash attention v2 is available"
    if architecture is None:
        return UNKNOWN, "the model's architecture is unknown (Mistral and Mixtral would fail)"
    if architecture not in NEEDS_FLASH_ATTENTION_V2:
        return PASS, f"{architecture} does not need flash attention v2"
    return REFUSE, (
        f"{architecture} models need flash attention v2, which compute capability "
        f"{_version_text(capability)} lacks"
    )


def _quantization_source_text(traits: Mapping) -> str:
    method, source = traits["quantization"], traits["quantization_source"]
    if source == "config":
        return f"the checkpoint is pre-quantized with {method} (its quantization_config)"
    if source == "name":
        return f"the model id suggests a {method} checkpoint"
    return f"tgi_quantize is {method}"


def _quantization_rule(capability: tuple[int, int], traits: Mapping):
    method = traits["quantization"]
    if method is None:
        return PASS, "no quantization"
    minimum = _capability(QUANTIZATION_MIN_COMPUTE_CAPABILITY.get(method))
    if minimum is None:
        return UNKNOWN, (
            f"{_quantization_source_text(traits)}, a method not known here: whether this GPU "
            "can run it is unknown"
        )
    if capability < minimum:
        return REFUSE, (
            f"{_quantization_source_text(traits)}, which needs compute capability "
            f"{_version_text(minimum)}; this GPU has {_version_text(capability)}"
        )
    return PASS, f"{method} runs on compute capability {_version_text(capability)}"


def _memory(sizing: Mapping, usable: float | None) -> dict[str, Any]:
    memory = {
        key: sizing[key]
        for key in ("weights_gib", "kv_cache_gib", "overhead_gib", "total_gib", "per_gpu_gib")
    }
    memory["usable_per_gpu_gib"] = round(usable, 3) if usable is not None else None
    memory["headroom_gib"] = (
        round(usable - sizing["per_gpu_gib"], 3) if usable is not None else None
    )
    return memory


def _need_text(sizing: Mapping | None, gpu: Mapping, usable: float | None) -> str:
    if sizing is None or usable is None:
        return "size unknown"
    per_gpu = " per GPU" if gpu["count"] > 1 else ""
    of = f"{usable:g}" if usable == gpu["memory_gib"] else f"{usable:.1f} usable"
    return f"needs {sizing['per_gpu_gib']:.1f} of {of} GiB{per_gpu}"


def _fits_rule(sizing: Mapping | None, sizing_error: str | None, gpu: Mapping, usable: float):
    if sizing is None:
        return UNKNOWN, f"memory need unknown: {sizing_error}"
    parts = f"weights {sizing['weights_gib']:.1f} + overhead {sizing['overhead_gib']:.1f}"
    if sizing["kv_cache_gib"] is not None:
        parts += f" + KV cache {sizing['kv_cache_gib']:.1f} for {sizing['kv_cache_tokens']} tokens"
    split = f", split over {sizing['shards']} GPUs" if sizing["shards"] > 1 else ""
    need = f"{sizing['per_gpu_gib']:.1f} GiB per GPU ({parts} GiB{split})"
    if sizing["per_gpu_gib"] <= usable:
        return PASS, f"needs {need} of {usable:g} GiB usable"
    return REFUSE, (
        f"needs {need}, but a {gpu['type']} has {usable:g} GiB usable "
        f"({gpu['memory_gib']:g} GiB x tgi_cuda_memory_fraction)"
    )


def _evaluate(values: Mapping, catalog: Mapping, hub: Mapping | None) -> dict[str, Any]:
    """Sizing, memory and verdicts of one configuration; no recommendations."""
    count = values["gpu_count"]
    gpu_type = CPU if count == 0 else values["gpu_type"]
    entry = catalog[gpu_type]
    gpu = {
        "type": gpu_type,
        "count": count,
        "memory_gib": entry["memory_gib"],
        "compute_capability": entry["compute_capability"],
        "image": values["image"] or entry["tgi_image"],
    }
    sizing, sizing_error = None, None
    try:
        sizing = size_model(
            values["model_id"],
            dtype=values["dtype"],
            quantize=values["quantize"],
            parameters=values["parameters"],
            hub=hub,
            gpu_count=count,
            max_total_tokens=values["max_total_tokens"],
            concurrent_sequences=values["concurrent_sequences"],
        )
    except SizingError as error:
        sizing_error = str(error)
    traits = describe_model(values["model_id"], quantize=values["quantize"], hub=hub)

    fraction = values["cuda_memory_fraction"] or 1.0
    usable = entry["memory_gib"] * fraction if entry["memory_gib"] is not None else None
    verdicts: dict[str, tuple[str, str]] = {}
    if count == 0:
        for rule in RULES:
            verdicts[rule] = (NOT_APPLICABLE, "no GPU (tgi_gpu_count is 0): TGI runs on CPU")
    else:
        capability = _capability(entry["compute_capability"]) or (0, 0)
        verdicts["tgi-image-cuda"] = _image_rule(gpu["image"], capability)
        verdicts["sharding-flash-attention"] = _sharding_rule(
            count, capability, traits["architecture"]
        )
        verdicts["mistral-flash-attention-v2"] = _mistral_rule(capability, traits["architecture"])
        verdicts["quantization-compute-capability"] = _quantization_rule(capability, traits)
        verdicts["model-fits"] = _fits_rule(sizing, sizing_error, gpu, usable)
    return {
        "values": dict(values),
        "gpu": gpu,
        "sizing": sizing,
        "sizing_error": sizing_error,
        "traits": traits,
        "usable": usable,
        "verdicts": verdicts,
    }


def _passes(evaluation: Mapping, ignored: Any) -> bool:
    return all(
        verdict != REFUSE or rule in ignored
        for rule, (verdict, _) in evaluation["verdicts"].items()
    )


# ---------------------------------------------------------------------------------------------
# Alternatives: the same judgement on other configurations


def _option_text(evaluation: Mapping, settings: str) -> str:
    gpu = evaluation["gpu"]
    need = _need_text(evaluation["sizing"], gpu, evaluation["usable"])
    return f"{gpu['count']} x {gpu['type']} ({gpu['memory_gib']:g} GiB): {need} (set {settings})"


def _image_for(values: Mapping, entry: Mapping) -> str | None:
    """The user's image when it works on this GPU type, else None (the catalog's image)."""
    image = values["image"]
    capability = _capability(entry["compute_capability"]) or (0, 0)
    if image and _image_rule(image, capability)[0] != REFUSE:
        return image
    return None


class _Alternatives:
    """Finds passing configurations near the request; each finder returns a text or None."""

    def __init__(self, base: Mapping, catalog: Mapping, hub: Mapping | None, ignored) -> None:
        self.base = base
        self.values = base["values"]
        self.catalog = catalog
        self.hub = hub
        self.ignored = ignored

    def _try(self, **changes: Any) -> dict[str, Any] | None:
        values = {**self.values, **changes}
        evaluation = _evaluate(values, self.catalog, self.hub)
        return evaluation if _passes(evaluation, self.ignored) else None

    def _fewest_gpus(self, gpu_type: str, counts, **changes: Any) -> dict[str, Any] | None:
        for count in counts:
            found = self._try(gpu_type=gpu_type, gpu_count=count, **changes)
            if found:
                return found
        return None

    def other_gpu_types(self, keep_image: bool = False) -> list[str]:
        """One option per other GPU type: its fewest GPUs that pass every rule.

        The image is the user's where it works on that type, else the type's catalog image;
        `keep_image` leaves out types that would need another image.
        """
        found = []
        for gpu_type in gpu_types(self.catalog):
            if gpu_type == self.values["gpu_type"]:
                continue
            entry = self.catalog[gpu_type]
            image = _image_for(self.values, entry)
            if keep_image and image != self.values["image"]:
                continue
            option = self._fewest_gpus(gpu_type, range(1, entry["gpus_per_node"] + 1), image=image)
            if option:
                found.append(option)
        found.sort(key=lambda e: (e["gpu"]["count"], e["gpu"]["memory_gib"], e["gpu"]["type"]))
        texts = []
        for option in found:
            settings = (
                f"tgi_gpu_type: {option['gpu']['type']}, tgi_gpu_count: {option['gpu']['count']}"
            )
            if self.values["image"] and option["values"]["image"] is None:
                settings += f", tgi_image: {option['gpu']['image']}"
            texts.append(_option_text(option, settings))
        return texts

    def other_gpu_count(self) -> str | None:
        gpu_type = self.values["gpu_type"]
        counts = [
            count
            for count in range(1, self.catalog[gpu_type]["gpus_per_node"] + 1)
            if count != self.values["gpu_count"]
        ]
        option = self._fewest_gpus(gpu_type, counts)
        if option is None:
            return None
        return _option_text(option, f"tgi_gpu_count: {option['gpu']['count']}")

    def other_quantization(self) -> str | None:
        traits = self.base["traits"]
        prequantized = traits["quantization_source"] in ("config", "name")
        if prequantized and self.base["verdicts"]["quantization-compute-capability"][0] != REFUSE:
            return None  # already 4-bit or 8-bit: no smaller on-the-fly format helps
        counts = [self.values["gpu_count"]]
        if self.base["verdicts"]["sharding-flash-attention"][0] == REFUSE:
            counts.insert(0, 1)
        for method in ON_THE_FLY_QUANTIZATION:
            if method == traits["quantization"]:
                continue
            option = self._fewest_gpus(self.values["gpu_type"], counts, quantize=method, dtype=None)
            if option:
                where = _option_text(
                    option,
                    f"tgi_quantize: {method}, tgi_gpu_count: {option['gpu']['count']}",
                )
                if prequantized:
                    return f"the unquantized original of this model with {where}"
                return f"quantize with {method}: {where}"
        return None

    def smaller_model(self) -> str | None:
        sizing = self.base["sizing"]
        usable = self.base["usable"]
        if sizing is None or usable is None:
            return None
        gpu = self.base["gpu"]
        sharding_ok = self.base["verdicts"]["sharding-flash-attention"][0] != REFUSE
        shards = gpu["count"] if sharding_ok else 1
        room_gib = usable * shards - (sizing["kv_cache_gib"] or 0)
        bytes_per_parameter = sizing["bytes_per_parameter"] or 2.0
        largest = room_gib * 2**30 / (bytes_per_parameter * (1 + OVERHEAD_FRACTION))
        if largest < 1e8:
            return None
        precision = sizing["precision"]
        if precision in ("4bit", "8bit"):
            precision = f"{precision[0]}-bit"
        return (
            f"a model of up to ~{largest / 1e9:.1f}B parameters in {precision} fits {shards} x "
            f"{gpu['type']} ({gpu['memory_gib']:g} GiB) (set tgi_model_id to such a model)"
        )

    def other_gpu_types_same_image(self) -> list[str]:
        return self.other_gpu_types(keep_image=True)

    def image(self) -> str | None:
        entry = self.catalog[self.values["gpu_type"]]
        capability = _capability(entry["compute_capability"]) or (0, 0)
        for image in (entry["tgi_image"], TGI_IMAGE_SM70):
            if _image_rule(image, capability)[0] == PASS:
                return (
                    f"set tgi_image to {image} (a TGI still built for compute capability "
                    f"{entry['compute_capability']}), or leave tgi_image unset for the "
                    f"catalog's image of {self.values['gpu_type']}"
                )
        return None


def _recommendations(base: Mapping, catalog: Mapping, hub, ignored) -> dict[str, list[str]]:
    """Rule id -> concrete alternatives for every refused (or ignored) rule."""
    refused = [rule for rule, (verdict, _) in base["verdicts"].items() if verdict == REFUSE]
    if not refused:
        return {}
    finder = _Alternatives(base, catalog, hub, ignored)
    cache: dict[str, Any] = {}

    def get(name: str) -> list[str]:
        if name not in cache:
            found = getattr(finder, name)()
            cache[name] = found if isinstance(found, list) else [found] if found else []
        return cache[name]

    wanted = {
        "tgi-image-cuda": ("image", "other_gpu_types_same_image"),
        "sharding-flash-attention": ("other_gpu_count", "other_quantization", "other_gpu_types"),
        "mistral-flash-attention-v2": ("other_gpu_types",),
        "quantization-compute-capability": ("other_quantization", "other_gpu_types"),
        "model-fits": ("other_gpu_types", "other_gpu_count", "other_quantization", "smaller_model"),
    }
    return {rule: [text for name in wanted[rule] for text in get(name)] for rule in refused}


_NO_ALTERNATIVE = {
    "tgi-image-cuda": "use a TGI image of version 3.3.0 or older (tgi_image)",
    "sharding-flash-attention": "use one GPU (tgi_gpu_count: 1) with a model that fits it, or a "
    "GPU type with compute capability 8.0 (add it to icc_gpu_catalog)",
    "mistral-flash-attention-v2": "choose a model of another family (for example Llama or "
    "Qwen2), or a GPU type with compute capability 8.0 (add it to icc_gpu_catalog)",
    "quantization-compute-capability": "leave tgi_quantize unset or use bitsandbytes-nf4 with "
    "an unquantized checkpoint",
    "model-fits": "choose a smaller model (tgi_model_id) or a GPU type with more memory",
}


# ---------------------------------------------------------------------------------------------
# The public entry points


def _invalid_result(values: Mapping, problems: list[tuple[str, str]]) -> dict[str, Any]:
    gpu_type = values.get("gpu_type") if isinstance(values, Mapping) else None
    return {
        "model_id": values.get("model_id") if isinstance(values, Mapping) else None,
        "ok": False,
        "fits": None,
        "runs": False,
        "gpu": {
            "type": gpu_type,
            "count": values.get("gpu_count") if isinstance(values, Mapping) else None,
            "memory_gib": None,
            "compute_capability": None,
            "image": values.get("image") if isinstance(values, Mapping) else None,
        },
        "sizing": None,
        "memory": None,
        "rules": [
            {
                "id": rule,
                "verdict": UNKNOWN,
                "reason": "not judged: the request is invalid",
                "recommendation": "",
            }
            for rule in RULES
        ],
        "refusals": [
            f"{REQUEST_RULE}: {reason}. Instead: {instead}." for reason, instead in problems
        ],
        "recommendations": [],
        "warnings": [],
    }


def _sizing_warnings(evaluation: Mapping) -> list[str]:
    sizing, gpu = evaluation["sizing"], evaluation["gpu"]
    if sizing is None:
        return [f"memory not judged: {evaluation['sizing_error']}"]
    warnings = []
    if sizing["parameters_source"] == "name":
        warnings.append(
            f"the model size ({sizing['parameters'] / 1e9:g}B parameters) is guessed from its id; "
            "enable icc_hub_lookup or set tgi_model_parameters for the exact figure"
        )
    if any("upper bound" in note for note in sizing["notes"]):
        warnings.append("mixture of experts: the size from the id (experts x size) is too high")
    if sizing["kv_cache_gib"] is None and gpu["count"]:
        warnings.append(
            "the KV cache is not counted (model config unknown): leave room beyond the need shown"
        )
    if gpu["count"] == 0:
        warnings.append(
            f"CPU: TGI needs about {sizing['total_gib']:.1f} GiB of memory: keep the pod's "
            "memory limit (tgi_memory_limit) above it"
        )
    return warnings


def assess(request: Mapping, catalog: Mapping | None = None, hub: Mapping | None = None) -> dict:
    """Judges every rule in RULES for `request`; see the module docstring.

    `request` keys are those of REQUEST_DEFAULTS (missing or null ones take the default);
    `catalog` holds icc_gpu_catalog entries laid over the built-in catalog; `hub` is what a Hub
    fetcher returned (or None). Never raises for bad input: problems of the request become
    refusals with the id "request". Returns the dict described in interfaces.md: ok, fits,
    runs, gpu, sizing, memory, rules, refusals, recommendations, warnings.
    """
    values, problems = _read_request(request)
    problems += _settings_problems(values, catalog)
    try:
        merged = merged_catalog(catalog)
    except CatalogError as error:
        problems += [(message, "fix icc_gpu_catalog") for message in error.errors]
        merged = None
    if problems or merged is None:
        return _invalid_result(values, problems)

    ignored = set(values["ignore_rules"])
    base = _evaluate(values, merged, hub if isinstance(hub, Mapping) else None)
    by_rule = _recommendations(base, merged, hub, ignored)
    rules, refusals, warnings, recommendations = [], [], [], []
    for rule in RULES:
        verdict, reason = base["verdicts"][rule]
        options = by_rule.get(rule, [])
        recommendation = ""
        if verdict == REFUSE:
            recommendation = " or ".join(options[:3]) if options else _NO_ALTERNATIVE[rule]
            recommendations += [option for option in options if option not in recommendations]
            if rule in ignored:
                verdict = IGNORED
                warnings.append(
                    f"{rule} ignored (tgi_ignore_rules): {reason}; TGI will probably fail"
                )
            else:
                refusals.append(f"{rule}: {reason}. Instead: {recommendation}")
        elif verdict == UNKNOWN and rule != "model-fits":
            warnings.append(f"{rule} not judged: {reason}")
        rules.append(
            {"id": rule, "verdict": verdict, "reason": reason, "recommendation": recommendation}
        )
    warnings += _sizing_warnings(base)

    verdicts = {entry["id"]: entry["verdict"] for entry in rules}
    fits = {PASS: True, REFUSE: False, IGNORED: False}.get(verdicts["model-fits"])
    runs = not any(verdicts[rule] in (REFUSE, IGNORED) for rule in RULES if rule != "model-fits")
    sizing = base["sizing"]
    return {
        "model_id": values["model_id"],
        "ok": not refusals,
        "fits": fits,
        "runs": runs,
        "gpu": base["gpu"],
        "sizing": sizing,
        "memory": _memory(sizing, base["usable"]) if sizing else None,
        "rules": rules,
        "refusals": refusals,
        "recommendations": recommendations,
        "warnings": warnings,
    }


def format_refusal(result: Mapping) -> str:
    """A multi-line message for people: what is refused, why, what to do instead."""
    gpu = result.get("gpu") or {}
    sizing = result.get("sizing") or {}
    model = result.get("model_id") or sizing.get("model_id") or "the model"
    where = "CPU" if gpu.get("count") == 0 else f"{gpu.get('count')} x {gpu.get('type')}"
    if result.get("ok"):
        lines = [f"{model} fits and runs on {where}."]
    else:
        lines = [f"{model} is refused on {where}:"]
        lines += [f"- {refusal}" for refusal in result.get("refusals", [])]
    if result.get("recommendations"):
        lines.append("Alternatives:")
        lines += [f"- {text}" for text in result["recommendations"]]
    refused = [rule["id"] for rule in result.get("rules", []) if rule["verdict"] == REFUSE]
    if refused:
        lines.append(
            f"Experts who know better can set tgi_ignore_rules: [{', '.join(refused)}] to "
            "turn these refusals into warnings."
        )
    if result.get("warnings"):
        lines.append("Warnings:")
        lines += [f"- {warning}" for warning in result["warnings"]]
    return "\n".join(lines)

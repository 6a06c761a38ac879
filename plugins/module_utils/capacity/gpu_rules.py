# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Will this model run on these GPUs under TGI? The known failures, judged before deploying.

`assess` takes the TGI settings (the tgi_server role's variables, the dict tgi_workload takes)
and judges every rule in RULES: the TGI image's CUDA build against the GPU's compute
capability, how several GPUs are used (engine/tgi_multi_gpu.py), the architectures that need
flash attention, the quantize method's minimum compute capability, whether the memory per
GPU fits (module_utils/gpu/sizing.py), and whether the token limits stay within the model's
context length (known from its config only: never guessed). Each refusal comes with its reason
and concrete alternatives, found by judging the same model on other GPU types, other GPU
counts, another quantization, fewer tokens or as a smaller model. `ignore_rules` lets an
expert turn a refusal into a warning.

The rules come from TGI's model loader (v3.3) and its release notes; some are inferred, not
tested on a V100 (see FACTS.md), hence the override. Pure Python: no Ansible imports, no I/O
(the Hub data comes in as `hub`). Runs on Python 3.8+.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import (
    FLASH_ATTENTION_FROM,
    FLASH_ATTENTION_ONLY,
    LAYER_SPLIT,
    TENSOR_SHARDING,
    runs_on_cpu,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    TGI_IMAGE_SM70,
    CatalogError,
    compute_capability,
    gpu_types,
    merged_catalog,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import (
    DEFAULT_KV_TOKENS,
    GIB,
    SizingError,
    context_length,
    describe_model,
    parse_parameter_count,
    size_model,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import (
    TgiSettings,
    is_sealed,
    model_settings_errors,
    resolved_settings,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    choose_mode,
    gpu_entry,
    image_of,
)

RULES: dict[str, str] = {
    "tgi-image-cuda": "TGI 3.3.1 and newer images are built without kernels for compute "
    "capability 7.0: they need 7.5 or newer",
    "multi-gpu-mode": "several GPUs are used by tensor sharding where TGI can shard the "
    "architecture on that compute capability, else by a layer split; some architectures allow "
    "neither",
    "flash-attention-required": "Mistral, Mixtral and the vision-language models run only with "
    "flash attention, which needs compute capability 8.0",
    "quantization-compute-capability": "each quantize method needs a minimum compute "
    "capability; on 7.0 only bitsandbytes works",
    "model-fits": "the memory per GPU (weights, KV cache, CUDA context, activations, logits) "
    "must fit the GPU's memory x cuda_memory_fraction",
    "context-length": "tgi_max_total_tokens and tgi_max_input_tokens stay within the model's "
    "context length, when its config is known",
}
REQUEST_RULE = "request"  # the id of refusals about the request itself

PASS = "pass"
REFUSE = "refuse"
IGNORED = "ignored"
UNKNOWN = "unknown"
NOT_APPLICABLE = "not-applicable"
# The smallest tgi_max_total_tokens worth proposing as an alternative.
MIN_TOKENS_PROPOSED = 256

# TGI 3.3.1 moved to PyTorch 2.7 for CUDA 12.8, which has no sm_70 kernels.
FIRST_VERSION_WITHOUT_SM70 = (3, 3, 1)
SM70_DROPPED_BELOW = (7, 5)

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
# The request: the TGI settings, as the tgi_server role gives them to the pod, and the check's
# own inputs (a parameter count, rules to ignore, concurrent sequences).


def _problems(
    values: Mapping,
    catalog: Any,
    parameters: Any,
    ignore_rules: Any,
    sequences: Any,
    checked: bool,
) -> list[tuple[str, str]]:
    """What is wrong with the request, as (what, what to do instead); settings `checked`
    before (sealed by the tgi_server role's check) are not checked again."""
    problems = (
        []
        if checked
        else [(message, "fix the setting") for message in model_settings_errors(values, catalog)]
    )
    if parameters is not None and parse_parameter_count(parameters) is None:
        problems.append(
            (
                f"tgi_model_parameters: {parameters!r} is not a parameter count",
                "give a number like 7000000000 or a size like '7B', or leave it unset",
            )
        )
    if not (_is_int(sequences) and sequences >= 1):
        problems.append(
            (f"concurrent_sequences: {sequences!r} is not a count", "set a whole number >= 1")
        )
    instead = f"list only these rule ids: {', '.join(RULES)}"
    if not isinstance(ignore_rules, (list, tuple)) or not all(
        isinstance(rule, str) for rule in ignore_rules
    ):
        problems.append((f"tgi_ignore_rules: {ignore_rules!r} is not a list of rule ids", instead))
    else:
        unknown = [rule for rule in ignore_rules if rule not in RULES]
        if unknown:
            problems.append(
                (f"tgi_ignore_rules: unknown rule id(s) {', '.join(map(repr, unknown))}", instead)
            )
    return problems


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


def _multi_gpu_rule(
    multi: Any, count: int, capability: tuple[int, int], architecture: str | None
) -> tuple[str, str]:
    if count == 1:
        return PASS, "one GPU"
    if (
        multi.mode == LAYER_SPLIT
        and capability < FLASH_ATTENTION_FROM
        and architecture in FLASH_ATTENTION_ONLY
    ):
        # Such a model does not start on this GPU at all: one refusal (that rule's) says so.
        return NOT_APPLICABLE, "flash-attention-required decides whether this model runs here"
    verdict = {True: PASS, False: REFUSE, None: UNKNOWN}[multi.works]
    return verdict, multi.reason


def _flash_attention_rule(capability: tuple[int, int], architecture: str | None):
    if capability >= FLASH_ATTENTION_FROM:
        return PASS, "flash attention is available"
    if architecture is None:
        return UNKNOWN, (
            "the model's architecture is unknown (Mistral, Mixtral and the vision-language "
            "models would not start); set tgi_model_architecture or turn on icc_hub_lookup"
        )
    if architecture not in FLASH_ATTENTION_ONLY:
        return PASS, f"{architecture} models run without flash attention too"
    return REFUSE, (
        f"{architecture} models run only with flash attention, which compute capability "
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
    minimum = compute_capability(QUANTIZATION_MIN_COMPUTE_CAPABILITY.get(method))
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


MEMORY_PARTS = (
    "weights_gib",
    "kv_cache_gib",
    "context_gib",
    "activations_gib",
    "logits_gib",
    "overhead_gib",
    "total_gib",
    "per_gpu_gib",
)


def _memory(sizing: Mapping, usable: float | None) -> dict[str, Any]:
    memory = {key: sizing[key] for key in MEMORY_PARTS}
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


def _parts_text(sizing: Mapping) -> str:
    split = sizing["shards"]
    per = f"/{split}" if split > 1 else ""
    parts = (
        f"weights {sizing['weights_gib']:.1f}{per} + KV cache {sizing['kv_cache_gib']:.1f}{per} "
        f"for {sizing['kv_cache_tokens']} tokens + CUDA context {sizing['context_gib']:.1f} + "
        f"activations {sizing['activations_gib']:.1f}"
    )
    if sizing["mode"] == TENSOR_SHARDING:
        parts += per
    parts += f" + logits {sizing['logits_gib']:.1f}"
    if sizing["mode"] == TENSOR_SHARDING:
        parts += per
    parts += " GiB"
    if not sizing["config_known"]:
        parts += "; config unknown: a conservative stand-in"
    return parts


def _fits_rule(sizing: Mapping | None, sizing_error: str | None, gpu: Mapping, usable: float):
    if sizing is None:
        return REFUSE, f"how much memory it needs is unknown: {sizing_error}"
    need = f"{sizing['per_gpu_gib']:.1f} GiB per GPU ({_parts_text(sizing)})"
    if sizing["per_gpu_gib"] <= usable:
        return PASS, f"needs {need} of {usable:g} GiB usable"
    return REFUSE, (
        f"needs {need}, but a {gpu['type']} has {usable:g} GiB usable "
        f"({gpu['memory_gib']:g} GiB x tgi_cuda_memory_fraction)"
    )


# Launcher flags that stretch the model's context (TGI's RoPE scaling): the model's own
# context length no longer bounds the token limits.
ROPE_SCALING_FLAGS = ("--rope-scaling", "--rope-factor")


def _context_rule(values: Mapping, traits: Mapping) -> tuple[str, str]:
    context = context_length(traits["config"])
    if context is None:
        return NOT_APPLICABLE, "the model's context length is unknown (no config from the Hub)"
    tokens = context["tokens"]
    flags = [
        arg for arg in values["tgi_extra_args"] or [] if str(arg).startswith(ROPE_SCALING_FLAGS)
    ]
    if flags:
        return NOT_APPLICABLE, (
            f"tgi_extra_args scales RoPE ({', '.join(flags)}): the model's context of {tokens} "
            "tokens no longer bounds the token limits"
        )
    total, prompt = values["tgi_max_total_tokens"], values["tgi_max_input_tokens"]
    beyond = []
    if total is not None and total > tokens:
        beyond.append(f"tgi_max_total_tokens {total} (at most {tokens})")
    if prompt is not None and prompt >= tokens:
        beyond.append(f"tgi_max_input_tokens {prompt} (at most {tokens - 1}: one for the answer)")
    where = f"{values['tgi_model_id']} attends to at most {tokens} tokens ({context['source']})"
    if beyond:
        return REFUSE, (
            f"{' and '.join(beyond)}: {where}; it was not trained for longer sequences, so TGI "
            "would answer garbage past them or fail"
        )
    return PASS, f"the token limits fit: {where}"


def _evaluate(
    values: TgiSettings, catalog: Mapping, hub: Mapping | None, parameters: Any, sequences: int
) -> dict[str, Any]:
    """Sizing, memory and verdicts of one configuration; no recommendations."""
    count = values.gpu_count
    gpu_type, entry = gpu_entry(values, catalog)
    gpu = {
        "type": gpu_type,
        "count": count,
        "memory_gib": entry["memory_gib"],
        "compute_capability": entry["compute_capability"],
        "image": image_of(values, entry),
    }
    traits = describe_model(values["tgi_model_id"], quantize=values["tgi_quantize"], hub=hub)
    architecture = values["tgi_model_architecture"] or traits["architecture"]
    capability = compute_capability(entry["compute_capability"])
    # The mode the pod will be rendered with: the role passes the architecture judged here on.
    multi = choose_mode(values.but(tgi_model_architecture=architecture), catalog)
    sizing, sizing_error = None, None
    try:
        sizing = size_model(
            values["tgi_model_id"],
            dtype=values["tgi_dtype"],
            quantize=values["tgi_quantize"],
            parameters=parameters,
            hub=hub,
            gpu_count=count,
            mode=multi.mode,
            flash_attention=capability is not None and capability >= FLASH_ATTENTION_FROM,
            max_total_tokens=values["tgi_max_total_tokens"],
            max_input_tokens=values["tgi_max_input_tokens"],
            prefill_tokens=values["tgi_max_batch_prefill_tokens"],
            concurrent_sequences=sequences,
        )
    except SizingError as error:
        sizing_error = str(error)

    fraction = values["tgi_cuda_memory_fraction"] or 1.0
    usable = entry["memory_gib"] * fraction if entry["memory_gib"] is not None else None
    verdicts: dict[str, tuple[str, str]] = {}
    if values.on_cpu:
        for rule in RULES:
            verdicts[rule] = (NOT_APPLICABLE, "no GPU (tgi_gpu_count is 0): TGI runs on CPU")
    else:
        capability = capability or (0, 0)
        verdicts["tgi-image-cuda"] = _image_rule(gpu["image"], capability)
        verdicts["multi-gpu-mode"] = _multi_gpu_rule(multi, count, capability, architecture)
        verdicts["flash-attention-required"] = _flash_attention_rule(capability, architecture)
        verdicts["quantization-compute-capability"] = _quantization_rule(capability, traits)
        verdicts["model-fits"] = _fits_rule(sizing, sizing_error, gpu, usable)
    # Judged on the limits as given: sizing's default for an unset tgi_max_total_tokens (the
    # context, when shorter than 4096) is TGI's, not the user's.
    verdicts["context-length"] = _context_rule(values, traits)
    return {
        "values": values,
        "gpu": gpu,
        "sizing": sizing,
        "sizing_error": sizing_error,
        "traits": traits,
        "architecture": architecture,
        "multi": multi,
        "usable": usable,
        "verdicts": verdicts,
        "parameters": parameters,
        "sequences": sequences,
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
    how = f", {evaluation['multi'].mode}" if gpu["count"] > 1 else ""
    return (
        f"{gpu['count']} x {gpu['type']} ({gpu['memory_gib']:g} GiB{how}): {need} (set {settings})"
    )


def _image_for(values: Mapping, entry: Mapping) -> str | None:
    """The user's image when it works on this GPU type, else None (the catalog's image)."""
    image = values["tgi_image"]
    capability = compute_capability(entry["compute_capability"]) or (0, 0)
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

    def _judge(self, **changes: Any) -> dict[str, Any]:
        values = self.values.but(**changes)
        return _evaluate(
            values, self.catalog, self.hub, self.base["parameters"], self.base["sequences"]
        )

    def _try(self, **changes: Any) -> dict[str, Any] | None:
        evaluation = self._judge(**changes)
        return evaluation if _passes(evaluation, self.ignored) else None

    def _fewest_gpus(self, gpu_type: str, counts, **changes: Any) -> dict[str, Any] | None:
        for count in counts:
            found = self._try(tgi_gpu_type=gpu_type, tgi_gpu_count=count, **changes)
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
            if gpu_type == self.values["tgi_gpu_type"]:
                continue
            entry = self.catalog[gpu_type]
            image = _image_for(self.values, entry)
            if keep_image and image != self.values["tgi_image"]:
                continue
            counts = range(1, entry["gpus_per_node"] + 1)
            option = self._fewest_gpus(gpu_type, counts, tgi_image=image)
            if option:
                found.append(option)
        found.sort(key=lambda e: (e["gpu"]["count"], e["gpu"]["memory_gib"], e["gpu"]["type"]))
        texts = []
        for option in found:
            settings = (
                f"tgi_gpu_type: {option['gpu']['type']}, tgi_gpu_count: {option['gpu']['count']}"
            )
            if self.values["tgi_image"] and option["values"]["tgi_image"] is None:
                settings += f", tgi_image: {option['gpu']['image']}"
            texts.append(_option_text(option, settings))
        return texts

    def other_gpu_count(self) -> str | None:
        gpu_type = self.values["tgi_gpu_type"]
        counts = [
            count
            for count in range(1, self.catalog[gpu_type]["gpus_per_node"] + 1)
            if count != self.values["tgi_gpu_count"]
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
        counts = [self.values["tgi_gpu_count"]]
        if self.base["verdicts"]["multi-gpu-mode"][0] == REFUSE:
            counts.insert(0, 1)
        for method in ON_THE_FLY_QUANTIZATION:
            if method == traits["quantization"]:
                continue
            option = self._fewest_gpus(
                self.values["tgi_gpu_type"], counts, tgi_quantize=method, tgi_dtype=None
            )
            if option:
                where = _option_text(
                    option,
                    f"tgi_quantize: {method}, tgi_gpu_count: {option['gpu']['count']}",
                )
                if prequantized:
                    return f"the unquantized original of this model with {where}"
                return f"quantize with {method}: {where}"
        return None

    def fewer_tokens(self) -> str | None:
        """The largest tgi_max_total_tokens below the current one that fits, when the model
        does not fit only because of the token limits."""
        values = self.values
        total = values["tgi_max_total_tokens"] or DEFAULT_KV_TOKENS

        def fits(tokens: int) -> dict[str, Any] | None:
            prompt = min(values["tgi_max_input_tokens"] or tokens - 1, tokens - 1)
            prefill = min(values["tgi_max_batch_prefill_tokens"] or tokens, tokens)
            evaluation = self._judge(
                tgi_max_total_tokens=tokens,
                tgi_max_input_tokens=prompt,
                tgi_max_batch_prefill_tokens=max(prefill, prompt),
            )
            return evaluation if evaluation["verdicts"]["model-fits"][0] == PASS else None

        high = total - 1
        context = context_length(self.base["traits"]["config"])
        if context is not None:
            high = min(high, context["tokens"])  # never more than the model attends to
        if high < MIN_TOKENS_PROPOSED or not fits(MIN_TOKENS_PROPOSED):
            return None
        low = MIN_TOKENS_PROPOSED  # fits(low) holds
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if fits(middle) else (low, middle - 1)
        option = fits(low)
        if not _passes(option, self.ignored | {"model-fits"}):
            return None
        prompt = option["values"]["tgi_max_input_tokens"]
        need = _need_text(option["sizing"], option["gpu"], option["usable"])
        return (
            f"fewer tokens per request: {need} "
            f"(set tgi_max_total_tokens: {low}, tgi_max_input_tokens: {prompt}, "
            f"tgi_max_batch_prefill_tokens: {option['values']['tgi_max_batch_prefill_tokens']})"
        )

    def within_context(self) -> str | None:
        """The token limits cut to the model's context length, when that passes every rule."""
        context = context_length(self.base["traits"]["config"])
        if context is None:
            return None
        values, tokens = self.values, context["tokens"]
        total = min(values["tgi_max_total_tokens"] or tokens, tokens)
        prompt = min(values["tgi_max_input_tokens"] or total - 1, total - 1)
        prefill = values["tgi_max_batch_prefill_tokens"]
        changes = {"tgi_max_total_tokens": total, "tgi_max_input_tokens": prompt}
        if prefill is not None and prefill < prompt:
            changes["tgi_max_batch_prefill_tokens"] = prompt
        option = self._try(**changes)
        if option is None and prefill is not None and prefill > total:
            # The prefill budget may batch several prompts; cut to one when that is too much.
            changes["tgi_max_batch_prefill_tokens"] = total
            option = self._try(**changes)
        if option is None:
            return None
        need = _need_text(option["sizing"], option["gpu"], option["usable"])
        settings = ", ".join(f"{name}: {value}" for name, value in changes.items())
        return f"token limits within the model's context: {need} (set {settings})"

    def smaller_model(self) -> str | None:
        sizing = self.base["sizing"]
        usable = self.base["usable"]
        if sizing is None or usable is None:
            return None
        gpu = self.base["gpu"]
        split = sizing["shards"] if self.base["verdicts"]["multi-gpu-mode"][0] != REFUSE else 1
        besides = sizing["per_gpu_gib"] - sizing["weights_gib"] / sizing["shards"]
        room_gib = (usable - besides) * split
        largest = room_gib * GIB / (sizing["bytes_per_parameter"] or 2.0)
        if largest < 1e8:
            return None
        precision = sizing["precision"]
        if precision in ("4bit", "8bit"):
            precision = f"{precision[0]}-bit"
        return (
            f"a model of up to ~{largest / 1e9:.1f}B parameters in {precision} fits {split} x "
            f"{gpu['type']} ({gpu['memory_gib']:g} GiB) (set tgi_model_id to such a model)"
        )

    def other_gpu_types_same_image(self) -> list[str]:
        return self.other_gpu_types(keep_image=True)

    def image(self) -> str | None:
        entry = self.catalog[self.values["tgi_gpu_type"]]
        capability = compute_capability(entry["compute_capability"]) or (0, 0)
        for image in (entry["tgi_image"], TGI_IMAGE_SM70):
            if _image_rule(image, capability)[0] == PASS:
                return (
                    f"set tgi_image to {image} (a TGI still built for compute capability "
                    f"{entry['compute_capability']}), or leave tgi_image unset for the "
                    f"catalog's image of {self.values['tgi_gpu_type']}"
                )
        return None

    def size_known(self) -> str | None:
        if self.base["sizing"] is not None:
            return None
        return (
            "give the size: set tgi_model_parameters (like 2.7B), or turn on icc_hub_lookup so "
            "the Hub tells it"
        )


def _recommendations(base: Mapping, catalog: Mapping, hub, ignored) -> dict[str, list[str]]:
    """Rule id -> concrete alternatives for every refused (or ignored) rule."""
    refused = [rule for rule, (verdict, _) in base["verdicts"].items() if verdict == REFUSE]
    if not refused:
        return {}
    finder = _Alternatives(base, catalog, hub, set(ignored))
    cache: dict[str, Any] = {}

    def get(name: str) -> list[str]:
        if name not in cache:
            found = getattr(finder, name)()
            cache[name] = found if isinstance(found, list) else [found] if found else []
        return cache[name]

    wanted = {
        "tgi-image-cuda": ("image", "other_gpu_types_same_image"),
        "multi-gpu-mode": ("other_gpu_count", "other_quantization", "other_gpu_types"),
        "flash-attention-required": ("other_gpu_types",),
        "quantization-compute-capability": ("other_quantization", "other_gpu_types"),
        "model-fits": (
            "size_known",
            "fewer_tokens",
            "other_gpu_count",
            "other_gpu_types",
            "other_quantization",
            "smaller_model",
        ),
        "context-length": ("within_context",),
    }
    return {rule: [text for name in wanted[rule] for text in get(name)] for rule in refused}


_NO_ALTERNATIVE = {
    "tgi-image-cuda": "use a TGI image of version 3.3.0 or older (tgi_image)",
    "multi-gpu-mode": "use one GPU (tgi_gpu_count: 1) with a model that fits it, or a "
    "GPU type with compute capability 8.0 (add it to icc_gpu_catalog)",
    "flash-attention-required": "choose a model of another family (for example Llama or "
    "Qwen2), or a GPU type with compute capability 8.0 (add it to icc_gpu_catalog)",
    "quantization-compute-capability": "leave tgi_quantize unset or use bitsandbytes-nf4 with "
    "an unquantized checkpoint",
    "model-fits": "choose a smaller model (tgi_model_id) or a GPU type with more memory",
    "context-length": "lower tgi_max_total_tokens and tgi_max_input_tokens to the model's "
    "context length, or choose a model with a longer context",
}


# ---------------------------------------------------------------------------------------------
# The public entry points


def _invalid_result(settings: Any, problems: list[tuple[str, str]]) -> dict[str, Any]:
    values = settings if isinstance(settings, Mapping) else {}
    return {
        "model_id": values.get("tgi_model_id"),
        "ok": False,
        "fits": None,
        "runs": False,
        "architecture": None,
        "multi_gpu": None,
        "gpu": {
            "type": values.get("tgi_gpu_type"),
            "count": values.get("tgi_gpu_count"),
            "memory_gib": None,
            "compute_capability": None,
            "image": values.get("tgi_image"),
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
        return []
    warnings = []
    if sizing["parameters_source"] == "name":
        warnings.append(
            "the model size is read from its id and counted high "
            f"({sizing['parameters'] / 1e9:.3g}B parameters); enable icc_hub_lookup or set "
            "tgi_model_parameters for the exact figure"
        )
    if any("upper bound" in note for note in sizing["notes"]):
        warnings.append("mixture of experts: the size from the id (experts x size) is too high")
    if not sizing["config_known"] and gpu["count"]:
        warnings.append(
            "the model's config is unknown: the KV cache, activations and logits are those of a "
            "conservative stand-in (the Hub's config gives smaller, exact figures)"
        )
    if runs_on_cpu(gpu["count"]):
        warnings.append(
            f"CPU: TGI needs about {sizing['total_gib']:.1f} GiB of memory: keep the pod's "
            "memory limit (tgi_memory_limit) above it"
        )
    return warnings


def assess(
    settings: Mapping,
    catalog: Mapping | None = None,
    hub: Mapping | None = None,
    *,
    parameters: Any = None,
    ignore_rules: Any = (),
    concurrent_sequences: Any = 1,
) -> dict:
    """Judges every rule in RULES for the TGI `settings` (the tgi_server role's variables, as
    tgi_workload takes them); see the module docstring.

    `catalog` holds icc_gpu_catalog entries laid over the built-in catalog; `hub` is what a Hub
    fetcher returned (or None); `parameters` is tgi_model_parameters. Settings the tgi_server
    role checked (sealed, see tgi_settings.sealed) are judged as they are; others get the
    model's part of the check first. Never raises for bad input: problems become refusals with
    the id "request". Returns ok, fits, runs,
    architecture, multi_gpu, gpu, sizing, memory, rules, refusals, recommendations, warnings.
    """
    if not isinstance(settings, Mapping):
        return _invalid_result(
            {}, [(f"the settings {settings!r} are not a mapping", "give tgi_* settings")]
        )
    checked = isinstance(settings, TgiSettings) or is_sealed(settings, catalog)
    values = resolved_settings(settings)
    problems = _problems(values, catalog, parameters, ignore_rules, concurrent_sequences, checked)
    try:
        merged = merged_catalog(catalog)
    except CatalogError as error:
        problems += [(message, "fix icc_gpu_catalog") for message in error.errors]
        merged = None
    if problems or merged is None:
        return _invalid_result(values, problems)
    values = TgiSettings(values)  # checked: by the role's check, or just now

    ignored = set(ignore_rules)
    hub = hub if isinstance(hub, Mapping) else None
    base = _evaluate(values, merged, hub, parameters, concurrent_sequences)
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
        elif verdict == UNKNOWN:
            warnings.append(f"{rule} not judged: {reason}")
        rules.append(
            {"id": rule, "verdict": verdict, "reason": reason, "recommendation": recommendation}
        )
    warnings += _sizing_warnings(base)

    verdicts = {entry["id"]: entry["verdict"] for entry in rules}
    fits = {PASS: True, REFUSE: False, IGNORED: False}.get(verdicts["model-fits"])
    runs = not any(verdicts[rule] in (REFUSE, IGNORED) for rule in RULES if rule != "model-fits")
    sizing = base["sizing"]
    multi = base["multi"]
    return {
        "model_id": values["tgi_model_id"],
        "ok": not refusals,
        "fits": fits,
        "runs": runs,
        "architecture": base["architecture"],
        "multi_gpu": {"mode": multi.mode, "works": multi.works, "reason": multi.reason},
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
    count = gpu.get("count")
    where = "CPU" if runs_on_cpu(count) else f"{count} x {gpu.get('type')}"
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

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The alternatives to a refused configuration: the same rules (gpu_verdicts) judged on other
GPU types, other GPU counts, another quantization, fewer tokens or a smaller model, worded as
the settings to change; and what to do when nothing near the request passes (NO_ALTERNATIVE).

Pure Python: no Ansible imports, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.capacity.gpu_verdicts import (
    PASS,
    REFUSE,
    evaluate,
    image_rule,
    passes,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    TGI_IMAGE_SM70,
    compute_capability,
    gpu_types,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.model_facts import context_length
from ansible_collections.haw.icc.plugins.module_utils.gpu.sizing import (
    DEFAULT_KV_TOKENS,
    GIB,
)

# The smallest tgi_max_total_tokens worth proposing as an alternative.
MIN_TOKENS_PROPOSED = 256
# Methods TGI applies to an unquantized checkpoint while loading, in the order recommended
# (closest to the original quality first).
ON_THE_FLY_QUANTIZATION = ("fp8", "eetq", "bitsandbytes-nf4", "bitsandbytes")


def _need_text(sizing: Mapping | None, gpu: Mapping, usable: float | None) -> str:
    if sizing is None or usable is None:
        return "size unknown"
    per_gpu = " per GPU" if gpu["count"] > 1 else ""
    of = f"{usable:g}" if usable == gpu["memory_gib"] else f"{usable:.1f} usable"
    return f"needs {sizing['per_gpu_gib']:.1f} of {of} GiB{per_gpu}"


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
    if image and image_rule(image, capability)[0] != REFUSE:
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
        return evaluate(
            values, self.catalog, self.hub, self.base["parameters"], self.base["sequences"]
        )

    def _try(self, **changes: Any) -> dict[str, Any] | None:
        evaluation = self._judge(**changes)
        return evaluation if passes(evaluation, self.ignored) else None

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
        if not passes(option, self.ignored | {"model-fits"}):
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
            if image_rule(image, capability)[0] == PASS:
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


def recommendations_for(base: Mapping, catalog: Mapping, hub, ignored) -> dict[str, list[str]]:
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


NO_ALTERNATIVE = {
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

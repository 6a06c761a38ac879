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

This file owns the request (its check), the result and its wording (`format_refusal`); each
rule's verdict on one configuration is gpu_verdicts', the alternatives are gpu_alternatives'.

The rules come from TGI's model loader (v3.3) and its release notes; some are inferred, not
tested on a V100 (see FACTS.md), hence the override. Pure Python: no Ansible imports, no I/O
(the Hub data comes in as `hub`). Runs on Python 3.8+.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.capacity import vllm_verdicts
from ansible_collections.haw.icc.plugins.module_utils.capacity.gpu_alternatives import (
    NO_ALTERNATIVE,
    recommendations_for,
)
from ansible_collections.haw.icc.plugins.module_utils.capacity.gpu_verdicts import (
    IGNORED,
    PASS,
    REFUSE,
    RULES,
    UNKNOWN,
    evaluate,
)
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import runs_on_cpu
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    CatalogError,
    merged_catalog,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.model_facts import parse_parameter_count
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import (
    TgiSettings,
    is_sealed,
    model_settings_errors,
    resolved_settings,
)

REQUEST_RULE = "request"  # the id of refusals about the request itself
# Every model rule of either engine (tgi_ignore_rules may name any of them).
ALL_RULES = {**RULES, **vllm_verdicts.RULES}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
    instead = f"list only these rule ids: {', '.join(ALL_RULES)}"
    if not isinstance(ignore_rules, (list, tuple)) or not all(
        isinstance(rule, str) for rule in ignore_rules
    ):
        problems.append((f"tgi_ignore_rules: {ignore_rules!r} is not a list of rule ids", instead))
    else:
        unknown = [rule for rule in ignore_rules if rule not in ALL_RULES]
        if unknown:
            problems.append(
                (f"tgi_ignore_rules: unknown rule id(s) {', '.join(map(repr, unknown))}", instead)
            )
    return problems


# ---------------------------------------------------------------------------------------------
# The result


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
    if settings.get("icc_engine") == vllm_verdicts.ENGINE:
        return vllm_verdicts.assess(values, merged, hub, parameters, ignored)
    base = evaluate(values, merged, hub, parameters, concurrent_sequences)
    by_rule = recommendations_for(base, merged, hub, ignored)
    rules, refusals, warnings, recommendations = [], [], [], []
    for rule in RULES:
        verdict, reason = base["verdicts"][rule]
        options = by_rule.get(rule, [])
        recommendation = ""
        if verdict == REFUSE:
            recommendation = " or ".join(options[:3]) if options else NO_ALTERNATIVE[rule]
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

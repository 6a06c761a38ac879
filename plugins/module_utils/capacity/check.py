# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The capacity check of haw.icc.gpu_capacity_check, as one call: the model rules (gpu_rules) on
the settings, then for GPUs what the cluster says (cluster_reader, cluster_rules): free GPUs per
node and the quota left, with one verdict line.

The action plugin (plugins/action/gpu_capacity_check.py) gives it the task's validated options,
the result to fill and a way to the request layer; it reads only, never writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansible_collections.haw.icc.plugins.module_utils.capacity import cluster_rules, gpu_rules
from ansible_collections.haw.icc.plugins.module_utils.capacity.cluster_reader import ClusterReader
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import runs_on_cpu
from ansible_collections.haw.icc.plugins.module_utils.gpu import hub
from ansible_collections.haw.icc.plugins.module_utils.gpu.allocation import (
    quota_left,
    released_gpus,
)
from ansible_collections.haw.icc.plugins.module_utils.gpu.catalog import (
    CatalogError,
    gpu_types,
    merged_catalog,
)

JSON = dict[str, Any]


def hub_facts(params: JSON, warnings: list[str]) -> JSON | None:
    """What the Hub knows about the model, or None (with a warning) when it cannot tell."""
    if not params["hub_lookup"]:
        return None
    settings = params["settings"]
    try:
        # Looked up at call time, so that tests can replace the fetcher.
        return hub.hub_fetcher(
            settings.get("tgi_model_id"),
            revision=settings.get("tgi_model_revision"),
            token=params["hf_token"],
            timeout=params["hub_timeout"],
        )
    except hub.HubUnavailable as error:
        warnings.append(
            f"Hugging Face Hub lookup of {settings.get('tgi_model_id')} failed ({error}); the "
            "size comes from the model id or tgi_model_parameters (option model_parameters)"
        )
        return None


def other_gpu_types(catalog: JSON, gpu_type: str) -> list[str]:
    try:
        known = merged_catalog(catalog)
    except CatalogError:  # the model rules report a bad catalog
        return []
    return [name for name in gpu_types(known) if name != gpu_type]


def cluster_verdicts(
    reader: ClusterReader,
    params: JSON,
    gpu: JSON,
    judge: Callable[[str, int], bool],
    result: JSON,
    warnings: list[str],
) -> list[tuple[JSON, list[str]]]:
    """Reads the cluster for the `gpu` asked for (the assessment's: the checked type and
    count); returns the two cluster rules as (entry, alternatives) and fills the result's nodes,
    free_gpus, quota and released_gpus. A read that fails otherwise than forbidden raises the
    ApiError."""
    gpu_type, wanted = gpu["type"], gpu["count"]
    nodes = reader.nodes()
    pods = reader.pods_everywhere() if nodes is not None else None
    released_pods = reader.pods_of_deployment(params["release_deployment"])
    quotas = reader.quotas()
    result["released_gpus"] = released_gpus(released_pods)
    free_rule, table = cluster_rules.gpus_free_rule(
        gpu_type,
        wanted,
        other_gpu_types(params["catalog"], gpu_type),
        nodes,
        pods,
        released_pods,
        judge,
    )
    if table is not None:
        result["nodes"] = table["nodes"]
        result["free_gpus"] = table["free_gpus"]
    quota = quota_left(quotas, result["released_gpus"]) if quotas is not None else None
    result["quota"] = quota
    quota_rule = cluster_rules.gpu_quota_rule(
        params["namespace"],
        gpu_type,
        wanted,
        quotas,
        quota,
        reader.gpu_pods_here(exclude=released_pods)
        if quota and quota["left"] is not None
        else None,
        judge,
        warnings,
    )
    return [free_rule, quota_rule]


def one_line(assessment: JSON, result: JSON) -> str:
    """For example "m in float16 on 2 x gpu-tesla-v100 (layer-split): needs 9.1 GiB per GPU of
    16 GiB: ok"."""
    sizing, memory, gpu = assessment.get("sizing"), assessment.get("memory"), assessment["gpu"]
    count = gpu["count"] or 0
    head = assessment["model_id"] or "the model"
    if sizing:
        head += f" in {sizing.get('quantization') or sizing.get('precision')}"
    head += " on CPU" if runs_on_cpu(count) else f" on {count} x {gpu['type']}"
    if count > 1 and assessment.get("multi_gpu"):
        head += f" ({assessment['multi_gpu']['mode']})"
    if memory is None:
        details = ["size unknown"]
    elif runs_on_cpu(count):
        details = [f"needs {memory['total_gib']:.1f} GiB of memory"]
    else:
        offered = memory.get("usable_per_gpu_gib") or gpu.get("memory_gib")
        details = [f"needs {memory['per_gpu_gib']:.1f} GiB per GPU of {offered:g} GiB"]
    if result["free_gpus"] is not None:
        details.append(f"{cluster_rules.gpus_word(result['free_gpus'])} free on one node")
    if result["quota"] and result["quota"]["left"] is not None:
        details.append(f"quota left {result['quota']['left']}")
    refused = [entry["id"] for entry in result["rules"] if entry["verdict"] == "refuse"]
    if any(line.startswith(gpu_rules.REQUEST_RULE + ":") for line in result["refusals"]):
        refused.insert(0, gpu_rules.REQUEST_RULE)
    verdict = f"refused ({', '.join(refused)})" if refused else "ok"
    return f"{head}: {', '.join(details)}: {verdict}"


def failure_message(result: JSON) -> str:
    """The one-line verdict, then every refusal with its reason and what to do instead."""
    # The warnings are shown by Ansible beside the message already.
    return f"{result['msg']}\n{gpu_rules.format_refusal(dict(result, warnings=[]))}"


def check(
    params: JSON, result: JSON, cluster_api: Callable[[], Any], warnings: list[str]
) -> str | None:
    """The check for the task's validated options `params` (those of the module's
    ARGUMENT_SPEC): fills `result` with the verdict and returns why the task fails, or None.

    `cluster_api()` gives the request layer (module_utils/cluster/api.py); it is called only
    when GPUs are asked for, after `result` holds the model's assessment, which stays when it
    raises. What could not be seen or was ignored goes to `warnings`.
    """
    known = list(gpu_rules.ALL_RULES) + list(cluster_rules.CLUSTER_RULES)
    unknown = [rule_id for rule_id in params["ignore_rules"] if rule_id not in known]
    if unknown:
        return (
            f"ignore_rules (tgi_ignore_rules): unknown rule id(s) {', '.join(unknown)}; "
            f"the rules are {', '.join(known)}"
        )
    model_ignored = [rule for rule in params["ignore_rules"] if rule in gpu_rules.ALL_RULES]

    def assess(**changes: Any) -> JSON:
        return gpu_rules.assess(
            {**params["settings"], **changes},
            params["catalog"],
            facts,
            parameters=params["model_parameters"],
            ignore_rules=model_ignored,
            concurrent_sequences=params["concurrent_sequences"],
        )

    def judge(gpu_type: str, count: int) -> bool:
        """Whether the model rules pass on `count` GPUs of `gpu_type` (the alternatives)."""
        return assess(tgi_gpu_type=gpu_type, tgi_gpu_count=count)["ok"]

    facts = hub_facts(params, warnings)
    assessment = assess()
    warnings.extend(assessment.get("warnings") or [])
    result.update(
        ok=assessment["ok"],
        fits=assessment["fits"],
        runs=assessment["runs"],
        schedulable=None,
        architecture=assessment["architecture"],
        multi_gpu=assessment["multi_gpu"],
        gpu=assessment["gpu"],
        sizing=assessment["sizing"],
        memory=assessment["memory"],
        rules=list(assessment["rules"]),
        refusals=list(assessment["refusals"]),
        recommendations=list(assessment["recommendations"]),
        nodes=None,
        free_gpus=None,
        quota=None,
        released_gpus=0,
    )

    if assessment["multi_gpu"] is not None and not runs_on_cpu(assessment["gpu"]["count"]):
        reader = ClusterReader(cluster_api(), params["namespace"], warnings)
        try:
            cluster = cluster_verdicts(reader, params, assessment["gpu"], judge, result, warnings)
        except ApiError as error:
            said = f" ({error.status}): {error.said}" if error.status else f": {error}"
            return f"Reading the cluster for the capacity check failed{said}"
        verdicts = {entry["verdict"] for entry, _options in cluster}
        if "refuse" in verdicts:
            result["schedulable"] = False
        elif "unknown" not in verdicts:
            result["schedulable"] = True
    else:
        why = "the request is invalid" if assessment["multi_gpu"] is None else "no GPU asked for"
        cluster = [
            cluster_rules.rule(rule_id, "not-applicable", why)
            for rule_id in cluster_rules.CLUSTER_RULES
        ]
    cluster_refused = False
    for checked, options in cluster:
        entry = cluster_rules.apply_ignore(checked, params["ignore_rules"], warnings)
        result["rules"].append(entry)
        if entry["verdict"] == "refuse":
            cluster_refused = True
            result["refusals"].append(cluster_rules.refusal_line(entry))
            result["recommendations"] += [o for o in options if o not in result["recommendations"]]
    result["ok"] = assessment["ok"] and not cluster_refused
    result["msg"] = one_line(assessment, result)
    if params["fail_on_refusal"] and not result["ok"]:
        return failure_message(result)
    return None

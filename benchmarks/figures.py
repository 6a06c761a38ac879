"""The pure part of the benchmark: medians, ratios, audit counts, object and pod comparisons,
and the verdict on issue 11's targets. No cluster, no Ansible: tests/unit/test_bench.py."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping

from icc_sandbox.cluster import REVIEW_RESOURCES, WRITE_VERBS

# Issue 11's targets: the limit, and what it is compared with.
TARGETS = {
    "noop_changed_objects": "a no-op redeploy changes 0 objects (resourceVersions unchanged)",
    "noop_restarts": "a no-op redeploy restarts 0 pods",
    "noop_vs_trivial": "a no-op redeploy takes at most 3x the trivial playbook",
    "fleet_deploy_scaling": "the largest fleet deploys in at most 4x the time of one namespace",
    "fleet_noop_scaling": "the largest fleet no-op-redeploys in at most 4x the time of one",
    "refused_writes": "a refused change makes 0 writes",
    "refused_vs_trivial": "a refused change answers in at most 1.5x the trivial playbook",
    "switch_replicasets": "a model switch creates exactly one ReplicaSet",
}


def median(values: Iterable[float | int | None]) -> float | None:
    """The median of the values that were measured (None: not measured), None when none was."""
    measured = [value for value in values if value is not None]
    return statistics.median(measured) if measured else None


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """numerator / denominator, rounded to two places; None when either is missing or zero."""
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 2)


def is_write(entry: Mapping) -> bool:
    """An audit entry of a request that stores something (dry runs and reviews store nothing)."""
    resource = (entry.get("objectRef") or {}).get("resource")
    return (
        entry.get("verb") in WRITE_VERBS
        and resource not in REVIEW_RESOURCES
        and "dryRun=All" not in entry.get("requestURI", "")
    )


def in_namespaces(entry: Mapping, namespaces: Iterable[str]) -> bool:
    return (entry.get("objectRef") or {}).get("namespace") in set(namespaces)


def requests_by_verb(entries: Iterable[Mapping]) -> dict[str, int]:
    """Audit entries counted by verb, most frequent first."""
    counts = Counter(entry.get("verb", "?") for entry in entries)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def requests_by_resource(entries: Iterable[Mapping], top: int = 8) -> dict[str, int]:
    """The most frequent `verb resource[/subresource]` pairs, for finding where requests go."""
    counts: Counter[str] = Counter()
    for entry in entries:
        ref = entry.get("objectRef") or {}
        resource = ref.get("resource") or entry.get("requestURI", "?").split("?")[0]
        if ref.get("subresource"):
            resource += "/" + ref["subresource"]
        counts[f"{entry.get('verb', '?')} {resource}"] += 1
    return dict(counts.most_common(top))


# A PLAY RECAP line: "wabc123-default : ok=16 changed=0 unreachable=0 failed=0 skipped=1 ...".
RECAP_LINE = re.compile(r"^\S+\s+:\s+((?:\w+=\d+\s*)+)$", re.MULTILINE)


def tasks_per_host(output: str) -> int | None:
    """The most tasks one host ran, from the recap (ok, failed, skipped and unreachable count;
    changed ones are among the ok ones); None without a recap."""
    counts = [
        dict((key, int(value)) for key, value in (pair.split("=") for pair in line.split()))
        for line in RECAP_LINE.findall(output)
    ]
    kinds = ("ok", "failed", "skipped", "unreachable")
    return max((sum(c.get(kind, 0) for kind in kinds) for c in counts), default=None)


def changed_objects(before: Mapping[str, str], after: Mapping[str, str]) -> list[str]:
    """Objects (key -> resourceVersion) created, deleted or changed between two listings."""
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


def pod_restarts(before: Mapping[str, Mapping], after: Mapping[str, Mapping]) -> int:
    """Pods restarted between two listings of {pod name: {"uid", "restarts"}}: a container
    restart counts once per restart, a pod replaced by a new one (gone, another uid) once."""
    total = 0
    after_by_uid = {pod["uid"]: pod for pod in after.values()}
    for pod in before.values():
        later = after_by_uid.get(pod["uid"])
        total += 1 if later is None else max(0, later["restarts"] - pod["restarts"])
    return total


def new_names(before: Iterable[str], after: Iterable[str]) -> list[str]:
    return sorted(set(after) - set(before))


def targets(results: Mapping) -> dict[str, dict]:
    """Each target of issue 11 with its measured value, its limit and met (True/False/None when
    it could not be measured)."""
    noop = results.get("noop_redeploy") or {}
    refused = results.get("refused_change") or {}
    ratios = results.get("ratios") or {}
    checks = {
        "noop_changed_objects": (noop.get("changed_objects"), 0),
        "noop_restarts": (noop.get("restarts"), 0),
        "noop_vs_trivial": (ratios.get("noop_vs_trivial"), 3.0),
        "fleet_deploy_scaling": (ratios.get("fleet_deploy_largest_vs_1"), 4.0),
        "fleet_noop_scaling": (ratios.get("fleet_noop_largest_vs_1"), 4.0),
        "refused_writes": (refused.get("writes"), 0),
        "refused_vs_trivial": (ratios.get("refused_vs_trivial"), 1.5),
        "switch_replicasets": ((results.get("switch") or {}).get("new_replicasets"), 1),
    }
    verdicts = {}
    for name, (value, limit) in checks.items():
        if value is None:
            met = None
        elif name == "switch_replicasets":
            met = value == limit
        else:
            met = value <= limit
        verdicts[name] = {"target": TARGETS[name], "value": value, "limit": limit, "met": met}
    return verdicts


def table(rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    """A plain text table, columns padded to their widest cell."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)

"""The benchmark's pure parts (benchmarks/figures.py): medians, ratios, audit counts, object and
pod comparisons and the verdict on issue 11's targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import figures  # noqa: I001


DEPLOYMENT = "/apis/apps/v1/namespaces/ns/deployments/tgi"


def entry(verb, resource, namespace=None, uri="/x", subresource=None):
    ref = {"resource": resource, "namespace": namespace}
    if subresource:
        ref["subresource"] = subresource
    return {"verb": verb, "objectRef": ref, "requestURI": uri, "stage": "ResponseComplete"}


def test_median_ignores_what_was_not_measured_and_ratio_guards_zero():
    assert figures.median([3.0, None, 1.0, 2.0]) == 2.0
    assert figures.median([4, 1]) == 2.5
    assert figures.median([None]) is None
    assert figures.ratio(9.0, 3.0) == 3.0
    assert figures.ratio(1.0, 3.0) == 0.33
    assert figures.ratio(1.0, 0) is None
    assert figures.ratio(None, 2.0) is None


def test_writes_leave_out_dry_runs_and_reviews():
    entries = [
        entry("patch", "deployments", "ns", "/apis/apps/v1/namespaces/ns/deployments/tgi"),
        entry(
            "patch", "deployments", "ns", "/apis/apps/v1/namespaces/ns/deployments/tgi?dryRun=All"
        ),
        entry("create", "selfsubjectaccessreviews"),
        entry("get", "deployments", "ns"),
        entry("delete", "services", "ns"),
    ]
    assert [figures.is_write(e) for e in entries] == [True, False, False, False, True]
    assert figures.in_namespaces(entries[0], ["ns"])
    assert not figures.in_namespaces(entries[2], ["ns"])


def test_requests_are_counted_by_verb_and_by_resource():
    entries = [
        entry("get", "pods", "ns"),
        entry("list", "pods", "ns"),
        entry("get", "pods", "ns", subresource="log"),
        entry("get", "secrets", "ns"),
        entry("create", "selfsubjectaccessreviews"),
        entry("create", "selfsubjectaccessreviews"),
    ]
    assert figures.requests_by_verb(entries) == {"get": 3, "create": 2, "list": 1}
    assert list(figures.requests_by_verb(entries)) == ["get", "create", "list"]
    top = figures.requests_by_resource(entries, top=2)
    assert top == {"create selfsubjectaccessreviews": 2, "get pods": 1}
    assert figures.requests_by_resource(entries)["get pods/log"] == 1


def test_changed_objects_are_new_gone_or_with_another_resource_version():
    before = {"deployments/ns/tgi": "10", "services/ns/tgi": "11", "secrets/ns/old": "3"}
    after = {"deployments/ns/tgi": "12", "services/ns/tgi": "11", "pods/ns/tgi-x": "13"}
    assert figures.changed_objects(before, after) == [
        "deployments/ns/tgi",
        "pods/ns/tgi-x",
        "secrets/ns/old",
    ]
    assert figures.changed_objects(before, dict(before)) == []


def test_restarts_count_container_restarts_and_replaced_pods():
    before = {"a": {"uid": "1", "restarts": 0}, "b": {"uid": "2", "restarts": 1}}
    same = {"a": {"uid": "1", "restarts": 0}, "b": {"uid": "2", "restarts": 1}}
    assert figures.pod_restarts(before, same) == 0
    restarted = {"a": {"uid": "1", "restarts": 2}, "b": {"uid": "2", "restarts": 1}}
    assert figures.pod_restarts(before, restarted) == 2
    replaced = {"a2": {"uid": "9", "restarts": 0}, "b": {"uid": "2", "restarts": 1}}
    assert figures.pod_restarts(before, replaced) == 1
    assert figures.new_names(["rs/a"], ["rs/a", "rs/b"]) == ["rs/b"]


def results(**overrides):
    base = {
        "noop_redeploy": {"changed_objects": 0, "restarts": 0},
        "refused_change": {"writes": 0},
        "switch": {"new_replicasets": 1},
        "ratios": {
            "noop_vs_trivial": 2.5,
            "refused_vs_trivial": 1.5,
            "fleet_deploy_largest_vs_1": 4.0,
            "fleet_noop_largest_vs_1": 3.0,
        },
    }
    return base | overrides


def test_targets_met_at_their_limits():
    verdicts = figures.targets(results())
    assert set(verdicts) == set(figures.TARGETS)
    assert all(v["met"] is True for v in verdicts.values()), verdicts


@pytest.mark.parametrize(
    ("overrides", "missed"),
    [
        ({"noop_redeploy": {"changed_objects": 1, "restarts": 0}}, "noop_changed_objects"),
        ({"noop_redeploy": {"changed_objects": 0, "restarts": 2}}, "noop_restarts"),
        ({"refused_change": {"writes": 1}}, "refused_writes"),
        ({"switch": {"new_replicasets": 2}}, "switch_replicasets"),
        ({"switch": {"new_replicasets": 0}}, "switch_replicasets"),
    ],
)
def test_one_target_missed(overrides, missed):
    verdicts = figures.targets(results(**overrides))
    assert [name for name, v in verdicts.items() if v["met"] is False] == [missed]


def test_ratios_above_their_limits_miss_and_unmeasured_ones_are_none():
    ratios = {"noop_vs_trivial": 3.01, "refused_vs_trivial": 7.0}
    verdicts = figures.targets(results(ratios=ratios))
    assert verdicts["noop_vs_trivial"]["met"] is False
    assert verdicts["refused_vs_trivial"]["met"] is False
    assert verdicts["fleet_deploy_scaling"]["met"] is None
    assert verdicts["fleet_noop_scaling"]["value"] is None


def test_table_pads_columns_under_a_rule():
    text = figures.table([("no-op", "1.5"), ("first deploy", "20.0")], ("scenario", "s"))
    lines = text.splitlines()
    assert lines[0] == "scenario      s"
    assert lines[1] == "------------  ----"
    assert lines[3] == "first deploy  20.0"


def test_tasks_per_host_counts_what_each_host_ran_from_the_recap():
    output = (
        "PLAY RECAP *****\n"
        "ns-a                       : ok=16   changed=4    unreachable=0    failed=0    "
        "skipped=1    rescued=0    ignored=0   \n"
        "ns-b                       : ok=3    changed=0    unreachable=0    failed=1    "
        "skipped=0    rescued=1    ignored=0   \n"
    )
    # ns-a: 16 ok (the 4 changed among them) + 1 skipped; ns-b: 3 ok + 1 failed.
    assert figures.tasks_per_host(output) == 17
    assert figures.tasks_per_host("no recap here") is None

"""The switch of a running TGI to new settings (operations/model_switch.py) on a fake API.

The switch changes a running TGI to new settings: another model (change_model.yml) or another
number of GPUs (the gpu_scale role). The fake (switch_fakes.FakeCluster) keeps one Deployment
and plays its controller; what the new pod does is chosen by its model id.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster.api import ApiError
from ansible_collections.haw.icc.plugins.module_utils.operations.model_switch import (
    ModelSwitch,
    describe_change,
    failure_hint,
    gpus_text,
    serving_text,
    should_roll_back,
    switch_result,
    unrolled_message,
)
from ansible_collections.haw.icc.plugins.module_utils.operations.progress import describe_rollout
from ansible_collections.haw.icc.plugins.module_utils.operations.rollout_wait import (
    FAILED,
    READY,
    TIMED_OUT,
    UNOBSERVED,
    WaitOutcome,
    _at_least_generation,
    wait_for_rollouts,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_pod_spec import (
    SwitchRefused,
    live_spec,
    same_spec,
    wanted_spec,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_settings import NCCL_ENV_DEFAULTS
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import (
    flag_value,
    tgi_workload,
)
from switch_fakes import (
    BIG_MODEL,
    LIVE_ARGS,
    LIVE_ENV,
    NAMESPACE,
    NEW_MODEL,
    OLD_MODEL,
    OOM_OUTPUT,
    OOM_REASON,
    SETTINGS,
    SHARDING_MODEL,
    FakeClock,
    FakeCluster,
    live_deployment,
    with_model,
)


def run_switch(
    cluster: FakeCluster,
    settings: dict[str, Any],
    check_mode=False,
    annotations: dict[str, Any] | None = None,
    **options,
):
    """ModelSwitch.run to the pod of `settings` on the fake, with a fake clock; (result, lines
    shown)."""
    clock, lines = FakeClock(), []
    args = {
        "namespace": NAMESPACE,
        "name": "tgi",
        "container": "tgi",
        "timeout": 60,
        "poll_interval": 5,
        "rollback": True,
        "rollback_timeout": 30,
        **options,
    }
    switch = ModelSwitch(
        cluster,
        args,
        check_mode=check_mode,
        show=lines.append,
        warn=lines.append,
        prefix=f"[{NAMESPACE}] ",
        clock=clock,
        sleep=clock.sleep,
    )
    return switch.run(wanted_spec(tgi_workload(settings), annotations)), lines


# --- wording and decisions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "text"),
    [
        ({"model_id": "a", "gpus": 1}, {"model_id": "b", "gpus": 1}, "from model a to b"),
        ({"model_id": "a", "gpus": 1}, {"model_id": "a", "gpus": 2}, "from 1 GPU to 2 GPUs"),
        ({"model_id": "a", "gpus": 0}, {"model_id": "a", "gpus": 1}, "from CPU to 1 GPU"),
        (
            {"model_id": "a", "gpus": 2},
            {"model_id": "b", "gpus": 1},
            "from model a to b and from 2 GPUs to 1 GPU",
        ),
        ({"model_id": "a", "gpus": 1}, {"model_id": "a", "gpus": 1}, "the settings of model a"),
    ],
)
def test_the_change_is_described_by_model_and_gpus(before, after, text):
    assert describe_change(before, after) == text


@pytest.mark.parametrize(
    ("count", "text"), [(0, "CPU"), (1, "1 GPU"), (2, "2 GPUs"), (8, "8 GPUs")]
)
def test_gpus_are_worded_with_the_cpu_for_none(count, text):
    assert gpus_text(count) == text


def test_what_serves_is_worded_by_model_and_gpus():
    assert serving_text({"model_id": "org/m", "gpus": 0}) == "model org/m on CPU"
    assert serving_text({"model_id": "org/m", "gpus": 4}) == "model org/m on 4 GPUs"


def test_the_hint_after_a_failure_names_the_way_out():
    oom = failure_hint(WaitOutcome(FAILED, {}, 5.0, "pod tgi-2: OOMKilled"), 600)
    assert oom.startswith("\n\nThe model does not fit into the GPU memory")
    assert "haw.icc.gpu_capacity_check" in oom and "tgi_quantize" in oom
    # 750 s = 12 min 30 s, written as the progress lines write durations
    slow = failure_hint(WaitOutcome(TIMED_OUT, {}, 750.0, "timed out"), 750)
    assert slow.endswith("raise the timeout (now 12m30s)")
    assert failure_hint(WaitOutcome(FAILED, {}, 5.0, "ImagePullBackOff"), 600) == ""
    assert failure_hint(WaitOutcome(FAILED, {}, 5.0, None), 600) == ""


def test_a_change_left_in_place_says_how_to_go_back():
    where, change, old = "Deployment tgi in namespace ns", "from model a to b", "model a on 1 GPU"
    unobserved = WaitOutcome(UNOBSERVED, {}, 3.0, "the API server did not answer")
    assert unrolled_message(unobserved, where, change, old, "") == (
        "changed Deployment tgi in namespace ns from model a to b, but cannot follow the "
        "rollout: the API server did not answer. The new revision may still be starting; look "
        "again with haw.icc.wait_for_rollout, and go back to model a on 1 GPU if it does not "
        "come up"
    )
    failed = WaitOutcome(FAILED, {}, 3.0, "pod tgi-2: CrashLoopBackOff")
    assert unrolled_message(failed, where, change, old, "\n\nHINT") == (
        "the change of Deployment tgi in namespace ns from model a to b failed and was not "
        "rolled back (rollback: false): pod tgi-2: CrashLoopBackOff\n\nHINT\nGo back to model "
        "a on 1 GPU (or another choice) to restore the service"
    )


@pytest.mark.parametrize(
    ("status", "rollback", "expected"),
    [
        (READY, True, False),
        (FAILED, True, True),
        (TIMED_OUT, True, True),
        (UNOBSERVED, True, False),  # cannot see the cluster: cannot judge, cannot write either
        (FAILED, False, False),
        (TIMED_OUT, False, False),
    ],
)
def test_rollback_decision(status, rollback, expected):
    assert should_roll_back(WaitOutcome(status, {}, 1.0), rollback) is expected


def test_result_shape():
    result = switch_result(
        changed=True,
        before={"model_id": "a", "gpus": 1},
        after={"model_id": "b", "gpus": 2},
        revision_before="1",
        revision_after="2",
        replicaset="tgi-rs2",
        diff={"before": {}, "after": {}},
    )
    assert result == {
        "changed": True,
        "model": {"before": "a", "after": "b"},
        "gpus": {"before": 1, "after": 2},
        "revision": {"before": "1", "after": "2"},
        "replicaset": "tgi-rs2",
        "rolled_back": False,
        "deployment": {},
        "diff": {"before": {}, "after": {}},
    }


def test_a_stale_read_counts_as_the_generation_the_patch_made():
    deployment = {"metadata": {"generation": 3}}
    assert _at_least_generation(deployment, 4)["metadata"]["generation"] == 4
    assert _at_least_generation(deployment, 2) is deployment
    assert _at_least_generation(deployment, None) is deployment


def test_the_wait_looks_at_the_patched_generation_not_an_older_read():
    """A read from before the patch (its status already complete) must not end the wait."""
    old = live_deployment()
    old["status"] = {
        "observedGeneration": 1,
        "replicas": 1,
        "updatedReplicas": 1,
        "availableReplicas": 1,
    }
    clock = FakeClock()
    watcher = SimpleNamespace(
        namespace=NAMESPACE,
        deployment=lambda name: copy.deepcopy(old),
        events=list,
        rollout=lambda d, e, g: describe_rollout(d, [], [], e, clock_now(), g),
    )

    def clock_now():
        from datetime import UTC, datetime

        return datetime(2026, 3, 2, tzinfo=UTC)

    done = wait_for_rollouts(
        watcher, ["tgi"], timeout=10, poll_interval=1, grace=60, show=print, warn=print,
        clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert done.status == READY
    waiting = wait_for_rollouts(
        watcher, ["tgi"], timeout=10, poll_interval=1, grace=60, show=print, warn=print,
        generations={"tgi": 2}, clock=clock, sleep=clock.sleep,
    )  # fmt: skip
    assert waiting.status == TIMED_OUT
    assert "waiting for the Deployment controller to see the new spec" in waiting.message


# --- the switch on the fake --------------------------------------------------------------------


def test_a_switch_writes_one_patch_and_waits_for_the_new_revision():
    cluster = FakeCluster(live_deployment(), ready_after_polls=2)

    result, lines = run_switch(cluster, with_model(NEW_MODEL))

    assert "failed" not in result, result["msg"]
    assert cluster.writes == 1
    [(patch, dry_run)] = cluster.patches
    assert dry_run is False
    assert patch[0] == {"op": "test", "path": "/metadata/resourceVersion", "value": "100"}
    assert patch[2]["value"] == ["--model-id", NEW_MODEL, *LIVE_ARGS[2:]]
    assert cluster.container["args"][:2] == ["--model-id", NEW_MODEL]
    assert cluster.container["env"] == LIVE_ENV  # re-written unchanged
    assert result["changed"] is True
    assert result["model"] == {"before": OLD_MODEL, "after": NEW_MODEL}
    assert result["revision"] == {"before": "1", "after": "2"}
    assert result["replicaset"] == "tgi-rs2"
    assert result["rolled_back"] is False
    assert result["deployment"]["ready"] is True
    assert result["diff"]["before"]["model_id"] == OLD_MODEL
    assert result["diff"]["after"]["model_id"] == NEW_MODEL
    assert lines[0] == f"[{NAMESPACE}] tgi: changing from model {OLD_MODEL} to {NEW_MODEL}"
    assert f"[{NAMESPACE}] tgi: 0/1 ready — pod tgi-2-abcde: Running, not ready yet" in lines
    assert lines[-1].startswith(f"[{NAMESPACE}] tgi: 1/1 ready")
    assert result["msg"].startswith(
        f"changed Deployment tgi in namespace {NAMESPACE} from model {OLD_MODEL} to {NEW_MODEL}: "
        "revision 2 (ReplicaSet tgi-rs2) ready after"
    )


def test_the_same_settings_write_nothing():
    cluster = FakeCluster(live_deployment())

    result, _lines = run_switch(cluster, SETTINGS)

    assert cluster.patches == []
    assert result["changed"] is False
    assert result["model"] == {"before": OLD_MODEL, "after": OLD_MODEL}
    assert result["gpus"] == {"before": 1, "after": 1}
    assert result["revision"] == {"before": "1", "after": "1"}
    assert "diff" not in result
    assert result["msg"] == (
        f"Deployment tgi in namespace {NAMESPACE} already runs model {OLD_MODEL} on 1 GPU "
        "with these settings"
    )


def test_check_mode_sends_a_dry_run_and_shows_the_diff_without_secrets():
    cluster = FakeCluster(live_deployment())
    before = copy.deepcopy(cluster.stored)

    result, lines = run_switch(cluster, with_model(NEW_MODEL, tgi_dtype="float16"), check_mode=True)

    assert [dry for _patch, dry in cluster.patches] == [True]
    assert cluster.stored == before and cluster.writes == 0
    assert lines == []  # nothing waited for
    assert result["changed"] is True
    assert result["revision"] == {"before": "1", "after": None}
    assert result["diff"]["after"]["args"] == [
        *("--model-id", NEW_MODEL, "--num-shard", "1", "--dtype", "float16"),
        *LIVE_ARGS[4:],
    ]
    assert result["diff"]["after"]["env"][-1] == {
        "name": "API_KEY",
        "valueFrom": {"secretKeyRef": {"name": "tgi-api-key", "key": "api-key"}},
    }
    assert result["msg"].startswith("check mode: would change Deployment tgi")


def owned(cluster: FakeCluster) -> dict[str, Any]:
    """The live owned part of the fake's Deployment."""
    return live_spec(cluster.stored, cluster.container)


def test_scaling_a_layer_split_model_changes_only_the_gpus():
    """Qwen2 cannot be tensor-sharded on a V100: more GPUs are one shard that sees them all."""
    cluster = FakeCluster(live_deployment())

    result, lines = run_switch(cluster, with_model(OLD_MODEL, tgi_gpu_count=2))

    assert "failed" not in result, result["msg"]
    assert cluster.writes == 1
    assert owned(cluster)["args"] == LIVE_ARGS  # --num-shard 1 still
    assert owned(cluster)["env"] == LIVE_ENV  # no NCCL: one process
    assert owned(cluster)["shm_size"] == "1Gi"
    assert owned(cluster)["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert owned(cluster)["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert result["gpus"] == {"before": 1, "after": 2}
    assert result["model"] == {"before": OLD_MODEL, "after": OLD_MODEL}
    assert lines[0] == f"[{NAMESPACE}] tgi: changing from 1 GPU to 2 GPUs"
    assert result["diff"]["before"]["gpus"] == 1 and result["diff"]["after"]["gpus"] == 2


def test_scaling_a_sharded_model_up_and_down_leaves_exactly_the_pod_of_each_count():
    settings = with_model(SHARDING_MODEL)
    cluster = FakeCluster(live_deployment())
    run_switch(cluster, settings)  # to the sharding model on one GPU
    revisions = []
    for count in (2, 4, 1):
        result, _lines = run_switch(cluster, {**settings, "tgi_gpu_count": count})
        assert "failed" not in result, result["msg"]
        assert same_spec(
            owned(cluster), wanted_spec(tgi_workload({**settings, "tgi_gpu_count": count}))
        )
        revisions.append(result["revision"]["after"])
        nccl = {e["name"] for e in owned(cluster)["env"]} & set(NCCL_ENV_DEFAULTS)
        shards = owned(cluster)["args"][owned(cluster)["args"].index("--num-shard") + 1]
        assert (shards, bool(nccl), owned(cluster)["shm_size"]) == {
            2: ("2", True, "2Gi"),
            4: ("4", True, "4Gi"),
            1: ("1", False, "1Gi"),
        }[count]
    assert revisions == ["3", "4", "5"]  # one new revision per step
    again, _lines = run_switch(cluster, {**settings, "tgi_gpu_count": 1})
    assert again["changed"] is False and cluster.writes == 4


def test_a_cpu_deployment_moves_to_a_gpu_with_its_toleration():
    cluster = FakeCluster(live_deployment(gpus=None))
    cluster.container["args"] = [a for a in LIVE_ARGS if a not in ("--num-shard", "1")]

    result, _lines = run_switch(cluster, SETTINGS)

    assert "failed" not in result, result["msg"]
    assert owned(cluster)["tolerations"] == [
        {"key": "gpu-tesla-v100", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert owned(cluster)["args"] == LIVE_ARGS
    assert result["gpus"] == {"before": 0, "after": 1}


def test_a_failed_scale_puts_the_previous_gpus_back():
    cluster = FakeCluster(live_deployment(), unschedulable_gpus=2)
    before = owned(cluster)

    result, lines = run_switch(cluster, with_model(OLD_MODEL, tgi_gpu_count=2))

    assert result["failed"] is True and result["rolled_back"] is True
    assert owned(cluster) == before
    rolling_back = f"tgi: the new revision failed; rolling back to model {OLD_MODEL} on 1 GPU"
    assert f"[{NAMESPACE}] {rolling_back}" in lines
    assert result["msg"].startswith(
        f"the change of Deployment tgi in namespace {NAMESPACE} from 1 GPU to 2 GPUs failed, so "
        f"it was rolled back: model {OLD_MODEL} on 1 GPU serves again (revision 3)"
    )
    assert "Insufficient nvidia.com/gpu" in result["msg"]


def test_a_cpu_deployment_switches_with_zero_gpus():
    cluster = FakeCluster(live_deployment(gpus=None))
    cluster.container["args"] = [a for a in LIVE_ARGS if a not in ("--num-shard", "1")]

    result, _lines = run_switch(cluster, with_model(NEW_MODEL, tgi_gpu_count=0))

    assert result["changed"] is True and "failed" not in result
    assert "--num-shard" not in cluster.container["args"]


def test_a_deployment_that_changed_meanwhile_is_read_again_and_patched():
    cluster = FakeCluster(live_deployment())
    cluster.status_writes_before_patch = 1  # the first `test` of resourceVersion fails

    result, _lines = run_switch(cluster, with_model(NEW_MODEL))

    assert "failed" not in result, result["msg"]
    assert len(cluster.patches) == 2 and cluster.writes == 1
    assert cluster.patches[0][0][0]["value"] == "100"
    assert cluster.patches[1][0][0]["value"] == "101"


def test_a_crash_looping_model_is_rolled_back_and_the_reason_reported():
    cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL,))

    result, lines = run_switch(cluster, with_model(BIG_MODEL, tgi_dtype="float16"))

    assert result["failed"] is True
    assert result["rolled_back"] is True
    assert cluster.writes == 2
    # The previous args and env are back exactly: the controller reuses the old ReplicaSet.
    assert cluster.container["args"] == LIVE_ARGS
    assert cluster.container["env"] == LIVE_ENV
    assert cluster.stored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert result["model"] == {"before": OLD_MODEL, "after": BIG_MODEL}
    assert result["revision"] == {"before": "1", "after": "2"}
    assert result["failed_rollout"]["reason"] == OOM_REASON.replace("tgi-3", "tgi-2")
    assert result["deployment"]["ready"] is True and result["deployment"]["revision"] == "3"
    message = result["msg"]
    assert message.startswith(
        f"the change of Deployment tgi in namespace {NAMESPACE} from model {OLD_MODEL} to "
        f"{BIG_MODEL} failed, so it was rolled back: model {OLD_MODEL} on 1 GPU serves again "
        "(revision 3)"
    )
    assert "OOMKilled (restart 0): torch.OutOfMemoryError" in message
    assert "Last output of the container:\n" + OOM_OUTPUT in message
    assert "haw.icc.gpu_capacity_check" in message
    assert (
        f"[{NAMESPACE}] tgi: the new revision failed; rolling back to model {OLD_MODEL} on 1 GPU"
        in lines
    )


def test_without_rollback_the_failed_revision_stays():
    cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL,))

    result, _lines = run_switch(cluster, with_model(BIG_MODEL), rollback=False)

    assert result["failed"] is True and result["rolled_back"] is False
    assert cluster.writes == 1
    assert flag_value(cluster.container["args"], "--model-id") == BIG_MODEL
    assert "was not rolled back (rollback: false)" in result["msg"]
    assert f"Go back to model {OLD_MODEL} on 1 GPU" in result["msg"]


def test_a_model_not_ready_in_time_is_rolled_back():
    cluster = FakeCluster(live_deployment(), never_ready=(NEW_MODEL,))

    result, _lines = run_switch(cluster, with_model(NEW_MODEL), timeout=20)

    assert result["rolled_back"] is True and result["failed"] is True
    assert flag_value(cluster.container["args"], "--model-id") == OLD_MODEL
    assert "timed out after 20s waiting for Deployment(s) tgi" in result["msg"]
    assert "raise the timeout (now 20s)" in result["msg"]
    assert result["elapsed"] >= 20


def test_a_rollback_that_does_not_come_up_says_so_with_both_reasons():
    # Both models crash: the restored revision cannot become ready either.
    cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL, OLD_MODEL))

    result, _lines = run_switch(cluster, with_model(BIG_MODEL))

    assert result["failed"] is True and result["rolled_back"] is True
    assert "were written back, but they did not become ready either" in result["msg"]
    assert "Why the change failed: " in result["msg"]
    assert "Why the rollback failed: Deployment tgi in namespace" in result["msg"]


def test_a_rollback_write_that_is_refused_says_so_with_both_reasons():
    cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL,))
    cluster.refuse_patch_number = 2

    result, _lines = run_switch(cluster, with_model(BIG_MODEL))

    assert result["failed"] is True and result["rolled_back"] is False
    assert f"and the rollback to model {OLD_MODEL} on 1 GPU failed too" in result["msg"]
    assert "Why the rollback failed: deployments.apps is forbidden" in result["msg"]
    assert "OOMKilled" in result["msg"]


def test_a_deployment_that_keeps_changing_is_given_up_after_three_patches():
    cluster = FakeCluster(live_deployment())
    cluster.status_writes_before_patch = 3  # every `test` of resourceVersion fails

    with pytest.raises(ApiError, match=r"kept changing while being patched; run again\)$"):
        run_switch(cluster, with_model(NEW_MODEL))
    assert len(cluster.patches) == 3 and cluster.writes == 0


class InvalidPatchCluster(FakeCluster):
    """An API server that refuses every patch as invalid, the Deployment unchanged."""

    def patch_deployment(self, name, patch, field_manager, dry_run=False):
        self.patches.append((patch, dry_run))
        raise ApiError('Deployment.apps "tgi" is invalid', 422)


def test_a_refused_patch_of_an_unchanged_deployment_is_not_retried():
    cluster = InvalidPatchCluster(live_deployment())

    with pytest.raises(ApiError) as refused:
        run_switch(cluster, with_model(NEW_MODEL))
    assert str(refused.value) == (
        'the API server refused the change of Deployment tgi: Deployment.apps "tgi" is invalid'
    )
    assert refused.value.status == 422 and len(cluster.patches) == 1


def test_a_forbidden_patch_is_passed_on_as_it_is():
    cluster = FakeCluster(live_deployment())
    cluster.refuse_patch_number = 1

    with pytest.raises(ApiError, match=r"^deployments\.apps is forbidden$"):
        run_switch(cluster, with_model(NEW_MODEL))
    assert cluster.writes == 0


def test_a_missing_deployment_is_refused_before_anything_is_written():
    cluster = FakeCluster(live_deployment())

    with pytest.raises(
        SwitchRefused, match=r"does not create one; run playbooks/deploy\.yml first$"
    ):
        run_switch(cluster, with_model(NEW_MODEL), name="tgi-other")
    assert cluster.patches == []

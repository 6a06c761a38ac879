"""haw.icc.namespace_lease's pure logic: who may take a namespace's Lease, what is written."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from ansible_collections.haw.icc.plugins.module_utils.cluster.lease import (
    BUSY,
    CREATE,
    TAKE,
    Holder,
    LeaseView,
    busy_message,
    decide,
    format_time,
    lease_body,
    parse_time,
    process_alive,
)

NOW = datetime(2026, 11, 29, 12, 0, 0, tzinfo=timezone.utc)  # noqa: UP017
ME = Holder("alice", "laptop", 4242, "deploy.yml")
BOB = Holder("bob", "laptop", 977, "scale.yml")


def lease(holder: Holder | str | None, acquired: datetime, duration: int = 600, version="7"):
    identity = holder.identity if isinstance(holder, Holder) else holder
    return LeaseView.from_object(
        {
            "metadata": {"name": "haw-icc", "resourceVersion": version},
            "spec": {
                "holderIdentity": identity,
                "acquireTime": format_time(acquired),
                "renewTime": format_time(acquired),
                "leaseDurationSeconds": duration,
                "leaseTransitions": 2,
            },
        }
    )


def alive(_pid: int) -> bool:
    return True


def dead(_pid: int) -> bool:
    return False


def test_identity_round_trip_and_foreign_identities():
    assert ME.identity == "alice@laptop pid 4242 deploy.yml"
    assert Holder.parse(ME.identity) == ME
    assert Holder.parse("kube-controller-manager_1234") is None
    assert Holder.parse("") is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T12:00:00.000000Z", NOW),
        ("2026-11-29T12:00:00Z", NOW),
        ("2026-11-29T13:00:00.5+01:00", NOW + timedelta(microseconds=500000)),
        ("yesterday", None),
        (None, None),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_format_time_is_a_microtime():
    assert format_time(NOW) == "2026-11-29T12:00:00.000000Z"
    assert parse_time(format_time(NOW + timedelta(microseconds=7))) == NOW + timedelta(
        microseconds=7
    )


def test_no_lease_is_created():
    assert decide(None, ME, NOW, alive).action == CREATE


def test_a_live_holder_keeps_the_namespace_until_the_lease_expires():
    held = lease(BOB, NOW - timedelta(seconds=100), duration=600)
    assert held.expires == NOW + timedelta(seconds=500)
    decision = decide(held, ME, NOW, alive)
    assert decision.action == BUSY
    later = decide(held, ME, NOW + timedelta(seconds=500), alive)
    assert (later.action, later.took_over) == (TAKE, True)
    assert "expired at 2026-11-29 12:08:20 UTC" in later.reason


def test_a_dead_process_on_this_machine_is_taken_over_at_once():
    decision = decide(lease(BOB, NOW), ME, NOW, dead)
    assert (decision.action, decision.took_over) == (TAKE, True)
    assert "process 977 on this machine is gone" in decision.reason


def test_a_holder_on_another_machine_is_not_judged_by_local_pids():
    other = Holder("bob", "desktop", 977, "deploy.yml")
    assert decide(lease(other, NOW), ME, NOW, dead).action == BUSY


def test_force_takes_any_lease_and_own_or_empty_leases_are_taken():
    forced = decide(lease(BOB, NOW), ME, NOW, alive, force=True)
    assert (forced.action, forced.took_over) == (TAKE, True)
    assert "icc_lease_break=true" in forced.reason
    own = decide(lease(ME, NOW), ME, NOW, alive)
    assert (own.action, own.took_over) == (TAKE, False)
    assert decide(lease(None, NOW), ME, NOW, alive).action == TAKE


def test_a_foreign_lease_without_duration_can_be_taken():
    view = LeaseView.from_object({"spec": {"holderIdentity": "someone"}})
    assert view.expires is None
    assert decide(view, ME, NOW, alive).action == TAKE


def test_busy_message_names_holder_times_and_ways_out():
    held = lease(BOB, NOW - timedelta(minutes=5), duration=3900)
    message = busy_message("wabc123-default", held, NOW)
    assert "\n" not in message
    assert "bob@laptop (PID 977, scale.yml)" in message
    assert "since 2026-11-29 11:55:00 UTC" in message
    assert "until 2026-11-29 12:00:00 UTC" not in message
    assert "until 2026-11-29 12:59:59 UTC" not in message
    assert "until 2026-11-29 13:00:00 UTC at the latest (1h00m from now)" in message
    assert "-e icc_lease_wait=<seconds>" in message
    assert "-e icc_lease_break=true" in message
    assert "kubectl -n wabc123-default delete lease haw-icc" in message


def test_lease_body_for_a_new_lease():
    body = lease_body("haw-icc", ME, 3900, NOW, None)
    assert body["metadata"] == {
        "name": "haw-icc",
        "labels": {"app.kubernetes.io/managed-by": "haw.icc"},
    }
    assert body["spec"] == {
        "holderIdentity": ME.identity,
        "leaseDurationSeconds": 3900,
        "acquireTime": "2026-11-29T12:00:00.000000Z",
        "renewTime": "2026-11-29T12:00:00.000000Z",
        "leaseTransitions": 0,
    }


def test_taking_over_sends_the_resource_version_and_counts_the_transition():
    body = lease_body("haw-icc", ME, 60, NOW, lease(BOB, NOW - timedelta(hours=2), version="41"))
    assert body["metadata"]["resourceVersion"] == "41"
    assert body["spec"]["leaseTransitions"] == 3
    assert body["spec"]["acquireTime"] == format_time(NOW)


def test_retaking_its_own_lease_keeps_the_first_acquire_time():
    first = NOW - timedelta(minutes=3)
    body = lease_body("haw-icc", ME, 60, NOW, lease(ME, first))
    assert body["spec"]["acquireTime"] == format_time(first)
    assert body["spec"]["renewTime"] == format_time(NOW)
    assert body["spec"]["leaseTransitions"] == 2


def test_process_alive_for_real_processes(tmp_path):
    # Under pytest, not Ansible: its own PID counts as reused, a finished one as gone.
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    assert process_alive(int(finished.stdout)) is False
    assert process_alive(0) is False
    proc = tmp_path / "proc"
    (proc / str(os.getpid())).mkdir(parents=True)
    (proc / str(os.getpid()) / "cmdline").write_bytes(b"python3\0/usr/bin/ansible-playbook\0x.yml")
    assert process_alive(os.getpid(), proc=str(proc)) is True
    (proc / str(os.getpid()) / "cmdline").write_bytes(b"/usr/bin/vim\0notes.txt")
    assert process_alive(os.getpid(), proc=str(proc)) is False


# --- the action: a release that cannot reach the cluster ----------------------------------------

UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
"""


@pytest.mark.parametrize(("state", "fails"), [("absent", False), ("present", True)])
def test_a_lost_server_fails_a_hold_but_only_warns_on_release(run_action, tmp_path, state, fails):
    """The release runs in the play's `always`, after the task that met the lost server: it must
    not add a second message for the same loss (the Lease expires on its own)."""
    config = tmp_path / "config"
    config.write_text(UNREACHABLE_KUBECONFIG)
    arguments = {"namespace": "student-a", "playbook": "deploy", "kubeconfig": str(config)}
    result = run_action("namespace_lease", {**arguments, "state": state, "wait": 0})
    assert bool(result.get("failed")) is fails, result
    said = "cannot reach the cluster at https://127.0.0.1:1"
    if fails:
        assert result["msg"].startswith(f"Cannot connect: {said}"), result["msg"]
    else:
        assert result["warnings"] == [result["msg"]]
        assert result["msg"].startswith("Lease haw-icc in namespace student-a not given back ("), (
            result["msg"]
        )
        assert said in result["msg"] and result["msg"].endswith("it expires on its own")

"""Two runs against one namespace (issue 11).

The write phase of deploy.yml holds the Lease `haw-icc` in the namespace: of two deploys started
at the same moment exactly one writes, the other fails at once naming the holder. A Lease left by
a run whose process is gone is taken over; the Lease is gone after a run, failed or not. The
steps share one namespace (module scope): each builds on the deployment the first one made.
Without the right to use Leases (Kubernetes' admin role) a run warns and goes on. The summary of
a run over several namespaces is tested in test_faults.py.
"""

from __future__ import annotations

import getpass
import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from kubernetes import client
from views import FAST, tgi_args

from playbooks import REPO_ROOT, command_line_vars, run_playbook, write_inventory

LEASE = "haw-icc"


def make_namespace(sandbox, name: str) -> str:
    sandbox.create_namespace(name)
    sandbox.wait_until_usable(name)
    return name


@pytest.fixture(scope="module")
def shared_namespace(sandbox, core: client.CoreV1Api) -> Iterator[str]:
    name = make_namespace(sandbox, f"t-lease-{secrets.token_hex(3)}")
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def inventory(sandbox, shared_namespace, tmp_path_factory) -> Path:
    return write_inventory(
        tmp_path_factory.mktemp("lease"), [shared_namespace], sandbox.student_kubeconfig, **FAST
    )


@pytest.fixture(scope="module")
def leases(admin_client) -> client.CoordinationV1Api:
    return client.CoordinationV1Api(admin_client)


def read_lease(leases: client.CoordinationV1Api, namespace: str) -> client.V1Lease | None:
    try:
        return leases.read_namespaced_lease(LEASE, namespace)
    except client.ApiException as error:
        if error.status == 404:
            return None
        raise


def put_lease(leases, namespace: str, identity: str, seconds: int) -> client.V1Lease:
    """A Lease as another run would have left it, taken now for `seconds`."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # noqa: UP017
    body = {
        "metadata": {"name": LEASE},
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": seconds,
            "acquireTime": now,
            "renewTime": now,
        },
    }
    return leases.create_namespaced_lease(namespace, body)


def start_deploy(inventory: Path, tokens: int) -> subprocess.Popen:
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory)]
    argv += command_line_vars({"tgi_max_total_tokens": tokens})
    argv.append(str(REPO_ROOT / "playbooks" / "deploy.yml"))
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("K8S_AUTH_", "ANSIBLE_")) and key != "KUBECONFIG"
    } | {
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.Popen(
        argv,
        cwd=REPO_ROOT,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def gone_pid() -> int:
    """The PID of a process that has just ended."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(done.stdout)


def test_two_deploys_at_once_one_wins_the_other_names_it(inventory, shared_namespace, leases):
    first, second = start_deploy(inventory, 3072), start_deploy(inventory, 3584)
    outputs = {}
    for run in (first, second):
        outputs[run.pid] = run.communicate(timeout=600)[0]
    winners = [run for run in (first, second) if run.returncode == 0]
    losers = [run for run in (first, second) if run.returncode != 0]
    assert len(winners) == 1 and len(losers) == 1, {pid: o[-3000:] for pid, o in outputs.items()}
    winner, loser = winners[0], losers[0]
    lost = outputs[loser.pid]
    holder = f"{getpass.getuser()}@{socket.gethostname()} (PID {winner.pid}, deploy.yml)"
    assert f"is in use by another run: {holder} holds it since" in lost, lost[-3000:]
    assert "-e icc_lease_wait=<seconds>" in lost and "-e icc_lease_break=true" in lost
    # The loser wrote nothing: the live pod has the winner's limit.
    tokens = 3072 if winner is first else 3584
    live = tgi_args(client.AppsV1Api(leases.api_client), shared_namespace)
    assert live[live.index("--max-total-tokens") + 1] == str(tokens), live
    assert "1 of 1 namespaces failed:" in lost
    assert "All 1 namespaces succeeded:" in outputs[winner.pid]
    assert read_lease(leases, shared_namespace) is None  # given back after the successful run


def test_check_mode_names_the_holder_and_break_takes_it(inventory, shared_namespace, leases):
    identity = "bob@elsewhere pid 4242 deploy.yml"
    before = put_lease(leases, shared_namespace, identity, 3600).metadata.resource_version
    checked = run_playbook("deploy.yml", inventory, "--check")
    assert checked.rc == 0, checked.output[-3000:]
    assert "check mode: Namespace" in checked.output
    assert "bob@elsewhere (PID 4242, deploy.yml) holds it" in checked.output
    assert read_lease(leases, shared_namespace).metadata.resource_version == before
    broken = run_playbook("deploy.yml", inventory, extra_vars={"icc_lease_break": True})
    assert broken.rc == 0, broken.output[-3000:]
    assert (
        "took the namespace over" in broken.output and "broken by icc_lease_break" in broken.output
    )
    assert read_lease(leases, shared_namespace) is None


def test_a_dead_runs_lease_is_taken_over_and_a_failed_run_gives_it_back(
    inventory, shared_namespace, leases
):
    pid = gone_pid()
    put_lease(
        leases,
        shared_namespace,
        f"{getpass.getuser()}@{socket.gethostname()} pid {pid} scale.yml",
        3600,
    )
    # A new limit that cannot be ready within a second: the run fails after its first write.
    failed = run_playbook(
        "deploy.yml", inventory, extra_vars={"tgi_max_total_tokens": 2560, "icc_wait_timeout": 1}
    )
    assert failed.rc != 0, failed.output[-3000:]
    assert f"process {pid} on this machine is gone" in failed.output, failed.output[-3000:]
    assert "Rolled back" in failed.output
    assert read_lease(leases, shared_namespace) is None


def test_without_the_right_to_leases_a_run_warns_and_goes_on(sandbox, admin_client, core, tmp_path):
    """Kubernetes' built-in admin role, what a student may hold in their namespace on a cluster,
    grants no Leases: the run is not refused, it says that it is unprotected."""
    name = f"t-lease-admin-{secrets.token_hex(3)}"
    sandbox.create_namespace(name, grant_student=False)
    sandbox.wait_until_usable(name)
    try:
        client.RbacAuthorizationV1Api(admin_client).create_namespaced_role_binding(
            name,
            {
                "metadata": {"name": "student-is-admin"},
                "roleRef": {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "admin",
                },
                "subjects": [
                    {
                        "apiGroup": "rbac.authorization.k8s.io",
                        "kind": "User",
                        "name": sandbox.student_user,
                    }
                ],
            },
        )
        inventory = write_inventory(tmp_path, [name], sandbox.student_kubeconfig, **FAST)
        run = run_playbook("deploy.yml", inventory)
        assert run.rc == 0, run.output[-3000:]
        assert "not protected against concurrent runs" in run.output, run.output[-3000:]
        assert run.changed(name) > 0
    finally:
        core.delete_namespace(name)

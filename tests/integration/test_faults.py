"""Faults: the API server or etcd gone in the middle of a run, a namespace without GPU quota in a
fleet run, and the volumes that must outlive every playbook but a purge.

These tests kill control-plane processes, so they run against a sandbox of their own (started
once for this module and stopped at its end), never against the shared one other runs may use.
Steps that build on each other share one namespace.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from icc_sandbox import cluster
from kubernetes import client, config
from views import FAST, MANAGED, SMALLER_MODEL
from waiting import wait_until

from playbooks import Run, run_playbook, write_inventory

# The words the collection uses when the API server cannot be reached (cluster_access).
UNREACHABLE = re.compile(
    r"cannot reach the (?:cluster|Kubernetes API) at https://127\.0\.0\.1:\d+"
    r"|Kubernetes API server at https://127\.0\.0\.1:\d+ did not answer"
)
RAW_REPRS = (
    "urllib3",
    "HTTPSConnectionPool",
    "MaxRetryError",
    "NewConnectionError",
    " object at 0x",
)
DOWN_SECONDS = 4


@pytest.fixture(scope="module")
def own_sandbox() -> Iterator[cluster.Sandbox]:
    began = time.monotonic()
    started = cluster.start()
    print(f"\nfault sandbox started in {time.monotonic() - began:.1f}s at {started.server}")
    try:
        yield started
    finally:
        cluster.stop(started)


@pytest.fixture(scope="module")
def admin(own_sandbox: cluster.Sandbox) -> Iterator[client.ApiClient]:
    with config.new_client_from_config(config_file=str(own_sandbox.admin_kubeconfig)) as api:
        yield api


def new_namespace(sandbox: cluster.Sandbox, label: str) -> str:
    name = f"f-{label}-{secrets.token_hex(3)}"
    sandbox.create_namespace(name)
    sandbox.wait_until_usable(name)
    return name


def timed(what: str) -> Callable[[], None]:
    """Prints how long a test step took (the figures the fault tests are measured by)."""
    began = time.monotonic()
    return lambda: print(f"\n[timing] {what}: {time.monotonic() - began:.1f}s")


def deploy_with_fault(
    sandbox: cluster.Sandbox,
    label: str,
    directory: Path,
    trigger: Callable[[list[dict]], bool],
    fault: Callable[[], None],
) -> tuple[str, Path, Run]:
    """deploy.yml into a new namespace, applying `fault` once `trigger` holds for the student's
    writes there so far (the API server's audit log). Returns namespace, inventory and run."""
    namespace = new_namespace(sandbox, label)
    inventory = write_inventory(directory, [namespace], sandbox.student_kubeconfig, **FAST)
    done: dict[str, Run] = {}
    runner = threading.Thread(
        target=lambda: done.setdefault("run", run_playbook("deploy.yml", inventory)), daemon=True
    )
    runner.start()
    writes: list[dict] = []
    while runner.is_alive():
        writes = sandbox.student_writes(namespace)
        if trigger(writes):
            fault()
            break
        time.sleep(0.05)
    runner.join(timeout=900)
    assert "run" in done, "the playbook did not finish"
    assert trigger(writes), f"the run ended before the fault was applied:\n{done['run'].output}"
    return namespace, inventory, done["run"]


def rerun_converges(admin: client.ApiClient, namespace: str, inventory: Path) -> Run:
    again = run_playbook("deploy.yml", inventory)
    assert again.rc == 0, again.output
    assert_converged(admin, namespace)
    return again


def first_write_of(resource: str) -> Callable[[list[dict]], bool]:
    return lambda writes: any(w["objectRef"].get("resource") == resource for w in writes)


def failure_results(run: Run) -> list[str]:
    """Ansible's lines for failed task results ("fatal: [host]: FAILED! => ...", and per loop
    item "failed: [host] (item=...) => ...")."""
    return [line for line in run.output.splitlines() if line.startswith(("fatal: [", "failed: ["))]


def failure_causes(run: Run) -> set[str]:
    """The distinct messages of the failed results, without what only repeats them: the fleet
    summary's 'FAILED <namespace> at "<task>": ' and 'Cannot connect: '."""
    causes = set()
    for line in failure_results(run):
        message = json.loads(line.split(" => ", 1)[1]).get("msg", "")
        message = re.sub(r'^FAILED \S+ at "[^"]*": ', "", message)
        causes.add(message.removeprefix("Cannot connect: "))
    return causes


def assert_one_clear_message(run: Run) -> None:
    """The run failed for one reason, said in one line: the API server could not be reached
    (with its address), and to run the playbook again; no failure per object, no urllib3
    internals anywhere in the output."""
    assert run.rc != 0, run.output
    failures = failure_results(run)
    assert failures, run.output
    assert not [line for line in failures if "(item=" in line], "\n".join(failures)
    causes = failure_causes(run)
    assert len(causes) == 1, "\n".join(sorted(causes))
    cause = causes.pop()
    assert "\n" not in cause
    assert UNREACHABLE.search(cause), cause
    assert re.search(r"run (?:the playbook )?again|re-run", cause, re.IGNORECASE), cause
    leaked = [text for text in RAW_REPRS if text in run.output]
    assert not leaked, f"{leaked} in:\n{run.output}"


def assert_converged(admin: client.ApiClient, namespace: str) -> None:
    """Every object once, one ReplicaSet per Deployment (a first deploy rolls nothing), pods
    Ready."""
    apps, core = client.AppsV1Api(admin), client.CoreV1Api(admin)
    deployments = {d.metadata.name for d in apps.list_namespaced_deployment(namespace).items}
    assert deployments == {"tgi", "open-webui"}
    replicasets = apps.list_namespaced_replica_set(namespace).items
    owners = sorted(rs.metadata.owner_references[0].name for rs in replicasets)
    assert owners == ["open-webui", "tgi"], [rs.metadata.name for rs in replicasets]
    claims = core.list_namespaced_persistent_volume_claim(namespace, label_selector=MANAGED)
    assert len(claims.items) == 2, [c.metadata.name for c in claims.items]
    pods = core.list_namespaced_pod(namespace).items
    assert len(pods) == 2, [p.metadata.name for p in pods]
    for pod in pods:
        ready = {c.type: c.status for c in pod.status.conditions or []}.get("Ready")
        assert ready == "True", pod.metadata.name


# --- the sandbox's own restarts ----------------------------------------------------------------


@pytest.mark.sandbox
def test_the_api_server_and_etcd_restart_alone_and_the_cluster_works_on(own_sandbox, admin):
    done = timed("restart api server and etcd")
    sandbox = own_sandbox
    others = {name: pid for name, pid in sandbox.pids.items() if name != "kube-apiserver"}
    old_api_pid = sandbox.pids["kube-apiserver"]
    core = client.CoreV1Api(admin)
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "before-restarts"}, "data": {"kept": "yes"}}
    )

    cluster.stop_apiserver(sandbox)
    assert "kube-apiserver" not in cluster.Sandbox.load(sandbox.state_file).pids
    assert not sandbox.is_alive()
    with pytest.raises(Exception, match=r"Connection refused|Max retries"):
        core.read_namespace("default", _request_timeout=2)
    cluster.start_apiserver(sandbox)
    assert sandbox.pids["kube-apiserver"] != old_api_pid
    assert {n: p for n, p in sandbox.pids.items() if n != "kube-apiserver"} == others
    assert cluster.Sandbox.load(sandbox.state_file).pids == sandbox.pids
    # The same port, certificate and tokens: the kubeconfigs (and this client) still work.
    assert core.read_namespaced_config_map("before-restarts", "default").data == {"kept": "yes"}

    old_etcd_pid = sandbox.pids["etcd"]
    cluster.stop_etcd(sandbox)
    # The API server runs on but cannot serve without its storage.
    with pytest.raises(Exception):  # noqa: B017 - a 5xx, or a time-out, depending on the call
        core.create_namespaced_config_map(
            "default", {"metadata": {"name": "during-outage"}}, _request_timeout=5
        )
    cluster.start_etcd(sandbox)
    assert sandbox.pids["etcd"] != old_etcd_pid
    assert sandbox.is_alive()
    assert core.read_namespaced_config_map("before-restarts", "default").data == {"kept": "yes"}

    # Controller manager, scheduler and node agent reconnected: a Deployment made now gets its
    # ReplicaSet, its pod is bound to a node and reported Ready.
    apps = client.AppsV1Api(admin)
    labels = {"app": "after-restarts"}
    apps.create_namespaced_deployment(
        "default",
        {
            "metadata": {"name": "after-restarts"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "web", "image": "busybox"}]},
                },
            },
        },
    )
    wait_until(
        lambda: (
            (apps.read_namespaced_deployment("after-restarts", "default").status.ready_replicas)
            == 1
        ),
        60,
        "a Deployment made after the restarts to become ready",
    )
    apps.delete_namespaced_deployment("after-restarts", "default")
    core.delete_namespaced_config_map("before-restarts", "default")
    done()


# --- the API server or etcd gone in the middle of deploy.yml ------------------------------------


def any_write(writes: list[dict]) -> bool:
    return bool(writes)


@pytest.mark.sandbox
def test_api_server_killed_mid_deploy_gives_one_clear_message_and_a_rerun_converges(
    own_sandbox, admin, tmp_path
):
    done = timed("api server killed mid deploy, then re-run")
    # Killed right after the first write (a Secret): the rest of the writes meet no server.
    namespace, inventory, failed = deploy_with_fault(
        own_sandbox,
        "api",
        tmp_path,
        any_write,
        lambda: cluster.restart_apiserver(own_sandbox, down_seconds=DOWN_SECONDS),
    )
    assert_one_clear_message(failed)
    print(f"\n[api fault] {failure_causes(failed)}")
    assert failed.recap[namespace]["failed"] == 1
    rerun_converges(admin, namespace, inventory)
    done()


@pytest.mark.sandbox
def test_etcd_restarted_mid_deploy_and_a_rerun_converges(own_sandbox, admin, tmp_path):
    """While etcd is down the API server answers late, with 5xx or time-outs; requests that
    waited through a short outage go through. Either the run still succeeds, or it fails with
    one readable message; a re-run (or the no-op redeploy after success) converges."""
    done = timed("etcd restarted mid deploy, then re-run")
    namespace, inventory, first = deploy_with_fault(
        own_sandbox,
        "etcd",
        tmp_path,
        first_write_of("deployments"),
        lambda: cluster.restart_etcd(own_sandbox, down_seconds=DOWN_SECONDS),
    )
    print(f"\n[etcd fault] first run rc={first.rc} {failure_causes(first)}")
    if first.rc != 0:  # then for one reason, in the API server's words, once per namespace
        assert len(failure_causes(first)) == 1, first.output
        assert not [text for text in RAW_REPRS if text in first.output], first.output
    # And once more between the runs: the re-run finds everything etcd kept.
    cluster.restart_etcd(own_sandbox, down_seconds=DOWN_SECONDS)
    again = rerun_converges(admin, namespace, inventory)
    if first.rc == 0:
        assert again.changed(namespace) == 0, again.output
    done()


# --- a fleet run where one namespace has no GPU quota left ---------------------------------------


@pytest.fixture(scope="module")
def fleet(own_sandbox, tmp_path_factory) -> dict:
    """One deploy.yml over two namespaces, one of them with a GPU quota of 0. The deployed one
    is reused by the volume test below."""
    ok = new_namespace(own_sandbox, "fleet-ok")
    starved = new_namespace(own_sandbox, "fleet-noquota")
    own_sandbox.set_gpu_quota(starved, 0)
    inventory = write_inventory(
        tmp_path_factory.mktemp("fleet"),
        [ok, starved],
        own_sandbox.student_kubeconfig,
        **FAST,
    )
    began = time.monotonic()
    run = run_playbook("deploy.yml", inventory)
    print(f"\n[timing] fleet deploy of 2 namespaces: {time.monotonic() - began:.1f}s")
    return {"run": run, "ok": ok, "starved": starved, "inventory": inventory}


@pytest.mark.sandbox
def test_a_namespace_without_gpu_quota_fails_alone_in_a_fleet_run(fleet, own_sandbox, admin):
    run, ok, starved = fleet["run"], fleet["ok"], fleet["starved"]
    assert run.rc != 0, run.output
    assert run.recap[ok]["failed"] == 0, run.output
    assert run.recap[starved]["failed"] == 1, run.output
    assert f"- gpu-quota: ResourceQuota gpu-quota in {starved}" in run.output
    assert own_sandbox.student_writes(starved) == []  # refused before the first write
    assert_converged(admin, ok)
    # The summary of all namespaces at the end of deploy.yml names the failed one and why.
    summary = run.output[run.output.index("1 of 2 namespaces failed:") :]
    summary = summary[: summary.index("TASK [")]
    assert f"FAILED {starved} at " in summary and "gpu-quota" in summary, summary
    assert f"ok {ok}:" in summary, summary


# --- volumes outlive redeploy, scale, model switch and cleanup without purge ----------------------


def volume_claims(core: client.CoreV1Api, namespace: str) -> dict[str, tuple[str, str]]:
    """claim name -> (claim UID, volume name) of the collection's claims."""
    claims = core.list_namespaced_persistent_volume_claim(namespace, label_selector=MANAGED)
    return {c.metadata.name: (c.metadata.uid, c.spec.volume_name) for c in claims.items}


@pytest.mark.sandbox
def test_volumes_survive_redeploy_scale_switch_and_cleanup_until_purge(fleet, own_sandbox, admin):
    done = timed("volumes through redeploy, scale, switch, cleanup, purge")
    namespace = fleet["ok"]
    # Its own inventory: the fleet's still lists the starved namespace.
    directory = fleet["inventory"].parent / "volumes"
    directory.mkdir()
    inventory = write_inventory(directory, [namespace], own_sandbox.student_kubeconfig, **FAST)
    core = client.CoreV1Api(admin)
    claims = volume_claims(core, namespace)
    assert set(claims) == {"tgi-cache", "open-webui-data"}, claims
    volumes = own_sandbox.run_dir / "agent" / "volumes"
    for name, (uid, volume) in claims.items():
        assert volume == f"pvc-{uid}"
        directory = Path(core.read_persistent_volume(volume).spec.host_path.path)
        assert directory == volumes / volume
        # The node agent creates it when a real program first mounts it; the stand-ins do not.
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "kept.txt").write_text(name)

    steps = [
        ("deploy.yml", {}),
        ("scale.yml", {"tgi_gpu_count": 2}),
        ("change_model.yml", {"tgi_model": SMALLER_MODEL}),
        ("cleanup.yml", {}),
    ]
    for playbook, extra_vars in steps:
        step = run_playbook(playbook, inventory, extra_vars=extra_vars)
        assert step.rc == 0, f"{playbook}:\n{step.output}"
        assert volume_claims(core, namespace) == claims, playbook
        for name, (_uid, volume) in claims.items():
            assert (volumes / volume / "kept.txt").read_text() == name, playbook
    assert not client.AppsV1Api(admin).list_namespaced_deployment(namespace).items

    purged = run_playbook("cleanup.yml", inventory, extra_vars={"purge": True})
    assert purged.rc == 0, purged.output
    wait_until(
        lambda: (
            not core.list_namespaced_persistent_volume_claim(namespace).items
            and not any((volumes / volume).exists() for _uid, volume in claims.values())
        ),
        60,
        "the purged claims and their volumes to be gone",
    )
    done()

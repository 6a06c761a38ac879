"""Benchmark haw.icc on a sandbox of its own, with the real ansible-playbook, as users run it.

    .venv/bin/python benchmarks/run.py [--runs 3] [--fleet 1,10,40] [--fleet-runs 1] [--quick]
                                       [--ref COMMIT] [--output FILE] [--show RESULTS]

It starts a fresh sandbox (benchmarks/nodes.yml: enough V100 nodes for a 40-namespace course),
stopped by PID at the end, also on failure or Ctrl-C. Per scenario it records the wall time,
the student's API requests by verb (the API server's audit log), the objects whose
resourceVersion changed, pod restarts and new ReplicaSets, and writes benchmarks/results.json
(medians, ratios within this run, issue 11's targets met or missed) and prints a table.

Scenarios, each with `-i <inventory dir>` (one host per namespace), `-e key=value` strings and the
student's kubeconfig: the trivial playbook (one debug task on localhost: Ansible's own floor);
per 1-namespace run (--runs, fresh namespace each time): first deploy, no-op redeploy, the
lower bound (the objects of playbooks/render.yml applied again with `kubectl apply
--server-side`), a refused scale (more GPUs than a node has), scale 1->2, model switch, cleanup;
then each fleet size (10, 40: --fleet-runs, default once) deployed and redeployed with `-f`
equal to the fleet size. The fleets' namespaces are deleted afterwards, not cleaned up by
cleanup.yml (it would cost minutes and is measured for one namespace).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "sandbox"), str(REPO / "tests" / "integration")]

import figures  # noqa: E402
from icc_sandbox import cluster  # noqa: E402
from icc_sandbox.kubeapi import ApiError  # noqa: E402

from playbooks import command_line_vars, write_inventory  # noqa: E402

NODES_FILE = REPO / "benchmarks" / "nodes.yml"
TRIVIAL_PLAYBOOK = REPO / "benchmarks" / "trivial.yml"
RESULTS_FILE = REPO / "benchmarks" / "results.json"
VENV_BIN = Path(sys.executable).parent
MODEL = "Qwen/Qwen2.5-1.5B-Instruct"
SWITCH_MODEL = "Qwen/Qwen2.5-3B-Instruct"
REFUSED_GPUS = 5  # a V100 node has 4: the capacity check refuses before any write
GROUP_VARS = {
    "tgi_model_id": MODEL,
    "tgi_gpu_type": "gpu-tesla-v100",
    "tgi_gpu_count": 1,
    "tgi_cache_size": "1Gi",
    "open_webui_data_size": "1Gi",
}
PLAYBOOK_TIMEOUT = 3600.0
# What a namespace holds that the collection or its pods can change (Events and Endpoints left
# out: they follow the pods, not the run).
LISTED = (
    ("/api/v1", "secrets"),
    ("/api/v1", "configmaps"),
    ("/api/v1", "services"),
    ("/api/v1", "persistentvolumeclaims"),
    ("/api/v1", "serviceaccounts"),
    ("/api/v1", "pods"),
    ("/apis/apps/v1", "deployments"),
    ("/apis/apps/v1", "replicasets"),
    ("/apis/networking.k8s.io/v1", "networkpolicies"),
    ("/apis/networking.k8s.io/v1", "ingresses"),
    ("/apis/coordination.k8s.io/v1", "leases"),
    ("/apis/rbac.authorization.k8s.io/v1", "roles"),
    ("/apis/rbac.authorization.k8s.io/v1", "rolebindings"),
)
PROFILE_LINE = re.compile(r"^(?P<task>.+?) -{3,} (?P<seconds>\d+\.\d+)s\s*$", re.MULTILINE)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class Interrupted(Exception):
    pass


def _on_sigterm(_signum, _frame):
    raise Interrupted("SIGTERM")


class Bench:
    def __init__(self, sandbox: cluster.Sandbox, work: Path, tree: Path = REPO) -> None:
        self.sandbox = sandbox
        self.api = sandbox.admin_api()
        self.work = work
        self.tree = tree  # the checkout whose playbooks and collection are measured

    # --- running Ansible ---------------------------------------------------------------------

    def ansible(self, argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
        """Runs an Ansible command in its own session; on any interruption its whole process
        group (its forks too) is ended by that group's id."""
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("K8S_AUTH_", "ANSIBLE_")) and key != "KUBECONFIG"
        } | {
            "ANSIBLE_CONFIG": str(self.tree / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "HF_HUB_OFFLINE": "1",
            "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        process = subprocess.Popen(
            argv,
            cwd=self.tree,
            env=environment | (env or {}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=PLAYBOOK_TIMEOUT)
        except BaseException:
            _end_group(process)
            raise
        return process.returncode, output

    def playbook(
        self,
        playbook: str | Path,
        inventory: Path,
        forks: int,
        extra: dict | None = None,
        env: dict[str, str] | None = None,
    ) -> tuple[int, str, float]:
        path = playbook if isinstance(playbook, Path) else self.tree / "playbooks" / playbook
        argv = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "-f", str(forks)]
        argv += [*command_line_vars(extra or {}), str(path)]
        began = time.monotonic()
        rc, output = self.ansible(argv, env)
        return rc, output, time.monotonic() - began

    # --- what the cluster holds ----------------------------------------------------------

    def snapshot(self, namespaces: list[str]) -> dict:
        """resourceVersions of the namespaces' objects, their pods and ReplicaSets (as admin)."""
        wanted = set(namespaces)
        versions, pods, replicasets = {}, {}, {}
        for prefix, resource in LISTED:
            for item in self.api.get(f"{prefix}/{resource}").get("items", []):
                meta = item["metadata"]
                if meta.get("namespace") not in wanted:
                    continue
                key = f"{resource}/{meta['namespace']}/{meta['name']}"
                versions[key] = meta["resourceVersion"]
                if resource == "pods":
                    statuses = item.get("status", {}).get("containerStatuses") or []
                    pods[key] = {
                        "uid": meta["uid"],
                        "restarts": sum(s.get("restartCount", 0) for s in statuses),
                    }
                elif resource == "replicasets":
                    owners = meta.get("ownerReferences") or [{}]
                    replicasets[key] = owners[0].get("name", "")
        return {"versions": versions, "pods": pods, "replicasets": replicasets}

    def measure(self, name: str, namespaces: list[str], action) -> dict:
        """Runs `action` (returns rc, output, seconds) and what it did to the namespaces."""
        before = self.snapshot(namespaces)
        mark = self.sandbox.audit_lines()
        rc, output, seconds = action()
        after = self.snapshot(namespaces)
        requests = self.sandbox.student_requests(since_line=mark)
        mine = [entry for entry in requests if figures.in_namespaces(entry, namespaces)]
        changed = figures.changed_objects(before["versions"], after["versions"])
        result = {
            "seconds": round(seconds, 2),
            "rc": rc,
            "tasks_per_host": figures.tasks_per_host(output),
            "requests": len(requests),
            "requests_by_verb": figures.requests_by_verb(requests),
            "top_requests": figures.requests_by_resource(requests),
            "writes": sum(1 for entry in mine if figures.is_write(entry)),
            "changed_objects": len(changed),
            "changed": changed[:40],
            "restarts": figures.pod_restarts(before["pods"], after["pods"]),
        }
        made = figures.new_names(before["replicasets"], after["replicasets"])
        result["new_replicasets"] = sum(1 for key in made if after["replicasets"][key] == "tgi")
        result["new_replicasets_all"] = len(made)
        outcome = "ok" if rc == 0 else f"rc={rc}"
        log(
            f"{name}: {seconds:.1f}s {outcome}, {result['requests']} requests, "
            f"{result['writes']} writes, {result['changed_objects']} objects changed, "
            f"{result['restarts']} restarts, new ReplicaSets: {result['new_replicasets']} of TGI, "
            f"{result['new_replicasets_all']} in all"
        )
        if rc != 0:
            result["failure"] = failure_lines(output)
        return result

    # --- namespaces ----------------------------------------------------------------------

    def namespaces(self, prefix: str, count: int) -> list[str]:
        names = [f"{prefix}-{i}-{secrets.token_hex(2)}" for i in range(count)]
        for name in names:
            self.sandbox.create_namespace(name)
        for name in names:
            self.sandbox.wait_until_usable(name)
        return names

    def delete_namespaces(self, names: list[str], timeout: float = 600.0) -> None:
        """Deletes them and waits until they are gone, so their GPUs are free for the next."""
        for name in names:
            try:
                self.api.delete(f"/api/v1/namespaces/{name}")
            except ApiError as error:
                if error.status != 404:
                    raise
        deadline = time.monotonic() + timeout
        remaining = list(names)
        while remaining and time.monotonic() < deadline:
            remaining = [name for name in remaining if self._exists(f"/api/v1/namespaces/{name}")]
            time.sleep(1)
        if remaining:
            log(f"WARNING: {len(remaining)} namespaces still terminating after {timeout:.0f}s")

    def _exists(self, path: str) -> bool:
        try:
            self.api.get(path)
        except ApiError as error:
            if error.status == 404:
                return False
            raise
        return True

    def inventory(self, label: str, namespaces: list[str]) -> Path:
        directory = self.work / f"inventory-{label}"
        directory.mkdir(parents=True)
        write_inventory(directory, namespaces, self.sandbox.student_kubeconfig, **GROUP_VARS)
        return directory

    # --- scenarios -----------------------------------------------------------------------

    def trivial(self, inventory: Path) -> float:
        rc, output, seconds = self.playbook(TRIVIAL_PLAYBOOK, inventory, 1)
        if rc != 0:
            raise RuntimeError(f"the trivial playbook failed:\n{output[-2000:]}")
        log(f"trivial playbook: {seconds:.1f}s")
        return round(seconds, 2)

    def kubectl_noop(self, inventory: Path, namespace: str) -> dict:
        """The lower bound: what render.yml writes, applied again by kubectl (server-side, the
        collection's field manager) on the deployed namespace."""
        kubectl = shutil.which("kubectl")
        rendered = self.work / f"rendered-{namespace}"
        # The pods carry the Secrets' versions: render with the live ones, or the manifests differ.
        versions = {
            item["metadata"]["name"]: item["metadata"]["resourceVersion"]
            for item in self.api.get(f"/api/v1/namespaces/{namespace}/secrets").get("items", [])
            if item.get("type") != "kubernetes.io/service-account-token"
        }
        rc, output, _ = self.playbook(
            "render.yml",
            inventory,
            1,
            {"icc_render_dir": str(rendered), "icc_secret_versions": versions},
        )
        if rc != 0 or kubectl is None:
            why = "kubectl not on PATH" if kubectl is None else failure_lines(output)
            log(f"kubectl lower bound skipped: {why}")
            return {"skipped": why}
        argv = [
            kubectl,
            f"--kubeconfig={self.sandbox.student_kubeconfig}",
            f"--cache-dir={self.work / 'kubectl-cache'}",
            "-n",
            namespace,
            "apply",
            "--server-side",
            "--field-manager=haw.icc",
            "--force-conflicts",
            "-f",
            str(rendered / namespace),
        ]

        def action():
            began = time.monotonic()
            result = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            return result.returncode, result.stdout + result.stderr, time.monotonic() - began

        return self.measure("kubectl apply --server-side (no-op)", [namespace], action)

    def profile_noop(self, inventory: Path) -> list[dict]:
        """One more no-op redeploy with profile_tasks: where its time goes, slowest first."""
        rc, output, seconds = self.playbook(
            "deploy.yml",
            inventory,
            1,
            env={
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
                "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "25",
            },
        )
        log(f"profiled no-op redeploy: {seconds:.1f}s rc={rc}")
        tasks = [
            {"task": match["task"].strip(), "seconds": float(match["seconds"])}
            for match in PROFILE_LINE.finditer(output)
        ]
        return sorted(tasks, key=lambda task: -task["seconds"])[:25]

    def lifecycle(self, run: int, profile: bool, with_kubectl: bool) -> dict:
        """Everything on one fresh namespace, in the order a student meets it."""
        [namespace] = self.namespaces(f"bench-r{run}", 1)
        inventory = self.inventory(f"run{run}", [namespace])
        ns = [namespace]
        out: dict = {"namespace": namespace, "trivial": self.trivial(inventory)}
        out["first_deploy"] = self.measure(
            "first deploy", ns, lambda: self.playbook("deploy.yml", inventory, 1)
        )
        out["noop_redeploy"] = self.measure(
            "no-op redeploy", ns, lambda: self.playbook("deploy.yml", inventory, 1)
        )
        if profile:
            out["profile_noop"] = self.profile_noop(inventory)
        if with_kubectl:
            out["kubectl_noop"] = self.kubectl_noop(inventory, namespace)
        out["refused_change"] = self.measure(
            f"refused scale to {REFUSED_GPUS} GPUs",
            ns,
            lambda: self.playbook("scale.yml", inventory, 1, {"tgi_gpu_count": REFUSED_GPUS}),
        )
        out["scale"] = self.measure(
            "scale 1->2",
            ns,
            lambda: self.playbook("scale.yml", inventory, 1, {"tgi_gpu_count": 2}),
        )
        out["switch"] = self.measure(
            "model switch",
            ns,
            lambda: self.playbook("change_model.yml", inventory, 1, {"tgi_model": SWITCH_MODEL}),
        )
        out["cleanup"] = self.measure(
            "cleanup", ns, lambda: self.playbook("cleanup.yml", inventory, 1)
        )
        self.delete_namespaces(ns)
        return out

    def fleet(self, size: int, run: int) -> dict:
        names = self.namespaces(f"bench-f{size}r{run}", size)
        inventory = self.inventory(f"fleet{size}-run{run}", names)
        try:
            deploy = self.measure(
                f"fleet of {size}: deploy (-f {size})",
                names,
                lambda: self.playbook("deploy.yml", inventory, size),
            )
            noop = self.measure(
                f"fleet of {size}: no-op redeploy (-f {size})",
                names,
                lambda: self.playbook("deploy.yml", inventory, size),
            )
        finally:
            self.delete_namespaces(names)
        floor = self.ansible_floor(names, noop["tasks_per_host"])
        return {"deploy": deploy, "noop": noop, "floor": floor}

    def ansible_floor(self, names: list[str], tasks: int) -> dict:
        """Ansible's own cost of `tasks` tasks per host that do nothing (ansible.builtin.debug),
        on the first namespace alone (-f 1) and on all of them (-f N), as the no-op redeploys
        run: what the fleet's ratio cannot go below, whatever the collection's tasks do."""
        playbook = self.work / f"floor-{tasks}.yml"
        play = {
            "hosts": "all",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {"name": f"task {n}", "ansible.builtin.debug": {"msg": "{{ inventory_hostname }}"}}
                for n in range(tasks)
            ],
        }
        playbook.write_text(yaml.safe_dump([play]))
        seconds = {}
        for label, hosts in (("one", names[:1]), ("fleet", names)):
            inventory = self.inventory(f"floor-{label}-{len(names)}", hosts)
            rc, output, took = self.playbook(playbook, inventory, len(hosts))
            if rc != 0:
                raise RuntimeError(f"the floor playbook failed:\n{output[-2000:]}")
            seconds[label] = round(took, 2)
        log(
            f"Ansible's floor, {tasks} debug tasks per host: one {seconds['one']:.1f}s, "
            f"{len(names)} {seconds['fleet']:.1f}s (-f {len(names)})"
        )
        return {"tasks_per_host": tasks, "hosts": len(names), **seconds}


def _end_group(process: subprocess.Popen) -> None:
    """Ends the process group we started for `process` (its own session), TERM then KILL."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def failure_lines(output: str, count: int = 6) -> list[str]:
    """The lines that say why a run failed (Ansible's fatal/msg lines), else its tail."""
    lines = [
        line.strip()
        for line in output.splitlines()
        if line.startswith(("fatal:", "failed:", "ERROR!")) or line.strip().startswith("msg:")
    ]
    return (lines or output.strip().splitlines())[-count:]


def summarise(measurements: list[dict]) -> dict:
    """Medians over runs of each figure of one scenario; requests by verb per verb."""
    done = [m for m in measurements if m and "seconds" in m]
    if not done:
        return {}
    keys = ("seconds", "requests", "writes", "changed_objects", "restarts", "new_replicasets")
    keys += ("new_replicasets_all",)
    summary = {key: figures.median(m[key] for m in done) for key in keys}
    verbs = sorted({verb for m in done for verb in m["requests_by_verb"]})
    summary["requests_by_verb"] = {
        verb: figures.median(m["requests_by_verb"].get(verb, 0) for m in done) for verb in verbs
    }
    summary["runs"] = len(done)
    summary["failed_runs"] = sum(1 for m in done if m["rc"] != 0)
    summary["all_seconds"] = [m["seconds"] for m in done]
    return summary


def machine(load_start: tuple[float, ...]) -> dict:
    return {
        "cores": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_start],
        "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
    }


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def git_state(ref: str | None) -> dict:
    """The commit measured: `ref` exported clean, or the working tree (dirty when it has
    uncommitted changes, which others may be making while the benchmark runs)."""
    if ref:
        return {"commit": git("rev-parse", f"{ref}^{{commit}}"), "tree": f"git archive {ref}"}
    return {
        "commit": git("rev-parse", "HEAD"),
        "tree": "working tree",
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def export_tree(ref: str, work: Path) -> Path:
    """A clean copy of the collection at `ref`, linked as haw.icc like `make setup` does."""
    tree = work / "tree"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref], cwd=REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    link = tree / ".ansible" / "collections" / "ansible_collections" / "haw" / "icc"
    link.parent.mkdir(parents=True)
    link.symlink_to("../../../..")
    return tree


def report(args: argparse.Namespace, lifecycles: list[dict], fleets: dict, load: tuple) -> dict:
    def scenario(name: str) -> dict:
        return summarise([run.get(name) for run in lifecycles])

    trivial = figures.median(run["trivial"] for run in lifecycles)
    noop, refused = scenario("noop_redeploy"), scenario("refused_change")
    first = scenario("first_deploy")
    kubectl = summarise([run.get("kubectl_noop") for run in lifecycles])
    fleet = {"1": first.get("seconds")}
    fleet_noop = {"1": noop.get("seconds")}
    fleet_detail = {}
    for size, runs in sorted(fleets.items()):
        deploy = summarise([r["deploy"] for r in runs])
        again = summarise([r["noop"] for r in runs])
        fleet[str(size)], fleet_noop[str(size)] = deploy.get("seconds"), again.get("seconds")
        floors = [r["floor"] for r in runs if r.get("floor")]
        fleet_detail[str(size)] = {
            "deploy": deploy,
            "noop": again,
            "floor": floors[-1] if floors else {},
        }
    largest = str(max([1, *fleets]))
    ratios = {
        "noop_vs_trivial": figures.ratio(noop.get("seconds"), trivial),
        "refused_vs_trivial": figures.ratio(refused.get("seconds"), trivial),
        "noop_vs_kubectl": figures.ratio(noop.get("seconds"), kubectl.get("seconds")),
        "first_deploy_vs_trivial": figures.ratio(first.get("seconds"), trivial),
        "fleet_deploy_largest_vs_1": figures.ratio(fleet.get(largest), fleet["1"]),
        "fleet_noop_largest_vs_1": figures.ratio(fleet_noop.get(largest), fleet_noop["1"]),
        "largest_fleet": int(largest),
    }
    for size in fleets:
        floor = fleet_detail[str(size)]["floor"]
        ratios[f"ansible_floor_{size}_vs_1"] = figures.ratio(floor.get("fleet"), floor.get("one"))
        ratios[f"fleet_deploy_{size}_vs_1"] = figures.ratio(fleet.get(str(size)), fleet["1"])
        ratios[f"fleet_noop_{size}_vs_1"] = figures.ratio(
            fleet_noop.get(str(size)), fleet_noop["1"]
        )
    results = {
        "generated": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "git": git_state(args.ref),
        "machine": machine(load),
        "settings": {
            "runs": args.runs,
            "fleet": args.fleet,
            "fleet_runs": args.fleet_runs,
            "forks": "fleet size (-f N); 1 for the 1-namespace scenarios",
            "model": MODEL,
            "switch_model": SWITCH_MODEL,
            "refused": f"scale.yml -e tgi_gpu_count={REFUSED_GPUS} (a V100 node has 4)",
            "nodes_file": str(NODES_FILE.relative_to(REPO)),
        },
        "trivial_playbook_seconds": trivial,
        "first_deploy": first,
        "noop_redeploy": noop,
        "fleet": fleet,
        "fleet_noop": fleet_noop,
        "fleet_detail": fleet_detail,
        "refused_change": refused,
        "scale": scenario("scale"),
        "switch": scenario("switch"),
        "cleanup": scenario("cleanup"),
        "kubectl_noop_seconds": kubectl.get("seconds"),
        "kubectl_noop": kubectl
        or next((run["kubectl_noop"] for run in lifecycles if run.get("kubectl_noop")), {}),
        "ratios": ratios,
        "profile_noop": next((r["profile_noop"] for r in lifecycles if "profile_noop" in r), []),
        "raw": {"lifecycles": lifecycles, "fleets": {str(k): v for k, v in fleets.items()}},
    }
    results["targets"] = figures.targets(results)
    return results


def print_tables(results: dict) -> None:
    def cell(value, digits=1):
        if value is None:
            return "-"
        return f"{value:.{digits}f}" if isinstance(value, float) else str(value)

    def row(label: str, s: dict) -> tuple[str, ...]:
        verbs = ", ".join(f"{v} {cell(n, 0)}" for v, n in (s.get("requests_by_verb") or {}).items())
        counts = [cell(s.get(key), 0) for key in ("requests", "writes", "changed_objects")]
        return (
            label,
            cell(s.get("seconds")),
            *counts,
            cell(s.get("restarts"), 0),
            f"{cell(s.get('new_replicasets'), 0)}/{cell(s.get('new_replicasets_all'), 0)}",
            cell(s.get("runs")),
            verbs,
        )

    rows = [
        row(label, results.get(key) or {})
        for label, key in (
            ("first deploy", "first_deploy"),
            ("no-op redeploy", "noop_redeploy"),
            ("kubectl apply --server-side (no-op)", "kubectl_noop"),
            ("refused scale", "refused_change"),
            ("scale 1->2", "scale"),
            ("model switch", "switch"),
            ("cleanup", "cleanup"),
        )
    ]
    for size, detail in results["fleet_detail"].items():
        rows.append(row(f"fleet {size}: deploy (-f {size})", detail["deploy"]))
        rows.append(row(f"fleet {size}: no-op (-f {size})", detail["noop"]))
    print()
    print(f"trivial playbook: {cell(results['trivial_playbook_seconds'], 2)} s (median)")
    print(
        figures.table(
            rows,
            (
                "scenario (medians)",
                "s",
                "requests",
                "writes",
                "changed",
                "restarts",
                "new RS",
                "runs",
                "requests by verb",
            ),
        )
    )
    print()
    print(
        figures.table(
            [
                (name, cell(v), "" if name == "largest_fleet" else "x")
                for name, v in results["ratios"].items()
            ],
            ("ratio (within this run)", "value", ""),
        )
    )
    print()
    print(
        figures.table(
            [
                (
                    t["target"],
                    cell(t["value"], 2),
                    str(t["limit"]),
                    {True: "met", False: "MISSED", None: "not measured"}[t["met"]],
                )
                for t in results["targets"].values()
            ],
            ("target (issue 11)", "value", "limit", "verdict"),
        )
    )
    if results["profile_noop"]:
        print()
        print(
            figures.table(
                [(t["task"][:90], f"{t['seconds']:.2f}") for t in results["profile_noop"][:12]],
                ("no-op redeploy, slowest tasks (profile_tasks)", "s"),
            )
        )


def measure_all(bench: Bench, args: argparse.Namespace, sizes: list[int]) -> tuple[list, dict]:
    """The 1-namespace runs, then each larger fleet."""
    # What is measured so far is kept next to the output, in case the run stops early.
    partial = args.output.with_name(args.output.stem + ".partial.json")
    lifecycles: list[dict] = []
    fleets: dict[int, list[dict]] = {}
    for run in range(1, args.runs + 1):
        lifecycles.append(bench.lifecycle(run, profile=run == 1, with_kubectl=not args.no_kubectl))
        partial.write_text(json.dumps({"lifecycles": lifecycles}, indent=1))
    for size in (size for size in sizes if size > 1):
        for run in range(1, args.fleet_runs + 1):
            fleets.setdefault(size, []).append(bench.fleet(size, run))
            partial.write_text(json.dumps({"lifecycles": lifecycles, "fleets": fleets}, indent=1))
    partial.unlink(missing_ok=True)
    return lifecycles, fleets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of the 1-namespace scenarios")
    parser.add_argument("--fleet", default="1,10,40", help="fleet sizes, comma separated")
    parser.add_argument("--fleet-runs", type=int, default=1, help="runs of each larger fleet")
    parser.add_argument("--quick", action="store_true", help="one run, fleets of 1 and 3")
    parser.add_argument("--output", type=Path, default=RESULTS_FILE)
    parser.add_argument("--no-kubectl", action="store_true", help="skip the kubectl lower bound")
    parser.add_argument(
        "--ref",
        help="measure this commit (a clean `git archive` export) instead of the working tree",
    )
    parser.add_argument(
        "--show", type=Path, metavar="RESULTS", help="print the tables of a results file; no run"
    )
    args = parser.parse_args(argv)
    if args.show:
        print_tables(json.loads(args.show.read_text()))
        return 0
    if args.quick:
        args.runs, args.fleet, args.fleet_runs = 1, "1,3", 1
    sizes = sorted({int(size) for size in args.fleet.split(",") if size.strip()})
    if args.runs < 1 or not sizes or min(sizes) < 1:
        parser.error("--runs and every --fleet size must be at least 1")

    load = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="haw-icc-bench-"))
    # Our own sandbox: the state pointer in our temp dir, never the shared .sandbox/.
    os.environ["ICC_SANDBOX_STATE"] = str(work / "state.json")
    signal.signal(signal.SIGTERM, _on_sigterm)
    sandbox = None
    try:
        log(f"starting a sandbox of our own in {work} (nodes: {NODES_FILE.name})")
        began = time.monotonic()
        sandbox = cluster.start(run_dir=work / "sandbox", nodes_file=NODES_FILE)
        (work / "state.json").write_text(json.dumps({"state_file": str(sandbox.state_file)}))
        log(f"sandbox ready in {time.monotonic() - began:.1f}s at {sandbox.server}")
        tree = export_tree(args.ref, work) if args.ref else REPO
        log(f"measuring {git_state(args.ref)}")
        bench = Bench(sandbox, work, tree)
        lifecycles, fleets = measure_all(bench, args, sizes)
        results = report(args, lifecycles, fleets, load)
        results["settings"]["fleet_sizes"] = sizes
    except (KeyboardInterrupt, Interrupted):
        log("interrupted: stopping the sandbox")
        return 130
    finally:
        if sandbox is not None:
            cluster.stop(sandbox)
        shutil.rmtree(work, ignore_errors=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print_tables(results)
    print(f"\nwritten to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

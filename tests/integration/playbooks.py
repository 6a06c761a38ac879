"""Runs the collection's playbooks with the real ansible-playbook, as a user would."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$", re.MULTILINE)


@dataclass
class Run:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]

    def changed(self, host: str) -> int:
        return self.recap[host]["changed"]

    def total_changed(self) -> int:
        return sum(counts["changed"] for counts in self.recap.values())


def write_inventory(directory: Path, namespaces: list[str], kubeconfig: Path, **group_vars) -> Path:
    """One host per namespace, shared choices as group vars (like inventories/sandbox)."""
    inventory = {
        "all": {
            "hosts": {namespace: None for namespace in namespaces},
            # The sandbox has no internet: model sizes come from the ids, as in inventories/sandbox.
            "vars": {"icc_kubeconfig": str(kubeconfig), "icc_hub_lookup": False, **group_vars},
        }
    }
    path = directory / "hosts.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def run_playbook(
    playbook: str | Path,
    inventory: Path,
    *options: str,
    extra_vars: dict | None = None,
    timeout: float = 600,
) -> Run:
    """Runs playbooks/<playbook> (or a playbook file given by path) from the checkout.

    Extra vars are passed as JSON so they keep their types. The caller's own kubeconfig
    settings are not passed on: tests name their kubeconfig explicitly.
    """
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]  # inline JSON keeps the types, writes no file
    argv += [*options, str(REPO_ROOT / "playbooks" / playbook)]  # an absolute path wins
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("K8S_AUTH_") and key != "KUBECONFIG"
    } | {
        "ANSIBLE_CONFIG": str(REPO_ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        # Never reach the Hugging Face Hub from a test, whatever the inventory says.
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        argv,
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = result.stdout + result.stderr
    recap = {
        match["host"]: {k: int(v) for k, v in (pair.split("=") for pair in match["counts"].split())}
        for match in RECAP.finditer(result.stdout)
    }
    return Run(result.returncode, output, recap)

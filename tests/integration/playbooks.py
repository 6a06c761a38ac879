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


def command_line_vars(extra_vars: dict) -> list[str]:
    """Extra vars the way a user types them: `-e key=value` for what fits on a command line
    (Ansible then hands the playbook strings), inline JSON for lists, mappings and values with
    spaces or line breaks, which key=value cannot carry."""
    argv = []
    for key, value in extra_vars.items():
        if isinstance(value, bool):
            argv += ["-e", f"{key}={str(value).lower()}"]
        elif isinstance(value, (int, float)) or (
            isinstance(value, str) and value and not any(ch.isspace() for ch in value)
        ):
            argv += ["-e", f"{key}={value}"]
        else:
            argv += ["-e", json.dumps({key: value})]
    return argv


def run_playbook(
    playbook: str | Path,
    inventory: Path,
    *options: str,
    extra_vars: dict | None = None,
    env: dict[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    timeout: float = 600,
) -> Run:
    """Runs playbooks/<playbook> (or a playbook file given by path) from the checkout.

    Extra vars go on the command line as a user types them (`command_line_vars`). The caller's
    own connection settings (K8S_AUTH_*, KUBECONFIG) are not passed on: tests name their
    kubeconfig explicitly, or give the environment to use in `env`.
    """
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory)]
    argv += command_line_vars(extra_vars or {})
    argv += [*options, str(REPO_ROOT / "playbooks" / playbook)]  # an absolute path wins
    return run_ansible(argv, env=env, cwd=cwd, timeout=timeout)


def run_ansible(
    argv: list[str],
    env: dict[str, str] | None = None,
    cwd: Path = REPO_ROOT,
    timeout: float = 600,
    config: Path | None = REPO_ROOT / "ansible.cfg",
) -> Run:
    """Runs an Ansible command (`config`: the ansible.cfg to use; with None, Ansible looks in
    `cwd` and then takes its own defaults) and reads its recap."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("K8S_AUTH_", "ANSIBLE_")) and key != "KUBECONFIG"
    } | {
        "ANSIBLE_NOCOLOR": "1",
        # Never reach the Hugging Face Hub from a test, whatever the inventory says.
        "HF_HUB_OFFLINE": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    if config is not None:
        environment["ANSIBLE_CONFIG"] = str(config)
    environment |= env or {}
    result = subprocess.run(
        argv,
        cwd=cwd,
        env=environment,
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

"""README's commands, as written, in the order written: every line of its ```bash blocks runs.

They run in a copy of the checkout (so README's own `make sandbox-up`/`sandbox-down` manage a
sandbox of their own, never the one of this test session) with a home directory of their own,
the sandbox inventory standing in for `inventories/icc`. The copy shares `.venv` and the
Kubernetes build cache, as a second `make` on the same machine would.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from playbooks import REPO_ROOT

# Lines not run here, and why.
NOT_RUN = {"make test": "it is the command running this test"}
README_MODEL = "Qwen/Qwen2.5-3B-Instruct"  # what README's change_model command switches to
BLOCK = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_blocks() -> list[str]:
    return BLOCK.findall((REPO_ROOT / "README.md").read_text())


def runnable(block: str) -> str:
    """The block as a script: the sandbox inventory for the ICC one, NOT_RUN lines left out."""
    lines = [line for line in block.splitlines() if line.split("#", 1)[0].strip() not in NOT_RUN]
    return "\n".join(lines).replace("inventories/icc", "inventories/sandbox") + "\n"


def copy_checkout(target: Path) -> None:
    """What a clone has (tracked and new files, not ignored ones), modification times kept so
    that make sees the shared .venv as up to date."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_symlink():  # as git keeps it (playbooks/collections/.../icc -> the root)
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            (target / name).symlink_to(os.readlink(source))
        elif source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    (target / ".venv").symlink_to(REPO_ROOT / ".venv")


def test_readme_has_the_two_commands_first():
    first = readme_blocks()[0].splitlines()
    assert [line.split("#")[0].strip() for line in first] == ["make demo", "make test"]


@pytest.mark.sandbox
def test_every_readme_command_works(tmp_path):
    checkout, home = tmp_path / "checkout", tmp_path / "home"
    home.mkdir()
    copy_checkout(checkout)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("K8S_AUTH_", "ANSIBLE_", "ICC_SANDBOX_")) and key != "KUBECONFIG"
    } | {
        "HOME": str(home),
        "XDG_CACHE_HOME": cache,  # the Kubernetes build, made once per machine
        "PATH": f"{checkout / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
        "ANSIBLE_NOCOLOR": "1",
    }
    outputs = []
    try:
        for number, block in enumerate(readme_blocks(), start=1):
            script = runnable(block)
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-xc", script],
                cwd=checkout,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            output = done.stdout + done.stderr
            assert done.returncode == 0, (
                f"README block {number} failed:\n{script}\n{output[-6000:]}"
            )
            # Every variable README passes, and those of inventories/sandbox, is one that
            # haw.icc reads: no playbook warns about an unknown one (issue 17).
            unknown = [line for line in output.splitlines() if "unknown variable" in line]
            assert unknown == [], f"README block {number}:\n{script}\n" + "\n".join(unknown)
            outputs.append(output)
        # README's test.yml, as written (no variable), asked the model with the key.
        said = "\n".join(outputs)
        chat = r"^\s+ok\s+chat with the key\s+200 in \S+: \d+ tokens, [\d.]+ tokens/s "
        assert re.search(chat, said, re.MULTILINE), said[-6000:]
        assert re.search(r"^\s+ok\s+wrong key refused\s+401 with a wrong key$", said, re.MULTILINE)
        # README's change_model and scale commands did what they say, recorded for deploy.yml.
        record = checkout / "inventories" / "sandbox" / "host_vars" / "wabc123-default.yml"
        recorded = yaml.safe_load(record.read_text())
        assert recorded["tgi_gpu_count"] == 2 and recorded["tgi_model_id"] == README_MODEL, recorded
    finally:
        subprocess.run(
            ["make", "sandbox-down"], cwd=checkout, env=env, capture_output=True, check=False
        )

"""The Molecule scenario (molecule/default) passes end to end on the local sandbox.

`molecule test` starts the sandbox unless one runs, deploys with playbooks/deploy.yml, deploys
again expecting no change, verifies, purges and stops the sandbox only if it started it.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from icc_sandbox.__main__ import running_sandbox

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = REPO_ROOT / ".venv" / "bin"
IDEMPOTENCE_PASSED = re.compile(r"\[default > idempotence\] Executed: Successful")
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@pytest.mark.sandbox
@pytest.mark.timeout(1800)  # a first sandbox start ever builds Kubernetes (4 to 10 minutes)
def test_molecule_default_scenario_passes_and_is_idempotent():
    before = running_sandbox()
    # The scenario's defaults (the sandbox's student namespace), whatever the caller exported.
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("ICC_MOLECULE_", "MOLECULE_"))
    }
    env |= {
        "ANSIBLE_FORCE_COLOR": "0",
        "NO_COLOR": "1",
        # molecule runs ansible-config and ansible-playbook from its own virtualenv.
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    result = subprocess.run(
        [str(VENV_BIN / "molecule"), "test"],
        cwd=REPO_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1700,
        check=False,
    )
    output = ANSI_ESCAPE.sub("", result.stdout)
    tail = "\n".join(output.splitlines()[-150:])
    assert result.returncode == 0, f"molecule test exited with {result.returncode}:\n{tail}"
    assert IDEMPOTENCE_PASSED.search(output), f"no successful idempotence step:\n{tail}"

    after = running_sandbox()
    if before is None:
        assert after is None, "molecule destroy left the sandbox it started running"
    else:
        assert after is not None, "molecule destroy stopped a sandbox it did not start"
        assert after.server == before.server

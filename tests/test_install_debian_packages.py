"""sandbox/install-debian-packages.sh: installs only what is missing, and where it cannot
install, says in one line what is missing and how to install it.

The installing path itself (apt-get as root) is what `make fresh-check` proves in a brand-new
Debian root, where python3-venv, the sandbox's packages and mmdebstrap's are all missing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "sandbox" / "install-debian-packages.sh"


def fake_apt(tmp_path: Path) -> dict[str, str]:
    """A PATH whose apt-get and sudo only record that they were called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("apt-get", "sudo"):
        (bin_dir / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> {tmp_path}/calls\nexit 1\n')
        (bin_dir / tool).chmod(0o755)
    return os.environ | {"PATH": f"{bin_dir}:{os.environ['PATH']}"}


def test_installed_packages_are_left_alone(tmp_path):
    # bash and coreutils are on every Debian machine.
    run = subprocess.run(
        ["bash", str(SCRIPT), "bash", "coreutils"],
        env=fake_apt(tmp_path),
        capture_output=True,
        text=True,
        check=False,
    )
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    assert not (tmp_path / "calls").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_without_root_or_sudo_one_line_names_the_package_and_the_command():
    # A folder the unprivileged user can reach (pytest's tmp_path is private to root).
    with tempfile.TemporaryDirectory(dir="/tmp") as folder:
        tmp_path = Path(folder)
        tmp_path.chmod(0o755)
        env = fake_apt(tmp_path)
        (tmp_path / "calls").touch(mode=0o666)
        (tmp_path / "calls").chmod(0o666)
        run_as_nobody(tmp_path, env)


def run_as_nobody(tmp_path: Path, env: dict[str, str]) -> None:
    # A copy the unprivileged user can read: the checkout may sit where only root reads (a
    # clone in /root, as in the fresh root of `.ci/fresh-check test`).
    script = tmp_path / SCRIPT.name
    shutil.copyfile(SCRIPT, script)
    script.chmod(0o755)
    run = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         "bash", str(script), "bash", "haw-icc-no-such-package"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "[debian-packages] missing Debian packages: haw-icc-no-such-package; install them as "
        "root with: apt-get update && apt-get install -y haw-icc-no-such-package"
    ]
    # sudo was asked whether it may run without a password (it may not), apt never.
    assert (tmp_path / "calls").read_text() == "sudo -n true\n"

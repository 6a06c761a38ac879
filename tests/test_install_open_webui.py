"""sandbox/install-open-webui.sh's cache: keyed by the role's Open WebUI version, reused when
complete, started over when not. The full install (pip, 3.3 GB) runs in CI's first step and in
the browser test's fixture; these cases run without installing anything."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from icc_sandbox.process_runtime import installed_server, pinned_version

SCRIPT = Path(__file__).resolve().parents[1] / "sandbox" / "install-open-webui.sh"


def run(cache: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env=os.environ | {"ICC_SANDBOX_CACHE": str(cache), **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_complete_install_of_the_roles_version_is_reused(tmp_path, monkeypatch):
    venv = tmp_path / f"open-webui-{pinned_version()}" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "open-webui").touch()
    (venv / ".installed").touch()

    done = run(tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == str(venv)  # the script and the runtime agree
    assert "already installed" in done.stderr
    monkeypatch.setenv("ICC_SANDBOX_CACHE", str(tmp_path))
    assert installed_server() == venv / "bin" / "open-webui"


def test_a_half_built_install_does_not_count_and_a_wrong_python_writes_nothing(
    tmp_path, monkeypatch
):
    venv = tmp_path / f"open-webui-{pinned_version()}" / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "open-webui").touch()  # no stamp: cut short
    monkeypatch.setenv("ICC_SANDBOX_CACHE", str(tmp_path))
    assert installed_server() is None

    done = run(tmp_path, ICC_OPEN_WEBUI_PYTHON="python3.9-not-here")

    assert done.returncode != 0
    assert "needs Python 3.11 or 3.12" in done.stderr
    assert (venv / "bin" / "open-webui").exists()  # refused before anything was removed

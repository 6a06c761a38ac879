"""sandbox/install.sh on a machine that has never run it: no deb-src entry, no source lists.

CI's machine keeps what earlier runs added (the deb-src entry, the downloaded source lists), so a
plain run there would never see a first run fail. Here apt is pointed (APT_CONFIG) at empty
temporary directories holding only copies of the machine's own binary entries; the build cache
stays, so nothing is rebuilt.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

INSTALL = Path(__file__).resolve().parents[1] / "sandbox" / "install.sh"
OUR_ENTRY = "haw-icc-sandbox-src.sources"


def _apt_dirs() -> tuple[Path, Path]:
    out = subprocess.run(
        ["apt-config", "shell", "L", "Dir::Etc::sourcelist/f", "P", "Dir::Etc::sourceparts/d"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = dict(re.findall(r"^(\w+)='([^']*)'$", out, re.MULTILINE))
    return Path(found["L"]), Path(found["P"])


def _binary_entries_only(text: str) -> str:
    """The deb822 stanzas of `text` without any deb-src ones."""
    stanzas = [s for s in re.split(r"\n\s*\n", text) if s.strip()]
    return "\n\n".join(s for s in stanzas if not re.search(r"^Types:.*deb-src", s, re.M)) + "\n"


def _field(stanza_text: str, name: str) -> set[str]:
    return {m.strip() for m in re.findall(rf"^{name}:\s*(.+)$", stanza_text, re.MULTILINE)}


@pytest.fixture(scope="module")
def build_cache() -> Path:
    """The real install.sh once (a no-op when the build is cached), so the test only measures
    the apt path; returns the bin directory it reports."""
    if os.geteuid() != 0:
        pytest.skip("install.sh's apt path needs root (CI runs as root)")
    done = subprocess.run(["bash", str(INSTALL)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


def test_first_run_without_deb_src_entry_or_source_lists_finds_the_version(build_cache, tmp_path):
    source_list, source_parts = _apt_dirs()
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    copied = 0
    for entry in sorted(source_parts.glob("*.sources")):
        if entry.name != OUR_ENTRY:
            (parts / entry.name).write_text(_binary_entries_only(entry.read_text()))
            copied += 1
    if source_list.is_file():
        lines = [line for line in source_list.read_text().splitlines() if line.startswith("deb ")]
        (tmp_path / "sources.list").write_text("\n".join(lines) + "\n")
        copied += bool(lines)
    assert copied, f"this machine has no Debian entry in {source_parts} or {source_list}"
    config = tmp_path / "apt.conf"
    config.write_text(
        f'Dir::Etc::sourcelist "{tmp_path / "sources.list"}";\n'
        f'Dir::Etc::sourceparts "{parts}";\n'
        f'Dir::State::lists "{tmp_path / "lists"}";\n'
        f'Dir::Cache "{tmp_path / "cache"}";\n'
    )
    (tmp_path / "lists" / "partial").mkdir(parents=True)
    env = os.environ | {"APT_CONFIG": str(config)}
    before = subprocess.run(
        ["apt-cache", "showsrc", "kubernetes"], env=env, capture_output=True, check=False
    )
    assert before.returncode != 0, "the temporary apt state already knows source packages"

    run = subprocess.run(
        ["bash", str(INSTALL)], env=env, capture_output=True, text=True, check=False
    )

    assert run.returncode == 0, run.stderr
    assert Path(run.stdout.strip().splitlines()[-1]) == build_cache
    assert "already built" in run.stderr, run.stderr
    written = (parts / OUR_ENTRY).read_text()
    assert _field(written, "Types") == {"deb-src"}
    machine = "\n".join(
        path.read_text()
        for path in [*parts.glob("*.sources"), tmp_path / "sources.list"]
        if path.name != OUR_ENTRY and path.exists()
    )
    # A mirror stays a mirror: the machine's own addresses, suites and keyrings, nothing else.
    # Whole words, so that .../debian does not pass for .../debian-security; a one-line entry
    # gives its keyring as [signed-by=...].
    words = set(machine.replace("[", " ").replace("]", " ").replace("=", " ").split())
    for name in ("URIs", "Suites", "Signed-By"):
        values = " ".join(_field(written, name)).split()
        assert values or name == "Signed-By", written
        assert all(value in words for value in values), (name, written, machine)

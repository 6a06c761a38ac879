"""ansible-test sanity on a copy of the collection, so `make test` proves the module docs.

validate-modules checks DOCUMENTATION, EXAMPLES and RETURN against each module's argument spec;
the other tests listed in SANITY_TESTS catch what would break the collection on a managed node or
in a Galaxy build (unguarded imports, wrong shebangs, CRLF, bad YAML, stray symlinks...).

ansible-test only runs from a directory .../ansible_collections/<namespace>/<name>, so the test
copies what a commit would contain into such a tree, with kubernetes.core (from the `ansible`
package in .venv) beside it for the modules' imports. tests/sanity/ansible_test_offline.py runs
ansible-test without the downloads it would otherwise make.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from ansible.release import __version__ as ansible_core_version

REPO_ROOT = Path(__file__).resolve().parent.parent
OFFLINE_RUNNER = Path("tests") / "sanity" / "ansible_test_offline.py"
PYTHON_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
ANSIBLE_CORE_LINE = ".".join(ansible_core_version.split(".")[:2])

# Quick, offline tests of ansible-test's sanity suite. Left out: pylint and pep8 (ruff covers
# style, see test_lint.py), changelog (no changelog fragments here), pslint and shellcheck
# (no PowerShell; no shell scripts among the plugins).
SANITY_TESTS = (
    "validate-modules",
    "ansible-doc",
    "action-plugin-docs",
    "compile",
    "import",
    "runtime-metadata",
    "yamllint",
    "shebang",
    "line-endings",
    "no-smart-quotes",
    "empty-init",
    "symlinks",
    "no-illegal-filenames",
    "no-assert",
    "no-get-exception",
    "replace-urlopen",
    "use-argspec-type-path",
    "use-compat-six",
    "ignores",
)

# The collection is MIT licensed (LICENSE), while validate-modules requires a GPLv3 header in
# every module. That holds for every module alike, so it is waived here rather than by one line
# per module in tests/sanity/ignore-<version>.txt, which keeps the justified exceptions only.
COLLECTION_WIDE_IGNORES = ("validate-modules:missing-gplv3-license",)


def commit_files() -> list[str]:
    """Paths a commit would contain: tracked files plus untracked ones that are not ignored."""
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    # A tracked file deleted in the work tree is not part of the next commit. The checkout's
    # link to itself beside the playbooks is not part of the collection (galaxy.yml leaves it
    # out of the tarball too).
    return [
        p
        for p in listing.stdout.split("\0")
        if p and os.path.lexists(REPO_ROOT / p) and not p.startswith("playbooks/collections/")
    ]


def installed_collection(namespace: str, name: str) -> Path:
    """A collection shipped by the `ansible` package inside this interpreter's environment."""
    path = Path(sysconfig.get_paths()["purelib"]) / "ansible_collections" / namespace / name
    assert path.is_dir(), f"{namespace}.{name} not found at {path}; run `make setup`"
    return path


def collection_name() -> tuple[str, str]:
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text(encoding="utf-8"))
    return galaxy["namespace"], galaxy["name"]


def write_ignore_file(collection_root: Path) -> None:
    """The repository's ignore file for this ansible-core line plus COLLECTION_WIDE_IGNORES."""
    ignore_file = collection_root / "tests" / "sanity" / f"ignore-{ANSIBLE_CORE_LINE}.txt"
    lines = ignore_file.read_text(encoding="utf-8").splitlines() if ignore_file.exists() else []
    for module in sorted((collection_root / "plugins" / "modules").glob("*.py")):
        relative = module.relative_to(collection_root).as_posix()
        lines += [f"{relative} {ignore}" for ignore in COLLECTION_WIDE_IGNORES]
    ignore_file.parent.mkdir(parents=True, exist_ok=True)
    ignore_file.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


@pytest.fixture(scope="module")
def collection_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the collection at <tmp>/ansible_collections/<namespace>/<name>."""
    # ansible-test compares os.getcwd() with the tree, so resolve any symlink in the temp path.
    collections = tmp_path_factory.mktemp("sanity").resolve() / "ansible_collections"
    namespace, name = collection_name()
    root = collections / namespace / name
    for relative in commit_files():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / relative, target, follow_symlinks=False)
    (collections / "kubernetes").mkdir()
    (collections / "kubernetes" / "core").symlink_to(installed_collection("kubernetes", "core"))
    write_ignore_file(root)
    return root


def test_ansible_test_sanity(collection_root: Path):
    command = [sys.executable, str(OFFLINE_RUNNER), "sanity", "--python", PYTHON_VERSION]
    command += ["--color", "no", *(arg for test in SANITY_TESTS for arg in ("--test", test))]
    # Make's ANSIBLE_CONFIG points at this checkout's ansible.cfg, whose collections_path would
    # resolve haw.icc to the work tree instead of the copy under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    result = subprocess.run(
        command, cwd=collection_root, capture_output=True, text=True, check=False, env=env
    )
    assert result.returncode == 0, result.stdout + result.stderr

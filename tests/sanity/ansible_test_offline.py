# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Run `ansible-test` with ready-made Python environments instead of ones it downloads.

ansible-test gives every sanity test a virtual environment of its own and bootstraps pip into it
with a script fetched from a host outside PyPI, so `ansible-test sanity` cannot start on a machine
that only reaches PyPI. This wrapper hands it environments that need no download:

- the interpreter running this script (the project's .venv, which has every sanity test's
  requirements from requirements.txt) for all tests but `import`;
- for the `import` test, bare virtual environments holding only what ansible-test itself would
  install there (nothing for modules; Jinja2, MarkupSafe and PyYAML for plugins). Keeping them
  bare is the point of that test: a module that imports a package without guarding the import
  fails there, as it would on a managed node that lacks the package.

It replaces two functions of ansible-test's internal API (create_sanity_virtualenv and
check_sanity_virtualenv_yaml); requirements.txt holds ansible-core to one release line, so moving
to the next is a deliberate change that reruns this.

Usage: python ansible_test_offline.py sanity --test validate-modules ... (run from the collection
root, as with ansible-test itself).
"""

from __future__ import annotations

import atexit
import functools
import importlib
import shutil
import sys
import tempfile
import venv
from importlib import metadata
from pathlib import Path

import yaml
from ansible_test._internal import main as ansible_test_main
from ansible_test._internal.commands import sanity
from ansible_test._internal.host_configs import VirtualPythonConfig

# What ansible-test's own requirement files put in each import-test environment
# (sanity.import.plugin.txt; modules get the standard library only).
IMPORT_ENV_DISTRIBUTIONS = {
    "import.module": (),
    "import.plugin": ("Jinja2", "MarkupSafe", "PyYAML"),
}


@functools.cache
def _bare_envs_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="haw-icc-sanity-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def _bare_env(label: str, distributions: tuple[str, ...]) -> Path:
    """A venv without pip, with `distributions` linked in from this interpreter's site-packages.

    The metadata (*.dist-info) comes along: ansible-core reads Jinja2's version from it.
    """
    root = _bare_envs_root() / label
    if not root.exists():
        venv.EnvBuilder(with_pip=False, symlinks=True).create(root)
        site_packages = root / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
        site_packages = site_packages / "site-packages"
        for name in distributions:
            distribution = metadata.distribution(name)
            top_levels = {file.parts[0] for file in distribution.files if file.parts[0] != ".."}
            for top_level in sorted(top_levels):
                source = Path(distribution.locate_file(top_level))
                (site_packages / top_level).symlink_to(source)
    return root / "bin" / "python"


def _ready_made_env(args, python, name, coverage=False, minimize=False):
    """Stand-in for ansible-test's create_sanity_virtualenv (same signature)."""
    del args, coverage, minimize  # ansible-test would pip-install from these
    if name in IMPORT_ENV_DISTRIBUTIONS:
        path = _bare_env(name, IMPORT_ENV_DISTRIBUTIONS[name])
    else:
        path = Path(sys.executable)
    return VirtualPythonConfig(version=python.version, path=str(path))


def _libyaml_available(python) -> bool:
    """Stand-in for check_sanity_virtualenv_yaml: every env here shares this PyYAML."""
    del python
    return bool(yaml.__with_libyaml__)


def main() -> None:
    import_test = importlib.import_module("ansible_test._internal.commands.sanity.import")
    for module in (sanity, import_test):
        module.create_sanity_virtualenv = _ready_made_env
        module.check_sanity_virtualenv_yaml = _libyaml_available
    ansible_test_main(None)  # reads sys.argv


if __name__ == "__main__":
    main()

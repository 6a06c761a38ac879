"""The arrows of module_utils go one way: each package imports only the packages below it.

The layers are stated here, from the packages' own docstrings, and every `import` of every file
in plugins/module_utils is read (with ast, so a moved import anywhere in a file counts).
"""

from __future__ import annotations

import ast
from pathlib import Path

MODULE_UTILS = Path(__file__).resolve().parents[2] / "plugins" / "module_utils"
PREFIX = "ansible_collections.haw.icc.plugins.module_utils."
# What each package may import of the collection's module_utils (its docstring says why).
ALLOWED = {
    "cluster": set(),
    "engine": set(),
    "gpu": {"engine", "cluster"},
    "workload": {"gpu", "engine", "cluster"},
    "capacity": {"workload", "gpu", "engine", "cluster"},
    "operations": {"capacity", "workload", "gpu", "engine", "cluster"},
}


def imported_packages(path: Path) -> set[str]:
    """The module_utils packages a file imports, by any import statement."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            if name.startswith(PREFIX):
                found.add(name[len(PREFIX) :].split(".")[0])
    return found


def test_every_module_lives_in_a_package_that_says_what_it_owns():
    loose = sorted(p.name for p in MODULE_UTILS.glob("*.py") if p.name != "action_docs.py")
    assert loose == []
    for package in ALLOWED:
        assert ast.get_docstring(ast.parse((MODULE_UTILS / package / "__init__.py").read_text()))
    assert {
        p.name for p in MODULE_UTILS.iterdir() if p.is_dir() and p.name != "__pycache__"
    } == set(ALLOWED)


def test_each_package_imports_only_the_packages_below_it():
    wrong = []
    for package, allowed in ALLOWED.items():
        for path in sorted((MODULE_UTILS / package).glob("*.py")):
            for imported in imported_packages(path) - allowed - {package}:
                wrong.append(f"{package}/{path.name} imports {imported}")
    assert wrong == []


def test_the_check_sees_an_import_that_goes_the_wrong_way(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(f"def f():\n    from {PREFIX}operations.progress import x\n")
    assert imported_packages(sample) == {"operations"}

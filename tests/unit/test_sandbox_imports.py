"""The sandbox's modules import one another one way: no circle, none hidden in a function.

Read from the source (ast), not from what Python happens to load: an import inside a function or
under `if TYPE_CHECKING:` counts as an arrow too, since that is how a circle is kept from failing
at run time. The entry points (`python -m ...`) are imported by no module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "icc_sandbox"
PACKAGE_DIR = Path(__file__).resolve().parents[2] / "sandbox" / PACKAGE
ENTRY_POINTS = ("__main__", "node_agent_main")
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def sibling_imports(module: str, source: str, modules: set[str]) -> list[tuple[str, int, bool]]:
    """(sibling module, line, inside a function) for each import of the package in `source`."""
    found: list[tuple[str, int, bool]] = []

    def targets(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from this module's package
                base = ".".join([PACKAGE, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            # `from icc_sandbox import pki` names a module; `from icc_sandbox.pki import x` too.
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            return []
        hits = []
        for name in names:
            parts = name.split(".")
            if parts[0] == PACKAGE and len(parts) > 1 and parts[1] in modules:
                hits.append(parts[1])
        return sorted(set(hits) - {module})

    def visit(node: ast.AST, in_function: bool) -> None:
        for target in targets(node):
            found.append((target, node.lineno, in_function))
        for child in ast.iter_child_nodes(node):
            visit(child, in_function or isinstance(node, _FUNCTIONS))

    visit(ast.parse(source), False)
    return found


def import_graph(sources: dict[str, str]) -> dict[str, set[str]]:
    modules = set(sources)
    return {
        module: {target for target, _, _ in sibling_imports(module, source, modules)}
        for module, source in sources.items()
    }


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of the graph as a path that ends where it starts, or None."""
    done: set[str] = set()

    def walk(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        if module in done:
            return None
        for target in sorted(graph.get(module, ())):
            circle = walk(target, [*path, module])
            if circle:
                return circle
        done.add(module)
        return None

    for module in sorted(graph):
        circle = walk(module, [])
        if circle:
            return circle
    return None


def sandbox_sources() -> dict[str, str]:
    return {path.stem: path.read_text(encoding="utf-8") for path in PACKAGE_DIR.glob("*.py")}


# --- the checker itself, on sources written here ---------------------------------------------


def test_a_circle_closed_inside_a_function_is_found() -> None:
    # What the sandbox had: the agent imports the kubelet in a function, the kubelet imports
    # the agent's types at the top.
    sources = {
        "agent": "def main():\n    from icc_sandbox.kubelet import Kubelets\n",
        "kubelet": "from icc_sandbox.agent import NodeSpec\n",
    }
    assert find_circle(import_graph(sources)) == ["agent", "kubelet", "agent"]


def test_a_circle_under_type_checking_and_through_a_package_import_is_found() -> None:
    sources = {
        "a": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import icc_sandbox.b\n",
        "b": "from icc_sandbox import c as renamed\n",
        "c": "from . import a\n",
    }
    assert find_circle(import_graph(sources)) == ["a", "b", "c", "a"]


def test_one_way_imports_and_outside_packages_are_no_circle() -> None:
    sources = {
        "types": "import yaml\nfrom pathlib import Path\n",
        "sim": "from icc_sandbox.types import NodeSpec\n",
        "main": "from icc_sandbox import sim, types\n",
    }
    graph = import_graph(sources)
    assert graph == {"types": set(), "sim": {"types"}, "main": {"sim", "types"}}
    assert find_circle(graph) is None


# --- the sandbox -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(sandbox_sources())


def test_the_sandbox_reads_as_a_graph_of_its_modules(graph: dict[str, set[str]]) -> None:
    # A guard on the reading itself: arrows the sandbox certainly has.
    assert {"nodes", "node_agent", "kubelet", "node_agent_main"} <= set(graph)
    assert {"nodes", "container_exec", "container_logs"} <= graph["kubelet"]
    assert {"node_agent", "kubelet", "process_runtime"} <= graph["node_agent_main"]


def test_the_sandbox_has_no_import_circle(graph: dict[str, set[str]]) -> None:
    assert find_circle(graph) is None


def test_no_sandbox_module_imports_a_sibling_inside_a_function() -> None:
    sources = sandbox_sources()
    hidden = [
        f"{module}.py:{line} imports {target}"
        for module, source in sorted(sources.items())
        for target, line, in_function in sibling_imports(module, source, set(sources))
        if in_function
    ]
    assert hidden == []


def test_the_shared_types_and_the_launcher_rules_import_no_part_of_the_agent(
    graph: dict[str, set[str]],
) -> None:
    assert graph["nodes"] <= {"service_network"}
    assert graph["tgi_launcher"] == set()


def test_no_module_imports_an_entry_point(graph: dict[str, set[str]]) -> None:
    assert {module for module, targets in graph.items() if set(ENTRY_POINTS) & targets} == set()

"""The collection's one rule for the CPU (engine/tgi_multi_gpu.runs_on_cpu) and who asks it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_multi_gpu import (
    CPU,
    SINGLE,
    choose,
    runs_on_cpu,
)

PLUGINS = Path(__file__).resolve().parents[3] / "plugins"
HOME = PLUGINS / "module_utils" / "engine" / "tgi_multi_gpu.py"


# A pod asks for GPUs or not; only "none" is the CPU. A count that is no number (a bad request
# judged by the capacity check before it is refused) is no CPU request, and neither is False.
@pytest.mark.parametrize(
    ("count", "cpu"),
    [(0, True), (1, False), (4, False), (None, False), ("0", False), (False, False)],
)
def test_only_no_gpu_at_all_is_the_cpu(count, cpu):
    assert runs_on_cpu(count) is cpu


def test_the_mode_follows_the_rule():
    assert choose("llama", (7, 0), 0).mode == CPU
    assert choose("llama", (7, 0), 1).mode == SINGLE


def _compares_a_gpu_count_with_zero(node: ast.AST) -> bool:
    """`<...count...> == 0` (or `!= 0`, `> 0`): the CPU decided on the spot."""
    if not isinstance(node, ast.Compare) or len(node.comparators) != 1:
        return False
    zero = node.comparators[0]
    named = ast.unparse(node.left)
    return (
        isinstance(zero, ast.Constant)
        and zero.value == 0
        and "count" in named
        and isinstance(node.ops[0], (ast.Eq, ast.NotEq, ast.Gt))
    )


def test_no_other_python_file_of_the_collection_decides_the_cpu_itself():
    deciding = sorted(
        str(path.relative_to(PLUGINS))
        for path in PLUGINS.rglob("*.py")
        if path != HOME
        and any(map(_compares_a_gpu_count_with_zero, ast.walk(ast.parse(path.read_text()))))
    )
    assert deciding == []

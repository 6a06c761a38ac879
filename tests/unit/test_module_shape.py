"""Every module of the collection has the one shape module_utils/action_docs.py states: a module
file that documents (DOCUMENTATION, EXAMPLES, RETURN, ARGUMENT_SPEC, a main() that refuses to
run on a host) and an action plugin of the same name that does the work with that spec."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import KubernetesAction

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
MODULES = sorted(path.stem for path in (PLUGINS / "modules").glob("*.py"))
DOCUMENTED = {"DOCUMENTATION", "EXAMPLES", "RETURN", "ARGUMENT_SPEC"}


def top_level(name: str) -> tuple[set[str], list[ast.stmt]]:
    """(the names a module file assigns or defines, its `if __name__ == "__main__"` body)."""
    tree = ast.parse((PLUGINS / "modules" / f"{name}.py").read_text())
    names, guard = set(), []
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names.update(target.id for target in node.targets if isinstance(target, ast.Name))
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.If):
            guard = node.body
    return names, guard


def documentation(name: str) -> dict:
    module = importlib.import_module(f"ansible_collections.haw.icc.plugins.modules.{name}")
    return yaml.safe_load(module.DOCUMENTATION)


@pytest.mark.parametrize("name", MODULES)
def test_a_module_file_only_documents_and_its_action_does_the_work(name):
    names, guard = top_level(name)
    assert names == DOCUMENTED | {"main"}
    assert ast.unparse(guard) == "main()"
    main = next(
        node
        for node in ast.parse((PLUGINS / "modules" / f"{name}.py").read_text()).body
        if isinstance(node, ast.FunctionDef)
    )
    assert ast.unparse(main.body) == f"fail_as_documentation_stub({name!r}, ARGUMENT_SPEC)"

    module = importlib.import_module(f"ansible_collections.haw.icc.plugins.modules.{name}")
    plugin = importlib.import_module(f"ansible_collections.haw.icc.plugins.action.{name}")
    assert issubclass(plugin.ActionModule, ControllerAction)
    assert plugin.ActionModule.argument_spec() is module.ARGUMENT_SPEC


@pytest.mark.parametrize("name", MODULES)
def test_the_shared_documentation_comes_from_the_collections_fragments(name):
    doc = documentation(name)
    fragments = doc["extends_documentation_fragment"]
    assert fragments[0] == "haw.icc.controller_action"
    assert "author" not in doc  # the fragment's
    talks_to_the_api = (
        "kubeconfig"
        in importlib.import_module(
            f"ansible_collections.haw.icc.plugins.modules.{name}"
        ).ARGUMENT_SPEC
    )
    if talks_to_the_api:
        assert fragments[1:] == ["haw.icc.kubernetes", "kubernetes.core.k8s_auth_options"]
        assert "namespace" not in doc["options"]  # the fragment's
    else:
        assert fragments == ["haw.icc.controller_action"]
    assert set(doc.get("attributes") or {}) <= {"check_mode", "diff_mode"}
    assert "support" in doc["attributes"]["check_mode"]


@pytest.mark.parametrize("name", MODULES)
def test_a_module_file_run_on_a_host_refuses_and_says_why(name, capsys):
    module = importlib.import_module(f"ansible_collections.haw.icc.plugins.modules.{name}")
    with patch_module_args({}), pytest.raises(SystemExit) as exited:
        module.main()
    assert exited.value.code == 1
    assert json.loads(capsys.readouterr().out)["msg"] == (
        f"haw.icc.{name} runs as an action plugin on the controller; this module file only "
        "documents it and must not be executed on a host"
    )


def test_the_action_group_holds_exactly_the_modules_that_talk_to_the_api():
    runtime = yaml.safe_load((PLUGINS.parent / "meta" / "runtime.yml").read_text())
    group = {entry for entry in runtime["action_groups"]["k8s"] if isinstance(entry, str)}
    talking = set()
    for name in MODULES:
        plugin = importlib.import_module(f"ansible_collections.haw.icc.plugins.action.{name}")
        if issubclass(plugin.ActionModule, KubernetesAction):
            talking.add(name)
    assert group == talking

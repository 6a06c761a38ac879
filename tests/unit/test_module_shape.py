"""Every module of the collection has the one shape module_utils/action_docs.py states: a module
file that documents (DOCUMENTATION, EXAMPLES, RETURN, ARGUMENT_SPEC; run as a script, it refuses
to run on a host) and an action plugin of the same name that does the work with that spec."""

from __future__ import annotations

import ast
import importlib
import json
import runpy
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args
from ansible_collections.haw.icc.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import KubernetesAction

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
MODULES = sorted(path.stem for path in (PLUGINS / "modules").glob("*.py"))
DOCUMENTED = {"DOCUMENTATION", "EXAMPLES", "RETURN", "ARGUMENT_SPEC"}
# The collection's doc fragments besides the two every module (controller_action) or every
# module that talks to the API (kubernetes) lists: each for what some modules share.
SHARED_BY_SOME = {path.stem for path in (PLUGINS / "doc_fragments").glob("*.py")} - {
    "controller_action",
    "kubernetes",
}


def fragment_documentation(fragment: str) -> dict:
    """The DOCUMENTATION of a haw.icc doc fragment, "haw.icc.<name>"."""
    name = fragment.removeprefix("haw.icc.")
    module = importlib.import_module(f"ansible_collections.haw.icc.plugins.doc_fragments.{name}")
    return yaml.safe_load(module.ModuleDocFragment.DOCUMENTATION)


def merged_attributes(doc: dict) -> dict:
    """The module's attributes as ansible-doc shows them: its own, then each fragment's in the
    order listed, where what is said first wins (ansible.utils.plugin_docs.add_fragments)."""
    merged = {key: dict(value) for key, value in (doc.get("attributes") or {}).items()}
    for fragment in doc["extends_documentation_fragment"]:
        if fragment.startswith("haw.icc."):
            for key, value in (fragment_documentation(fragment).get("attributes") or {}).items():
                merged[key] = {**value, **merged.get(key, {})}
    return merged


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
    assert names == DOCUMENTED
    assert ast.unparse(guard) == f"action_docs.fail_as_documentation_stub({name!r}, ARGUMENT_SPEC)"

    module = importlib.import_module(f"ansible_collections.haw.icc.plugins.modules.{name}")
    plugin = importlib.import_module(f"ansible_collections.haw.icc.plugins.action.{name}")
    assert issubclass(plugin.ActionModule, ControllerAction)
    assert plugin.ActionModule.argument_spec() is module.ARGUMENT_SPEC


@pytest.mark.parametrize("name", MODULES)
def test_the_shared_documentation_comes_from_the_collections_fragments(name):
    doc = documentation(name)
    fragments = doc["extends_documentation_fragment"]
    assert "author" not in doc  # controller_action's
    common = ["haw.icc.controller_action"]
    if (
        "kubeconfig"
        in importlib.import_module(
            f"ansible_collections.haw.icc.plugins.modules.{name}"
        ).ARGUMENT_SPEC
    ):  # talks to the API
        common += ["haw.icc.kubernetes", "kubernetes.core.k8s_auth_options"]
        assert "namespace" not in doc["options"]  # the kubernetes fragment's
    assert [fragment for fragment in fragments if fragment in common] == common
    # besides those, only the collection's fragments for what some modules share
    of_its_kind = {fragment for fragment in fragments if fragment not in common}
    assert {fragment.removeprefix("haw.icc.") for fragment in of_its_kind} <= SHARED_BY_SOME
    assert set(doc.get("attributes") or {}) <= {"check_mode", "diff_mode"}
    attributes = merged_attributes(doc)
    assert attributes["check_mode"]["support"] in {"full", "partial"}
    if "haw.icc.controller_files" in fragments:  # its diff, not controller_action's "none"
        assert attributes["diff_mode"]["support"] == "full"


@pytest.mark.parametrize("fragment", sorted(SHARED_BY_SOME))
def test_a_fragment_of_a_kind_is_shared_by_several_modules(fragment):
    users = [
        name
        for name in MODULES
        if f"haw.icc.{fragment}" in documentation(name)["extends_documentation_fragment"]
    ]
    assert len(users) >= 2, users


@pytest.mark.parametrize("name", MODULES)
def test_a_module_file_run_on_a_host_refuses_and_says_why(name, capsys):
    with patch_module_args({}), pytest.raises(SystemExit) as exited:
        # as AnsiballZ runs a module on a host
        runpy.run_path(str(PLUGINS / "modules" / f"{name}.py"), run_name="__main__")
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

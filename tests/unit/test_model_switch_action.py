"""haw.icc.tgi_model_switch's action plugin on the fake API (switch_fakes.FakeCluster): the
settings typed before any client is made, the switch run with the task's arguments, what it
prints, and its refusals."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from ansible_collections.haw.icc.plugins.action import tgi_model_switch as plugin
from ansible_collections.haw.icc.plugins.action.tgi_model_switch import ActionModule
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import flag_value
from ansible_collections.haw.icc.plugins.plugin_utils import kubernetes_action
from switch_fakes import (
    BIG_MODEL,
    NAMESPACE,
    NEW_MODEL,
    OLD_MODEL,
    SETTINGS,
    FakeCluster,
    live_deployment,
    with_model,
)


class FakeDisplay:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def display(self, line: str) -> None:
        self.lines.append(line)

    def warning(self, line: str) -> None:
        self.warnings.append(line)


@pytest.fixture
def fake_api(monkeypatch):
    """The action's client is the fake cluster; what it prints is collected."""
    state = SimpleNamespace(cluster=None, clients=0, display=FakeDisplay())

    def build(module=None, auth=None, probe=True):
        state.clients += 1
        return SimpleNamespace(), None

    monkeypatch.setattr(kubernetes_action, "api_client", build)
    monkeypatch.setattr(plugin, "RolloutWatcher", lambda api, namespace: state.cluster)
    monkeypatch.setattr(plugin, "display", state.display)
    return state


def run_action(settings: dict[str, Any], check_mode: bool = False, **options: Any):
    task = SimpleNamespace(
        args={"namespace": NAMESPACE, "settings": settings, "kubeconfig": "/dev/null", **options},
        async_val=0,
        check_mode=check_mode,
        diff=True,
        action="haw.icc.tgi_model_switch",
    )
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir=None))
    action = ActionModule(task, connection, SimpleNamespace(), None, None, None)
    return action.run(task_vars={"inventory_hostname": NAMESPACE})


def test_action_switches_and_prints_progress(fake_api):
    fake_api.cluster = FakeCluster(live_deployment())

    result = run_action(with_model(NEW_MODEL))

    assert "failed" not in result, result["msg"]
    assert result["changed"] is True
    assert result["model"] == {"before": OLD_MODEL, "after": NEW_MODEL}
    assert fake_api.display.lines[0] == (
        f"[{NAMESPACE}] tgi: changing from model {OLD_MODEL} to {NEW_MODEL}"
    )
    assert result["multi_gpu"]["mode"] == "single-gpu"
    assert fake_api.display.lines[-1] == f"[{NAMESPACE}] tgi: 1/1 ready"


def test_action_refuses_invalid_settings_listing_every_problem_without_a_client(fake_api):
    bad = with_model("not a model", tgi_dtype="float16", tgi_quantize="awq")

    result = run_action(bad)

    assert result["failed"] is True and result["changed"] is False
    assert fake_api.clients == 0  # refused before connecting, so before any write
    lines = result["msg"].splitlines()
    assert lines[0] == f"Refusing to change Deployment tgi in namespace {NAMESPACE}:"
    assert any(line.startswith("- tgi_model_id: 'not a model' is not allowed") for line in lines)
    assert any(
        line.startswith("- tgi_dtype ('float16') and tgi_quantize ('awq')") for line in lines
    )


def test_action_tells_to_deploy_first_when_there_is_no_deployment(fake_api):
    fake_api.cluster = FakeCluster(live_deployment())

    result = run_action(with_model(NEW_MODEL), name="tgi-other")

    assert result["failed"] is True
    assert result["msg"] == (
        f"Refusing to change Deployment tgi-other in namespace {NAMESPACE}: "
        f"Deployment tgi-other not found in namespace {NAMESPACE}: the switch changes a running "
        "TGI and does not create one; run playbooks/deploy.yml first"
    )
    assert fake_api.cluster.patches == []


def test_action_check_mode_reports_a_change_and_writes_nothing(fake_api):
    fake_api.cluster = FakeCluster(live_deployment())

    result = run_action(with_model(NEW_MODEL), check_mode=True)

    assert result["changed"] is True
    assert fake_api.cluster.writes == 0
    assert [dry for _patch, dry in fake_api.cluster.patches] == [True]


def test_action_rolls_back_a_crashing_model(fake_api):
    fake_api.cluster = FakeCluster(live_deployment(), crashing=(BIG_MODEL,))

    result = run_action(with_model(BIG_MODEL, tgi_dtype="float16"))

    assert result["failed"] is True and result["rolled_back"] is True
    assert "OOMKilled" in result["msg"]
    assert flag_value(fake_api.cluster.container["args"], "--model-id") == OLD_MODEL


def test_action_checks_its_numbers(fake_api):
    result = run_action(SETTINGS, poll_interval=0)
    assert result["failed"] is True
    assert result["msg"] == (
        "poll_interval must be >= 1; timeout, rollback_timeout and unschedulable_grace >= 0"
    )

# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""The collection's Kubernetes actions run in Ansible's worker, not as a module process: the
task's `environment:` must still reach the client (login.yml clears K8S_AUTH_HOST with it)."""

from __future__ import annotations

import os
from types import SimpleNamespace

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.haw.icc.plugins.plugin_utils.kubernetes_action import KubernetesAction


def action_with(environment) -> KubernetesAction:
    action = KubernetesAction.__new__(KubernetesAction)
    action._task = SimpleNamespace(environment=environment)
    action._templar = Templar(loader=DataLoader(), variables={"host": "https://k8s.example:6443"})
    return action


def test_the_task_environment_holds_while_the_task_runs_and_is_undone_after(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_HOST", "https://exported.example:6443")
    monkeypatch.delenv("K8S_AUTH_CONTEXT", raising=False)
    action = action_with(
        [{"K8S_AUTH_HOST": ""}, {"K8S_AUTH_CONTEXT": trust_as_template("{{ host }}")}]
    )
    with action._task_environment():
        assert os.environ["K8S_AUTH_HOST"] == ""
        assert os.environ["K8S_AUTH_CONTEXT"] == "https://k8s.example:6443"
    assert os.environ["K8S_AUTH_HOST"] == "https://exported.example:6443"
    assert "K8S_AUTH_CONTEXT" not in os.environ


def test_no_environment_changes_nothing(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_HOST", "https://exported.example:6443")
    with action_with(None)._task_environment():
        assert os.environ["K8S_AUTH_HOST"] == "https://exported.example:6443"

"""haw.icc.linear: Ansible's linear strategy, with the main process's objects frozen for the
garbage collector in each forked worker (plugins/strategy/linear.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from playbooks import REPO_ROOT, run_playbook

# A filter beside the playbook (Ansible loads filter_plugins/ next to it): task arguments are
# templated in the worker, so it reports the worker's frozen object count (Python's gc).
FREEZE_COUNT_FILTER = """
import gc


class FilterModule:
    def filters(self):
        return {"frozen_objects": lambda _: gc.get_freeze_count()}
"""


def frozen_objects_in_worker(tmp_path: Path, strategy: str) -> int:
    (tmp_path / "filter_plugins").mkdir()
    (tmp_path / "filter_plugins" / "freeze_count.py").write_text(FREEZE_COUNT_FILTER)
    result = tmp_path / "frozen.txt"
    play = {
        "hosts": "all",
        "strategy": strategy,
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [
            {
                "ansible.builtin.copy": {
                    "content": "{{ 0 | frozen_objects }}",
                    "dest": str(result),
                    "mode": "0600",
                }
            }
        ],
    }
    playbook = tmp_path / "freeze.yml"
    playbook.write_text(yaml.safe_dump([play]))
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"one": None}}}))
    run = run_playbook(playbook, inventory)
    assert run.rc == 0, run.output
    return int(result.read_text())


def test_workers_start_with_the_main_process_objects_frozen(tmp_path):
    # The main process holds Ansible's modules and everything it imported: thousands of objects.
    assert frozen_objects_in_worker(tmp_path, "haw.icc.linear") > 10_000


def test_ansible_linear_strategy_freezes_nothing(tmp_path):
    # The difference the strategy makes: without it a worker's full collections walk all of them.
    assert frozen_objects_in_worker(tmp_path, "ansible.builtin.linear") == 0


@pytest.mark.parametrize("playbook", sorted((REPO_ROOT / "playbooks").glob("*.yml")))
def test_every_playbook_runs_its_plays_with_the_strategy(playbook):
    plays = yaml.safe_load(playbook.read_text(encoding="utf-8"))
    assert [play.get("strategy") for play in plays] == ["haw.icc.linear"] * len(plays)

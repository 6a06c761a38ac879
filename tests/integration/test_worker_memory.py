"""Ansible's workers start with the main process's objects frozen for the garbage collector once
a task of the collection was loaded (plugins/plugin_utils/worker_memory.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from playbooks import run_playbook

# A filter beside the playbook (Ansible loads filter_plugins/ next to it): task arguments are
# templated in the worker, so it reports the worker's frozen object count (Python's gc).
FREEZE_COUNT_FILTER = """
import gc


class FilterModule:
    def filters(self):
        return {"frozen_objects": lambda _: gc.get_freeze_count()}
"""


def frozen_objects_in_worker(tmp_path: Path, collection_task: bool) -> int:
    (tmp_path / "filter_plugins").mkdir()
    (tmp_path / "filter_plugins" / "freeze_count.py").write_text(FREEZE_COUNT_FILTER)
    result = tmp_path / "frozen.txt"
    play = {
        "hosts": "all",
        "connection": "local",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [
            # Skipped in the worker; Ansible loads its action plugin in the main process first.
            *(
                [{"haw.icc.role_settings": {"role": "tgi_server"}, "when": False}]
                if collection_task
                else []
            ),
            {
                "ansible.builtin.copy": {
                    "content": "{{ 0 | frozen_objects }}",
                    "dest": str(result),
                    "mode": "0600",
                }
            },
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
    # Ansible's modules and the collection's code: thousands of objects.
    assert frozen_objects_in_worker(tmp_path, collection_task=True) > 10_000


def test_without_a_task_of_the_collection_nothing_is_frozen(tmp_path):
    # What the collection changes: Ansible alone freezes nothing.
    assert frozen_objects_in_worker(tmp_path, collection_task=False) == 0

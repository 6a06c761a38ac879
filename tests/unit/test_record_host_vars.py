"""Recording a choice in a host_vars file that people also edit (action record_host_vars)."""

from __future__ import annotations

import yaml
from ansible_collections.haw.icc.plugins.module_utils.workload import inventory_files
from ansible_collections.haw.icc.plugins.module_utils.workload.inventory_files import (
    changes_to_record,
    recorded_text,
    ruamel_problem,
)

EDITED_BY_HAND = """\
---
# Alice's namespace: keep the small model until the exam is over.
tgi_model_id: >-
  Qwen/Qwen2.5-1.5B-Instruct
tgi_gpu_type: gpu-tesla-v100s   # the 32 GiB ones
open_webui_admin_email: "alice@example.org"
"""


def test_a_round_trip_changes_only_the_value_and_keeps_comments_quotes_and_order():
    after = recorded_text(EDITED_BY_HAND, {"tgi_model_id": "Qwen/Qwen2.5-3B-Instruct"})
    assert yaml.safe_load(after) == {
        "tgi_model_id": "Qwen/Qwen2.5-3B-Instruct",
        "tgi_gpu_type": "gpu-tesla-v100s",
        "open_webui_admin_email": "alice@example.org",
    }
    assert after.startswith(
        "---\n# Alice's namespace: keep the small model until the exam is over."
    )
    assert "tgi_gpu_type: gpu-tesla-v100s   # the 32 GiB ones" in after
    assert 'open_webui_admin_email: "alice@example.org"' in after


def test_new_keys_are_added_and_null_is_written_as_null():
    after = recorded_text(
        EDITED_BY_HAND, {"tgi_model_revision": None, "tgi_max_total_tokens": 3072}
    )
    loaded = yaml.safe_load(after)
    assert loaded["tgi_model_revision"] is None and loaded["tgi_max_total_tokens"] == 3072
    assert "tgi_model_revision: null" in after
    assert "# the 32 GiB ones" in after


def test_an_empty_or_comment_only_file_keeps_its_comments():
    assert yaml.safe_load(recorded_text("", {"tgi_model_id": "m"})) == {"tgi_model_id": "m"}
    after = recorded_text("# nothing here yet\n", {"tgi_model_id": "m"})
    assert after.startswith("# nothing here yet\n")
    assert yaml.safe_load(after) == {"tgi_model_id": "m"}


def test_a_long_model_id_stays_on_one_line():
    model = "some-organisation-with-a-long-name/" + "a-very-long-model-name-" * 5
    after = recorded_text("tgi_model_id: x\n", {"tgi_model_id": model})
    assert f"tgi_model_id: {model}\n" in after


def test_only_what_changes_is_written_and_defaults_are_never_pinned():
    current = {"tgi_model_id": "old/model"}
    record = {"tgi_model_id": "new/model", "tgi_model_revision": None}
    if_given = {"tgi_max_total_tokens": 4096, "tgi_max_input_tokens": 3000}
    # Nothing typed: the token limits (defaults or group_vars) stay out of the file; the
    # revision stays out too, since the inventory pins none.
    assert changes_to_record(current, record, if_given, set(), {}) == {"tgi_model_id": "new/model"}
    # Typed on the command line: recorded, even when it equals what the host's variables say.
    typed = changes_to_record(
        current, record, if_given, {"tgi_max_input_tokens"}, {"tgi_max_input_tokens": 3000}
    )
    assert typed == {"tgi_model_id": "new/model", "tgi_max_input_tokens": 3000}


def test_an_old_pin_elsewhere_in_the_inventory_is_overridden_explicitly():
    # group_vars pin a revision of the old model: the file must say null, or it would stay.
    changes = changes_to_record(
        {}, {"tgi_model_revision": None}, {}, set(), {"tgi_model_revision": "abc123"}
    )
    assert changes == {"tgi_model_revision": None}


def test_the_same_choice_again_changes_nothing():
    current = {"tgi_model_id": "new/model", "tgi_max_total_tokens": 3072}
    assert (
        changes_to_record(
            current,
            {"tgi_model_id": "new/model"},
            {"tgi_max_total_tokens": 3072},
            {"tgi_max_total_tokens"},
            {"tgi_model_id": "new/model"},
        )
        == {}
    )


def test_without_ruamel_the_task_fails_with_the_pip_line(monkeypatch, run_action, tmp_path):
    assert ruamel_problem("host_vars files") is None  # installed with the collection's tools
    missing = ImportError("No module named 'ruamel'")
    monkeypatch.setattr(inventory_files, "RUAMEL_ERROR", missing)
    path = tmp_path / "host_vars" / "ns.yml"

    result = run_action("record_host_vars", {"path": str(path), "record": {"tgi_gpu_count": 2}})

    assert result["failed"] is True
    assert result["msg"] == (
        "ruamel.yaml is needed on the Ansible controller to edit host_vars files "
        "(pip install ruamel.yaml): No module named 'ruamel'"
    )
    assert not path.exists()

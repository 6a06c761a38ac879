"""One naming scheme for what a user sets (issue 18), read from the playbooks and the roles.

What a role renders is set by that role's variable (tgi_*, open_webui_*, gpu_scale_*, the
names of its argument specs); every other option a playbook reads is the collection's and
starts with icc_ (README: "Variables"). A name that was replaced still works where it worked
before, and its warning names a variable the collection reads.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from ansible_collections.haw.icc.plugins.module_utils.workload.known_variables import (
    DEPRECATED,
    READ_DIRECTLY,
    role_settings_options,
    spec_options,
)

ROOT = Path(__file__).resolve().parents[3]
PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))
ROLE_TASKS = sorted((ROOT / "roles").glob("*/tasks/*.yml"))


def role_variables() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "roles").glob("*/meta/argument_specs.yml"):
        names |= spec_options(yaml.safe_load(path.read_text()))
    return names


def playbook_options() -> set[str]:
    """What the playbooks (and the task files they share) declare or read as their own."""
    names = set(READ_DIRECTLY)
    for path in PLAYBOOKS + sorted((ROOT / "playbooks" / "tasks").glob("*.yml")) + ROLE_TASKS:
        names |= role_settings_options(yaml.safe_load(path.read_text()))
    return names


def test_a_playbook_s_own_option_starts_with_icc():
    own = playbook_options() - role_variables() - set(DEPRECATED)
    # The scan sees the options of each kind of playbook (by hand, from their headers).
    assert {"icc_logs_tail", "icc_test_tgi_url", "icc_cleanup_purge", "icc_lease_wait"} <= own
    assert {name for name in own if not name.startswith("icc_")} == set()


def test_a_role_variable_is_named_after_a_role_or_the_collection():
    prefixes = ("tgi_", "open_webui_", "gpu_scale_", "icc_")
    assert {name for name in role_variables() if not name.startswith(prefixes)} == set()


def without_comments(path: Path) -> str:
    return "\n".join(re.sub(r"(^|\s)#.*", "", line) for line in path.read_text().splitlines())


def test_an_old_name_is_still_read_and_its_new_name_is_the_collection_s():
    # change_model.yml takes -e tgi_model and -e tgi_revision, cleanup.yml -e purge: the
    # warning says the old name still works, so a playbook must still read it (outside its
    # comments), and the new name must be one the collection reads.
    known = playbook_options() | role_variables()
    read_by = {
        old: sorted(
            path.name for path in PLAYBOOKS if re.search(rf"\b{old}\b", without_comments(path))
        )
        for old in DEPRECATED
    }
    assert read_by == {
        "tgi_model": ["change_model.yml"],
        "tgi_revision": ["change_model.yml"],
        "purge": ["cleanup.yml"],
    }
    assert {old: new for old, new in DEPRECATED.items() if new not in known} == {}

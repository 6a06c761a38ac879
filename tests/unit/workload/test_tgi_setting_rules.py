"""The rule of each TGI setting (plugins/module_utils/workload/tgi_setting_rules.py): the flags
the collection sets itself. The rules' messages are tested through validate_tgi_settings
(test_tgi_settings.py).
"""

from __future__ import annotations

from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_launcher import LAUNCHER_FLAGS
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_setting_rules import (
    MANAGED_FLAGS,
)

MANAGED_ARGS = ("--model-id", "--revision", "--num-shard", "--sharded", "--dtype", "--quantize")


def test_managed_flags_are_launcher_flags() -> None:
    assert set(MANAGED_FLAGS) <= set(LAUNCHER_FLAGS)
    for flag in MANAGED_ARGS:
        assert flag[2:] in MANAGED_FLAGS

"""The collection's copy of TGI's launcher facts must match TGI's own documentation.

`launcher.md` is TGI's generated `text-generation-launcher --help`, one section per flag. The
collection never reads it; this test compares tgi_settings' tables (flag names, whether a flag
takes a value, the dtype and quantize values, the env variables it sets) with it. It parses the
file on its own: the sandbox's simulation of TGI has its own copy and its own contract test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from ansible_collections.haw.icc.plugins.module_utils.engine.tgi_launcher import (
    DTYPES,
    LAUNCHER_FLAGS,
    QUANTIZE_METHODS,
    REPEATABLE_FLAGS,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_setting_rules import (
    MANAGED_FLAGS,
)
from ansible_collections.haw.icc.plugins.module_utils.workload.tgi_workload import tgi_workload

# "  -p, --port <PORT>", "      --trust-remote-code"
_USAGE = re.compile(r"^\s+(?:-\w, )?--([a-z0-9-]+)( <[A-Z0-9_]+>)?\s*$", re.M)
_ENV = re.compile(r"\[env: ([A-Z0-9_]+)=")
_INLINE_VALUES = re.compile(r"\[possible values: ([^\]]*)\]")
_LISTED_VALUE = re.compile(r"^\s+- ([\w-]+):", re.M)


class Documented:
    """One flag of launcher.md."""

    def __init__(self, section: str) -> None:
        usage = _USAGE.search(section)
        assert usage, f"no usage line in section {section.splitlines()[0]!r}"
        self.takes_value = usage.group(2) is not None
        env = _ENV.search(section)
        self.env = env.group(1) if env else None
        inline = _INLINE_VALUES.search(section)
        if inline:
            self.values = tuple(inline.group(1).split(", "))
        elif "Possible values:" in section:
            self.values = tuple(_LISTED_VALUE.findall(section.split("Possible values:", 1)[1]))
        else:
            self.values = ()
        self.long = usage.group(1)


@pytest.fixture(scope="module")
def documented(tgi_reference: Path) -> dict[str, Documented]:
    text = (tgi_reference / "launcher.md").read_text(encoding="utf-8")
    flags = [Documented(section) for section in re.split(r"^## ", text, flags=re.M)[1:]]
    assert len(flags) > 40, "launcher.md parsed to suspiciously few flags"
    return {flag.long: flag for flag in flags}


def test_same_flag_names_in_the_same_order(documented: dict[str, Documented]) -> None:
    assert list(LAUNCHER_FLAGS) == list(documented)


def test_same_switches_and_value_flags(documented: dict[str, Documented]) -> None:
    assert {long: flag.takes_value for long, flag in documented.items()} == LAUNCHER_FLAGS


def test_managed_and_repeatable_flags_exist(documented: dict[str, Documented]) -> None:
    assert set(MANAGED_FLAGS) <= set(documented)
    assert set(REPEATABLE_FLAGS) <= set(documented)


@pytest.mark.parametrize(
    ("flag", "values"),
    [("dtype", DTYPES), ("quantize", QUANTIZE_METHODS)],
    ids=["dtype", "quantize"],
)
def test_choices_are_the_launcher_values(
    documented: dict[str, Documented], flag: str, values: tuple[str, ...]
) -> None:
    assert values == documented[flag].values


def test_usage_stats_off_is_a_documented_value(documented: dict[str, Documented]) -> None:
    assert "off" in documented["usage-stats"].values


def test_env_the_container_sets_is_read_by_the_managed_flags(
    documented: dict[str, Documented],
) -> None:
    # The env variables tgi_workload sets in place of flags must be the ones clap reads.
    container = tgi_workload(
        {"tgi_model_id": "gpt2", "tgi_gpu_count": 0, "tgi_api_key_secret": "tgi-api-key"}
    )
    names = {entry["name"] for entry in container["env"]}
    launcher_env = {flag.env: long for long, flag in documented.items() if flag.env}
    read_by_launcher = {launcher_env[name] for name in names if name in launcher_env}
    assert read_by_launcher == {"hostname", "port", "usage-stats", "api-key"}
    assert read_by_launcher <= set(MANAGED_FLAGS)


def test_every_emitted_flag_is_a_documented_value_flag(documented: dict[str, Documented]) -> None:
    container = tgi_workload(
        {
            "tgi_model_id": "gpt2",
            "tgi_model_revision": "main",
            "tgi_gpu_count": 2,
            "tgi_quantize": "bitsandbytes",
            "tgi_max_input_tokens": 10,
            "tgi_max_total_tokens": 20,
            "tgi_max_batch_prefill_tokens": 30,
            "tgi_cuda_memory_fraction": 0.5,
            "tgi_max_concurrent_requests": 4,
            "tgi_api_key_secret": "tgi-api-key",
        }
    )
    flags = container["args"][::2]
    assert all(flag.startswith("--") for flag in flags)
    assert all(documented[flag[2:]].takes_value for flag in flags)
    assert {flag[2:] for flag in flags} <= set(MANAGED_FLAGS)

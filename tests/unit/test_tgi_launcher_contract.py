"""The simulator's flag table must be the launcher's: checked against TGI's own documentation.

`launcher.md` is TGI's generated `text-generation-launcher --help` output, one section per flag.
The project never reads it at run time; this test only compares the module's copy with it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from icc_sandbox.tgi_launcher import FLAGS, Flag

# "  -p, --port <PORT>" or "      --trust-remote-code"
_USAGE_LINE = re.compile(r"^\s+(?:-(\w), )?--([a-z0-9-]+)(?: <([A-Z0-9_]+)>)?\s*$", re.M)
_ENV = re.compile(r"\[env: ([A-Z0-9_]+)=")
_DEFAULT = re.compile(r"\[default: ([^\]]*)\]")
_INLINE_VALUES = re.compile(r"\[possible values: ([^\]]*)\]")
_LISTED_VALUES = re.compile(r"^\s+- ([\w-]+):", re.M)  # the long form, under "Possible values:"

Row = tuple[str | None, str | None, bool, tuple[str, ...], str | None]


def documented_flags(launcher_md: str) -> dict[str, Row]:
    """long -> (short, env, takes a value, possible values, default), from the markdown."""
    flags: dict[str, Row] = {}
    for section in re.split(r"^## ", launcher_md, flags=re.M)[1:]:
        usage = _USAGE_LINE.search(section)
        assert usage, f"no usage line in section {section.splitlines()[0]!r}"
        short, long, value_name = usage.groups()
        env = _ENV.search(section)
        default = _DEFAULT.search(section)
        inline = _INLINE_VALUES.search(section)
        if inline:
            values = tuple(inline.group(1).split(", "))
        elif "Possible values:" in section:
            values = tuple(_LISTED_VALUES.findall(section.split("Possible values:", 1)[1]))
        else:
            values = ()
        flags[long] = (
            short,
            env.group(1) if env else None,
            value_name is not None,
            values,
            default.group(1) if default else None,
        )
    return flags


def table_row(flag: Flag) -> Row:
    return (flag.short, flag.env, flag.takes_value, flag.choices, flag.default)


@pytest.fixture(scope="module")
def documented(tgi_reference: Path) -> dict[str, Row]:
    flags = documented_flags((tgi_reference / "launcher.md").read_text(encoding="utf-8"))
    assert len(flags) > 40, "launcher.md parsed to suspiciously few flags"
    return flags


def test_same_flag_names(documented: dict[str, Row]) -> None:
    assert sorted(flag.long for flag in FLAGS) == sorted(documented)


def test_same_env_names_kinds_values_and_defaults(documented: dict[str, Row]) -> None:
    table = {flag.long: table_row(flag) for flag in FLAGS if flag.long in documented}
    assert table == {long: documented[long] for long in table}


def test_restricted_values_keep_the_documented_order(documented: dict[str, Row]) -> None:
    # clap lists possible values in declaration order; the simulator's messages do the same.
    restricted = {long: row[3] for long, row in documented.items() if row[3]}
    assert set(restricted) >= {"dtype", "quantize", "sharded", "kv-cache-dtype", "usage-stats"}
    assert {flag.long: flag.choices for flag in FLAGS if flag.choices} == restricted

# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Checks and arithmetic for values that end up in Kubernetes objects.

Each kind of value (a namespace, a Service name, a port, a host, a quantity, a key...) has one
rule here, worded for the user. The roles check every variable by its kind before the first
write, so the API server never refuses an object half-way through a run with a message naming
a Kubernetes field instead of the variable.

Patterns are matched whole (`fullmatch`): `$` alone would let a trailing line break through.
Quantities are read with the kubernetes library's `parse_quantity` (its module alone, see
_kubernetes_parse_quantity), after a syntax check that follows the API server's grammar
(parse_quantity alone is more lenient: it accepts ' 8Gi').
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def _kubernetes_parse_quantity() -> Callable[[Any], Decimal]:
    """kubernetes.utils.parse_quantity, from the kubernetes package's own quantity module.

    That module needs only the standard library, but importing it the usual way runs the
    package's __init__, which loads the whole client (about 0.3 s). Typing settings needs only
    this function, and a run refused by its checks sends no request: loaded alone, such a run
    does not pay for the client. Where the file is not where this version keeps it (or the
    library is missing: ansible-test imports this without it), the usual import, on first use.
    """
    spec = importlib.util.find_spec("kubernetes")
    location = Path(spec.origin).parent / "utils" / "quantity.py" if spec and spec.origin else None
    if location is None or not location.is_file():

        def parse_quantity(value: Any) -> Decimal:
            from kubernetes.utils import parse_quantity as library_parse_quantity

            return library_parse_quantity(value)

        return parse_quantity
    module_spec = importlib.util.spec_from_file_location("_haw_icc_kubernetes_quantity", location)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.parse_quantity


parse_quantity = _kubernetes_parse_quantity()

DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
LABEL_MAX = 63
SUBDOMAIN_MAX = 253
# The API server's quantity grammar: a signed decimal number and a suffix (binary or decimal SI,
# or an exponent).
QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?"
)
# repository[:tag][@sha256:digest], as container runtimes accept them.
IMAGE_REFERENCE = re.compile(
    r"(?P<repository>[a-z0-9]+(?:[._:/-][a-z0-9]+)*?)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?"
)
PORT_MAX = 65535


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_dns1123_label(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= LABEL_MAX
        and DNS1123_LABEL.fullmatch(value) is not None
    )


def is_dns1035_label(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= LABEL_MAX
        and DNS1035_LABEL.fullmatch(value) is not None
    )


def is_dns_subdomain(value: Any) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= SUBDOMAIN_MAX
        and all(is_dns1123_label(part) for part in value.split("."))
    )


def is_ingress_host(value: Any) -> bool:
    """A DNS name, optionally with a leading '*.' wildcard; not an IP address (Ingress rules)."""
    if not isinstance(value, str):
        return False
    name = value[2:] if value.startswith("*.") else value
    return is_dns_subdomain(name) and not name.replace(".", "").isdigit()


def is_port(value: Any) -> bool:
    return _is_int(value) and 1 <= value <= PORT_MAX


def quantity_value(value: Any) -> Decimal | None:
    """The amount of a Kubernetes quantity (a string like '8Gi', or a number), else None."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    if isinstance(value, str) and QUANTITY.fullmatch(value) is None:
        return None
    try:
        return Decimal(parse_quantity(value))
    except (ValueError, TypeError, InvalidOperation):
        return None


def is_quantity(value: Any) -> bool:
    """True for a positive Kubernetes quantity given as a string (or a positive number)."""
    amount = quantity_value(value)
    return amount is not None and amount > 0


def is_secret_value(value: Any) -> bool:
    """A key or token: printable, without spaces or line breaks (they end up in HTTP headers)."""
    return (
        isinstance(value, str)
        and value != ""
        and value.isprintable()
        and not any(ch.isspace() for ch in value)
    )


def is_password(value: Any) -> bool:
    """A password may hold spaces, but no line breaks or other control characters."""
    return isinstance(value, str) and value != "" and value.isprintable()


def is_image(value: Any) -> bool:
    return isinstance(value, str) and IMAGE_REFERENCE.fullmatch(value) is not None


def is_base_url(value: Any) -> bool:
    """An http(s) URL with a host, optionally a valid port and a path prefix; no query."""
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    try:
        parts.port  # noqa: B018 - raises ValueError on a port out of range or not a number
    except ValueError:
        return False
    return not (parts.query or parts.fragment)


_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?$")


def duration_seconds(value: Any) -> int | None:
    """`90`, `90s`, `15m`, `2h`, `1h30m` as seconds (for sinceSeconds and the like); None when
    it is not such a duration, or zero."""
    match = _DURATION.match(str(value).strip())
    if not str(value).strip() or not match or not any(match.groups()):
        return None
    hours, minutes, secs = (int(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + secs or None


def quantity_times(value: Any, factor: int) -> str:
    """Multiplies a quantity by a whole factor, keeping its unit: ('1Gi', 4) -> '4Gi'."""
    if not is_quantity(value):
        raise ValueError(f"{value!r} is not a positive Kubernetes quantity such as 1Gi or 500Mi")
    match = QUANTITY.fullmatch(str(value))
    number = Decimal(match.group("number")) * int(factor)
    return f"{format(number.normalize(), 'f')}{match.group('suffix') or ''}"


# A pod template annotation listing the versions (resourceVersion) of the Secrets its containers
# read as environment variables. They read them once, at start: when a Secret changes, its
# version changes, so the template changes and the pods are replaced. Neither a secret nor a
# hash of one ends up in the object.
SECRET_VERSIONS_ANNOTATION = "haw.icc/secret-versions"


def secret_versions(versions: Mapping[str, Any], names: list[str]) -> str:
    """'name=version,...' for the Secrets among `names` that have a version, sorted by name."""
    return ",".join(f"{name}={versions[name]}" for name in sorted(set(names)) if versions.get(name))


# Kind -> (the check, the rule in words). `value_errors` names the variable and quotes the rule.
KINDS: dict[str, tuple[Any, str]] = {
    "dns_label": (
        is_dns1123_label,
        "a DNS-1123 label: at most 63 lower-case letters, digits or '-', starting and ending "
        "with a letter or digit",
    ),
    "dns1035_label": (
        is_dns1035_label,
        "a DNS-1035 label (it names a Service): at most 63 lower-case letters, digits or '-', "
        "starting with a letter and ending with a letter or digit",
    ),
    "dns_subdomain": (
        is_dns_subdomain,
        "a Kubernetes object name: lower-case letters, digits, '-' and '.', each dot-separated "
        "part starting and ending with a letter or digit, at most 253 characters",
    ),
    "ingress_host": (
        is_ingress_host,
        "a DNS host name such as llm.example.org (lower-case, no spaces, no IP address, "
        "optionally starting with '*.')",
    ),
    "duration": (
        lambda value: value == "" or duration_seconds(value) is not None,
        "a duration such as 90s, 15m, 2h or 1h30m",
    ),
    "endpoint": (
        lambda value: value in ("port-forward", "proxy", "ingress") or is_base_url(value),
        "port-forward, proxy, ingress or an http(s):// base URL (a host, optionally a port and a "
        "path; no query)",
    ),
    "port": (is_port, f"a port number, an integer in 1..{PORT_MAX}"),
    "quantity": (
        is_quantity,
        "a positive Kubernetes quantity such as 500m, 2, 8Gi or 50Gi",
    ),
    "secret_value": (
        is_secret_value,
        "a non-empty key or token of printable characters without spaces or line breaks",
    ),
    "password": (is_password, "a non-empty password without line breaks or control characters"),
    "image": (
        is_image,
        "a container image reference like registry.example.org/name:1.2.3 (lower-case "
        "repository, optional :tag and @sha256:digest, no spaces)",
    ),
}


def value_errors(
    values: Mapping[str, Any], kinds: Mapping[str, str], secret: frozenset = frozenset()
) -> list[str]:
    """Messages for the variables of `kinds` (name -> kind) whose value in `values` breaks its
    kind's rule. Unset (None) values are not checked; the value of a `secret` name is never
    quoted."""
    errors = []
    for name, kind in kinds.items():
        value = values.get(name)
        check, rule = KINDS[kind]
        if value is None or check(value):
            continue
        shown = "its value" if name in secret else repr(value)
        errors.append(f"{name}: {shown} is not allowed: {rule}")
    return errors


def label_selector(selector: dict[str, Any]) -> str:
    """A Deployment's spec.selector as the label selector string of a list call."""
    parts = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# An RFC 3339 time as Kubernetes writes it (a Time, or a MicroTime with its fraction), T or space.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?")


def parse_time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339: 'Z' or an offset, any fraction; without a zone, UTC) or
    a datetime, as an aware datetime; None when it is none. Read by datetime.fromisoformat (the
    controller's Python is 3.11 or newer), after a check of the format (fromisoformat also
    takes a date alone)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and _TIMESTAMP.fullmatch(value.strip()):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:  # a month 13, a day 32
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # noqa: UP017


def format_duration(seconds: float) -> str:
    """45s, 2m10s, 1h05m: short enough for a progress line."""
    total = max(0, int(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"

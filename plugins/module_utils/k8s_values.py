# -*- coding: utf-8 -*-
# Copyright (c) 2026 haw.icc developers; MIT License (see LICENSE)
"""Checks and arithmetic for Kubernetes values: DNS-1123 labels and resource quantities.

Pure Python, shared by the roles (through filter and test plugins) and the modules.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_MAX = 63
# A quantity as users write them for cpu, memory and storage: 500m, 2, 1.5Gi, 50Gi, 1e3.
QUANTITY = re.compile(
    r"^(?P<number>[0-9]+(\.[0-9]+)?)(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$"
)


def is_dns1123_label(value) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= DNS1123_LABEL_MAX
        and bool(DNS1123_LABEL.match(value))
    )


def is_quantity(value) -> bool:
    """True for a positive Kubernetes quantity given as a string (or a positive number)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value > 0
    match = QUANTITY.match(value) if isinstance(value, str) else None
    return bool(match) and Decimal(match.group("number")) > 0


def quantity_times(value, factor: int) -> str:
    """Multiplies a quantity by a whole factor, keeping its unit: ('1Gi', 4) -> '4Gi'."""
    if not is_quantity(value):
        raise ValueError(f"{value!r} is not a positive Kubernetes quantity such as 1Gi or 500Mi")
    match = QUANTITY.match(str(value))
    try:
        number = Decimal(match.group("number")) * int(factor)
    except InvalidOperation as error:  # pragma: no cover - the regex admits only decimals
        raise ValueError(str(error)) from error
    text = format(number.normalize(), "f")
    return f"{text}{match.group('suffix') or ''}"


def value_errors(labels=None, quantities=None) -> list[str]:
    """Messages for variables that must be DNS-1123 labels or positive quantities, by name."""
    errors = [
        f"{name}: {value!r} is not a DNS-1123 label (at most 63 lower-case letters, digits or "
        "'-', starting and ending with a letter or digit)"
        for name, value in (labels or {}).items()
        if not is_dns1123_label(value)
    ]
    errors += [
        f"{name}: {value!r} is not a positive Kubernetes quantity such as 500m, 2, 8Gi or 50Gi"
        for name, value in (quantities or {}).items()
        if not is_quantity(value)
    ]
    return errors

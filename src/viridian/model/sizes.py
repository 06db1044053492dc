"""Parsing of human-written sizes ("512MB", "1GB", "512", "2G", "1.5GiB").

Units are binary, as Hyper-V counts them (1 MB = 1 MiB = 1,048,576 bytes); "MiB" and
"MB" are the same, "M" is short for it. A bare number is in the default unit (MB for
memory). Decimals are allowed when the result is a whole number of the requested unit.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from viridian.errors import InvalidSetting

_UNITS: dict[str, int] = {
    "B": 1,
    "K": 1 << 10,
    "M": 1 << 20,
    "G": 1 << 30,
    "T": 1 << 40,
}
_PATTERN = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*$")
_ALLOWED = (
    "a size such as 512MB, 1GB, 2G or 1.5GiB (units B, KB, MB, GB, TB, binary; "
    "a bare number means {default})"
)


def _unit_bytes(unit: str) -> int | None:
    """Bytes per ``unit`` ("B", "M", "MB", "MiB", case-insensitive), None if unknown."""
    text = unit.upper()
    if text == "B":
        return 1
    if text[:1] != "B" and text[1:] in ("", "B", "IB"):
        return _UNITS.get(text[:1])
    return None


def parse_size(text: str | int, *, setting: str, default_unit: str = "MB") -> int:
    """Parse a size into bytes.

    Raises :class:`InvalidSetting` naming ``setting`` for anything that is not a
    non-negative size with a known unit, or that is not a whole number of bytes.
    """
    allowed = _ALLOWED.format(default=default_unit)
    if isinstance(text, bool):
        raise InvalidSetting(setting, text, allowed)
    if isinstance(text, int):
        text = str(text)
    match = _PATTERN.match(text)
    if match is None:
        raise InvalidSetting(setting, text, allowed)
    per_unit = _unit_bytes(match["unit"] or default_unit)
    if per_unit is None:
        raise InvalidSetting(setting, text, allowed, reason=f"unknown unit {match['unit']!r}")
    try:
        total = Decimal(match["number"]) * per_unit
    except InvalidOperation as err:  # pragma: no cover - the pattern admits only digits
        raise InvalidSetting(setting, text, allowed) from err
    if total != total.to_integral_value():
        raise InvalidSetting(setting, text, allowed, reason="not a whole number of bytes")
    return int(total)


def parse_size_mb(text: str | int, *, setting: str = "memory.startup_mb") -> int:
    """Parse a size into whole MB (MiB); a bare number is MB.

    Raises :class:`InvalidSetting` as :func:`parse_size` does, and when the size is not a
    whole number of MB (e.g. "1000KB").
    """
    size = parse_size(text, setting=setting, default_unit="MB")
    mb, rest = divmod(size, _UNITS["M"])
    if rest:
        raise InvalidSetting(
            setting, text, "a whole number of MB (1 MB = 1024 KB)", reason=f"{size} bytes"
        )
    return mb

"""Sizes as the planner reads and shows them.

All units are binary, as Hyper-V Manager shows them: 1 GB = 1024 MB, 1 TB = 1024 GB.
A plain number is read in the field's default unit (MB for memory, GB for disk sizes).
"""

from __future__ import annotations

import math
import re

__all__ = ["SIZE_HELP", "format_gb", "format_mb", "parse_size_mb", "round_up"]

SIZE_HELP = "a size such as 512 MB, 16 GB or 1.5 TB (binary units), or a plain number of {unit}"

_UNIT_MB = {"KB": 1 / 1024, "MB": 1.0, "GB": 1024.0, "TB": 1024.0**2}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT])(?:I?B)?\s*$", re.IGNORECASE)


def parse_size_mb(value: object, default_unit: str) -> float | None:
    """``value`` (a number in ``default_unit`` or a string with a unit) in MB.

    Returns None when ``value`` is not a size (the caller names the key); never raises.
    ``default_unit`` is "MB" or "GB".
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) * _UNIT_MB[default_unit] if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    match = _SIZE.match(value)
    if match is None:
        return None
    return float(match.group(1)) * _UNIT_MB[match.group(2).upper() + "B"]


def round_up(value: float) -> int:
    """The smallest integer ≥ ``value``, tolerant of float noise (2.0000000001 → 2)."""
    return math.ceil(value - 1e-9)


def format_mb(mb: float) -> str:
    """Memory for people: ``512 MB`` below 1 GB, else ``15.5 GB``."""
    if mb < 1024:
        return f"{mb:,.0f} MB"
    return f"{mb / 1024:,.1f} GB"


def format_gb(gb: float) -> str:
    """Disk capacity for people: ``500 GB`` or ``2.4 TB``."""
    if gb < 1024:
        return f"{gb:,.0f} GB"
    return f"{gb / 1024:,.1f} TB"

"""The one rule for sizes typed on the command line, shared by every CLI command.

Rule: a number with an optional unit suffix B, KB, MB, GB or TB (binary: 1 KB =
1024 B); KiB, MiB, GiB and TiB are synonyms, and the short K, M, G, T too; case does
not matter; a bare number means MB — for disk sizes as for memory. Decimals are allowed
when the result is a whole number of bytes ("1.5GB"). Every size option's help says
"bare number = MB" and its default (:func:`size_help`).

Imports only click and the standard library, so it costs nothing at CLI start-up.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import click

MB = 1 << 20
_SCALE = {"B": 1, "K": 1 << 10, "M": MB, "G": 1 << 30, "T": 1 << 40}
_PATTERN = re.compile(r"^\s*(?P<number>\d+(?:\.\d+)?)\s*(?P<unit>[A-Za-z]*)\s*$")
ALLOWED = (
    "a number with a unit B, KB, MB, GB or TB (1 KB = 1024 B; KiB, MiB, GiB, TiB "
    "also accepted), e.g. 512MB, 20GB, 1.5TB; a bare number means MB"
)


class SizeError(ValueError):
    """A size text that breaks the rule; the message quotes it and states the rule."""


def _unit_bytes(unit: str) -> int | None:
    """Bytes per ``unit`` ("", "B", "K", "KB", "KiB", … case-insensitive); None if unknown."""
    text = unit.upper()
    if text in ("", "MB"):
        return MB
    if text == "B":
        return 1
    if text[:1] in _SCALE and text[1:] in ("", "B", "IB"):
        return _SCALE[text[:1]]
    return None


def parse_size(text: str | int) -> int:
    """Bytes meant by ``text`` under the rule above (an int is a number of MB).

    Raises SizeError for anything else, or for a size that is not a whole number of bytes.
    """
    match = _PATTERN.match(str(text))
    per_unit = _unit_bytes(match["unit"]) if match else None
    if match is None or per_unit is None:
        raise SizeError(f"{str(text)!r} is not a size; use {ALLOWED}")
    total = Decimal(match["number"]) * per_unit
    if total != total.to_integral_value():
        raise SizeError(f"{str(text)!r} is not a whole number of bytes; use {ALLOWED}")
    return int(total)


def parse_size_mb(text: str | int) -> int:
    """Whole MB meant by ``text``; SizeError also when it is not a whole number of MB."""
    size = parse_size(text)
    if size % MB:
        raise SizeError(f"{str(text)!r} is {size} bytes, not a whole number of MB")
    return size // MB


def format_size(size: int) -> str:
    """``size`` bytes for people, exactly: "512 bytes", "1 MB", "1.5 GB (1610612736 bytes)".

    Exact multiples show the unit alone; other sizes add the byte count.
    """
    for unit in ("TB", "GB", "MB", "KB"):
        scale = _SCALE[unit[0]]
        if size >= scale:
            if size % scale == 0:
                return f"{size // scale} {unit}"
            return f"{size / scale:.1f} {unit} ({size} bytes)"
    return "1 byte" if size == 1 else f"{size} bytes"


def size_help(what: str, default: str | None = None, examples: str = "512MB, 20GB, 1.5TB") -> str:
    """The help text of a size option: what it is, the rule, and its default."""
    tail = f"; default: {default}" if default else "; no default"
    return f"{what}, e.g. {examples} (bare number = MB){tail}."


class SizeParam(click.ParamType[int]):
    """A click parameter type for sizes under the one rule; gives bytes, or MB with ``in_mb``."""

    name = "size"

    def __init__(self, *, in_mb: bool = False) -> None:
        self.in_mb = in_mb

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        """Parsed ``value``; a usage error (exit 2) naming the rule when it breaks it."""
        try:
            return parse_size_mb(value) if self.in_mb else parse_size(value)
        except SizeError as err:
            self.fail(str(err), param, ctx)


SIZE = SizeParam()
SIZE_MB = SizeParam(in_mb=True)

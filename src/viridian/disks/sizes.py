"""Parsing and checking disk sizes given by people ("10G", "1.5GiB", "1048576")."""

from __future__ import annotations

import re

from .errors import InvalidDiskArgument
from .vhd_layout import MAX_BLOCK_SIZE, MAX_VIRTUAL_SIZE, MIN_BLOCK_SIZE, SECTOR

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
SIZE_HELP = "a byte count or a number with K, M, G or T (binary units), e.g. 512M, 10G, 1.5GiB"


def parse_size(text: str) -> int:
    """Bytes for ``text``; units are binary (K=1024). Raises InvalidDiskArgument."""
    from decimal import Decimal, InvalidOperation  # here: not on every disk command's start

    m = _SIZE.match(text)
    if not m:
        raise InvalidDiskArgument(f"size {text!r} is not valid; use {SIZE_HELP}")
    try:
        value = Decimal(m.group(1)) * _UNITS[m.group(2).upper()]
    except InvalidOperation:
        raise InvalidDiskArgument(f"size {text!r} is not valid; use {SIZE_HELP}") from None
    if value != value.to_integral_value():
        raise InvalidDiskArgument(f"size {text!r} is not a whole number of bytes")
    return int(value)


def check_virtual_size(size: int) -> int:
    """``size`` rounded up to a sector, or InvalidDiskArgument outside 512 B … 2040 GiB."""
    if not 0 < size <= MAX_VIRTUAL_SIZE:
        raise InvalidDiskArgument(
            f"virtual size {size} is outside the allowed range 512 bytes .. 2040 GiB "
            f"({MAX_VIRTUAL_SIZE} bytes)"
        )
    return -(-size // SECTOR) * SECTOR


def check_block_size(size: int) -> int:
    """``size`` if it is a power of two from 512 bytes to 256 MiB, else InvalidDiskArgument."""
    if not (MIN_BLOCK_SIZE <= size <= MAX_BLOCK_SIZE and size & (size - 1) == 0):
        raise InvalidDiskArgument(
            f"block size {size} is not allowed; use a power of two from 512 bytes to 256 MiB "
            "(e.g. 512K, 2M, 32M)"
        )
    return size


def describe_bytes(n: int) -> str:
    """``n`` for people: "1,048,576 bytes (1 MiB)", "2,190,433,321,472 bytes (1.99 TiB)"."""
    units = (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10))
    fits = [(unit, scale) for unit, scale in units if n >= scale]
    if not fits:
        return f"{n:,} bytes"
    unit, scale = fits[0]
    shown = f"{n // scale}" if n % scale == 0 else f"{n / scale:.3g}"
    return f"{n:,} bytes ({shown} {unit})"

"""Sizes as users write them: "512MB", "1GB", "512", "2G", "1.5GiB"."""

from __future__ import annotations

import pytest

from viridian.errors import InvalidSetting
from viridian.model import parse_size, parse_size_mb

SIZE_ALLOWED = (
    "a size such as 512MB, 1GB, 2G or 1.5GiB (units B, KB, MB, GB, TB, binary; "
    "a bare number means MB)"
)


@pytest.mark.parametrize(
    ("text", "mb"),
    [
        ("512MB", 512),
        ("1GB", 1024),
        ("512", 512),
        (512, 512),
        ("2G", 2048),
        ("1.5GiB", 1536),
        ("1.5 gb", 1536),
        (" 64 mib ", 64),
        ("2048KB", 2),
        ("1T", 1024 * 1024),
        ("8388608B", 8),
    ],
)
def test_sizes_parse_to_mb(text: str | int, mb: int) -> None:
    assert parse_size_mb(text) == mb


def test_parse_size_gives_bytes_with_its_default_unit() -> None:
    assert parse_size("3", setting="disk.size", default_unit="GB") == 3 << 30
    assert parse_size("100KiB", setting="disk.size") == 100 << 10
    assert parse_size("1.5K", setting="disk.size") == 1536


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"invalid value '' for memory.startup_mb; allowed: {SIZE_ALLOWED}"),
        ("lots", f"invalid value 'lots' for memory.startup_mb; allowed: {SIZE_ALLOWED}"),
        ("-512MB", f"invalid value '-512MB' for memory.startup_mb; allowed: {SIZE_ALLOWED}"),
        ("1,5GB", f"invalid value '1,5GB' for memory.startup_mb; allowed: {SIZE_ALLOWED}"),
        (True, f"invalid value True for memory.startup_mb; allowed: {SIZE_ALLOWED}"),
        (
            "5PB",
            "invalid value '5PB' for memory.startup_mb (unknown unit 'PB'); "
            f"allowed: {SIZE_ALLOWED}",
        ),
        (
            "2BB",
            "invalid value '2BB' for memory.startup_mb (unknown unit 'BB'); "
            f"allowed: {SIZE_ALLOWED}",
        ),
        (
            "1000KB",
            "invalid value '1000KB' for memory.startup_mb (1024000 bytes); "
            "allowed: a whole number of MB (1 MB = 1024 KB)",
        ),
        (
            "0.5",
            "invalid value '0.5' for memory.startup_mb (524288 bytes); "
            "allowed: a whole number of MB (1 MB = 1024 KB)",
        ),
    ],
)
def test_bad_sizes_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidSetting) as caught:
        parse_size_mb(text)
    assert str(caught.value) == message


def test_fraction_of_a_byte_is_refused() -> None:
    with pytest.raises(InvalidSetting, match=r"not a whole number of bytes"):
        parse_size("0.3B", setting="disk.size")


def test_error_names_the_given_setting() -> None:
    with pytest.raises(InvalidSetting) as caught:
        parse_size_mb("x", setting="--memory")
    assert caught.value.details["setting"] == "--memory"

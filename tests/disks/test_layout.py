"""The on-disk structures: CHS geometry, checksums, footer and header round trips."""

from __future__ import annotations

import pytest

from viridian.disks import BadDynamicHeader, BadFooter, parse_size
from viridian.disks.errors import InvalidDiskArgument
from viridian.disks.vhd_layout import (
    ALL_ONES_64,
    DISK_FIXED,
    DynamicHeader,
    Footer,
    Locator,
    bitmap_size,
    chs_geometry,
)


@pytest.mark.parametrize(
    ("size", "chs"),
    [
        (104_865_792, (1004, 12, 17)),  # qemu-img create 100M (notes §4.2)
        (136_365_211_648, (65278, 16, 255)),  # the Hyper-V 2012 R2 sample (notes §1.4)
        (136_899_993_600, (65535, 16, 255)),  # the CHS maximum
        (2040 * 1024**3, (65535, 16, 255)),  # above it: capped
        (10 * 1024**2, (301, 4, 17)),
    ],
)
def test_chs_geometry_matches_known_disks(size: int, chs: tuple[int, int, int]) -> None:
    assert chs_geometry(size) == chs


def test_footer_round_trip_and_checksum() -> None:
    f = Footer(DISK_FIXED, 1 << 20, 1 << 20, ALL_ONES_64, bytes(range(16)), 5, (30, 4, 17))
    raw = f.pack()
    back = Footer.unpack(raw, "x")
    assert back == f and back.checksum_ok
    assert raw[28:32] == b"win " and raw[36:40] == b"Wi2k" and raw[8:12] == b"\0\0\0\x02"
    broken = raw[:100] + b"\x01" + raw[101:]
    assert not Footer.unpack(broken, "x").checksum_ok


def test_footer_with_bad_cookie_is_a_named_error() -> None:
    with pytest.raises(BadFooter, match="cookie"):
        Footer.unpack(b"notavhd!" + bytes(504), "x.vhd")
    with pytest.raises(BadFooter, match="truncated"):
        Footer.unpack(b"conectix", "x.vhd")


def test_header_round_trip_with_locators_and_unicode_parent_name() -> None:
    locs = (Locator(0x57327275, 512, 22, 4096),) + (Locator(),) * 7
    h = DynamicHeader(1536, 10, 1 << 21, b"\x11" * 16, 77, "pärent.vhd", locs)
    back = DynamicHeader.unpack(h.pack(), "x")
    assert back == h and back.checksum_ok
    assert h.pack()[64:84] == "pärent.vhd".encode("utf-16-be")


def test_header_block_size_must_be_a_power_of_two() -> None:
    raw = bytearray(DynamicHeader(1536, 10, 1 << 21).pack())
    raw[32:36] = (3 << 20).to_bytes(4, "big")
    with pytest.raises(BadDynamicHeader, match="power of two"):
        DynamicHeader.unpack(bytes(raw), "x.vhd")


def test_bitmap_is_padded_to_a_sector() -> None:
    assert bitmap_size(2 << 20) == 512
    assert bitmap_size(512 << 10) == 512
    assert bitmap_size(32 << 20) == 8192


@pytest.mark.parametrize(
    ("text", "value"),
    [("512M", 512 << 20), ("10G", 10 << 30), ("1.5GiB", 3 << 29), ("1048576", 1 << 20),
     ("4k", 4096), ("2 TB", 2 << 40)],
)  # fmt: skip
def test_parse_size_accepts_people_sizes(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "10Q", "-5M", "M", "ten"])
def test_parse_size_names_the_allowed_forms(text: str) -> None:
    with pytest.raises(InvalidDiskArgument, match="512M, 10G"):
        parse_size(text)


def test_parse_size_refuses_fractions_of_a_byte() -> None:
    with pytest.raises(InvalidDiskArgument, match="whole number"):
        parse_size("1.3")

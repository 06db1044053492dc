"""VHDX check/repair with named problems, mutation tests and a random write/read model.

Every mutated image gives a named DiskError (or a check report), never a crash; data
written through the library reads back as a raw oracle holds it, here and in QEMU.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from viridian.disks import (
    BadBlockTable,
    BadRegionTable,
    BadVhdxHeader,
    DiskError,
    check,
    convert,
    inspect,
    merge,
    new_differencing,
    new_vhdx_dynamic,
    open_disk,
)
from viridian.disks.vhdx import VhdxImage
from viridian.disks.vhdx_layout import (
    HEADER1_OFFSET,
    HEADER2_OFFSET,
    PAYLOAD_FULLY_PRESENT,
    REGION1_OFFSET,
    REGION2_OFFSET,
    bat_entry,
)

from .helpers import MiB, make_pattern, qemu_img, qemu_same, write_raw

SIZE = 6 * MiB


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Path]:
    """A dynamic VHDX with 1 MiB blocks holding data in some blocks, and its raw oracle."""
    raw = write_raw(tmp_path / "ref.raw", make_pattern(SIZE, seed=3, runs=3))
    path = tmp_path / "d.vhdx"
    convert(raw, path, "dynamic", block_size=MiB)
    return path, raw


def poke(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def bat_offset(path: Path) -> int:
    with open_disk(path) as disk:
        assert isinstance(disk, VhdxImage)
        return disk.s.bat_region.file_offset


def codes(path: Path) -> list[str]:
    return [p.code for p in check(path).problems]


def test_a_bad_header_copy_is_named_and_repaired(image: tuple[Path, Path]) -> None:
    path, raw = image
    poke(path, HEADER1_OFFSET + 100, b"\x01")
    assert codes(path) == ["header_invalid"]
    assert qemu_same(raw, path, "vhdx")  # still readable from the other header
    report = check(path, repair=True)
    assert report.repaired == ["rewrote both headers from the valid one"] and report.ok
    assert codes(path) == [] and qemu_same(raw, path, "vhdx")


def test_both_headers_bad_is_refused_by_name(image: tuple[Path, Path]) -> None:
    path, _ = image
    poke(path, HEADER1_OFFSET + 8, b"\xff")
    poke(path, HEADER2_OFFSET, b"HEAD")
    with pytest.raises(BadVhdxHeader, match=r"header 1: CRC-32C.*header 2: signature"):
        open_disk(path)
    assert codes(path) == ["headers_invalid"] and not check(path, repair=True).ok


def test_region_tables(image: tuple[Path, Path]) -> None:
    path, _ = image
    poke(path, REGION1_OFFSET + 40, b"\x07")
    assert codes(path) == ["region_table_invalid"]
    assert check(path, repair=True).ok and codes(path) == []
    poke(path, REGION1_OFFSET, b"xxxx")
    poke(path, REGION2_OFFSET + 4, b"\0\0\0\0")
    with pytest.raises(BadRegionTable, match=r"region table 1: signature.*region table 2: CRC"):
        inspect(path)
    assert codes(path) == ["region_tables_invalid"]


def test_bat_entry_outside_the_file_is_named_and_unallocated(image: tuple[Path, Path]) -> None:
    path, _ = image
    poke(
        path,
        bat_offset(path) + 8 * 2,
        bat_entry(PAYLOAD_FULLY_PRESENT, 64 * MiB).to_bytes(8, "little"),
    )
    with pytest.raises(BadBlockTable, match="BAT entry 2 points to 67108864"):
        open_disk(path)
    assert codes(path) == ["bat_entry_outside_file"]
    report = check(path, repair=True)
    assert report.ok and codes(path) == []
    with open_disk(path) as disk:
        assert disk.read(2 * MiB, MiB) == bytes(MiB)  # its data was never in the file
    qemu_img("check", "-f", "vhdx", path)


def test_overlapping_blocks_are_named(image: tuple[Path, Path]) -> None:
    path, _ = image
    with open_disk(path) as disk:
        assert isinstance(disk, VhdxImage)
        first = disk.s.bat[0]
    poke(path, bat_offset(path) + 8 * 4, first.to_bytes(8, "little"))
    assert codes(path) == ["bat_entries_overlap"]
    assert not check(path).ok


def test_invalid_block_state_is_named(image: tuple[Path, Path]) -> None:
    path, _ = image
    poke(path, bat_offset(path) + 8 * 3, (4).to_bytes(8, "little"))  # state 4 is undefined
    assert codes(path) == ["bat_entry_state"]


# -- mutation: any flipped byte of the structures gives a named error, never a crash ---
STRUCTURE_RANGES = [
    (0, 16),  # file identifier
    (HEADER1_OFFSET, 80),
    (HEADER2_OFFSET, 80),
    (REGION1_OFFSET, 80),
    (REGION2_OFFSET, 80),
    (2 * MiB, 64 * 1024 + 64),  # metadata table and items
    (3 * MiB, 64),  # BAT
]


@st.composite
def mutations(draw: st.DrawFn) -> list[tuple[int, int]]:
    spots = []
    for _ in range(draw(st.integers(1, 6))):
        start, length = draw(st.sampled_from(STRUCTURE_RANGES))
        spots.append((start + draw(st.integers(0, length - 1)), draw(st.integers(0, 255))))
    return spots


@pytest.fixture(scope="module")
def seed_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("vhdx-seed")
    raw = write_raw(folder / "ref.raw", make_pattern(3 * MiB, seed=9, runs=3))
    convert(raw, folder / "s.vhdx", "dynamic", block_size=MiB)
    return folder / "s.vhdx"  # a path: hypothesis prints it short when a case fails


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(spots=mutations())
def test_mutated_structures_give_named_errors(
    seed_image: Path, spots: list[tuple[int, int]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.vhdx"
        data = bytearray(seed_image.read_bytes())
        for off, value in spots:
            data[off] = value
        path.write_bytes(data)
        for action in (lambda: inspect(path), lambda: check(path), lambda: _read(path)):
            try:
                action()
            except DiskError as err:  # named, and naming the file; anything else fails
                assert str(err).startswith(str(path)), err


def _read(path: Path) -> None:
    with open_disk(path) as disk:
        disk.read(0, disk.size)


# -- a random model: writes through the library read back like a raw oracle -----------
write_op = st.tuples(st.integers(0, SIZE - 1), st.integers(1, 300_000), st.integers(0, 255))


@settings(max_examples=25, deadline=None)
@given(ops=st.lists(write_op, min_size=1, max_size=12))
def test_random_writes_read_back_like_a_raw_oracle(ops: list[tuple[int, int, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path, oracle = Path(folder) / "r.vhdx", bytearray(SIZE)
        new_vhdx_dynamic(path, SIZE, block_size=MiB)
        with open_disk(path, writable=True) as disk:
            for offset, length, value in ops:
                length = min(length, SIZE - offset)
                chunk = bytes([value]) * length
                disk.write(offset, chunk)
                oracle[offset : offset + length] = chunk
            assert disk.read(0, SIZE) == oracle
        assert check(path).ok
        raw = write_raw(Path(folder) / "o.raw", oracle)
        assert qemu_same(raw, path, "vhdx")


@settings(max_examples=15, deadline=None)
@given(ops=st.lists(write_op, min_size=1, max_size=8), seed=st.integers(0, 1000))
def test_random_writes_to_an_avhdx_read_back_and_merge(
    ops: list[tuple[int, int, int]], seed: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        base, child = Path(folder) / "b.vhdx", Path(folder) / "c.avhdx"
        oracle = make_pattern(SIZE, seed=seed, runs=3)
        convert(write_raw(Path(folder) / "b.raw", oracle), base, "dynamic", block_size=MiB)
        new_differencing(child, base)
        with open_disk(child, writable=True) as disk:
            for offset, length, value in ops:
                length = min(length, SIZE - offset)
                disk.write(offset, bytes([value]) * length)
                oracle[offset : offset + length] = bytes([value]) * length
            assert disk.read(0, SIZE) == oracle
        assert check(child).ok
        merge(child, into_parent=True)
        assert qemu_same(write_raw(Path(folder) / "o.raw", oracle), base, "vhdx")


def test_cli_check_reports_and_repairs_a_pending_log(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from viridian.cli.disk import disk_group

    from .test_vhdx_log import make_dirty

    path, model = make_dirty(tmp_path)
    res = CliRunner().invoke(disk_group, ["check", str(path)])
    assert res.exit_code == 2 and "[log_pending]" in res.output and "(repairable)" in res.output
    res = CliRunner().invoke(disk_group, ["inspect", str(path)])
    assert "log pending: True" in res.output
    res = CliRunner().invoke(disk_group, ["check", "--repair", str(path)])
    assert res.exit_code == 0 and "repaired: replayed the pending log" in res.output
    with open_disk(path) as disk:
        assert disk.read(0, disk.size) == model


bat_values = st.tuples(st.integers(0, 7), st.integers(0, 7), st.integers(0, 80))


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(entries=st.lists(bat_values, min_size=1, max_size=4))
def test_random_bat_entries_give_named_errors_or_valid_reads(
    seed_image: Path, entries: list[tuple[int, int, int]]
) -> None:
    """Whole BAT entries (any state, any MiB offset) in any slot: named errors, never a crash."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "b.vhdx"
        data = bytearray(seed_image.read_bytes())
        for index, state, mib in entries:
            at = 3 * MiB + index * 8
            data[at : at + 8] = bat_entry(state, mib * MiB).to_bytes(8, "little")
        path.write_bytes(data)
        for action in (
            lambda: check(path, repair=True),
            lambda: inspect(path),
            lambda: _read(path),
        ):
            try:
                action()
            except DiskError as err:
                assert str(err).startswith(str(path)), err

"""compact, expand and check/repair on real files, with QEMU and libvhdi as oracles."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from viridian.disks import (
    BadBlockTable,
    BadFooter,
    InvalidDiskArgument,
    check,
    compact,
    convert,
    expand,
    inspect,
    new_differencing,
    new_dynamic,
    new_fixed,
    open_disk,
)
from viridian.disks.vhd import SparseVhd, bat_from_bytes
from viridian.disks.vhd_layout import UNALLOCATED

from .helpers import MiB, make_pattern, qemu_info, qemu_same, vhdi_read, write_raw

SIZE = 40 * MiB


def dynamic_with_zeroed_blocks(folder: Path) -> tuple[Path, bytearray]:
    """A dynamic disk whose blocks 1, 4, 5 and 9 are allocated but hold only zeros."""
    model = make_pattern(SIZE, seed=9, runs=30)
    path = folder / "d.vhd"
    convert(write_raw(folder / "ref.raw", model), path, "dynamic")
    with open_disk(path, writable=True) as disk:
        for b in (1, 4, 5, 9):
            disk.write(b * 2 * MiB, b"\1" * 2 * MiB)
            disk.write(b * 2 * MiB, bytes(2 * MiB))
            model[b * 2 * MiB : (b + 1) * 2 * MiB] = bytes(2 * MiB)
    return path, model


def test_compact_gives_back_zero_blocks_and_keeps_the_content(tmp_path: Path) -> None:
    path, model = dynamic_with_zeroed_blocks(tmp_path)
    before = inspect(path).blocks_allocated
    result = compact(path)
    assert result.blocks_freed == 4 and inspect(path).blocks_allocated == before - 4
    assert result.file_size_after == os.path.getsize(path) < result.file_size_before
    assert qemu_same(write_raw(tmp_path / "final.raw", model), path)
    assert vhdi_read(path) == (SIZE, bytes(model))
    report = check(path)
    assert report.ok and not report.problems
    with open_disk(path) as disk:
        assert isinstance(disk, SparseVhd)
        live = [e for e in disk.bat if e != UNALLOCATED]
        assert len(set(live)) == len(live)
    assert compact(path).blocks_freed == 0


def test_compact_of_a_child_keeps_zeros_that_hide_parent_data(tmp_path: Path) -> None:
    model = make_pattern(SIZE, seed=4, runs=40)
    convert(write_raw(tmp_path / "ref.raw", model), tmp_path / "p.vhd", "dynamic")
    new_differencing(tmp_path / "c.vhd", tmp_path / "p.vhd")
    with open_disk(tmp_path / "c.vhd", writable=True) as c, open_disk(tmp_path / "p.vhd") as p:
        runs = list(p.data_runs())
        hide = runs[0]
        c.write(hide[0], bytes(hide[1] - hide[0]))  # zeros over parent data: must stay
        empty = next(b for b in range(20) if not any(p.data_runs(b * 2 * MiB, (b + 1) * 2 * MiB)))
        c.write(empty * 2 * MiB, b"x" * 4096)
        c.write(empty * 2 * MiB, bytes(4096))  # zeros over parent zeros: may go
        model[hide[0] : hide[1]] = bytes(hide[1] - hide[0])
    assert compact(tmp_path / "c.vhd").blocks_freed == 1
    with open_disk(tmp_path / "c.vhd") as c:
        assert c.read(0, SIZE) == model


def test_compact_refuses_fixed_disks(tmp_path: Path) -> None:
    new_fixed(tmp_path / "f.vhd", MiB)
    with pytest.raises(InvalidDiskArgument, match="dynamic and differencing"):
        compact(tmp_path / "f.vhd")


def test_expand_dynamic_moves_blocks_out_of_the_bat_s_way(tmp_path: Path) -> None:
    model = make_pattern(100 * MiB, seed=5, runs=20)
    model[: 2 * MiB] = b"\x42" * 2 * MiB  # block 0 sits right after the BAT
    path = tmp_path / "d.vhd"
    convert(write_raw(tmp_path / "ref.raw", model), path, "dynamic")
    assert first_block_offset(path) == 2048
    expand(path, 300 * MiB)  # BAT grows from 512 to 1024 bytes: block 0 must move
    big = model + bytes(200 * MiB)
    info = qemu_info(path)
    assert info["virtual-size"] == 300 * MiB
    assert qemu_same(write_raw(tmp_path / "big.raw", big), path)
    size, data = vhdi_read(path)
    assert size == 100 * MiB  # libvhdi quirk: it reports original_size (notes §0.5)
    assert data == model
    assert check(path).ok
    assert inspect(path).original_size == 100 * MiB
    assert first_block_offset(path) > 2048


def first_block_offset(path: Path) -> int:
    with open_disk(path) as disk:
        assert isinstance(disk, SparseVhd)
        offset = disk.block_offset(0)
        assert offset is not None
        return offset


def test_expand_fixed_keeps_data_and_zero_fills(tmp_path: Path) -> None:
    model = make_pattern(10 * MiB, seed=6, runs=5)
    path = tmp_path / "f.vhd"
    convert(write_raw(tmp_path / "ref.raw", model), path, "fixed")
    expand(path, 10 * MiB + 4096)
    big = model + bytes(4096)
    assert qemu_same(write_raw(tmp_path / "big.raw", big), path)
    assert os.path.getsize(path) == 10 * MiB + 4096 + 512


def test_expand_refuses_shrinking_children_and_saved_state(tmp_path: Path) -> None:
    new_dynamic(tmp_path / "d.vhd", 8 * MiB)
    with pytest.raises(InvalidDiskArgument, match="must be larger"):
        expand(tmp_path / "d.vhd", 4 * MiB)
    new_differencing(tmp_path / "c.vhd", tmp_path / "d.vhd")
    with pytest.raises(InvalidDiskArgument, match="fixed and dynamic"):
        expand(tmp_path / "c.vhd", 16 * MiB)
    set_footer_byte(tmp_path / "d.vhd", 84, 1)  # saved state
    with pytest.raises(InvalidDiskArgument, match="saved state"):
        expand(tmp_path / "d.vhd", 16 * MiB)
    assert inspect(tmp_path / "d.vhd").saved_state is True


def set_footer_byte(path: Path, offset: int, value: int) -> None:
    """Change one footer byte in both copies and fix their checksums."""
    from viridian.disks.vhd_layout import vhd_checksum

    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        for where in (0, size - 512):
            f.seek(where)
            raw = bytearray(f.read(512))
            if raw[:8] != b"conectix":
                continue
            raw[offset] = value
            raw[64:68] = vhd_checksum(bytes(raw), 64).to_bytes(4, "big")
            f.seek(where)
            f.write(raw)


def damage(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def small_dynamic(folder: Path) -> tuple[Path, bytearray]:
    model = make_pattern(16 * MiB, seed=8, runs=12)
    path = folder / "d.vhd"
    convert(write_raw(folder / "ref.raw", model), path, "dynamic")
    return path, model


def codes(path: Path) -> list[str]:
    return [p.code for p in check(path).problems]


def test_check_repairs_a_bad_trailing_footer_from_the_copy(tmp_path: Path) -> None:
    path, model = small_dynamic(tmp_path)
    damage(path, os.path.getsize(path) - 500, b"\xee")
    assert codes(path) == ["footer_checksum"]
    with open_disk(path) as disk:  # still readable through the copy at 0
        assert disk.read(0, len(model)) == model
    report = check(path, repair=True)
    assert report.repaired and report.ok and not report.remaining
    assert vhdi_read(path)[1] == model


def test_check_repairs_a_bad_footer_copy(tmp_path: Path) -> None:
    path, _ = small_dynamic(tmp_path)
    damage(path, 100, b"\xee")
    assert codes(path) == ["footer_copy_checksum"]
    assert check(path, repair=True).ok and codes(path) == []


def test_both_footers_bad_is_a_named_error(tmp_path: Path) -> None:
    path, _ = small_dynamic(tmp_path)
    damage(path, 100, b"\xee")
    damage(path, os.path.getsize(path) - 500, b"\xee")
    with pytest.raises(BadFooter, match="checksum"):
        open_disk(path)
    assert codes(path) == ["footer_invalid"]


def test_check_finds_truncation_and_repair_drops_lost_blocks(tmp_path: Path) -> None:
    path, _ = small_dynamic(tmp_path)
    os.truncate(path, os.path.getsize(path) - 512 - MiB)
    with pytest.raises(BadBlockTable, match="past the end of the file"):
        open_disk(path)
    found = codes(path)
    assert "bat_entry_outside_file" in found and "footer_missing" in found
    report = check(path, repair=True)
    assert report.ok, report.remaining
    with open_disk(path) as disk:
        disk.read(0, disk.size)


def test_check_names_overlapping_and_misplaced_bat_entries(tmp_path: Path) -> None:
    path, _ = small_dynamic(tmp_path)
    with open(path, "rb") as f:
        f.seek(1536)
        bat = bat_from_bytes(f.read(32))
    live = [i for i, e in enumerate(bat) if e != UNALLOCATED]
    damage(path, 1536 + live[1] * 4, (bat[live[0]] + 1).to_bytes(4, "big"))
    damage(path, 1536 + live[2] * 4, (3).to_bytes(4, "big"))
    found = codes(path)
    assert "bat_entries_overlap" in found and "bat_entry_in_metadata" in found
    assert not check(path, repair=True).ok


def test_check_names_header_problems(tmp_path: Path) -> None:
    path, _ = small_dynamic(tmp_path)
    shutil.copy(path, tmp_path / "h.vhd")
    damage(tmp_path / "h.vhd", 512 + 300, b"\x01")
    assert codes(tmp_path / "h.vhd") == ["header_checksum"]
    damage(path, 512 + 32, (3 << 20).to_bytes(4, "big"))
    assert codes(path) == ["header_invalid"]


def test_repair_restores_the_reserved_feature_bit(tmp_path: Path) -> None:
    new_fixed(tmp_path / "f.vhd", MiB)
    set_footer_byte(tmp_path / "f.vhd", 11, 0)
    assert codes(tmp_path / "f.vhd") == ["features"]
    assert check(tmp_path / "f.vhd", repair=True).ok and codes(tmp_path / "f.vhd") == []

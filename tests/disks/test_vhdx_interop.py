"""VHDX interop: qemu-img and libvhdi read what we write; we read what qemu-img writes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from viridian.cli.disk import disk_group
from viridian.disks import (
    InvalidDiskArgument,
    check,
    compact,
    convert,
    detect_format,
    inspect,
    merge,
    new_differencing,
    new_vhdx_dynamic,
    new_vhdx_fixed,
    open_disk,
)
from viridian.disks.vhdx import VhdxImage
from viridian.disks.vhdx_layout import PAYLOAD_PARTIALLY_PRESENT, SB_PRESENT, bat_entry

from .helpers import MiB, make_pattern, qemu_img, qemu_info, qemu_same, vhdi_read, write_raw

SIZES = [MiB, 7 * MiB + 3 * 512, 70 * MiB + 1536]


def read_all(path: Path) -> bytes:
    with open_disk(path) as disk:
        return disk.read(0, disk.size)


def allocated_blocks(path: Path) -> int:
    blocks = inspect(path).blocks_allocated
    assert blocks is not None
    return blocks


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["fixed", "dynamic"])
def test_our_vhdx_reads_identical_in_qemu_and_libvhdi(tmp_path: Path, size: int, kind: str) -> None:
    model = make_pattern(size, seed=size % 997, runs=6)
    raw = write_raw(tmp_path / "ref.raw", model)
    out = tmp_path / f"out-{kind}.vhdx"
    convert(raw, out, kind, block_size=MiB)
    info = qemu_info(out, "vhdx")
    assert info["virtual-size"] == size and info["format"] == "vhdx"
    assert qemu_same(raw, out, "vhdx")
    assert qemu_img("check", "-f", "vhdx", out).strip() == "No errors were found on the image."
    assert vhdi_read(out) == (size, bytes(model))
    assert detect_format(out) == "vhdx"
    assert inspect(out).disk_type == kind and check(out).ok


@pytest.mark.parametrize("subformat", ["fixed", "dynamic"])
def test_we_read_what_qemu_img_writes(tmp_path: Path, subformat: str) -> None:
    image = tmp_path / "q.vhdx"
    qemu_img("create", "-q", "-f", "vhdx", "-o", f"subformat={subformat}", image, "48M")
    subprocess.run(
        ["qemu-io", "-f", "vhdx", "-c", "write -P 0x5a 1M 64k", "-c", "write -P 0xc3 40M 3M",
         "-c", "write -P 0x11 48758784 512", str(image)],
        check=True, capture_output=True,
    )  # fmt: skip
    oracle = tmp_path / "q.raw"
    qemu_img("convert", "-f", "vhdx", "-O", "raw", image, oracle)
    assert read_all(image) == oracle.read_bytes()
    assert inspect(image).format == "vhdx" and inspect(image).virtual_size == 48 * MiB
    assert check(image).ok
    with open_disk(image, writable=True) as disk:  # and write into it as QEMU would see it
        disk.write(2 * MiB - 100, b"\x77" * 300)
    qemu_img("convert", "-f", "vhdx", "-O", "raw", image, tmp_path / "q2.raw")
    assert (tmp_path / "q2.raw").read_bytes() == read_all(image)


def test_new_disks_match_their_request(tmp_path: Path) -> None:
    new_vhdx_dynamic(tmp_path / "d.vhdx", 100 * MiB + 1)
    new_vhdx_fixed(tmp_path / "f.vhdx", 10 * MiB, block_size=MiB)
    d, f = qemu_info(tmp_path / "d.vhdx", "vhdx"), qemu_info(tmp_path / "f.vhdx", "vhdx")
    assert d["virtual-size"] == 100 * MiB + 512 and d["cluster-size"] == 32 * MiB
    assert f["virtual-size"] == 10 * MiB and f["cluster-size"] == MiB
    assert (tmp_path / "d.vhdx").stat().st_size == 4 * MiB  # header, log, metadata, BAT only
    assert (tmp_path / "f.vhdx").stat().st_blocks * 512 >= 10 * MiB  # allocated up front
    assert inspect(tmp_path / "f.vhdx").disk_type == "fixed"
    with pytest.raises(InvalidDiskArgument, match="1 MiB to 256 MiB"):
        new_vhdx_dynamic(tmp_path / "x.vhdx", MiB, block_size=512 * 1024)
    assert not (tmp_path / "x.vhdx").exists()


def test_conversions_between_vhd_vhdx_and_raw_keep_data_and_holes(tmp_path: Path) -> None:
    model = bytearray(40 * MiB)
    model[3 * MiB : 3 * MiB + 5000] = b"\xaa" * 5000  # data in block 3 only (1 MiB blocks)
    model[39 * MiB + 7 : 39 * MiB + 99] = b"\xbb" * 92  # and in block 39
    raw = write_raw(tmp_path / "ref.raw", model)
    convert(raw, tmp_path / "a.vhdx", "dynamic", block_size=MiB)
    convert(tmp_path / "a.vhdx", tmp_path / "b.vhd", "dynamic", block_size=MiB)
    convert(tmp_path / "b.vhd", tmp_path / "c.vhdx", "dynamic")
    convert(tmp_path / "c.vhdx", tmp_path / "d.raw", "raw")
    assert allocated_blocks(tmp_path / "a.vhdx") == 2
    assert allocated_blocks(tmp_path / "b.vhd") == 2
    assert inspect(tmp_path / "c.vhdx").block_size == 32 * MiB  # VHDX default for a VHD source
    assert allocated_blocks(tmp_path / "c.vhdx") == 2
    assert (tmp_path / "d.raw").read_bytes() == bytes(model)
    assert (tmp_path / "d.raw").stat().st_blocks * 512 <= 4 * MiB  # of 40: holes stay holes
    assert qemu_same(raw, tmp_path / "c.vhdx", "vhdx")


def test_differencing_chain_reads_through_parents_and_flattens(tmp_path: Path) -> None:
    base, mid, top = tmp_path / "base.vhdx", tmp_path / "mid.avhdx", tmp_path / "top.avhdx"
    model = bytearray(make_pattern(20 * MiB, seed=5, runs=6))
    convert(write_raw(tmp_path / "ref.raw", model), base, "dynamic", block_size=MiB)
    new_differencing(mid, base)
    with open_disk(mid, writable=True) as disk:
        disk.write(5 * MiB + 512, b"\x01" * 4096)
    new_differencing(top, mid)
    with open_disk(top, writable=True) as disk:
        disk.write(5 * MiB + 1024, b"\x02" * 1000)  # unaligned: merged with mid's sectors
        disk.write(19 * MiB, b"\x03" * MiB)
    model[5 * MiB + 512 : 5 * MiB + 4608] = b"\x01" * 4096
    model[5 * MiB + 1024 : 5 * MiB + 2024] = b"\x02" * 1000
    model[19 * MiB : 20 * MiB] = b"\x03" * MiB
    assert read_all(top) == bytes(model)
    info = inspect(top)
    assert info.disk_type == "differencing" and [p.path for p in info.chain] == [
        str(mid), str(base)]  # fmt: skip
    # libvhdi (20260901) does not take our parent_linkage (parent identifier reads as
    # zeros), so the chain is checked against the model and QEMU reads the flattened copy.
    convert(top, tmp_path / "flat.vhdx", "dynamic")
    assert qemu_same(write_raw(tmp_path / "model.raw", model), tmp_path / "flat.vhdx", "vhdx")
    assert read_all(base) == bytes(make_pattern(20 * MiB, seed=5, runs=6))  # parents untouched


def test_cli_creates_inspects_converts_and_checks_vhdx(tmp_path: Path) -> None:
    run = CliRunner().invoke
    disk = tmp_path / "new.vhdx"
    res = run(disk_group, ["new", str(disk), "--size", "64"])
    assert res.exit_code == 0, res.output
    assert qemu_info(disk, "vhdx")["virtual-size"] == 64 * MiB
    res = run(disk_group, ["inspect", str(disk)])
    assert "format: vhdx" in res.output and "block size: 33554432" in res.output
    res = run(disk_group, ["convert", str(disk), str(tmp_path / "copy.vhd")])
    assert res.exit_code == 0 and detect_format(tmp_path / "copy.vhd") == "vpc"
    res = run(disk_group, ["check", str(disk)])
    assert res.exit_code == 0 and "no errors found" in res.output
    res = run(disk_group, ["new", str(tmp_path / "child.avhdx"), "--parent", str(disk)])
    assert res.exit_code == 0 and inspect(tmp_path / "child.avhdx").disk_type == "differencing"
    res = run(
        disk_group, ["new", str(tmp_path / "bad.vhdx"), "--size", "8", "--block-size", "512K"]
    )
    assert res.exit_code == 2 and "1 MiB to 256 MiB" in res.output
    assert not (tmp_path / "bad.vhdx").exists()


def make_chain(folder: Path) -> tuple[Path, Path, bytearray]:
    """base.vhdx <- child.avhdx with changes in the child; returns both and the content."""
    base, child = folder / "base.vhdx", folder / "child.avhdx"
    model = bytearray(make_pattern(12 * MiB, seed=11, runs=4))
    convert(write_raw(folder / "ref.raw", model), base, "dynamic", block_size=MiB)
    new_differencing(child, base)
    with open_disk(child, writable=True) as disk:
        disk.write(3 * MiB + 4096, b"\x44" * 70_000)
        disk.write(11 * MiB, bytes(MiB))  # zeros over the parent's data
    model[3 * MiB + 4096 : 3 * MiB + 4096 + 70_000] = b"\x44" * 70_000
    model[11 * MiB : 12 * MiB] = bytes(MiB)
    return base, child, model


def test_avhdx_merges_into_its_parent(tmp_path: Path) -> None:
    base, child, model = make_chain(tmp_path)
    assert merge(child, into_parent=True) == base
    assert not child.exists()
    assert read_all(base) == bytes(model)
    assert qemu_same(write_raw(tmp_path / "model.raw", model), base, "vhdx")
    assert check(base).ok


@pytest.mark.parametrize("name", ["flat.vhdx", "flat.vhd"])
def test_avhdx_chain_flattens_into_a_new_disk(tmp_path: Path, name: str) -> None:
    _, child, model = make_chain(tmp_path)
    out = merge(child, output=tmp_path / name)
    fmt = "vhdx" if name.endswith("x") else "vpc"
    assert qemu_same(write_raw(tmp_path / "model.raw", model), out, fmt)
    assert child.exists() and inspect(out).disk_type == "dynamic"


def test_compact_gives_back_zero_blocks(tmp_path: Path) -> None:
    path = tmp_path / "c.vhdx"
    new_vhdx_dynamic(path, 10 * MiB, block_size=MiB)
    with open_disk(path, writable=True) as disk:
        for b in range(10):
            disk.write(b * MiB, bytes([b + 1]) * 512)
        for b in (1, 2, 5):
            disk.write(b * MiB, bytes(512))  # now all zeros again
        expect = disk.read(0, disk.size)
    result = compact(path)
    assert result.blocks_freed == 3 and result.file_size_after == result.file_size_before - 3 * MiB
    assert read_all(path) == expect and check(path).ok
    assert qemu_same(write_raw(tmp_path / "e.raw", expect), path, "vhdx")
    _, child, model = make_chain(tmp_path)
    assert compact(child).blocks_freed == 1  # block 11: zeros over the parent's data
    assert read_all(child) == bytes(model)


def test_partially_present_blocks_read_through_the_sector_bitmap(tmp_path: Path) -> None:
    """Hyper-V's AVHDX blocks may be PARTIALLY_PRESENT (MS-VHDX §2.5.1.1): present sectors
    come from the child (bit set in the LSB-first sector bitmap), the rest from the parent."""
    _, child, model = make_chain(tmp_path)
    with open_disk(child) as disk:
        assert isinstance(disk, VhdxImage)
        bat_at, cr = disk.s.bat_region.file_offset, disk.chunk_ratio
        end = disk.file.size()
    block, own = 7, os.urandom(MiB)
    bitmap = bytearray(MiB)
    first = block * MiB // 512  # block 7's sectors within chunk 0
    bitmap[(first + 8) // 8] = 0xFF  # sectors 8..15 of the block are present
    bitmap[(first + 20) // 8] |= 1 << ((first + 20) % 8)  # and sector 20
    with open(child, "r+b") as f:
        f.seek(end)
        f.write(own + bitmap)  # payload block, then the sector bitmap block
        f.seek(bat_at + (block + block // cr) * 8)
        f.write(bat_entry(PAYLOAD_PARTIALLY_PRESENT, end).to_bytes(8, "little"))
        f.seek(bat_at + cr * 8)  # the chunk's sector bitmap entry follows its payload entries
        f.write(bat_entry(SB_PRESENT, end + MiB).to_bytes(8, "little"))
    expect = bytearray(model)
    for sector in (*range(8, 16), 20):
        at = block * MiB + sector * 512
        expect[at : at + 512] = own[sector * 512 : sector * 512 + 512]
    assert read_all(child) == bytes(expect) and check(child).ok
    with open_disk(child, writable=True) as disk:  # a write marks its sectors present
        disk.write(block * MiB + 30 * 512, b"\x5e" * 1024)
    expect[block * MiB + 30 * 512 : block * MiB + 32 * 512] = b"\x5e" * 1024
    assert read_all(child) == bytes(expect)
    convert(child, tmp_path / "flat.vhdx", "dynamic")
    assert qemu_same(write_raw(tmp_path / "e.raw", expect), tmp_path / "flat.vhdx", "vhdx")
    with open(child, "r+b") as f:  # without its sector bitmap the block is unreadable
        f.seek(bat_at + cr * 8)
        f.write(bytes(8))
    assert [p.code for p in check(child).problems] == ["sector_bitmap_missing"]

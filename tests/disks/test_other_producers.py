"""VHDs written by other producers (Virtual PC, old QEMU, disk2vhd), with qemu-img as oracle.

The odd images are made here: one of our VHDs with its footer's creator application
(and geometry) rewritten, or files cut short, exactly as those producers leave them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from viridian.disks import (
    CorruptDisk,
    DiskError,
    check,
    convert,
    expand,
    inspect,
    new_dynamic,
    new_fixed,
    open_disk,
)
from viridian.disks.vhd_layout import FOOTER_SIZE, chs_geometry

from .helpers import MiB, qemu_img, qemu_info, write_raw

VIRIDIAN = Path(sys.executable).with_name("viridian")


def set_footer(path: Path, **fields: object) -> None:
    """Rewrite both footers of the VHD at ``path`` with ``fields`` changed (checksum fixed)."""
    with open_disk(path, writable=True, lock=False) as disk:
        footer = replace(disk.footer, **fields)  # type: ignore[attr-defined]
        size = disk.file.size()
        disk.file.pwrite(footer.pack(), size - FOOTER_SIZE)
        if disk.disk_type != "fixed":
            disk.file.pwrite(footer.pack(), 0)


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VIRIDIAN), *map(str, args)], capture_output=True, text=True, timeout=120
    )


CREATORS = [b"vpc ", b"qemu", b"d2v\0", b"vbox", b"win ", b"qem2", b"d2v ", b"tap\0"]


@pytest.mark.parametrize("kind", ["fixed", "dynamic"])
@pytest.mark.parametrize("creator", CREATORS, ids=lambda c: c.decode().replace("\0", "0"))
def test_virtual_size_is_the_size_qemu_sees(tmp_path: Path, kind: str, creator: bytes) -> None:
    """Virtual PC's case: current size 2 MiB above what its CHS geometry gives."""
    path = tmp_path / "d.vhd"
    (new_fixed if kind == "fixed" else new_dynamic)(path, 66 * MiB)
    set_footer(path, creator_app=creator, geometry=chs_geometry(64 * MiB))
    qemu_size = qemu_info(path)["virtual-size"]
    info = inspect(path)
    assert info.virtual_size == qemu_size
    with open_disk(path) as disk:
        assert disk.size == qemu_size
    assert info.size_source == ("geometry" if qemu_size != 66 * MiB else "current_size")


def test_a_virtual_pc_disk_converts_to_the_size_and_data_qemu_sees(tmp_path: Path) -> None:
    path, raw = tmp_path / "vpc.vhd", tmp_path / "out.raw"
    new_dynamic(path, 66 * MiB)
    with open_disk(path, writable=True) as disk:
        disk.write(60 * MiB, b"\xab" * MiB)
    set_footer(path, creator_app=b"vpc ", geometry=chs_geometry(64 * MiB))
    convert(path, raw, "raw")
    assert raw.stat().st_size == int(str(qemu_info(path)["virtual-size"])) < 66 * MiB
    qemu_img("compare", "-f", "vpc", "-F", "raw", path, raw)


@pytest.mark.parametrize("subformat", ["fixed", "dynamic"])
def test_expand_of_a_qemu_created_vhd_gives_qemu_the_same_size(
    tmp_path: Path, subformat: str
) -> None:
    path = tmp_path / "q.vhd"
    qemu_img("create", "-q", "-f", "vpc", "-o", f"subformat={subformat}", path, "64M")
    assert inspect(path).creator_application == "qemu"
    subprocess.run(["qemu-io", "-f", "vpc", "-c", "write -P 0x5a 0 1M", str(path)],
                   check=True, capture_output=True)  # fmt: skip
    expand(path, 100 * MiB)
    assert inspect(path).virtual_size == qemu_info(path)["virtual-size"] == 100 * MiB
    with open_disk(path) as disk:
        assert disk.read(0, MiB) == b"\x5a" * MiB
        assert disk.read(64 * MiB - 4096, 36 * MiB + 4096) == bytes(36 * MiB + 4096)


def test_expand_zeroes_the_hidden_tail_of_a_geometry_sized_disk(tmp_path: Path) -> None:
    """Bytes past the CHS size of a Virtual PC disk must not surface when it grows."""
    path = tmp_path / "vpc.vhd"
    new_fixed(path, 66 * MiB)
    with open(path, "r+b") as f:
        f.seek(65 * MiB)
        f.write(b"\xee" * MiB)
    set_footer(path, creator_app=b"vpc ", geometry=chs_geometry(64 * MiB))
    visible = inspect(path).virtual_size
    expand(path, 70 * MiB)
    assert qemu_info(path)["virtual-size"] == 70 * MiB
    out = qemu_img("convert", "-f", "vpc", "-O", "raw", path, tmp_path / "o.raw")
    assert out == ""
    data = (tmp_path / "o.raw").read_bytes()
    assert len(data) == 70 * MiB and data[visible:] == bytes(70 * MiB - visible)


def test_raw_output_keeps_holes_for_zero_filled_blocks(tmp_path: Path) -> None:
    """A disk2vhd-style image: every block allocated, most of them zero-filled."""
    path, out = tmp_path / "d2v.vhd", tmp_path / "out.raw"
    new_dynamic(path, 64 * MiB)
    with open_disk(path, writable=True) as disk:
        for block in range(32):
            disk.write(block * 2 * MiB, b"\x01" * 2 * MiB)  # allocates the block
            keep = 4096 if block == 5 else 0  # block 5 keeps 4 KiB of data
            disk.write(block * 2 * MiB + keep, bytes(2 * MiB - keep))
    set_footer(path, creator_app=b"d2v\0")
    assert inspect(path).blocks_allocated == 32
    convert(path, out, "raw")
    qemu_img("convert", "-f", "vpc", "-O", "raw", path, tmp_path / "q.raw")
    ours = out.stat().st_blocks * 512
    theirs = (tmp_path / "q.raw").stat().st_blocks * 512
    assert ours <= max(theirs, 64 * 1024), (ours, theirs)
    qemu_img("compare", "-f", "vpc", "-F", "raw", path, out)


def test_an_empty_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "empty.vhd"
    path.write_bytes(b"")
    with pytest.raises(DiskError, match=r"empty\.vhd.*empty \(0 bytes\)"):
        inspect(path)
    with pytest.raises(DiskError, match=r"empty \(0 bytes\)"):
        convert(path, tmp_path / "o.vhd")
    assert not (tmp_path / "o.vhd").exists()
    res = cli("disk", "check", path)
    assert res.returncode == 2 and "empty (0 bytes)" in res.stderr, res


@pytest.mark.parametrize("keep", [1, 100, 511])
def test_a_fixed_vhd_cut_in_its_footer_is_not_taken_for_raw(tmp_path: Path, keep: int) -> None:
    path = tmp_path / "cut.vhd"
    new_fixed(path, 8 * MiB)
    os.truncate(path, 8 * MiB + keep)
    msg = rf"cut\.vhd: .*cut inside its VHD footer \({keep} of 512 bytes"
    with pytest.raises(CorruptDisk, match=msg):
        inspect(path)
    with pytest.raises(CorruptDisk, match=msg):
        convert(path, tmp_path / "o.raw", "raw")
    assert not (tmp_path / "o.raw").exists()
    res = cli("disk", "inspect", path)
    assert res.returncode == 2 and f"({keep} of 512 bytes" in res.stderr, res
    with pytest.raises(CorruptDisk, match=msg):
        check(path)


def test_a_raw_image_of_odd_size_still_opens_as_raw(tmp_path: Path) -> None:
    path = write_raw(tmp_path / "r.img", b"\x07" * (MiB + 100))
    assert inspect(path).disk_type == "raw"


@pytest.fixture
def unwritable(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can create files in (immutable for root, mode 555 otherwise)."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot make a folder immutable here (chattr +i)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
        folder.chmod(0o755)


def test_unwritable_destination_is_named_not_the_temporary_file(
    tmp_path: Path, unwritable: Path
) -> None:
    src = write_raw(tmp_path / "s.raw", b"\x01" * MiB)
    dst = unwritable / "o.vhd"
    res = cli("disk", "convert", src, dst)
    assert res.returncode == 2, res
    assert f"{dst}: cannot create the file: " in res.stderr, res.stderr
    assert "choose a folder you can write to" in res.stderr
    assert ".partial" not in res.stderr and list(unwritable.iterdir()) == []


def test_inspect_shows_a_nul_padded_creator_without_the_nul(tmp_path: Path) -> None:
    path = tmp_path / "d2v.vhd"
    new_dynamic(path, 8 * MiB)
    set_footer(path, creator_app=b"d2v\0")
    res = cli("disk", "inspect", path)
    assert res.returncode == 0, res
    assert "\0" not in res.stdout
    assert "creator application: d2v\n" in res.stdout
    assert "size source: geometry" in res.stdout
    assert inspect(path).creator_application == "d2v"

"""VHDX expand past what the BAT region holds: the BAT moves to the end of the file and
both region table copies switch to it in one log entry (MS-VHDX §2.2.3, §2.3)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from viridian.disks import check, expand, new_vhdx_dynamic, open_disk
from viridian.disks.fileio import record_writes
from viridian.disks.vhdx import VhdxImage

from .helpers import MiB, qemu_img, qemu_info

GiB = 1024 * MiB
OLD, NEW = 120 * GiB, 200 * GiB  # 1 MiB blocks: the 1 MiB BAT region holds ~128 GiB
SPOTS = [(0, b"\x11"), (7 * GiB + 512, b"\x22"), (OLD - MiB, b"\x33")]


def sparse_copy(src: Path, dst: Path) -> None:
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)


def bat_region(path: Path) -> tuple[int, int]:
    with open_disk(path) as disk:
        assert isinstance(disk, VhdxImage)
        return disk.s.bat_region.file_offset, disk.s.bat_region.length


def spots_hold_data(path: Path, *, writable: bool = False) -> int:
    """The virtual size; asserts every spot reads its data and past the old end zeros."""
    with open_disk(path, writable=writable) as disk:
        for offset, byte in SPOTS:
            assert disk.read(offset, 4096) == byte * 4096
        if disk.size > OLD:
            assert disk.read(OLD, MiB) == bytes(MiB) and disk.read(NEW - MiB, MiB) == bytes(MiB)
        return disk.size


def test_expand_beyond_the_bat_region_moves_the_bat_safely(tmp_path: Path) -> None:
    path = tmp_path / "big.vhdx"
    new_vhdx_dynamic(path, OLD, MiB)
    with open_disk(path, writable=True) as disk:
        for offset, byte in SPOTS:
            disk.write(offset, byte * 4096)
    old_bat = bat_region(path)
    pristine = tmp_path / "pristine.vhdx"
    sparse_copy(path, pristine)
    with record_writes() as log:
        expand(path, NEW)
    assert bat_region(path)[1] > old_bat[1] and bat_region(path)[0] != old_bat[0]
    assert spots_hold_data(path) == NEW and check(path).ok
    assert qemu_info(path, "vhdx")["virtual-size"] == NEW
    assert "No errors" in qemu_img("check", "-f", "vhdx", path)
    with open_disk(path, writable=True) as disk:  # the grown part is writable
        disk.write(NEW - 4096, b"\x44" * 4096)
    assert qemu_img("map", "--output=json", "-f", "vhdx", path)
    res = subprocess.run(["qemu-io", "-f", "vhdx", "-r", "-c", f"read -P 0x44 {NEW - 4096} 4k",
                          str(path)], capture_output=True, text=True)  # fmt: skip
    assert res.returncode == 0 and "Pattern verification failed" not in res.stdout
    for k in range(len(log) + 1):  # a crash after any prefix: the old or the new disk
        crashed = tmp_path / "crashed.vhdx"
        sparse_copy(pristine, crashed)
        fd = os.open(crashed, os.O_RDWR)
        for rec in log[:k]:
            if rec.data is None:
                os.ftruncate(fd, rec.offset)
            else:
                os.pwrite(fd, rec.data, rec.offset)
        os.close(fd)
        assert spots_hold_data(crashed, writable=True) in (OLD, NEW), f"after {k} writes"
        assert check(crashed).ok, f"after {k} of {len(log)} writes"
        crashed.unlink()

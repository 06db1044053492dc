"""convert copies only the non-zero pieces of a source (viridian.disks.convert.nonzero_pieces):
data that starts after zeros is still copied, zeros written into a file stay holes in the
output, tiny VHD blocks convert, and files the kernel cannot copy between (EXDEV) are
copied through user space with the same result."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from viridian.disks import convert, open_disk

from .helpers import MiB

GRAIN = 64 * 1024


def data_bytes(path: Path) -> int:
    """Bytes the file has stored on disk."""
    return path.stat().st_blocks * 512


def tricky_raw(path: Path) -> bytes:
    """A 4 MiB raw image whose data pieces are hard to spot: one byte at the end of a
    grain (after 64 KiB - 1 zeros, written ones: not a hole), 1 MiB of written zeros,
    one byte just past a 4 KiB probe, and random data; holes elsewhere."""
    model = bytearray(4 * MiB)
    model[2 * GRAIN - 1] = 0x5A  # the last byte of grain 1; grain 0 written as zeros
    model[MiB + 4096 + 7] = 0xA5  # after a zero first page
    model[3 * MiB : 3 * MiB + 300_000] = os.urandom(300_000)
    with open(path, "wb") as f:
        f.truncate(len(model))
        for start, stop in ((0, 2 * GRAIN), (MiB, MiB + GRAIN), (3 * MiB, 3 * MiB + 300_000),
                            (MiB + MiB // 2, 2 * MiB + MiB // 2)):  # the last: zeros only
            f.seek(start)
            f.write(model[start:stop])
    return bytes(model)


def read_all(path: Path) -> bytes:
    with open_disk(path) as disk:
        return disk.read(0, disk.size)


@pytest.mark.parametrize("name, kind", [("o.raw", "raw"), ("o.vhd", "dynamic"),
                                        ("o.vhdx", "dynamic"), ("o.vhd", "fixed")])  # fmt: skip
def test_every_data_byte_is_copied_and_written_zeros_stay_holes(
    tmp_path: Path, name: str, kind: str
) -> None:
    model = tricky_raw(tmp_path / "src.raw")
    assert data_bytes(tmp_path / "src.raw") >= 1 * MiB + 300_000  # the zeros are stored
    convert(tmp_path / "src.raw", tmp_path / name, kind)
    assert read_all(tmp_path / name) == model
    if kind != "fixed":  # the grains with data, beyond what an empty disk stores
        empty = tmp_path / "blank.img"
        with open(empty, "wb") as f:
            f.truncate(4 * MiB)
        convert(empty, tmp_path / f"empty{Path(name).suffix}", kind)
        metadata = data_bytes(tmp_path / f"empty{Path(name).suffix}")
        assert data_bytes(tmp_path / name) - metadata <= 5 * GRAIN + 300_000
    back = tmp_path / "back.raw"
    convert(tmp_path / name, back, "raw")
    assert back.read_bytes() == model
    assert data_bytes(back) <= 5 * GRAIN + 300_000  # the 1 MiB of zeros: a hole


@pytest.mark.parametrize("block_size", [512, 4096])
def test_tiny_vhd_blocks_convert_both_ways(tmp_path: Path, block_size: int) -> None:
    model = tricky_raw(tmp_path / "src.raw")
    convert(tmp_path / "src.raw", tmp_path / "d.vhd", "dynamic", block_size=block_size)
    assert read_all(tmp_path / "d.vhd") == model
    convert(tmp_path / "d.vhd", tmp_path / "back.raw", "raw")
    assert (tmp_path / "back.raw").read_bytes() == model


def test_files_the_kernel_cannot_copy_between_are_copied_all_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = tricky_raw(tmp_path / "src.raw")
    convert(tmp_path / "src.raw", tmp_path / "d.vhd", "dynamic")
    refused: list[int] = []

    def cross_device(*args: object) -> int:
        refused.append(1)
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "copy_file_range", cross_device)
    convert(tmp_path / "d.vhd", tmp_path / "back.raw", "raw")
    convert(tmp_path / "src.raw", tmp_path / "x.vhdx", "dynamic")
    assert refused  # the kernel copy was tried, and refused
    assert (tmp_path / "back.raw").read_bytes() == model
    assert read_all(tmp_path / "x.vhdx") == model

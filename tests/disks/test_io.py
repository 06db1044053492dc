"""Reading and writing at any byte offset, checked against an in-memory model and oracles."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from viridian.disks import (
    InvalidDiskArgument,
    convert,
    new_differencing,
    new_dynamic,
    new_fixed,
    open_disk,
)
from viridian.disks.vhd import SparseVhd

from .helpers import MiB, make_pattern, qemu_same, vhdi_read, write_raw

SIZE = 9 * MiB + 3 * 512  # not a multiple of any block size


def random_writes(path: Path, model: bytearray, seed: int, count: int = 60) -> None:
    """Apply the same random writes (some zeros, some unaligned) to the disk and model."""
    rnd = random.Random(seed)
    with open_disk(path, writable=True) as disk:
        for i in range(count):
            n = rnd.choice([1, 511, 512, 4096, 70_000, 2 * MiB + 17, 3 * MiB])
            off = rnd.randrange(0, len(model) - n + 1)
            data = bytes(n) if i % 5 == 0 else rnd.randbytes(n)
            disk.write(off, data)
            model[off : off + n] = data
            probe = rnd.randrange(0, len(model) - 4096)
            assert disk.read(probe, 4096) == model[probe : probe + 4096]
        assert disk.read(0, len(model)) == model


@pytest.mark.parametrize("block_size", [512 * 1024, 2 * MiB, 8 * MiB])
def test_dynamic_random_writes_read_back_everywhere(tmp_path: Path, block_size: int) -> None:
    path, model = tmp_path / "d.vhd", bytearray(SIZE)
    new_dynamic(path, SIZE, block_size)
    random_writes(path, model, seed=block_size)
    with open_disk(path) as disk:
        assert disk.read(0, SIZE) == model
    assert vhdi_read(path) == (SIZE, bytes(model))
    raw = write_raw(tmp_path / "ref.raw", model)
    assert qemu_same(raw, path)


def test_fixed_random_writes_read_back_everywhere(tmp_path: Path) -> None:
    path, model = tmp_path / "f.vhd", bytearray(SIZE)
    new_fixed(path, SIZE)
    random_writes(path, model, seed=3)
    assert vhdi_read(path) == (SIZE, bytes(model))
    assert qemu_same(write_raw(tmp_path / "ref.raw", model), path)


def test_differencing_random_writes_over_a_parent(tmp_path: Path) -> None:
    model = make_pattern(SIZE, seed=11)
    convert(write_raw(tmp_path / "ref.raw", model), tmp_path / "base.vhd", "dynamic")
    new_differencing(tmp_path / "child.vhd", tmp_path / "base.vhd")
    random_writes(tmp_path / "child.vhd", model, seed=5)
    with open_disk(tmp_path / "child.vhd") as disk:
        assert disk.read(0, SIZE) == model
    size, data = vhdi_read(tmp_path / "child.vhd", [tmp_path / "base.vhd"])
    assert (size, data) == (SIZE, bytes(model))


def test_zero_writes_never_allocate_dynamic_blocks(tmp_path: Path) -> None:
    path = tmp_path / "d.vhd"
    new_dynamic(path, 64 * MiB)
    with open_disk(path, writable=True) as disk:
        disk.write(0, bytes(64 * MiB))
        assert isinstance(disk, SparseVhd) and disk.allocated_blocks() == 0
        disk.write(5 * MiB, b"x")
        assert disk.allocated_blocks() == 1


def test_zero_writes_in_a_child_hide_parent_data(tmp_path: Path) -> None:
    """notes §1.8: a zero write over parent data must allocate in a differencing disk."""
    new_dynamic(tmp_path / "p.vhd", 8 * MiB)
    with open_disk(tmp_path / "p.vhd", writable=True) as p:
        p.write(MiB, b"\xaa" * MiB)
    new_differencing(tmp_path / "c.vhd", tmp_path / "p.vhd")
    with open_disk(tmp_path / "c.vhd", writable=True) as c:
        c.write(MiB + 512, bytes(1024))
        c.write(6 * MiB, bytes(512))  # parent has nothing there: no allocation
        assert isinstance(c, SparseVhd) and c.allocated_blocks() == 1
        assert c.read(MiB, 2048) == b"\xaa" * 512 + bytes(1024) + b"\xaa" * 512


def test_reads_and_writes_outside_the_disk_are_refused(tmp_path: Path) -> None:
    new_dynamic(tmp_path / "d.vhd", MiB)
    with open_disk(tmp_path / "d.vhd", writable=True) as disk:
        with pytest.raises(InvalidDiskArgument, match="outside the disk"):
            disk.read(MiB - 1, 2)
        with pytest.raises(InvalidDiskArgument, match="outside the disk"):
            disk.write(-1, b"x")
    with (
        open_disk(tmp_path / "d.vhd") as disk,
        pytest.raises(InvalidDiskArgument, match="read-only"),
    ):
        disk.write(0, b"x")


def test_data_runs_skip_holes_of_raw_and_unallocated_blocks(tmp_path: Path) -> None:
    model = bytearray(16 * MiB)
    model[3 * MiB : 3 * MiB + 10] = b"z" * 10
    raw = write_raw(tmp_path / "r.raw", model)
    with open_disk(raw) as disk:
        runs = list(disk.data_runs())
    assert sum(b - a for a, b in runs) < 2 * MiB and any(a <= 3 * MiB < b for a, b in runs)
    convert(raw, tmp_path / "d.vhd", "dynamic")
    with open_disk(tmp_path / "d.vhd") as disk:
        assert list(disk.data_runs()) == [(2 * MiB, 4 * MiB)]

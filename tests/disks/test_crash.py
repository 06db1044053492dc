"""Crash consistency: replay every prefix of an operation's writes onto a copy.

For each prefix the disk must open, and every block that the operation allocates must
read as either its content before the operation or its content after it (a crash may
leak space, never mix). Blocks that already had space are overwritten in place, so,
exactly like a physical disk, each of their sectors reads old or new.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from viridian.disks import compact, convert, expand, merge, new_differencing, open_disk
from viridian.disks.fileio import WriteRecord, record_writes
from viridian.disks.vhd import SparseVhd
from viridian.disks.vhd_layout import UNALLOCATED

from .helpers import MiB, make_pattern, write_raw

BS = 512 * 1024
SIZE = 8 * MiB


def view(path: Path) -> bytes:
    with open_disk(path) as disk:
        return disk.read(0, disk.size)


def allocated(path: Path) -> set[int]:
    with open_disk(path) as disk:
        assert isinstance(disk, SparseVhd) and disk.block_size == BS
        return {b for b, e in enumerate(disk.bat) if e != UNALLOCATED}


def sectors_old_or_new(block: bytes, before: bytes, after: bytes) -> bool:
    return all(
        block[i : i + 512] in (before[i : i + 512], after[i : i + 512])
        for i in range(0, len(block), 512)
    )


def blocks(data: bytes) -> list[bytes]:
    return [data[i : i + BS] for i in range(0, len(data), BS)]


def apply(records: list[WriteRecord], src: Path, dst: Path) -> None:
    """Copy the files of ``src`` to ``dst`` and replay ``records`` on the copies."""
    shutil.copytree(src, dst)
    for rec in records:
        target = dst / Path(rec.path).name
        if rec.data is None:
            os.truncate(target, rec.offset)
            continue
        with open(target, "r+b") as f:
            f.seek(rec.offset)
            f.write(rec.data)


def assert_every_prefix_consistent(
    folder: Path, target: str, operation: Callable[[], object], tmp: Path
) -> int:
    """Run ``operation`` recording its writes, then check every prefix; returns #writes."""
    pristine = tmp / "pristine"
    shutil.copytree(folder, pristine)
    old = blocks(view(folder / target))
    in_place = allocated(folder / target)
    with record_writes() as log:
        operation()
    new = blocks(view(folder / target))
    assert len(log) > 2
    for k in range(len(log) + 1):
        replay = tmp / f"replay{k}"
        apply(log[:k], pristine, replay)
        got = blocks(view(replay / target))
        for i, block in enumerate(got):
            before = old[i] if i < len(old) else bytes(len(block))
            after = new[i] if i < len(new) else bytes(len(block))
            ok = block in (before, after)
            if i in in_place:
                ok = ok or sectors_old_or_new(block, before, after)
            assert ok, f"after {k} of {len(log)} writes block {i} is neither old nor new"
        shutil.rmtree(replay)
    return len(log)


def make_dynamic(folder: Path, seed: int) -> Path:
    folder.mkdir(exist_ok=True)
    raw = write_raw(folder.parent / f"ref{seed}.raw", make_pattern(SIZE, seed=seed, runs=6))
    convert(raw, folder / "d.vhd", "dynamic", block_size=BS)
    return folder / "d.vhd"


def test_a_write_allocating_blocks_is_crash_consistent(tmp_path: Path) -> None:
    path = make_dynamic(tmp_path / "disk", 1)

    def write() -> None:
        with open_disk(path, writable=True) as disk:
            disk.write(BS // 2 + 5, os.urandom(5 * BS))

    assert_every_prefix_consistent(path.parent, "d.vhd", write, tmp_path)


def test_a_differencing_write_is_crash_consistent(tmp_path: Path) -> None:
    path = make_dynamic(tmp_path / "disk", 2)
    new_differencing(path.parent / "c.vhd", path)
    with open_disk(path.parent / "c.vhd", writable=True) as c:
        c.write(3 * BS + 4096, b"\x77" * 8192)  # a partial block to extend later

    def write() -> None:
        with open_disk(path.parent / "c.vhd", writable=True) as disk:
            disk.write(2 * BS + 1000, os.urandom(3 * BS))

    assert_every_prefix_consistent(path.parent, "c.vhd", write, tmp_path)


def test_compact_is_crash_consistent(tmp_path: Path) -> None:
    path = make_dynamic(tmp_path / "disk", 3)
    with open_disk(path, writable=True) as disk:
        for b in (0, 3, 4):
            disk.write(b * BS, b"\1" * BS)
            disk.write(b * BS, bytes(BS))
    n = assert_every_prefix_consistent(path.parent, "d.vhd", lambda: compact(path), tmp_path)
    assert n > 4


def test_expand_with_a_growing_bat_is_crash_consistent(tmp_path: Path) -> None:
    path = make_dynamic(tmp_path / "disk", 4)
    grow = lambda: expand(path, 300 * MiB)  # noqa: E731  (BAT grows past block 0)
    assert_every_prefix_consistent(path.parent, "d.vhd", grow, tmp_path)


@pytest.mark.parametrize("seed", [5, 6])
def test_merge_into_parent_is_crash_consistent(tmp_path: Path, seed: int) -> None:
    path = make_dynamic(tmp_path / "disk", seed)
    child = path.parent / "c.vhd"
    new_differencing(child, path)
    with open_disk(child, writable=True) as c:
        c.write(BS - 512, os.urandom(2 * BS))
        c.write(6 * BS + 8192, bytes(20000))
        c.write(SIZE - BS, os.urandom(BS))
    expected = view(child)
    assert_every_prefix_consistent(
        path.parent, "d.vhd", lambda: merge(child, into_parent=True), tmp_path
    )
    assert view(path) == expected

"""Compacting a dynamic or differencing VHD in place: give back all-zero blocks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidDiskArgument
from .image import DiskImage, is_zero
from .progress import Progress, no_progress
from .vhd import SparseVhd, move_blocks, open_disk
from .vhd_layout import FOOTER_SIZE, SECTOR, UNALLOCATED


@dataclass(frozen=True)
class CompactResult:
    """Blocks given back and the file size before and after."""

    blocks_freed: int
    file_size_before: int
    file_size_after: int


def compact(path: Path | str, progress: Progress = no_progress) -> CompactResult:
    """Drop every block that reads as zeros and pack the rest; the content is unchanged.

    In a differencing disk a block is dropped only when its parent also reads zeros
    there. Raises InvalidDiskArgument for fixed/raw disks or a saved-state disk.
    """
    with open_disk(path, writable=True) as disk:
        vhd = _sparse(disk, "compact")
        before = vhd.file.size()
        freed = free_zero_blocks(vhd, progress)
        pack_blocks(vhd)
        return CompactResult(freed, before, vhd.file.size())


def _sparse(disk: DiskImage, what: str) -> SparseVhd:
    if not isinstance(disk, SparseVhd):
        raise InvalidDiskArgument(
            f"{disk.path}: {what} works on dynamic and differencing VHDs, not {disk.disk_type}"
        )
    if disk.footer.saved_state:
        raise InvalidDiskArgument(f"{disk.path}: the disk is in saved state; {what} refused")
    return disk


def free_zero_blocks(vhd: SparseVhd, progress: Progress) -> int:
    """Unallocate blocks that read as zeros (BAT entries only); returns how many."""
    bs, size = vhd.block_size, vhd.size
    buf = bytearray(bs)
    freed: list[int] = []
    for b in range(vhd.block_count):
        progress(min((b + 1) * bs, size), size)
        if vhd.bat[b] == UNALLOCATED:
            continue
        view = memoryview(buf)[: min(bs, size - b * bs)]
        vhd.readinto(b * bs, view)
        if is_zero(view) and _parent_zero(vhd, b * bs, view):
            freed.append(b)
    for b in freed:
        vhd.bat[b] = UNALLOCATED
    if freed:
        vhd.write_bat_entries(freed[0], freed[-1] + 1)
        vhd.file.sync()
    return len(freed)


def _parent_zero(vhd: SparseVhd, offset: int, scratch: memoryview) -> bool:
    if vhd.parent is None:
        return True
    if next(iter(vhd.parent.data_runs(offset, offset + len(scratch))), None) is None:
        return True
    vhd.parent.readinto(offset, scratch)
    return is_zero(scratch)


def pack_blocks(vhd: SparseVhd) -> None:
    """Slide live blocks down over freed space, then cut the file after the last one."""
    stride = vhd.bitmap_bytes + vhd.block_size
    live = sorted((e * SECTOR, b) for b, e in enumerate(vhd.bat) if e != UNALLOCATED)
    target = -(-vhd.metadata_end() // SECTOR) * SECTOR
    batch: list[tuple[int, int]] = []
    for old, block in live:
        if batch and target + stride > (vhd.block_offset(batch[0][0]) or 0):
            move_blocks(vhd, batch)
            batch = []
        if old == target or 0 < old - target < stride:
            target = old + stride  # in place, or too close to move safely: keep it
            continue
        batch.append((block, target))
        target += stride
    move_blocks(vhd, batch)
    end = max(target, vhd.metadata_end())
    if end + FOOTER_SIZE < vhd.file.size():
        vhd.file.pwrite(vhd.footer.pack(), end)
        vhd.file.sync()
        vhd.file.truncate(end + FOOTER_SIZE)
    vhd.alloc_pos = end

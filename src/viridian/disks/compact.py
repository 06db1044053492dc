"""Compacting a dynamic or differencing VHD in place: give back all-zero blocks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .detect import sniff
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
    if sniff(Path(path)) == "vhdx":  # VHDX: vhdx_ops
        from .vhdx_ops import compact_vhdx

        return compact_vhdx(Path(path), progress)
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
        if _reads_zero(vhd, b, view) and _parent_zero(vhd, b * bs, view):
            freed.append(b)
    for b in freed:
        vhd.bat[b] = UNALLOCATED
    if freed:
        vhd.write_bat_entries(freed[0], freed[-1] + 1)
        vhd.file.sync()
    return len(freed)


def _reads_zero(vhd: SparseVhd, block: int, scratch: memoryview) -> bool:
    """True when ``block`` reads as zeros; holes in the file's data area are not read."""
    if not vhd.block_is_full(block):
        vhd.readinto(block * vhd.block_size, scratch)
        return is_zero(scratch)
    base = vhd.block_offset(block)
    assert base is not None
    start = base + vhd.bitmap_bytes
    end = start + len(scratch)
    while (run := vhd.file.next_data(start, end)) is not None:
        view = scratch[: run[1] - run[0]]
        if vhd.file.readinto(view, run[0]) < len(view) or not is_zero(view):
            return False
        start = run[1]
    return True


def _parent_zero(vhd: SparseVhd, offset: int, scratch: memoryview) -> bool:
    if vhd.parent is None:
        return True
    if next(iter(vhd.parent.data_runs(offset, offset + len(scratch))), None) is None:
        return True
    vhd.parent.readinto(offset, scratch)
    return is_zero(scratch)


def free_slots(vhd: SparseVhd, live: list[tuple[int, int]]) -> list[int]:
    """Offsets of block-sized gaps between the metadata and the live blocks, ascending."""
    stride = vhd.bitmap_bytes + vhd.block_size
    cursor = -(-vhd.metadata_end() // SECTOR) * SECTOR
    slots: list[int] = []
    for offset, _ in live:
        while cursor + stride <= offset:
            slots.append(cursor)
            cursor += stride
        cursor = max(cursor, offset + stride)
    return slots


def pack_blocks(vhd: SparseVhd) -> None:
    """Move the last blocks into the gaps nearest the front, then cut the file short.

    Only as many blocks move as there are gaps below the last block; each move copies
    into unreferenced space before its BAT entry changes (see ``move_blocks``).
    """
    stride = vhd.bitmap_bytes + vhd.block_size
    live = sorted((e * SECTOR, b) for b, e in enumerate(vhd.bat) if e != UNALLOCATED)
    moves: list[tuple[int, int]] = []
    for slot in free_slots(vhd, live):
        if not live or slot >= live[-1][0]:
            break
        moves.append((live.pop()[1], slot))
    move_blocks(vhd, moves)
    ends = [vhd.metadata_end(), *(o + stride for o, _ in live), *(t + stride for _, t in moves)]
    end = -(-max(ends) // SECTOR) * SECTOR
    if end + FOOTER_SIZE < vhd.file.size():
        vhd.file.pwrite(vhd.footer.pack(), end)
        vhd.file.sync()
        vhd.file.truncate(end + FOOTER_SIZE)
    vhd.alloc_pos = end

"""Merge, compact and expand for VHDX: AVHDX chains merged into their parent or flattened, and
all-zero blocks given back (MS-VHDX §2.5; the same contracts as the VHD operations in
:mod:`.merge` and :mod:`.compact`).

Crash consistency: merging writes into the parent through :class:`.VhdxImage` (data,
barrier, BAT entry), so each parent block reads old or new content until the child is
deleted last. Compacting first marks zero blocks NOT_PRESENT (one aligned 8-byte BAT
write each, after a barrier), then moves the last blocks into the freed slots (copy,
barrier, BAT entry), then truncates: every BAT entry always points at intact data.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from .compact import CompactResult
from .convert import check_target_type, write_image
from .errors import DiskExists, InvalidDiskArgument, ParentLinkError
from .image import is_zero
from .progress import Progress, no_progress
from .space import allocate, require_space
from .vhd_layout import DEFAULT_BLOCK_SIZE as VHD_BLOCK_SIZE
from .vhdx import PRESENT, VhdxImage, open_vhdx, require_vhdx_size
from .vhdx_convert import is_vhdx_target
from .vhdx_layout import (
    BAT_GUID,
    LOG_SECTOR,
    PAYLOAD_FULLY_PRESENT,
    PAYLOAD_NOT_PRESENT,
    PAYLOAD_ZERO,
    REGION1_OFFSET,
    REGION2_OFFSET,
    VIRTUAL_DISK_SIZE_GUID,
    DiskParameters,
    MiB,
    RegionTable,
    bat_entry,
    entry_offset,
)
from .vhdx_log import LogWrite, pack_entry


def own_runs(disk: VhdxImage, block: int) -> Iterator[tuple[int, int]]:
    """Virtual (start, stop) ranges of ``block`` stored in ``disk``'s own file."""
    state, _ = disk.block_state(block)
    start = block * disk.block_size
    stop = min(start + disk.block_size, disk.size)
    if state == PAYLOAD_FULLY_PRESENT:
        yield start, stop
    elif state in PRESENT:
        yield from ((a, z) for present, a, z in disk.sector_runs(start, stop - start, block)
                    if present)  # fmt: skip


def merge_vhdx(child: Path, into_parent: bool, output: Path | None, target_type: str,
               progress: Progress = no_progress) -> Path:  # fmt: skip
    """Merge the differencing VHDX ``child`` into its parent (then delete the child), or
    flatten its chain into the new file ``output`` (VHDX for *.vhdx, else VHD or raw)."""
    if output is not None:
        check_target_type(target_type)
        if output.exists():
            raise DiskExists(f"{output}: already exists; choose a new destination")
        with _differencing(open_vhdx(child)) as disk:
            vhdx = is_vhdx_target(output, target_type)
            write_image(disk, output, target_type,
                        disk.block_size if vhdx else VHD_BLOCK_SIZE, progress)  # fmt: skip
        return output
    return _into_parent(child, progress)


def _differencing(disk: VhdxImage) -> VhdxImage:
    if disk.disk_type != "differencing":
        disk.close()
        raise InvalidDiskArgument(f"{disk.path}: merge needs a differencing VHDX (AVHDX)")
    return disk


def _into_parent(child: Path, progress: Progress) -> Path:
    with _differencing(open_vhdx(child)) as disk:
        parent = disk.parent
        assert isinstance(parent, VhdxImage)
        parent_path, link = parent.path, parent.s.header.data_write_guid
        parent.close()
        with open_vhdx(parent_path, writable=True) as target:
            if target.s.header.data_write_guid != link:
                raise ParentLinkError(f"{parent_path}: changed while opening; merge refused")
            disk.parent = target
            for b in range(disk.block_count):
                for start, stop in own_runs(disk, b):
                    target.write(start, disk.read(start, stop - start))
                progress(min((b + 1) * disk.block_size, disk.size), disk.size)
            target.file.sync()
            disk.parent = None
    child.unlink()
    return parent_path


def compact_vhdx(path: Path, progress: Progress = no_progress) -> CompactResult:
    """Give back the blocks of a dynamic or differencing VHDX that read as zeros.

    In a differencing disk such a block becomes ZERO when its parent has data there
    (so the zeros stay visible), NOT_PRESENT otherwise. Raises InvalidDiskArgument for
    a fixed VHDX.
    """
    with open_vhdx(path, writable=True) as disk:
        if disk.disk_type == "fixed":
            raise InvalidDiskArgument(f"{path}: compact works on dynamic and differencing "
                                      "disks, not fixed")  # fmt: skip
        before = disk.file.size()
        freed = _free_zero_blocks(disk, progress)
        _pack(disk)
        return CompactResult(freed, before, disk.file.size())


def _free_zero_blocks(disk: VhdxImage, progress: Progress) -> int:
    freed = 0
    for b in range(disk.block_count):
        progress(min((b + 1) * disk.block_size, disk.size), disk.size)
        if disk.block_state(b)[0] not in PRESENT:
            continue
        start = b * disk.block_size
        length = min(disk.block_size, disk.size - start)
        if not is_zero(disk.read(start, length)):
            continue
        parent_data = disk.parent is not None and not is_zero(disk.parent.read(start, length))
        state = PAYLOAD_ZERO if parent_data else PAYLOAD_NOT_PRESENT
        disk.file.sync()
        disk.set_entry(disk.bat_index(b), bat_entry(state, 0))
        freed += 1
    disk.file.sync()
    return freed


def _pack(disk: VhdxImage) -> None:
    """Move the last blocks into free 1 MiB-aligned slots nearer the front, then truncate."""
    bs = disk.block_size
    live = sorted((entry_offset(disk.s.bat[disk.bat_index(b)]), b) for b in range(disk.block_count)
                  if disk.block_state(b)[0] in PRESENT)  # fmt: skip
    bitmaps = [entry_offset(e) for i, e in enumerate(disk.s.bat)
               if i % (disk.chunk_ratio + 1) == disk.chunk_ratio and e & 7]  # fmt: skip
    cursor = max(
        disk.s.bat_region.file_offset + disk.s.bat_region.length,
        disk.s.meta_region.file_offset + disk.s.meta_region.length,
        disk.s.header.log_offset + disk.s.header.log_length,
        *(o + MiB for o in bitmaps),
    )
    used = {o for o, _ in live}
    while live:
        while any(cursor < o + bs and o < cursor + bs for o in used):
            cursor += MiB
        if cursor >= live[-1][0]:
            break
        offset, b = live.pop()
        disk.file.copy_from(disk.file, offset, min(bs, disk.file.size() - offset), cursor)
        disk.file.sync()
        state = disk.block_state(b)[0]
        disk.set_entry(disk.bat_index(b), bat_entry(state, cursor))
        used.discard(offset)
        used.add(cursor)
    end = max([cursor if not used else max(used) + bs, *(o + MiB for o in bitmaps)])
    end = max(end, disk.s.bat_region.file_offset + disk.s.bat_region.length,
              disk.s.meta_region.file_offset + disk.s.meta_region.length)  # fmt: skip
    disk.file.sync()
    if end < disk.file.size():
        disk.file.truncate(end)
    disk.alloc_pos = -(-end // MiB) * MiB


def expand_vhdx(path: Path, new_size: int, progress: Progress = no_progress) -> None:
    """Grow a fixed or dynamic VHDX to ``new_size`` (rounded up to 512); new space reads
    zeros. The metadata and BAT changes go through the log (§2.3) as one entry, so a
    crash anywhere leaves the old or the new disk. When the BAT region is too small for
    the new size, a larger BAT is written at the end of the file and made durable first,
    then the log entry switches both region table copies to it (§2.2.3) together with
    the size: before that entry the old BAT rules, after it the new one (the old region
    is left unused). Raises InvalidDiskArgument when the size does not grow or the change
    does not fit in the log (named), or for a differencing disk; NoSpace when a fixed
    disk's growth does not fit on its file system (nothing changed).
    """
    new_size = require_vhdx_size(new_size)
    with open_vhdx(path, writable=True) as disk:
        params = _grown(disk, new_size)
        moved = _bat_place(disk, params)
        extra = params.payload_blocks - disk.block_count if disk.disk_type == "fixed" else 0
        bat = _new_bat(disk, params)
        writes = _region_writes(disk, *moved) if moved else _bat_sectors(disk, bat)
        writes += [_size_sector(disk, new_size), *_tail_zeros(disk)]
        header, end = disk.s.header, max(disk.file.size(), disk.alloc_pos + extra * disk.block_size)
        entry = pack_entry(writes, 1, uuid.uuid4(), end)
        if len(entry) > header.log_length:
            raise InvalidDiskArgument(
                f"{path}: growing to {new_size} needs a {len(entry)}-byte log entry, the log "
                f"holds {header.log_length}; grow in smaller steps (nothing was changed)"
            )
        if extra:
            require_space(path, extra * disk.block_size, created=False)
            allocate(disk.file, path, extra * disk.block_size, disk.alloc_pos, created=False)
        if moved:  # the new BAT is durable before the log entry that points to it
            disk.file.pwrite(bat.tobytes().ljust(moved[1], b"\0"), moved[0])
            disk.file.sync()
        disk.log_and_apply(writes)
    progress(new_size, new_size)


def _grown(disk: VhdxImage, new_size: int) -> DiskParameters:
    if disk.disk_type == "differencing":
        raise InvalidDiskArgument(f"{disk.path}: expand works on fixed and dynamic VHDX disks, "
                                  "not differencing")  # fmt: skip
    if new_size <= disk.size:
        raise InvalidDiskArgument(
            f"{disk.path}: new size {new_size} must be larger than the current {disk.size} "
            "(disks can only grow; nothing was changed)"
        )
    return replace(disk.s.params, virtual_size=new_size)


def _bat_place(disk: VhdxImage, params: DiskParameters) -> tuple[int, int] | None:
    """(file offset, length) of a new, larger BAT region at the 1 MiB aligned end of the
    file when the current one cannot hold ``params``'s entries (``disk.alloc_pos`` moves
    past it); None when it can."""
    needed = params.bat_entries * 8
    if needed <= disk.s.bat_region.length:
        return None
    at, length = disk.alloc_pos, -(-needed // MiB) * MiB
    disk.alloc_pos = at + length
    return at, length


def _new_bat(disk: VhdxImage, params: DiskParameters) -> array[int]:
    """The BAT for ``params``: the current entries, then the new blocks' (a fixed disk's
    new blocks present from ``disk.alloc_pos`` on, a dynamic disk's not present)."""
    bat = array("Q", disk.s.bat)
    bat.extend([0] * (params.bat_entries - len(bat)))
    first_new = disk.block_count
    for b in range(first_new, params.payload_blocks):
        index = b + b // disk.chunk_ratio
        if disk.disk_type == "fixed":
            offset = disk.alloc_pos + (b - first_new) * disk.block_size
            bat[index] = bat_entry(PAYLOAD_FULLY_PRESENT, offset)
        else:
            bat[index] = bat_entry(PAYLOAD_NOT_PRESENT, 0)
    return bat


def _bat_sectors(disk: VhdxImage, bat: array[int]) -> list[LogWrite]:
    """The 4 KiB sectors of the BAT region that cover the new entries of ``bat``."""
    raw = bat.tobytes()
    first_new = disk.block_count
    first = (first_new + first_new // disk.chunk_ratio) * 8 // LOG_SECTOR * LOG_SECTOR
    base = disk.s.bat_region.file_offset
    out = []
    for pos in range(first, len(raw), LOG_SECTOR):
        sector = disk.file.pread(LOG_SECTOR, base + pos)
        chunk = raw[pos : pos + LOG_SECTOR]
        out.append(LogWrite(base + pos, LOG_SECTOR, chunk + sector[len(chunk) :]))
    return out


def _region_writes(disk: VhdxImage, offset: int, length: int) -> list[LogWrite]:
    """The changed 4 KiB sectors of both region table copies, their BAT entry moved to
    (``offset``, ``length``) — one log entry updates both (§2.2.3, §2.3)."""
    entries = tuple(replace(e, file_offset=offset, length=length) if e.guid == BAT_GUID else e
                    for e in disk.s.regions.entries)  # fmt: skip
    raw = RegionTable(entries).pack()
    out = []
    for copy in (REGION1_OFFSET, REGION2_OFFSET):
        for pos in range(0, len(raw), LOG_SECTOR):
            chunk = raw[pos : pos + LOG_SECTOR]
            if disk.file.pread(LOG_SECTOR, copy + pos) != chunk:
                out.append(LogWrite(copy + pos, LOG_SECTOR, chunk))
    return out


def _size_sector(disk: VhdxImage, new_size: int) -> LogWrite:
    """The metadata sector holding the virtual disk size item, with the new size."""
    item = disk.s.metadata.find(VIRTUAL_DISK_SIZE_GUID)
    assert item is not None
    at = disk.s.meta_region.file_offset + item.offset
    start = at // LOG_SECTOR * LOG_SECTOR
    sector = bytearray(disk.file.pread(LOG_SECTOR, start))
    sector[at - start : at - start + 8] = new_size.to_bytes(8, "little")
    return LogWrite(start, LOG_SECTOR, bytes(sector))


def _tail_zeros(disk: VhdxImage) -> list[LogWrite]:
    """Zero the stored bytes of the old last block past the old size (they become visible)."""
    last = disk.block_count - 1
    state, base = disk.block_state(last)
    used = disk.size - last * disk.block_size
    if state not in PRESENT or used == disk.block_size:
        return []
    start = -(-used // LOG_SECTOR) * LOG_SECTOR  # zero descriptors cover whole 4 KiB sectors
    writes = []
    if start > used:
        sector = bytearray(disk.file.pread(LOG_SECTOR, base + start - LOG_SECTOR))
        sector[used - (start - LOG_SECTOR) :] = bytes(start - used)
        writes.append(LogWrite(base + start - LOG_SECTOR, LOG_SECTOR, bytes(sector)))
    if start < disk.block_size:
        writes.append(LogWrite(base + start, disk.block_size - start))
    return writes

"""Expanding (growing) a fixed or dynamic VHD in place."""

from __future__ import annotations

from array import array
from dataclasses import replace
from pathlib import Path

from .create import bat_size
from .detect import sniff
from .errors import InvalidDiskArgument, NoSpace
from .fileio import ImageFile
from .image import CHUNK, DiskImage
from .progress import Progress, no_progress
from .sizes import check_virtual_size
from .space import allocate, require_space
from .vhd import FixedVhd, SparseVhd, move_blocks_to_end, open_disk
from .vhd_layout import FOOTER_SIZE, SECTOR, UNALLOCATED


def expand(path: Path | str, new_size: int, progress: Progress = no_progress) -> None:
    """Grow the virtual size to ``new_size`` (rounded up to 512); new space reads zeros.

    ``original_size`` is kept, as Hyper-V does (libvhdi then still shows the old size).
    The creator becomes ours, so QEMU and Hyper-V both see exactly ``new_size``.
    Raises InvalidDiskArgument when the size does not grow, for differencing or raw
    disks, and for a disk in saved state; NoSpace when a fixed disk's growth does not
    fit on its file system (nothing changed).
    """
    if sniff(Path(path)) == "vhdx":  # VHDX: vhdx_ops (up to 64 TiB, through the log)
        from .vhdx_ops import expand_vhdx

        return expand_vhdx(Path(path), new_size, progress)
    new_size = check_virtual_size(new_size)
    with open_disk(path, writable=True) as disk:
        _check_expandable(disk, new_size)
        if isinstance(disk, FixedVhd):
            expand_fixed(disk, new_size)
        else:
            assert isinstance(disk, SparseVhd)
            expand_dynamic(disk, new_size)
        progress(new_size, new_size)


def _check_expandable(disk: DiskImage, new_size: int) -> None:
    if disk.disk_type not in ("fixed", "dynamic"):
        raise InvalidDiskArgument(
            f"{disk.path}: expand works on fixed and dynamic VHDs, not {disk.disk_type}"
        )
    assert isinstance(disk, FixedVhd | SparseVhd)
    if disk.footer.saved_state:
        raise InvalidDiskArgument(f"{disk.path}: the disk is in saved state; expand refused")
    if new_size <= disk.size:
        raise InvalidDiskArgument(
            f"{disk.path}: new size {new_size} must be larger than the current {disk.size} "
            "(VHDs can only grow; nothing was changed)"
        )


def expand_fixed(disk: FixedVhd, new_size: int) -> None:
    """New footer at the new end, then the old footer's bytes become zeros.

    Known window: a crash between the two writes leaves a disk of the new size whose
    first 512 bytes past the old end still hold the old footer instead of zeros (all
    old data intact). A fixed disk has no other place for a footer, so no order avoids it.

    The grown space is allocated (a fixed disk stays fully allocated); when the file
    system is short, NoSpace is raised first, or — if space vanished meanwhile — after
    cutting the file back to its old length (the old footer is still intact then).

    A geometry-sized disk (see ``Footer.visible_size``) has a hidden tail between its
    visible size and its footer: it is zeroed first, so the new space reads zeros.
    """
    old = disk.footer.current_size
    _zero_range(disk.file, disk.size, min(new_size, old))
    if new_size <= old:
        _move_fixed_footer_down(disk, new_size)
        return
    require_space(disk.path, new_size - old, created=False)
    disk.file.pwrite(disk.footer.resized(new_size).pack(), new_size)
    disk.file.sync()
    try:
        grown = new_size - old - FOOTER_SIZE
        allocate(disk.file, disk.path, grown, old + FOOTER_SIZE, created=False)
    except NoSpace:
        disk.file.truncate(old + FOOTER_SIZE)
        disk.file.sync()
        raise
    disk.file.pwrite(bytes(FOOTER_SIZE), old)
    disk.file.sync()


def _move_fixed_footer_down(disk: FixedVhd, new_size: int) -> None:
    """Footer at ``new_size`` inside the old data area, then the file cut right after it.

    The old trailing footer stays valid until the cut, so a crash shows the old disk.
    """
    disk.file.pwrite(disk.footer.resized(new_size).pack(), new_size)
    disk.file.sync()
    disk.file.truncate(new_size + FOOTER_SIZE)
    disk.file.sync()


def _zero_range(file: ImageFile, start: int, stop: int) -> None:
    """Write zeros over file bytes [start, stop) (nothing when the range is empty)."""
    for pos in range(start, stop, CHUNK):
        file.pwrite(bytes(min(CHUNK, stop - pos)), pos)
    if stop > start:
        file.sync()


def _zero_hidden_blocks(disk: SparseVhd, new_size: int) -> None:
    """Zero the allocated data between the visible size and ``new_size``.

    Only a geometry-sized disk has such data: blocks reaching past its visible size.
    """
    bs, start = disk.block_size, disk.size
    stop = min(new_size, disk.block_count * bs)
    for block in range(start // bs, -(-stop // bs)):
        base = disk.block_offset(block)
        if base is None:
            continue
        lo, hi = max(start, block * bs), min(stop, (block + 1) * bs)
        at = base + disk.bitmap_bytes + lo - block * bs
        _zero_range(disk.file, at, at + hi - lo)


def expand_dynamic(disk: SparseVhd, new_size: int) -> None:
    """Grow the BAT (moving blocks in its way to the end), then header, then footers."""
    _zero_hidden_blocks(disk, new_size)
    entries = max(-(-new_size // disk.block_size), disk.header.max_table_entries)
    table = disk.header.table_offset
    bat_end = table + bat_size(entries)
    if bat_end > disk.alloc_pos:
        disk.alloc_pos = bat_end
        disk.file.pwrite(disk.footer.pack(), bat_end)
        disk.file.sync()
    stride = disk.bitmap_bytes + disk.block_size
    in_way = [
        b
        for b, e in enumerate(disk.bat)
        if e != UNALLOCATED and e * SECTOR < bat_end and e * SECTOR + stride > table
    ]
    move_blocks_to_end(disk, in_way)
    _write_grown_bat(disk, entries)
    disk.header = replace(disk.header, max_table_entries=entries)
    disk.file.pwrite(disk.header.pack(), disk.footer.data_offset)
    disk.file.sync()
    disk.rewrite_footers(disk.footer.resized(new_size))
    disk.file.sync()


def _write_grown_bat(disk: SparseVhd, entries: int) -> None:
    grown = array("I", disk.bat[: disk.header.max_table_entries])
    grown.extend([UNALLOCATED] * (entries - len(grown)))
    disk.set_bat(grown)
    disk.write_bat_entries(0, entries)
    disk.file.sync()

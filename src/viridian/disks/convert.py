"""Copying a disk (any kind, whole chain flattened) into a new fixed, dynamic or raw image.

Outputs are written to a hidden temporary file beside the destination and linked into
place only when complete and synced, so a failed or interrupted conversion never
leaves a half-written destination.
"""

from __future__ import annotations

import contextlib
import errno
import os
from array import array
from collections.abc import Iterator
from pathlib import Path

from .create import BAT_OFFSET, bat_size, make_footer
from .errors import DiskError, DiskExists, DiskNotFound, InvalidDiskArgument, NoSpace
from .fileio import ImageFile
from .image import ZEROS, DiskImage, is_zero
from .progress import Progress, no_progress
from .sizes import check_block_size
from .space import allocate, require_space
from .vhd import SparseVhd, bat_to_bytes
from .vhd_layout import (
    DEFAULT_BLOCK_SIZE,
    DISK_DYNAMIC,
    DISK_FIXED,
    FOOTER_SIZE,
    SECTOR,
    UNALLOCATED,
    DynamicHeader,
    bitmap_size,
)

TARGET_TYPES = ("fixed", "dynamic", "raw")
COPY_CHUNK = 8 * 1024 * 1024  # bytes read and written at a time (flat outputs)
ZERO_GRAIN = 64 * 1024  # zero ranges this large and aligned stay holes in flat outputs
WRITEBACK_STEP = 32 * 1024 * 1024  # output bytes between two early-writeback hints


class Writeback:
    """Asks the kernel to write ``out`` back every WRITEBACK_STEP bytes of progress, so
    the closing fsync overlaps the copy instead of following it."""

    def __init__(self, out: ImageFile) -> None:
        self.out, self.done = out, 0

    def reached(self, pos: int) -> None:
        """The output is final below ``pos`` (outputs are written front to back)."""
        if pos - self.done >= WRITEBACK_STEP:
            self.out.start_writeback(self.done, pos - self.done)
            self.done = pos


VHDX_SUFFIXES = (".vhdx", ".avhdx")


def is_vhdx_target(dst: Path, target_type: str) -> bool:
    """True when a "fixed" or "dynamic" ``dst`` is named like a VHDX (written as VHDX)."""
    return target_type != "raw" and dst.suffix.lower() in VHDX_SUFFIXES


def check_target_type(target_type: str) -> str:
    """``target_type`` if allowed, else InvalidDiskArgument naming the allowed values."""
    if target_type not in TARGET_TYPES:
        raise InvalidDiskArgument(
            f"disk type {target_type!r} is not allowed; use one of: {', '.join(TARGET_TYPES)}"
        )
    return target_type


def convert(
    src: Path | str,
    dst: Path | str,
    target_type: str = "dynamic",
    *,
    block_size: int | None = None,
    progress: Progress = no_progress,
) -> None:
    """Write the content of ``src`` (raw, VHD or VHDX, a differencing chain flattened;
    VMDK or qcow2 through :mod:`.foreign_convert`) to the new file ``dst`` as a "fixed",
    "dynamic" or "raw" image, or "qcow2" (also through :mod:`.foreign_convert`).

    ``block_size`` (dynamic only) defaults to the source's block size, else 2 MiB.
    Raises InvalidDiskArgument (bad type), DiskExists, DiskNotFound (``src`` or
    ``dst``'s folder missing), NoSpace (fixed: too little free space), DiskInUse, CorruptDisk.
    """
    from .detect import foreign_format
    from .vhdx_open import open_disk

    dst = Path(dst)
    source_format = foreign_format(Path(src))
    if source_format or target_type == "qcow2":  # VMDK, qcow2: by qemu-img (foreign_convert)
        from .foreign_convert import convert_foreign  # subprocess, VMDK: only when needed

        convert_foreign(Path(src), dst, target_type, source_format, progress)
        return
    check_target_type(target_type)
    if dst.exists():
        raise DiskExists(f"{dst}: already exists; choose a new destination")
    with open_disk(src) as disk:
        if is_vhdx_target(dst, target_type):  # a *.vhdx destination: VHDX (vhdx_convert)
            from .vhdx_convert import default_block_size

            block_size = block_size or default_block_size(disk)
        elif block_size is None:
            block_size = disk.block_size if isinstance(disk, SparseVhd) else DEFAULT_BLOCK_SIZE
        write_image(disk, dst, target_type, check_block_size(block_size), progress)


def write_image(
    disk: DiskImage, dst: Path, target_type: str, block_size: int, progress: Progress
) -> None:
    """Write ``disk``'s content to the new file ``dst`` (atomically, see module doc).

    A "fixed" target is allocated up front; NoSpace (needed vs free) when it cannot be.
    Errors name ``dst``, never the hidden temporary file: InvalidDiskArgument when the
    folder is not writable, NoSpace when the file system fills up, DiskError otherwise;
    nothing is left behind in any case.
    """
    if not dst.parent.is_dir():
        raise DiskNotFound(f"{dst}: folder {dst.parent} does not exist")
    vhdx = is_vhdx_target(dst, target_type)  # a *.vhdx destination: VHDX (vhdx_convert)
    fixed_bytes = disk.size + FOOTER_SIZE
    if target_type == "fixed" and not vhdx:
        require_space(dst, fixed_bytes)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    out = _create_temp(tmp, dst)
    try:
        if target_type == "fixed" and not vhdx:
            allocate(out, dst, fixed_bytes)
        with _writing(dst, disk.size):
            if vhdx:
                from .vhdx_convert import write_vhdx

                write_vhdx(disk, out, dst, target_type == "fixed", block_size, progress)
            elif target_type == "dynamic":
                write_dynamic(disk, out, block_size, progress)
            else:
                write_flat(disk, out, with_footer=target_type == "fixed", progress=progress)
            out.sync()
        _publish(tmp, dst)
    finally:
        out.close()
        tmp.unlink(missing_ok=True)


def _create_temp(tmp: Path, dst: Path) -> ImageFile:
    """The temporary file beside ``dst``; errors say what is wrong with ``dst``."""
    try:
        return ImageFile(tmp, writable=True, create=True)
    except DiskExists:
        raise DiskExists(f"{dst}: another conversion to it is running ({tmp.name})") from None
    except DiskError as err:
        cause = err.__cause__
        reason = cause.strerror if isinstance(cause, OSError) else str(err)
        if isinstance(cause, OSError) and cause.errno in _NOT_WRITABLE:
            raise InvalidDiskArgument(
                f"{dst}: cannot create the file: {reason}; choose a folder you can write "
                "to (nothing was written)"
            ) from err
        raise DiskError(f"{dst}: cannot create the file: {reason}") from err


_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


@contextlib.contextmanager
def _writing(dst: Path, size: int) -> Iterator[None]:
    """Translate a write failure into an error naming ``dst`` (the file is then removed)."""
    try:
        yield
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            import shutil  # only here: not imported on every conversion's start

            free = shutil.disk_usage(dst.parent).free
            raise NoSpace(
                f"{dst}: the file system filled up while writing (up to {size} bytes "
                f"needed, {free} free); nothing was left at {dst}",
                size,
                free,
            ) from err
        raise DiskError(f"{dst}: writing failed: {err.strerror}; nothing was left") from err


def _publish(tmp: Path, dst: Path) -> None:
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise DiskExists(f"{dst}: already exists; choose a new destination") from None


def write_flat(disk: DiskImage, out: ImageFile, *, with_footer: bool, progress: Progress) -> None:
    """Raw layout (plus a fixed-VHD footer when asked) into an empty ``out``; holes kept.

    Only data runs are read (holes of a source file are skipped with SEEK_DATA), and
    only their non-zero pieces (:func:`nonzero_pieces`) are written: zero-filled blocks
    of the source (disk2vhd's) stay holes in the output, as with qemu-img.
    """
    size, buf, writeback = disk.size, scratch(COPY_CHUNK), Writeback(out)
    out.truncate(size)
    for start, stop in disk.data_runs():
        for off in range(start, stop, COPY_CHUNK):
            end = min(off + COPY_CHUNK, stop)
            for piece in nonzero_pieces(disk, off, end, buf):
                piece.put(out, piece.offset)
            progress(end, size)
            writeback.reached(end)
    if with_footer:
        out.pwrite(make_footer(DISK_FIXED, size).pack(), size)
    progress(size, size)


def scratch(size: int) -> memoryview:
    """A zeroed buffer of ``size`` bytes whose pages cost nothing until used (anonymous
    mmap; ``bytearray(size)`` writes every page up front: ~0.5 ms per MiB)."""
    import mmap

    return memoryview(mmap.mmap(-1, size))


class Piece:
    """``length`` bytes of a virtual disk at ``offset`` that are not all zeros: ``file``
    holds them at ``file_offset`` (copied in the kernel), or ``data`` does (a view of the
    reader's buffer, valid until the next piece is read)."""

    __slots__ = ("data", "file", "file_offset", "length", "offset")

    def __init__(self, offset: int, length: int, file: ImageFile | None, file_offset: int,
                 data: memoryview | None) -> None:  # fmt: skip
        self.offset, self.length, self.file = offset, length, file
        self.file_offset, self.data = file_offset, data

    def put(self, out: ImageFile, at: int) -> None:
        """Write the piece at ``at`` of ``out`` (a range that reads as zeros before)."""
        if self.file is not None:
            out.copy_from(self.file, self.file_offset, self.length, at)
        elif self.data is not None:
            out.pwrite(self.data, at)


def nonzero_pieces(disk: DiskImage, start: int, stop: int, buf: memoryview) -> Iterator[Piece]:
    """The pieces of ``disk``'s [start, stop) that are not all zeros, in order.

    Zeros are left out in ZERO_GRAIN steps from the start of each stored run; a range
    the source stores nowhere (a hole, an absent block) is never read. Bytes stored
    verbatim in a file are only probed (:func:`_grain_has_data`) and then copied in the
    kernel; others are read into ``buf`` (at least ZERO_GRAIN bytes).
    """
    for off in range(start, stop, len(buf)):
        for seg in disk.segments(off, min(len(buf), stop - off)):
            if seg.file is None:
                view = buf[: seg.length]
                disk.readinto(seg.offset, view)
                for a, b in _data_grains(view):
                    yield Piece(seg.offset + a, b - a, None, 0, view[a:b])
                continue
            src, pos, end = seg.file, seg.file_offset, seg.file_offset + seg.length
            while (run := src.next_data(pos, end)) is not None:
                for a, b in _file_data_grains(src, run[0], run[1], buf):
                    yield Piece(seg.offset + a - seg.file_offset, b - a, src, a, None)
                pos = run[1]


def _data_grains(view: memoryview) -> Iterator[tuple[int, int]]:
    """Coalesced (start, stop) ranges of ``view`` made of ZERO_GRAIN pieces (from its
    start) that are not all zeros."""
    if is_zero(view):
        return
    run, zeros = -1, ZEROS  # run: start of the pending non-zero range
    for i in range(0, len(view), ZERO_GRAIN):
        if not zeros.startswith(view[i : i + ZERO_GRAIN]):
            run = i if run < 0 else run
        elif run >= 0:
            yield run, i
            run = -1
    if run >= 0:
        yield run, len(view)


PROBE = 4096  # bytes read first to tell whether a grain of a file holds data


def _file_data_grains(src: ImageFile, start: int, stop: int,
                      buf: memoryview) -> Iterator[tuple[int, int]]:  # fmt: skip
    """As :func:`_data_grains` for the file range [start, stop) of ``src``, reading only
    PROBE bytes of a grain that holds data (its whole self only when they are zeros)."""
    run = -1
    for i in range(start, stop, ZERO_GRAIN):
        if _grain_has_data(src, i, min(ZERO_GRAIN, stop - i), buf):
            run = i if run < 0 else run
        elif run >= 0:
            yield run, i
            run = -1
    if run >= 0:
        yield run, stop


def _grain_has_data(src: ImageFile, offset: int, length: int, buf: memoryview) -> bool:
    """True when ``src``'s ``length`` bytes at ``offset`` are not all zeros (bytes past
    the end of the file read as zeros)."""
    head = buf[: min(PROBE, length)]
    got = src.readinto(head, offset)
    if not ZEROS.startswith(head[:got]):
        return True
    if length <= PROBE or got < len(head):
        return False
    view = buf[:length]
    got = src.readinto(view, offset)
    return not ZEROS.startswith(view[:got])


def runs_by_block(disk: DiskImage, block_size: int) -> Iterator[tuple[int, list[tuple[int, int]]]]:
    """(block, its data runs) for every block holding any data run, in one pass."""
    block, runs = -1, list[tuple[int, int]]()
    for start, stop in disk.data_runs():
        while start < stop:
            b = start // block_size
            end = min(stop, (b + 1) * block_size)
            if b != block and runs:
                yield block, runs
                runs = []
            block = b
            runs.append((start, end))
            start = end
    if runs:
        yield block, runs


def write_dynamic(disk: DiskImage, out: ImageFile, block_size: int, progress: Progress) -> None:
    """Dynamic VHD layout; all-zero blocks are never allocated (notes §7 defaults).

    Blocks are appended in order; only their non-zero pieces are written
    (:func:`nonzero_pieces`), the rest of each data area stays a hole in the new file
    (reads as zeros, costs no space).
    """
    size = disk.size
    entries = -(-size // block_size)
    bat = array("I", [UNALLOCATED]) * entries
    bm = bitmap_size(block_size)
    ones = b"\xff" * bm
    pos = BAT_OFFSET + bat_size(entries)
    buf, writeback = scratch(max(ZERO_GRAIN, min(block_size, COPY_CHUNK))), Writeback(out)
    for block, runs in runs_by_block(disk, block_size):
        data = -1  # file offset of the block's data once allocated (at its first piece)
        for start, stop in runs:
            for piece in nonzero_pieces(disk, start, stop, buf):
                if data < 0:
                    out.pwrite(ones, pos)
                    bat[block] = pos // SECTOR
                    data, pos = pos + bm, pos + bm + block_size
                piece.put(out, data + piece.offset - block * block_size)
        progress(runs[-1][1], size)
        if data >= 0:
            writeback.reached(pos)
    footer = make_footer(DISK_DYNAMIC, size)
    header = DynamicHeader(BAT_OFFSET, entries, block_size)
    raw_bat = bat_to_bytes(bat)
    out.pwrite(footer.pack() + header.pack() + raw_bat + b"\xff" * (-len(raw_bat) % SECTOR), 0)
    out.pwrite(footer.pack(), pos)
    progress(size, size)

"""``disk capture SRC DST``: a block device (or a raw image file) into a new dynamic VHDX
or VHD — physical-to-virtual (docs/architecture.md, "Disks").

Unused space is skipped where the file system says so: when SRC holds an ext2/3/4 file
system from its first byte (a partition such as ``/dev/sdb1``, or an unpartitioned
disk; superblock magic 0xEF53 at byte 1080), ``dumpe2fs`` lists each block group's free
blocks and only the blocks in use (and whatever lies past the file system's end) are
read. Otherwise every range is read — of a regular file only its data (SEEK_DATA/
SEEK_HOLE), of a device all of it — and all-zero blocks stay unallocated in the output
as in every dynamic conversion. Other file systems and partition tables are copied that
way (whole, zero blocks skipped).

SRC must not be mounted read-write (the copy would not be consistent); a read-only mount
is fine. The output is written like :func:`.convert.write_image` writes any conversion:
to a temporary file beside DST, renamed when complete and synced.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .convert import is_vhdx_target, write_image
from .errors import DiskError, DiskExists, DiskNotFound, InvalidDiskArgument
from .fileio import ImageFile
from .image import FlatImage
from .progress import Progress, no_progress
from .vhd_layout import DEFAULT_BLOCK_SIZE

EXT_MAGIC_OFFSET, EXT_MAGIC = 1080, b"\x53\xef"
VHDX_BLOCK = 32 * 1024 * 1024
FREE = re.compile(r"^\s*Free blocks:\s*(.*)$")


@dataclass(frozen=True)
class CaptureResult:
    """What was captured: ``method`` ``ext`` (block bitmap), ``seek-data`` or ``whole``;
    ``read_bytes`` the bytes of SRC read (the rest was known unused)."""

    source: str
    target: str
    size: int
    method: str
    read_bytes: int


class _Source(FlatImage):
    """SRC as a raw disk whose data runs are the ranges known to be in use."""

    def __init__(self, file: ImageFile, size: int, used: list[tuple[int, int]] | None,
                 is_device: bool) -> None:
        super().__init__(file, size, "raw", "raw")
        self.used, self.is_device = used, is_device

    def _data_runs(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        if self.used is None:
            if self.is_device:  # SEEK_DATA means nothing on a device: all of it is data
                yield start, end
                return
            yield from super()._data_runs(start, end)
            return
        for a, b in self.used:
            if b > start and a < end:
                yield max(a, start), min(b, end)


def capture(src: Path | str, dst: Path | str, progress: Progress = no_progress) -> CaptureResult:
    """Copy the block device or raw file ``src`` into the new dynamic VHDX (``*.vhdx``)
    or VHD (``*.vhd``) ``dst`` (see the module docstring).

    :raises DiskNotFound: ``src`` is missing. :raises DiskExists: ``dst`` exists.
    :raises InvalidDiskArgument: ``src`` is neither a block device nor a regular file,
        is mounted read-write, or ``dst`` is not named *.vhdx/*.vhd.
    """
    src, dst = Path(src), Path(dst)
    try:
        mode = os.stat(src).st_mode
    except FileNotFoundError:
        raise DiskNotFound(f"{src}: no such device or file") from None
    if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
        raise InvalidDiskArgument(f"{src}: not a block device or a regular file; capture "
                                  "reads a disk such as /dev/sdb or a partition /dev/sdb1")
    if dst.suffix.lower() not in (".vhdx", ".vhd"):
        raise InvalidDiskArgument(f"{dst}: the captured disk must be named *.vhdx or *.vhd; "
                                  "nothing was created")
    if dst.exists():
        raise DiskExists(f"{dst}: already exists; choose a new destination")
    _refuse_mounted_rw(src, mode)
    with ImageFile(src, writable=False, lock=stat.S_ISREG(mode)) as file:
        size = os.lseek(file.fd, 0, os.SEEK_END)
        used = ext_used_ranges(src, file, size)
        disk = _Source(file, size, used, stat.S_ISBLK(mode))
        method = "ext" if used is not None else ("whole" if disk.is_device else "seek-data")
        read = sum(b - a for a, b in disk.data_runs())
        block = VHDX_BLOCK if is_vhdx_target(dst, "dynamic") else DEFAULT_BLOCK_SIZE
        write_image(disk, dst, "dynamic", block, progress)
    return CaptureResult(str(src), str(dst), size, method, read)


def ext_used_ranges(src: Path, file: ImageFile, size: int) -> list[tuple[int, int]] | None:
    """The byte ranges of ``src`` an ext2/3/4 file system at its start uses (its
    in-use blocks, plus anything past its end), or None when there is none or
    ``dumpe2fs`` cannot read it."""
    if file.pread(2, EXT_MAGIC_OFFSET) != EXT_MAGIC:
        return None
    done = subprocess.run(["dumpe2fs", str(src)], capture_output=True, text=True,
                          env={**os.environ, "LC_ALL": "C"}, check=False)
    if done.returncode != 0:
        return None
    return used_from_dumpe2fs(done.stdout, size)


def used_from_dumpe2fs(text: str, size: int) -> list[tuple[int, int]] | None:
    """The in-use byte ranges from ``dumpe2fs`` output (``Block size``, ``Block count``
    and each group's ``Free blocks`` list), plus [file system end, ``size``)."""
    fields = dict(line.split(":", 1) for line in text.splitlines()
                  if ":" in line and not line.startswith(" "))
    try:
        block = int(fields["Block size"])
        count = int(fields["Block count"])
    except (KeyError, ValueError):
        return None
    free: list[tuple[int, int]] = []
    for line in text.splitlines():
        match = FREE.match(line)
        if match:
            free += [_block_range(part) for part in match.group(1).split(",") if part.strip()]
    used: list[tuple[int, int]] = []
    pos = 0
    for first, last in sorted(free):
        if first > pos:
            used.append((pos * block, first * block))
        pos = max(pos, last + 1)
    if pos < count:
        used.append((pos * block, count * block))
    if count * block < size:
        used.append((count * block, size))
    return [(a, min(b, size)) for a, b in used if a < size]


def _block_range(part: str) -> tuple[int, int]:
    first, _, last = part.strip().partition("-")
    return int(first), int(last or first)


def _refuse_mounted_rw(src: Path, mode: int) -> None:
    if not stat.S_ISBLK(mode):
        return
    device = os.stat(src).st_rdev
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError as err:
        raise DiskError(f"cannot read /proc/self/mounts: {err.strerror}") from err
    for line in mounts:
        source, point, _, options = [*line.split(), "", "", "", ""][:4]
        try:
            same = source.startswith("/") and os.stat(source).st_rdev == device
        except OSError:
            continue
        if same and "rw" in options.split(","):
            raise InvalidDiskArgument(f"{src} is mounted read-write at {point}: unmount it "
                                      "or remount it read-only first (a capture of a changing "
                                      "file system is not consistent); nothing was created")

"""The one place where disk files are opened, read and written.

Every byte the library writes goes through :class:`ImageFile`, so a test (or a tracer)
can observe the exact write sequence of an operation with :func:`record_writes` and
replay its prefixes to prove crash consistency.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from .errors import DiskError, DiskExists, DiskNotFound, InvalidDiskArgument
from .locks import acquire_image_locks


@dataclass(frozen=True)
class WriteRecord:
    """One mutation of a file: ``data`` written at ``offset``, or a truncate to ``offset``."""

    path: str
    offset: int
    data: bytes | None  # None means truncate(offset)


# copy_file_range refusals that mean "not between these files", never bad data
_NO_KERNEL_COPY = (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL)
_READ_STEP = 8 * 1024 * 1024

_recorder: ContextVar[list[WriteRecord] | None] = ContextVar("_recorder", default=None)


@contextlib.contextmanager
def record_writes() -> Iterator[list[WriteRecord]]:
    """Record every write and truncate made through ImageFile in this context, in order."""
    log: list[WriteRecord] = []
    token = _recorder.set(log)
    try:
        yield log
    finally:
        _recorder.reset(token)


class ImageFile:
    """A disk image file opened by descriptor; positional I/O only.

    Opening takes QEMU-compatible image locks (see :mod:`.locks`) unless ``lock`` is
    False; raises DiskInUse when another program holds conflicting ones, DiskNotFound
    when the file (or, with ``create``, its folder) does not exist, DiskExists when
    ``create`` finds the path taken, InvalidDiskArgument for a directory.
    """

    def __init__(self, path: Path, *, writable: bool, lock: bool = True, create: bool = False):
        self.path = path
        flags = os.O_RDWR if writable else os.O_RDONLY
        if create:
            flags |= os.O_CREAT | os.O_EXCL
        try:
            self.fd = os.open(path, flags | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:
            raise DiskNotFound(_missing(path, create)) from None
        except FileExistsError:
            raise DiskExists(f"{path}: already exists; choose a new path") from None
        except IsADirectoryError:
            raise InvalidDiskArgument(f"{path}: is a directory, expected a disk file") from None
        except OSError as err:
            raise DiskError(f"{path}: cannot open: {err.strerror}") from err
        self.writable = writable
        try:
            if lock:
                acquire_image_locks(self.fd, path, writable=writable)
        except BaseException:
            os.close(self.fd)
            raise

    def allocate(self, offset: int, length: int) -> None:
        """Reserve real blocks for ``length`` bytes at ``offset`` (``posix_fallocate``).

        Content is unchanged; the file grows to ``offset + length`` when shorter (the
        new space reads as zeros, so a recorder logs that as a truncate). Raises
        ``OSError`` (ENOSPC when the file system is full) for the caller to explain.
        """
        log = _recorder.get()
        if log is not None and offset + length > self.size():
            log.append(WriteRecord(str(self.path), offset + length, None))
        os.posix_fallocate(self.fd, offset, length)

    def size(self) -> int:
        """Current file length in bytes."""
        return os.fstat(self.fd).st_size

    def pread(self, length: int, offset: int) -> bytes:
        """Up to ``length`` bytes at ``offset`` (short at end of file)."""
        return os.pread(self.fd, length, offset)

    def readinto(self, buf: memoryview, offset: int) -> int:
        """Fill ``buf`` from ``offset``; returns bytes read (short at end of file)."""
        return os.preadv(self.fd, [buf], offset)

    def pwrite(self, data: bytes | bytearray | memoryview, offset: int) -> None:
        """Write all of ``data`` at ``offset``."""
        log = _recorder.get()
        if log is not None:
            log.append(WriteRecord(str(self.path), offset, bytes(data)))
        view = memoryview(data)
        while view:
            n = os.pwrite(self.fd, view, offset)
            view, offset = view[n:], offset + n

    def pwritev(self, parts: list[bytes | bytearray | memoryview], offset: int) -> None:
        """Write the concatenation of ``parts`` at ``offset``."""
        log = _recorder.get()
        total = sum(len(p) for p in parts)
        if log is not None or total > (1 << 30):
            self.pwrite(b"".join(parts), offset)
            return
        n = os.pwritev(self.fd, parts, offset)
        if n != total:
            self.pwrite(b"".join(parts)[n:], offset + n)

    def copy_from(
        self, src: ImageFile, src_offset: int, length: int, offset: int, *, onto_zeros: bool = False
    ) -> None:
        """Copy ``length`` bytes of ``src`` at ``src_offset`` to ``offset`` (in-kernel).

        With ``onto_zeros`` (the target range already reads as zeros, e.g. a new file)
        holes of the source are skipped, so they stay holes in the target.
        """
        if onto_zeros:
            end = src_offset + length
            while (run := src.next_data(src_offset, end)) is not None:
                self.copy_from(src, run[0], run[1] - run[0], offset + run[0] - src_offset)
                offset, src_offset = offset + run[1] - src_offset, run[1]
            return
        if _recorder.get() is not None:
            self.pwrite(src.pread(length, src_offset), offset)
            return
        while length > 0:
            try:
                n = os.copy_file_range(src.fd, self.fd, length, src_offset, offset)
            except OSError as err:  # e.g. EXDEV: the files are on different file systems
                if src is self or err.errno not in _NO_KERNEL_COPY:
                    raise
                self._copy_by_reading(src, src_offset, length, offset)
                return
            if n <= 0:
                raise DiskError(f"{src.path}: unexpected end of file at {src_offset}")
            src_offset, offset, length = src_offset + n, offset + n, length - n

    def _copy_by_reading(self, src: ImageFile, src_offset: int, length: int, offset: int) -> None:
        """``copy_from`` through user space, for files the kernel cannot copy between."""
        while length > 0:
            data = src.pread(min(length, _READ_STEP), src_offset)
            if not data:
                raise DiskError(f"{src.path}: unexpected end of file at {src_offset}")
            self.pwrite(data, offset)
            n = len(data)
            src_offset, offset, length = src_offset + n, offset + n, length - n

    def truncate(self, size: int) -> None:
        """Set the file length (new space reads as zeros and is not allocated)."""
        log = _recorder.get()
        if log is not None:
            log.append(WriteRecord(str(self.path), size, None))
        os.ftruncate(self.fd, size)

    def start_writeback(self, offset: int, length: int) -> None:
        """Start writing the dirty pages of [offset, offset+length) back now, without waiting.

        A hint for long sequential writes: the disk works while we copy on, so the final
        ``sync`` has little left (``posix_fadvise`` DONTNEED writes dirty pages back
        asynchronously and drops clean ones). Changes no content; no ordering promise.
        """
        os.posix_fadvise(self.fd, offset, length, os.POSIX_FADV_DONTNEED)

    def sync(self) -> None:
        """Barrier: everything written before is durable before anything written after."""
        os.fsync(self.fd)

    def next_data(self, offset: int, end: int) -> tuple[int, int] | None:
        """The next (start, stop) run that may hold data in [offset, end), via SEEK_DATA/HOLE."""
        if offset >= end:
            return None
        try:
            start = os.lseek(self.fd, offset, os.SEEK_DATA)
        except OSError as err:
            if err.errno == errno.ENXIO:  # no data after offset
                return None
            return offset, end  # SEEK_DATA unsupported (a block device): all may hold data
        if start >= end:
            return None
        stop = os.lseek(self.fd, start, os.SEEK_HOLE)
        return start, min(stop, end)

    def close(self) -> None:
        """Close the descriptor (and so drop its locks); idempotent."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> ImageFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _missing(path: Path, create: bool) -> str:
    if create:
        return f"{path}: folder {path.parent} does not exist"
    return f"{path}: no such file"

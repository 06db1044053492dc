"""The block API shared by every disk kind, and raw images.

A :class:`DiskImage` is a virtual disk of ``size`` bytes, read and written at any byte
offset. ``data_runs`` lists the ranges that may hold non-zero data (everything else
reads as zeros), which is what makes copies sparse-aware.
"""

from __future__ import annotations

import heapq
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .errors import InvalidDiskArgument
from .fileio import ImageFile

CHUNK = 2 * 1024 * 1024
ZEROS = bytes(CHUNK)


def is_zero(buf: bytes | bytearray | memoryview) -> bool:
    """True when every byte of ``buf`` is zero (memcmp against a shared zero buffer:
    ``bytes.startswith`` compares without copying)."""
    view = memoryview(buf).cast("B")
    if len(view) <= CHUNK:  # the common case, without a generator per call
        return ZEROS.startswith(view)
    return all(ZEROS.startswith(view[i : i + CHUNK]) for i in range(0, len(view), CHUNK))


def merge_runs(runs: Iterator[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Coalesce sorted (start, stop) runs that touch or overlap."""
    cur: tuple[int, int] | None = None
    for start, stop in runs:
        if cur is not None and start <= cur[1]:
            cur = (cur[0], max(cur[1], stop))
            continue
        if cur is not None:
            yield cur
        cur = (start, stop)
    if cur is not None:
        yield cur


@dataclass(frozen=True)
class Segment:
    """``length`` virtual bytes at ``offset``, stored at ``file_offset`` of ``file``."""

    file: ImageFile | None
    file_offset: int
    offset: int
    length: int


class DiskImage(ABC):
    """A virtual disk: ``size`` bytes addressable at any offset.

    ``disk_type`` is "raw", "fixed", "dynamic" or "differencing"; ``format`` is the QEMU
    driver name ("raw" or "vpc"). Close it (or use ``with``) to release file locks.
    """

    path: Path
    size: int
    disk_type: str
    format: str
    file: ImageFile
    parent: DiskImage | None = None

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes of the virtual disk at ``offset``."""
        buf = bytearray(length)
        self.readinto(offset, memoryview(buf))
        return bytes(buf)

    def readinto(self, offset: int, buf: memoryview) -> None:
        """Fill ``buf`` with the virtual disk's bytes at ``offset``."""
        self._check_range(offset, len(buf))
        self._readinto(offset, buf)

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset``; raises InvalidDiskArgument past the end."""
        if not self.file.writable:
            raise InvalidDiskArgument(f"{self.path}: opened read-only")
        self._check_range(offset, len(data))
        if len(data):
            self._write(offset, memoryview(data).cast("B"))

    def write_many(self, items: list[tuple[int, memoryview]]) -> None:
        """Write several (offset, data) pieces; formats may batch their metadata updates."""
        for offset, data in items:
            self.write(offset, data)

    def data_runs(self, start: int = 0, end: int | None = None) -> Iterator[tuple[int, int]]:
        """Sorted, disjoint (start, stop) ranges in [start, end) that may hold non-zero data."""
        return self._data_runs(start, self.size if end is None else min(end, self.size))

    def segments(self, offset: int, length: int) -> Iterator[Segment]:
        """Where the bytes [offset, offset+length) live, in order, for in-kernel copies.

        A segment with a file holds the bytes verbatim at ``file_offset``; one without
        must be read with ``readinto`` (zeros, partially present blocks).
        """
        self._check_range(offset, length)
        return self._segments(offset, length)

    def _segments(self, offset: int, length: int) -> Iterator[Segment]:
        yield Segment(None, offset, offset, length)

    def chain(self) -> list[DiskImage]:
        """This disk followed by its parents, nearest first."""
        out: list[DiskImage] = []
        node: DiskImage | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return out

    def close(self) -> None:
        """Close this disk and its parents."""
        for node in self.chain():
            node.file.close()

    def __enter__(self) -> DiskImage:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_range(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise InvalidDiskArgument(
                f"{self.path}: range {offset}+{length} is outside the disk (0..{self.size})"
            )

    @abstractmethod
    def _readinto(self, offset: int, buf: memoryview) -> None: ...

    @abstractmethod
    def _write(self, offset: int, data: memoryview) -> None: ...

    @abstractmethod
    def _data_runs(self, start: int, end: int) -> Iterator[tuple[int, int]]: ...


class FlatImage(DiskImage):
    """A disk whose byte n is file byte n: raw images and the data area of fixed VHDs."""

    def __init__(self, file: ImageFile, size: int, disk_type: str, fmt: str):
        self.file, self.path, self.size = file, file.path, size
        self.disk_type, self.format = disk_type, fmt

    def _readinto(self, offset: int, buf: memoryview) -> None:
        got = self.file.readinto(buf, offset)
        if got < len(buf):
            buf[got:] = bytes(len(buf) - got)

    def _write(self, offset: int, data: memoryview) -> None:
        self.file.pwrite(data, offset)

    def _segments(self, offset: int, length: int) -> Iterator[Segment]:
        yield Segment(self.file, offset, offset, length)

    def _data_runs(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        pos = start
        while (run := self.file.next_data(pos, end)) is not None:
            yield run
            pos = run[1]


class BlockImage(DiskImage):
    """A disk stored in ``block_size`` blocks (dynamic/differencing VHD, VHDX): the
    block walk shared by both formats; each supplies how one block is read
    (:meth:`_read_block`) and whether this file holds a block (:meth:`_has_block`)."""

    block_size: int

    def pieces(self, offset: int, length: int) -> Iterator[tuple[int, int, int, int]]:
        """(block, offset within it, offset in the range, length) of [offset, offset+length)."""
        bs, pos, end = self.block_size, offset, offset + length
        while pos < end:
            block, within = divmod(pos, bs)
            n = min(bs - within, end - pos)
            yield block, within, pos - offset, n
            pos += n

    def _readinto(self, offset: int, buf: memoryview) -> None:
        for block, within, at, n in self.pieces(offset, len(buf)):
            self._read_block(block, within, buf[at : at + n])

    def _data_runs(self, start: int, end: int) -> Iterator[tuple[int, int]]:
        bs = self.block_size
        own = ((max(b * bs, start), min((b + 1) * bs, end))
               for b in range(start // bs, -(-end // bs)) if self._has_block(b))  # fmt: skip
        if self.parent is None:
            return merge_runs(own)
        return merge_runs(heapq.merge(own, self.parent.data_runs(start, end)))

    @abstractmethod
    def _read_block(self, block: int, within: int, out: memoryview) -> None: ...

    @abstractmethod
    def _has_block(self, block: int) -> bool: ...


def open_raw(path: Path, *, writable: bool = False, lock: bool = True) -> FlatImage:
    """Open a raw image; its virtual size is the file size."""
    f = ImageFile(path, writable=writable, lock=lock)
    return FlatImage(f, f.size(), "raw", "raw")

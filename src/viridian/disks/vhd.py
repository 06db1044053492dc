"""Reading and writing VHD files: fixed, dynamic and differencing (spec v1.0).

Write ordering (crash consistency): a new block is written as
``footer at the new end of file`` → ``bitmap + data`` → barrier → ``BAT entry``; a
write into an allocated block of a differencing disk writes data → barrier → bitmap.
A crash at any point leaves a file whose trailing footer is valid and whose every
block reads as its old or its new content (leaked space at worst).
"""

from __future__ import annotations

import os
import re
import sys
from array import array
from collections.abc import Iterator
from pathlib import Path

from .errors import (
    BadBlockTable,
    BadDynamicHeader,
    BadFooter,
    InvalidDiskArgument,
    ParentLinkError,
    UnsupportedDisk,
)
from .fileio import ImageFile
from .image import BlockImage, DiskImage, FlatImage, Segment, is_zero, open_raw
from .locators import parent_candidates
from .vhd_layout import (
    DISK_DIFFERENCING,
    DISK_DYNAMIC,
    DISK_FIXED,
    FOOTER_COOKIE,
    FOOTER_SIZE,
    HEADER_SIZE,
    MAX_VIRTUAL_SIZE,
    SECTOR,
    UNALLOCATED,
    DynamicHeader,
    Footer,
    bitmap_size,
)

MAX_CHAIN_DEPTH = 64
_RUNS = re.compile(r"1+|0+")


def bat_from_bytes(raw: bytes) -> array[int]:
    """Big-endian u32 BAT entries as a native array."""
    bat = array("I", raw[: len(raw) // 4 * 4])
    if sys.byteorder == "little":
        bat.byteswap()
    return bat


def bat_to_bytes(bat: array[int]) -> bytes:
    """Native BAT array as big-endian bytes."""
    out = array("I", bat)
    if sys.byteorder == "little":
        out.byteswap()
    return out.tobytes()


def sector_runs(bitmap: bytes, first: int, stop: int) -> Iterator[tuple[bool, int, int]]:
    """(present, first sector, stop sector) runs of an MSB-first VHD bitmap over [first, stop)."""
    bits = format(int.from_bytes(bitmap, "big"), f"0{len(bitmap) * 8}b")[first:stop]
    for m in _RUNS.finditer(bits):
        yield m.group()[0] == "1", first + m.start(), first + m.end()


def set_sector_bits(bitmap: bytes, first: int, stop: int) -> bytes:
    """``bitmap`` with sectors [first, stop) marked present (MSB-first)."""
    nbits = len(bitmap) * 8
    mask = ((1 << (stop - first)) - 1) << (nbits - stop)
    return (int.from_bytes(bitmap, "big") | mask).to_bytes(len(bitmap), "big")


class _Pending:
    """A block being allocated: its bitmap and data area, filled piece by piece."""

    def __init__(self, bitmap: bytearray, data: memoryview, block_size: int):
        self.bitmap, self.data, self.block_size = bitmap, data, block_size
        self.owned = False  # True once ``data`` is our own buffer

    def add(self, within: int, chunk: memoryview, full: bool) -> None:
        """Place ``chunk`` at ``within``; mark its sectors (or all, when ``full``)."""
        if not self.data and within == 0 and len(chunk) == self.block_size:
            self.data = chunk  # a whole block: borrowed, no copy
        else:
            if not self.owned:
                area = bytearray(self.block_size)
                area[: len(self.data)] = self.data
                self.data, self.owned = memoryview(area), True
            self.data[within : within + len(chunk)] = chunk
        if full:
            self.bitmap[:] = b"\xff" * len(self.bitmap)
        else:
            first, stop = within // SECTOR, (within + len(chunk)) // SECTOR
            self.bitmap[:] = set_sector_bits(bytes(self.bitmap), first, stop)


class FixedVhd(FlatImage):
    """A fixed VHD: raw data followed by a footer."""

    def __init__(self, file: ImageFile, footer: Footer):
        super().__init__(file, footer.visible_size, "fixed", "vpc")
        self.footer = footer


class SparseVhd(BlockImage):
    """A dynamic or differencing VHD: footer copy, header, BAT, blocks, footer."""

    def __init__(self, file: ImageFile, footer: Footer, header: DynamicHeader):
        self.file, self.path, self.footer, self.header = file, file.path, footer, header
        self.size = footer.visible_size
        self.disk_type = footer.type_name
        self.format = "vpc"
        self.block_size = header.block_size
        self.bitmap_bytes = bitmap_size(self.block_size)
        self.block_count = -(-self.size // self.block_size)
        self.bat = self._load_bat()
        self._full = bytearray(len(self.bat))  # 0 unknown, 1 bitmap all ones, 2 partial
        self.alloc_pos = self._first_free()

    # -- opening ---------------------------------------------------------------------
    def _load_bat(self) -> array[int]:
        h, size = self.header, self.file.size()
        if h.max_table_entries < self.block_count:
            raise BadBlockTable(
                f"{self.path}: BAT has {h.max_table_entries} entries, the disk size needs "
                f"{self.block_count}"
            )
        nbytes = h.max_table_entries * 4
        if h.table_offset % SECTOR or h.table_offset + nbytes > size:
            raise BadBlockTable(
                f"{self.path}: BAT at {h.table_offset} (+{nbytes} bytes) is not sector "
                f"aligned or lies outside the file ({size} bytes)"
            )
        bat = bat_from_bytes(self.file.pread(nbytes, h.table_offset))
        stride = self.bitmap_bytes + self.block_size
        limit = (size - stride) // SECTOR
        for i, entry in enumerate(bat):
            if entry != UNALLOCATED and entry > limit:
                raise BadBlockTable(
                    f"{self.path}: BAT entry {i} points to offset {entry * SECTOR}, past "
                    f"the end of the file ({size} bytes)"
                )
        return bat

    def metadata_end(self) -> int:
        """End of footer copy, header, BAT and parent-locator data."""
        h = self.header
        ends = [self.footer.data_offset + HEADER_SIZE, h.table_offset + self.bat_bytes()]
        ends += [lo.data_offset + (lo.space_bytes() or 0) for lo in h.locators if lo.platform]
        return max(ends)

    def bat_bytes(self) -> int:
        """On-disk BAT size: entries * 4 rounded up to a sector."""
        return -(-self.header.max_table_entries * 4 // SECTOR) * SECTOR

    def _first_free(self) -> int:
        stride = self.bitmap_bytes + self.block_size
        used = [e * SECTOR + stride for e in self.bat if e != UNALLOCATED]
        end = max([self.metadata_end(), *used])
        size = self.file.size()
        tail = size - FOOTER_SIZE if self._tail_is_footer(size) else -(-size // SECTOR) * SECTOR
        return -(-max(end, tail) // SECTOR) * SECTOR

    def _tail_is_footer(self, size: int) -> bool:
        return size >= FOOTER_SIZE and self.file.pread(8, size - FOOTER_SIZE) == FOOTER_COOKIE

    # -- reading ---------------------------------------------------------------------
    def block_offset(self, block: int) -> int | None:
        """File offset of ``block``'s bitmap, or None when it is not allocated."""
        entry = self.bat[block]
        return None if entry == UNALLOCATED else entry * SECTOR

    def read_bitmap(self, block: int) -> bytes:
        """The sector bitmap of an allocated block."""
        off = self.block_offset(block)
        assert off is not None
        return self.file.pread(self.bitmap_bytes, off)

    def block_is_full(self, block: int) -> bool:
        """True when every sector of an allocated block is marked present."""
        if not self._full[block]:
            bm = self.read_bitmap(block)
            self._full[block] = 1 if bm == b"\xff" * len(bm) else 2
        return self._full[block] == 1

    def _read_block(self, block: int, within: int, out: memoryview) -> None:
        base = self.block_offset(block)
        if base is None:
            self._read_below(block * self.block_size + within, out)
        elif self.block_is_full(block):
            self._read_file(base + self.bitmap_bytes + within, out)
        else:
            self._read_partial(block, base, within, out)

    def _read_partial(self, block: int, base: int, within: int, out: memoryview) -> None:
        first, stop = within // SECTOR, -(-(within + len(out)) // SECTOR)
        for present, s0, s1 in sector_runs(self.read_bitmap(block), first, stop):
            lo, hi = max(s0 * SECTOR, within), min(s1 * SECTOR, within + len(out))
            part = out[lo - within : hi - within]
            if present:
                self._read_file(base + self.bitmap_bytes + lo, part)
            else:
                self._read_below(block * self.block_size + lo, part)

    def _read_file(self, offset: int, out: memoryview) -> None:
        got = self.file.readinto(out, offset)
        if got < len(out):
            raise BadBlockTable(f"{self.path}: block data at {offset} is cut off by end of file")

    def _read_below(self, offset: int, out: memoryview) -> None:
        if self.parent is not None:
            self.parent.readinto(offset, out)
        else:
            out[:] = bytes(len(out))

    def _segments(self, offset: int, length: int) -> Iterator[Segment]:
        for block, within, at, n in self.pieces(offset, length):
            pos, base = offset + at, self.block_offset(block)
            if base is None and self.parent is not None:
                yield from self.parent.segments(pos, n)
            elif base is not None and self.block_is_full(block):
                yield Segment(self.file, base + self.bitmap_bytes + within, pos, n)
            else:
                yield Segment(None, pos, pos, n)

    def _has_block(self, block: int) -> bool:
        return self.bat[block] != UNALLOCATED

    def allocated_blocks(self) -> int:
        """Number of blocks that have space in this file."""
        return sum(1 for e in self.bat[: self.block_count] if e != UNALLOCATED)

    # -- writing ---------------------------------------------------------------------
    def _write(self, offset: int, data: memoryview) -> None:
        self.write_many([(offset, data)])

    def write_many(self, items: list[tuple[int, memoryview]]) -> None:
        """Write several (offset, data) pieces with one allocation step for all new blocks.

        Same guarantees as ``write``; cheaper when many pieces land on new blocks.
        """
        if not self.file.writable:
            raise InvalidDiskArgument(f"{self.path}: opened read-only")
        fresh: dict[int, _Pending] = {}
        for offset, piece in items:
            self._check_range(offset, len(piece))
            self._plan(offset, memoryview(piece).cast("B"), fresh)
        if fresh:
            self._allocate([(b, p.bitmap, p.data) for b, p in sorted(fresh.items())])

    def _plan(self, offset: int, data: memoryview, fresh: dict[int, _Pending]) -> None:
        offset, data = self._sector_aligned(offset, data)
        bs, pos = self.block_size, 0
        while pos < len(data):
            block, within = divmod(offset + pos, bs)
            n = min(bs - within, len(data) - pos)
            chunk = data[pos : pos + n]
            if block in fresh:
                fresh[block].add(within, chunk, self._full_bitmap())
            elif self.bat[block] != UNALLOCATED:
                self._write_allocated(block, within, chunk)
            elif not is_zero(chunk) or self._below_has_data(offset + pos, n):
                fresh[block] = self._new_block(within, chunk)
            pos += n

    def _full_bitmap(self) -> bool:
        return self.footer.disk_type != DISK_DIFFERENCING

    def _sector_aligned(self, offset: int, data: memoryview) -> tuple[int, memoryview]:
        """Widen a write to whole sectors (whole bitmap bytes in a differencing disk).

        A differencing write covers 4 KiB units so that every bitmap byte is all ones or
        all zeros: libvhdi misreads bytes that mix present and absent sectors. The added
        bytes are the current content, so nothing visible changes.
        """
        unit = 8 * SECTOR if self.footer.disk_type == DISK_DIFFERENCING else SECTOR
        end = offset + len(data)
        start = offset - offset % unit
        stop = min(-(-end // unit) * unit, self.size)
        if start == offset and stop == end:
            return offset, data
        buf = bytearray(stop - start)
        view = memoryview(buf)
        self.readinto(start, view[: offset - start])
        self.readinto(end, view[end - start :])
        buf[offset - start : end - start] = data
        return start, view

    def _below_has_data(self, offset: int, length: int) -> bool:
        if self.parent is None:
            return False
        return next(iter(self.parent.data_runs(offset, offset + length)), None) is not None

    def _new_block(self, within: int, chunk: memoryview) -> _Pending:
        pending = _Pending(bytearray(self.bitmap_bytes), memoryview(b""), self.block_size)
        pending.add(within, chunk, self._full_bitmap())
        return pending

    def _allocate(self, fresh: list[tuple[int, bytearray, memoryview]]) -> None:
        stride = self.bitmap_bytes + self.block_size
        start = self.alloc_pos
        end = start + len(fresh) * stride
        self.file.pwrite(self.footer.pack(), end)
        for i in range(0, len(fresh), 16):
            parts: list[bytes | bytearray | memoryview] = []
            for _, bm, data in fresh[i : i + 16]:
                parts += [bm, data]
            self.file.pwritev(parts, start + i * stride)
        self.file.sync()
        for i, (block, bm, _) in enumerate(fresh):
            self.bat[block] = (start + i * stride) // SECTOR
            self._full[block] = 1 if bm == b"\xff" * len(bm) else 2
        self.alloc_pos = end
        self.write_bat_entries(min(f[0] for f in fresh), max(f[0] for f in fresh) + 1)

    def write_bat_entries(self, first: int, stop: int) -> None:
        """Write in-memory BAT entries [first, stop) to the file, in whole sectors."""
        per = SECTOR // 4
        lo, hi = first // per * per, min(-(-stop // per) * per, len(self.bat))
        raw = bat_to_bytes(self.bat[lo:hi])
        raw += b"\xff" * (-len(raw) % SECTOR)
        self.file.pwrite(raw, self.header.table_offset + lo * 4)

    def _write_allocated(self, block: int, within: int, chunk: memoryview) -> None:
        base = self.block_offset(block)
        assert base is not None
        self.file.pwrite(chunk, base + self.bitmap_bytes + within)
        if self.block_is_full(block):
            return
        old = self.read_bitmap(block)
        new = set_sector_bits(old, within // SECTOR, (within + len(chunk)) // SECTOR)
        if new != old:
            self.file.sync()
            self.file.pwrite(new, base)
            self._full[block] = 0

    def set_bat(self, bat: array[int]) -> None:
        """Replace the in-memory BAT (the caller writes it to the file)."""
        self.bat = bat
        self._full = bytearray(len(bat))

    def own_runs(self, block: int) -> list[tuple[int, int]]:
        """Virtual (start, stop) ranges of ``block`` stored in this file (not the parent)."""
        if self.bat[block] == UNALLOCATED:
            return []
        bs = self.block_size
        stop = min(bs, self.size - block * bs)
        if self.block_is_full(block):
            return [(block * bs, block * bs + stop)]
        runs = sector_runs(self.read_bitmap(block), 0, stop // SECTOR)
        return [(block * bs + a * SECTOR, block * bs + z * SECTOR) for p, a, z in runs if p]

    def read_own(self, offset: int, out: memoryview) -> None:
        """Read ``out`` from this file's data area at virtual ``offset`` (one block, present)."""
        block, within = divmod(offset, self.block_size)
        base = self.block_offset(block)
        assert base is not None
        self._read_file(base + self.bitmap_bytes + within, out)

    def rewrite_footers(self, footer: Footer) -> None:
        """Write ``footer`` at the end of the file, then as the copy at offset 0."""
        self.footer = footer
        self.file.pwrite(footer.pack(), self.alloc_pos)
        self.file.sync()
        self.file.pwrite(footer.pack(), 0)


# -- opening ---------------------------------------------------------------------------


def read_footers(file: ImageFile) -> tuple[Footer | None, Footer | None]:
    """(trailing footer, copy at offset 0), each None when absent or not a footer."""
    size = file.size()
    tail = head = None
    if size >= FOOTER_SIZE:
        try:
            tail = Footer.unpack(file.pread(FOOTER_SIZE, size - FOOTER_SIZE), str(file.path))
        except BadFooter:
            tail = None
        raw = file.pread(FOOTER_SIZE, 0)
        if raw[:8] == FOOTER_COOKIE:
            head = Footer.unpack(raw, str(file.path))
    return tail, head


def choose_footer(file: ImageFile) -> Footer:
    """The footer to trust: the trailing one if its checksum holds, else the copy at 0."""
    tail, head = read_footers(file)
    for footer in (tail, head):
        if footer is not None and footer.checksum_ok:
            return validate_footer(file, footer)
    if tail is None and head is None:
        raise BadFooter(f"{file.path}: no VHD footer (cookie 'conectix') found")
    raise BadFooter(f"{file.path}: footer checksum mismatch in every footer copy")


def validate_footer(file: ImageFile, footer: Footer) -> Footer:
    """Reject footers that no reader could use; returns ``footer``."""
    where = str(file.path)
    if footer.disk_type not in (DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING):
        raise UnsupportedDisk(f"{where}: VHD disk type {footer.disk_type} is not 2, 3 or 4")
    if footer.current_size > MAX_VIRTUAL_SIZE or footer.current_size % SECTOR:
        raise BadFooter(
            f"{where}: virtual size {footer.current_size} is not a multiple of 512 up to "
            f"{MAX_VIRTUAL_SIZE} (2040 GiB)"
        )
    if footer.disk_type == DISK_FIXED and file.size() < footer.current_size + FOOTER_SIZE:
        raise BadFooter(
            f"{where}: fixed disk of {footer.current_size} bytes but the file has only "
            f"{file.size()} bytes (truncated)"
        )
    return footer


def read_header(file: ImageFile, footer: Footer) -> DynamicHeader:
    """The dynamic disk header at ``footer.data_offset``; raises BadDynamicHeader."""
    off = footer.data_offset
    if off % SECTOR or off + HEADER_SIZE > file.size():
        raise BadDynamicHeader(f"{file.path}: header offset {off} is outside the file")
    header = DynamicHeader.unpack(file.pread(HEADER_SIZE, off), str(file.path))
    if not header.checksum_ok:
        raise BadDynamicHeader(f"{file.path}: dynamic header checksum mismatch")
    return header


def open_vhd_file(file: ImageFile) -> FixedVhd | SparseVhd:
    """Parse an opened VHD without resolving its parent."""
    footer = choose_footer(file)
    if footer.disk_type == DISK_FIXED:
        return FixedVhd(file, footer)
    return SparseVhd(file, footer, read_header(file, footer))


def open_disk(
    path: Path | str,
    *,
    writable: bool = False,
    lock: bool = True,
    resolve_parent: bool = True,
    raw_ok: bool = True,
) -> DiskImage:
    """Open a VHD (with its whole parent chain) or a raw image.

    Raises CorruptDisk subclasses for malformed VHDs, UnsupportedDisk for VHDX/qcow2
    (or for raw files when ``raw_ok`` is False), ParentLinkError for broken chains and
    DiskInUse when QEMU holds the file. Parents are opened read-only.
    """
    return _open(Path(path), writable, lock, resolve_parent, raw_ok, ())


def _open(
    path: Path, writable: bool, lock: bool, resolve: bool, raw_ok: bool, seen: tuple[Path, ...]
) -> DiskImage:
    from .detect import sniff  # local: detect imports this module's helpers

    fmt = sniff(path)
    if fmt != "vpc":
        if fmt == "raw" and raw_ok:
            return open_raw(path, writable=writable, lock=lock)
        raise UnsupportedDisk(f"{path}: is a {fmt} image; expected a VHD (vpc) or raw image")
    file = ImageFile(path, writable=writable, lock=lock)
    try:
        disk = open_vhd_file(file)
        if resolve and isinstance(disk, SparseVhd) and disk.footer.disk_type == DISK_DIFFERENCING:
            disk.parent = _open_parent(disk, lock, (*seen, path.resolve()))
    except BaseException:
        file.close()
        raise
    return disk


def _open_parent(child: SparseVhd, lock: bool, seen: tuple[Path, ...]) -> DiskImage:
    if len(seen) > MAX_CHAIN_DEPTH:
        raise ParentLinkError(f"{child.path}: parent chain deeper than {MAX_CHAIN_DEPTH}")
    want = child.header.parent_unique_id
    tried: list[str] = []
    for cand in parent_candidates(child.file, child.header):
        if not _is_file(cand):
            tried.append(f"{cand} (missing)")
            continue
        if cand.resolve() in seen:
            raise ParentLinkError(f"{child.path}: parent chain loops back to {cand}")
        parent = _open(cand, False, lock, True, False, seen)
        footer = getattr(parent, "footer", None)
        if footer is not None and footer.unique_id == want:
            if parent.size != child.size:
                parent.close()
                raise ParentLinkError(
                    f"{child.path}: parent {cand} has size {parent.size}, child {child.size}"
                )
            return parent
        parent.close()
        tried.append(f"{cand} (unique id differs)")
    raise ParentLinkError(
        f"{child.path}: parent with unique id {want.hex()} not found; tried: "
        + ("; ".join(tried) or "no locator or parent name")
    )


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a name too long from a damaged locator
        return False


def vhd_mtime(path: Path) -> int:
    """A file's modification time in VHD time-stamp units (seconds since 2000)."""
    return max(0, int(os.stat(path).st_mtime) - 946684800) & 0xFFFFFFFF


# -- moving blocks (compact, expand) -----------------------------------------------------


def move_blocks(disk: SparseVhd, moves: list[tuple[int, int]]) -> None:
    """Copy blocks to new file offsets, then repoint their BAT entries.

    ``moves`` holds (block, new offset) pairs whose targets overlap no live block nor
    each other's sources. Data goes first, a barrier, then the BAT: a crash leaves every
    BAT entry on an intact copy.
    """
    if not moves:
        return
    stride = disk.bitmap_bytes + disk.block_size
    for block, target in moves:
        source = disk.block_offset(block)
        assert source is not None
        disk.file.copy_from(disk.file, source, stride, target)
    disk.file.sync()
    for block, target in moves:
        disk.bat[block] = target // SECTOR
    disk.write_bat_entries(min(b for b, _ in moves), max(b for b, _ in moves) + 1)
    disk.file.sync()


def move_blocks_to_end(disk: SparseVhd, blocks: list[int]) -> None:
    """Move ``blocks`` to the end of the file (footer first, so the tail stays valid)."""
    if not blocks:
        return
    stride = disk.bitmap_bytes + disk.block_size
    start = disk.alloc_pos
    disk.alloc_pos = start + len(blocks) * stride
    disk.file.pwrite(disk.footer.pack(), disk.alloc_pos)
    move_blocks(disk, [(b, start + i * stride) for i, b in enumerate(blocks)])

"""Reading and writing VHDX files: fixed, dynamic and differencing (MS-VHDX v1.0).

Opening picks the valid header with the highest sequence number (§2.2.2), the first
valid region table (§2.2.3), reads the metadata (§2.6) and the BAT (§2.5). A pending
log (non-zero LogGuid) is replayed first when the file is opened for writing; a
read-only open sees the log applied in memory (:mod:`.vhdx_log`).

Write ordering (crash consistency, §2.3): the first change of a session writes new
FileWriteGuid/DataWriteGuid and a LogGuid into both headers; every metadata change (a
BAT sector, a sector bitmap sector, the size item) is then journaled: a log entry,
flushed, then the change in place, flushed. A new block is allocated at the 1 MiB
aligned end of the file and its data written and flushed before its BAT entry is
logged. :meth:`VhdxImage.close` clears the LogGuid. A crash at any point leaves a file
that we and QEMU replay to a state where every sector reads old or new content
(leaked space at worst). Differencing disks allocate whole blocks filled with the
parent's content (FULLY_PRESENT), so we never need a sector bitmap for blocks we
allocate; PARTIALLY_PRESENT blocks written by Hyper-V are read and updated.
"""

from __future__ import annotations

import uuid
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import BadBlockTable, InvalidDiskArgument, ParentLinkError
from .fileio import ImageFile
from .image import BlockImage, Segment, is_zero
from .vhdx_layout import (
    BAT_GUID,
    FILE_PARAMETERS_GUID,
    FP_HAS_PARENT,
    FP_LEAVE_BLOCKS_ALLOCATED,
    HEADER1_OFFSET,
    HEADER2_OFFSET,
    HEADER_SECTION,
    HEADER_SIZE,
    KNOWN_METADATA,
    LOG_SECTOR,
    LOGICAL_SECTOR_GUID,
    METADATA_GUID,
    METADATA_TABLE_SIZE,
    NIL,
    PAGE83_GUID,
    PARENT_LOCATOR_GUID,
    PAYLOAD_FULLY_PRESENT,
    PAYLOAD_PARTIALLY_PRESENT,
    PHYSICAL_SECTOR_GUID,
    REGION1_OFFSET,
    REGION2_OFFSET,
    REGION_TABLE_SIZE,
    SB_PRESENT,
    SECTOR_BITMAP_BLOCK,
    VIRTUAL_DISK_SIZE_GUID,
    BadMetadata,
    BadRegionTable,
    BadVhdxHeader,
    DiskParameters,
    Header,
    MetadataTable,
    MiB,
    RegionEntry,
    RegionTable,
    bat_entry,
    entry_offset,
    entry_state,
    guid_from,
    unpack_creator,
    unpack_parent_locator,
)
from .vhdx_log import (
    LogWrite,
    Pread,
    Replay,
    apply,
    find_replay,
    overlay,
    pack_entry,
    replay_log,
    update_headers,
)

MAX_CHAIN_DEPTH = 64
PRESENT = (PAYLOAD_FULLY_PRESENT, PAYLOAD_PARTIALLY_PRESENT)


@dataclass
class Structure:
    """Everything parsed from a VHDX's header section, metadata and BAT."""

    creator: str
    header: Header
    slot: int  # which header (0 or 1) is current
    headers_valid: tuple[bool, bool]
    regions: RegionTable
    region_copies_valid: tuple[bool, bool]
    bat_region: RegionEntry
    meta_region: RegionEntry
    metadata: MetadataTable
    params: DiskParameters
    locator: dict[str, str] | None
    bat: array[int]


# -- parsing ---------------------------------------------------------------------------
def read_headers(pread: Pread, where: str) -> tuple[Header, int, tuple[bool, bool]]:
    """(current header, its slot, validity of both); BadVhdxHeader when neither is valid."""
    found: list[Header | None] = []
    errors = []
    for n, off in enumerate((HEADER1_OFFSET, HEADER2_OFFSET), 1):
        try:
            found.append(Header.unpack(pread(HEADER_SIZE, off), f"{where}: header {n}"))
        except BadVhdxHeader as err:
            found.append(None)
            errors.append(str(err))
    valid = [(h.sequence_number, i, h) for i, h in enumerate(found) if h is not None]
    if not valid:
        raise BadVhdxHeader("; ".join(errors))
    _, slot, header = max(valid, key=lambda t: (t[0], -t[1]))
    return header, slot, (found[0] is not None, found[1] is not None)


def read_regions(pread: Pread, where: str) -> tuple[RegionTable, tuple[bool, bool]]:
    """The first valid region table and the validity of both copies."""
    tables: list[RegionTable | None] = []
    errors = []
    for n, off in enumerate((REGION1_OFFSET, REGION2_OFFSET), 1):
        try:
            tables.append(RegionTable.unpack(pread(REGION_TABLE_SIZE, off),
                                             f"{where}: region table {n}"))  # fmt: skip
        except BadRegionTable as err:
            tables.append(None)
            errors.append(str(err))
    good = [t for t in tables if t is not None]
    if not good:
        raise BadRegionTable("; ".join(errors))
    return good[0], (tables[0] is not None, tables[1] is not None)


def _required_region(table: RegionTable, guid: uuid.UUID, name: str, where: str) -> RegionEntry:
    entry = table.find(guid)
    if entry is None:
        raise BadRegionTable(f"{where}: region table has no {name} region ({guid})")
    return entry


def _item(pread: Pread, region: RegionEntry, table: MetadataTable, item: uuid.UUID,
          size: int, where: str) -> bytes:  # fmt: skip
    e = table.find(item)
    if e is None or e.length < size:
        raise BadMetadata(f"{where}: required metadata item {item} is missing or too short")
    return pread(e.length, region.file_offset + e.offset)


def read_parameters(pread: Pread, region: RegionEntry, where: str
                    ) -> tuple[MetadataTable, DiskParameters, dict[str, str] | None]:  # fmt: skip
    """The metadata table, the decoded parameters and the parent locator (if any)."""
    table = MetadataTable.unpack(pread(METADATA_TABLE_SIZE, region.file_offset),
                                 region.length, where)  # fmt: skip
    for e in table.entries:
        if e.required and e.item not in KNOWN_METADATA:
            raise BadMetadata(f"{where}: required metadata item {e.item} is unknown")
    fp = _item(pread, region, table, FILE_PARAMETERS_GUID, 8, where)
    bs, flags = int.from_bytes(fp[:4], "little"), int.from_bytes(fp[4:8], "little")

    def u(item: uuid.UUID, n: int) -> int:
        return int.from_bytes(_item(pread, region, table, item, n, where)[:n], "little")

    params = DiskParameters(
        block_size=bs, virtual_size=u(VIRTUAL_DISK_SIZE_GUID, 8),
        logical_sector=u(LOGICAL_SECTOR_GUID, 4), physical_sector=u(PHYSICAL_SECTOR_GUID, 4),
        page83=guid_from(_item(pread, region, table, PAGE83_GUID, 16, where)[:16]),
        has_parent=bool(flags & FP_HAS_PARENT),
        leave_blocks_allocated=bool(flags & FP_LEAVE_BLOCKS_ALLOCATED),
    ).check(where)  # fmt: skip
    locator = None
    if params.has_parent:
        raw = _item(pread, region, table, PARENT_LOCATOR_GUID, 20, where)
        locator = unpack_parent_locator(raw, where)
    return table, params, locator


def read_bat(pread: Pread, region: RegionEntry, params: DiskParameters, where: str) -> array[int]:
    """The BAT entries as native u64; BadBlockTable when the region is too small."""
    n = params.bat_entries
    if region.length < n * 8:
        raise BadBlockTable(f"{where}: BAT region holds {region.length // 8} entries, needs {n}")
    bat = array("Q", pread(n * 8, region.file_offset))
    if len(bat) < n:
        raise BadBlockTable(f"{where}: BAT at {region.file_offset} is cut off by the file end")
    return bat


def read_structure(pread: Pread, where: str) -> Structure:
    """Parse a VHDX through ``pread`` (which may apply a pending log)."""
    creator = unpack_creator(pread(520, 0), where)
    header, slot, hv = read_headers(pread, where)
    regions, rv = read_regions(pread, where)
    bat_r = _required_region(regions, BAT_GUID, "BAT", where)
    meta_r = _required_region(regions, METADATA_GUID, "metadata", where)
    table, params, locator = read_parameters(pread, meta_r, where)
    bat = read_bat(pread, bat_r, params, where)
    return Structure(creator, header, slot, hv, regions, rv, bat_r, meta_r, table, params,
                     locator, bat)  # fmt: skip


# -- the image ---------------------------------------------------------------------------
class VhdxImage(BlockImage):
    """A fixed, dynamic or differencing VHDX, readable and writable at any offset."""

    def __init__(self, file: ImageFile, s: Structure, replay: Replay | None):
        self.file, self.path, self.s = file, file.path, s
        self.format = "vhdx"
        self.size = s.params.virtual_size
        self.block_size = s.params.block_size
        self.chunk_ratio = s.params.chunk_ratio
        self.block_count = s.params.payload_blocks
        self.pending = replay  # a log seen but not replayed (read-only open)
        self.disk_type = self._kind()
        self._session_started = False
        self._check_bat()
        self.alloc_pos = self._first_free()

    def _kind(self) -> str:
        """ "differencing" with a parent, "fixed" with LeaveBlocksAllocated (§2.6.2.1)."""
        if self.s.params.has_parent:
            return "differencing"
        return "fixed" if self.s.params.leave_blocks_allocated else "dynamic"

    def __enter__(self) -> VhdxImage:
        return self

    def _check_bat(self) -> None:
        """BadBlockTable for a present block or bitmap outside the file or in its header."""
        end = max(self.file.size(), self.pending.last_file_offset if self.pending else 0)
        for i, e in enumerate(self.s.bat):
            payload = i % (self.chunk_ratio + 1) != self.chunk_ratio
            partial = payload and entry_state(e) == PAYLOAD_PARTIALLY_PRESENT
            if partial and not self.s.params.has_parent:
                raise BadBlockTable(
                    f"{self.path}: BAT entry {i} is partially present, which only a "
                    "differencing disk may be (§2.5.1.1)"
                )
            length = entry_extent(i, e, self.s.params)
            off = entry_offset(e)
            if length and (off < HEADER_SECTION or off + length > end):
                raise BadBlockTable(
                    f"{self.path}: BAT entry {i} points to {off} (+{length} bytes), outside "
                    f"the data area 1 MiB .. {end}"
                )

    # -- geometry ----------------------------------------------------------------------
    def bat_index(self, block: int) -> int:
        """BAT index of payload ``block`` (a sector bitmap entry follows each chunk)."""
        return block + block // self.chunk_ratio

    def bitmap_index(self, block: int) -> int:
        """BAT index of the sector bitmap entry covering ``block``."""
        chunk = block // self.chunk_ratio
        return chunk * (self.chunk_ratio + 1) + self.chunk_ratio

    def block_state(self, block: int) -> tuple[int, int]:
        """(state, file offset) of payload ``block``."""
        e = self.s.bat[self.bat_index(block)]
        return entry_state(e), entry_offset(e)

    def _first_free(self) -> int:
        ends = [self.s.bat_region.file_offset + self.s.bat_region.length,
                self.s.meta_region.file_offset + self.s.meta_region.length,
                self.s.header.log_offset + self.s.header.log_length, self.file.size()]  # fmt: skip
        for e in self.s.bat:
            if entry_state(e) in PRESENT or (entry_state(e) == SB_PRESENT and e >> 20):
                ends.append(entry_offset(e) + self.block_size)
        return -(-max(ends) // MiB) * MiB

    # -- reading -----------------------------------------------------------------------
    def _pread_file(self, offset: int, out: memoryview) -> None:
        if self.pending is not None:
            data = overlay(self.file.pread, self.pending)(len(out), offset)
            out[: len(data)] = data
            out[len(data) :] = bytes(len(out) - len(data))
            return
        got = self.file.readinto(out, offset)
        if got < len(out):
            out[got:] = bytes(len(out) - got)

    def _read_block(self, block: int, within: int, out: memoryview) -> None:
        state, base = self.block_state(block)
        if state == PAYLOAD_FULLY_PRESENT:
            self._pread_file(base + within, out)
        elif state == PAYLOAD_PARTIALLY_PRESENT and self.parent is not None:
            self._read_partial(block, within, out)
        elif self.parent is not None and state not in PRESENT and self._from_parent(state):
            self.parent.readinto(block * self.block_size + within, out)
        else:
            out[:] = bytes(len(out))

    def _from_parent(self, state: int) -> bool:
        """§2.5.1.1: in a differencing disk only NOT_PRESENT (and UNDEFINED) mean "parent"."""
        return state in (0, 1)

    def _read_partial(self, block: int, within: int, out: memoryview) -> None:
        assert self.parent is not None
        _, base = self.block_state(block)
        virt = block * self.block_size + within
        for present, start, stop in self.sector_runs(virt, len(out), block):
            view = out[start - virt : stop - virt]
            if present:
                self._pread_file(base + start - block * self.block_size, view)
            else:
                self.parent.readinto(start, view)

    def sector_runs(self, virt: int, length: int, block: int
                     ) -> Iterator[tuple[bool, int, int]]:  # fmt: skip
        """(present in this file, virtual start, stop) runs of [virt, virt+length)."""
        sector = self.s.params.logical_sector
        s0, s_end = virt // sector, -(-(virt + length) // sector)
        bits = self._bitmap_bits(block, s0, s_end - s0)
        start, cur = virt, bool(bits & 1)
        for i in range(1, s_end - s0):
            bit = bool(bits >> i & 1)
            if bit != cur:
                stop = (s0 + i) * sector
                yield cur, start, stop
                start, cur = stop, bit
        yield cur, start, virt + length

    def _bitmap_bits(self, block: int, s0: int, count: int) -> int:
        """Bits of the sector bitmap for virtual sectors [s0, s0+count), bit 0 first."""
        e = self.s.bat[self.bitmap_index(block)]
        if entry_state(e) != SB_PRESENT:
            return 0
        per_chunk = self.chunk_ratio * self.block_size // self.s.params.logical_sector
        first = s0 % per_chunk
        lo, hi = first // 8, -(-(first + count) // 8)
        raw = bytearray(hi - lo)
        self._pread_file(entry_offset(e) + lo, memoryview(raw))
        return int.from_bytes(raw, "little") >> (first - lo * 8)

    def _segments(self, offset: int, length: int) -> Iterator[Segment]:
        for block, within, at, n in self.pieces(offset, length):
            pos, (state, base) = offset + at, self.block_state(block)
            if state == PAYLOAD_FULLY_PRESENT and self.pending is None:
                yield Segment(self.file, base + within, pos, n)
            elif state not in PRESENT and self.parent is not None and self._from_parent(state):
                yield from self.parent.segments(pos, n)
            else:
                yield Segment(None, pos, pos, n)

    def _has_block(self, block: int) -> bool:
        return self.block_state(block)[0] in PRESENT

    def allocated_blocks(self) -> int:
        """Payload blocks with space in this file."""
        return sum(1 for b in range(self.block_count) if self.block_state(b)[0] in PRESENT)

    # -- writing -----------------------------------------------------------------------
    def begin_session(self) -> None:
        """§2.2.2, §2.3: new FileWriteGuid, DataWriteGuid and a LogGuid before the first
        change; the LogGuid stays set until :meth:`close`, so a crash in between leaves a
        log that the next open (ours or QEMU's) replays."""
        if self._session_started:
            return
        self.s.header, self.s.slot = update_headers(
            self.file, self.s.header, self.s.slot, file_write_guid=uuid.uuid4(),
            data_write_guid=uuid.uuid4(), log_guid=uuid.uuid4(),
        )  # fmt: skip
        self._session_started, self._log_pos, self._log_seq = True, 0, 1

    def log_and_apply(self, writes: list[LogWrite]) -> None:
        """Journal metadata ``writes`` (aligned 4 KiB sectors or zero ranges, §2.3.1):
        one log entry, flushed, then the writes in place, flushed. Its Tail is itself:
        everything logged before is already in place. Raises InvalidDiskArgument when
        the entry does not fit in the log (nothing changed)."""
        self.begin_session()
        h = self.s.header
        size = self.file.size()
        probe = pack_entry(writes, self._log_seq, h.log_guid, size)
        if len(probe) > h.log_length:
            raise InvalidDiskArgument(
                f"{self.path}: a change of {len(probe)} log bytes does not fit in the "
                f"{h.log_length}-byte log (nothing was changed)"
            )
        if self._log_pos + len(probe) > h.log_length:
            self._log_pos = 0  # the log is circular (§2.3)
        entry = pack_entry(writes, self._log_seq, h.log_guid, size, tail=self._log_pos)
        self.file.pwrite(entry, h.log_offset + self._log_pos)
        self.file.sync()
        apply(self.file, Replay(tuple(writes), size, size, self._log_seq))
        self._log_pos += len(entry)
        self._log_seq += 1

    def close(self) -> None:
        """Flush, clear the LogGuid of a write session (the log is empty), and close."""
        if self._session_started and self.file.fd >= 0:
            self.file.sync()
            self.s.header, self.s.slot = update_headers(
                self.file, self.s.header, self.s.slot, log_guid=NIL
            )
            self._session_started = False
        super().close()

    def _write(self, offset: int, data: memoryview) -> None:
        self.begin_session()
        for block, within, at, n in self.pieces(offset, len(data)):
            self._write_block(block, within, data[at : at + n])

    def _write_block(self, block: int, within: int, chunk: memoryview) -> None:
        state, base = self.block_state(block)
        if state == PAYLOAD_FULLY_PRESENT:
            self.file.pwrite(chunk, base + within)
        elif state == PAYLOAD_PARTIALLY_PRESENT:
            self._write_partial(block, within, chunk)
        elif not is_zero(chunk) or self._parent_has_data(block, state):
            self._allocate(block, within, chunk, state)

    def _parent_has_data(self, block: int, state: int) -> bool:
        if self.parent is None or not self._from_parent(state):
            return False
        bs = self.block_size
        return next(iter(self.parent.data_runs(block * bs, (block + 1) * bs)), None) is not None

    def _allocate(self, block: int, within: int, chunk: memoryview, state: int) -> None:
        """Give ``block`` space at the end of the file: data, barrier, then BAT entry."""
        bs, base = self.block_size, self.alloc_pos
        n = min(bs, self.size - block * bs)
        if self.parent is not None and self._from_parent(state):
            area = bytearray(n)
            self.parent.readinto(block * bs, memoryview(area))
            area[within : within + len(chunk)] = chunk
            self.file.truncate(base + bs)
            self.file.pwrite(area, base)
        else:
            self.file.truncate(base + bs)
            self.file.pwrite(chunk, base + within)
        self.file.sync()
        self.alloc_pos = base + bs
        self.set_entry(self.bat_index(block), bat_entry(PAYLOAD_FULLY_PRESENT, base))

    def _write_partial(self, block: int, within: int, chunk: memoryview) -> None:
        """Data first, barrier, then the sector bitmap bits (§2.5.1.2, LSB first)."""
        _, base = self.block_state(block)
        self.file.pwrite(chunk, base + within)
        self.file.sync()
        e = self.s.bat[self.bitmap_index(block)]
        sector = self.s.params.logical_sector
        first = (block * self.block_size + within) % (self.chunk_ratio * self.block_size) // sector
        count = len(chunk) // sector
        lo, hi = first // 8 // LOG_SECTOR * LOG_SECTOR, -(-(first + count) // 8 // LOG_SECTOR)
        area = bytearray(self.file.pread(hi * LOG_SECTOR - lo, entry_offset(e) + lo))
        bits = int.from_bytes(area, "little") | (((1 << count) - 1) << (first - lo * 8))
        self.log_and_apply(sector_writes(entry_offset(e) + lo, bits.to_bytes(len(area), "little")))

    def set_entry(self, index: int, value: int) -> None:
        """Set BAT entry ``index`` in memory and, through the log, in the file."""
        self.s.bat[index] = value
        per = LOG_SECTOR // 8
        first = index // per * per
        raw = self.s.bat[first : first + per].tobytes()
        at = self.s.bat_region.file_offset + first * 8
        raw += self.file.pread(LOG_SECTOR - len(raw), at + len(raw))
        self.log_and_apply([LogWrite(at, LOG_SECTOR, raw.ljust(LOG_SECTOR, b"\0"))])

    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset``; partially covered logical sectors are merged."""
        sector = self.s.params.logical_sector
        if offset % sector or len(data) % sector:
            self._check_range(offset, len(data))
            start, end = offset - offset % sector, -(-(offset + len(data)) // sector) * sector
            buf = bytearray(self.read(start, min(end, self.size) - start))
            buf[offset - start : offset - start + len(data)] = data
            offset, data = start, buf
        super().write(offset, data)


def sector_writes(offset: int, data: bytes) -> list[LogWrite]:
    """``data`` (4 KiB aligned at ``offset``, a multiple of 4 KiB) as one write per sector."""
    return [LogWrite(offset + i, LOG_SECTOR, data[i : i + LOG_SECTOR])
            for i in range(0, len(data), LOG_SECTOR)]  # fmt: skip


def entry_extent(index: int, entry: int, params: DiskParameters) -> int:
    """Bytes the present block or sector bitmap of BAT entry ``index`` needs in the file
    (0 when it has none): a bitmap 1 MiB, a payload block its block size, cut at the
    virtual size for the last block."""
    cr, state = params.chunk_ratio, entry_state(entry)
    if index % (cr + 1) == cr:
        return SECTOR_BITMAP_BLOCK if state == SB_PRESENT else 0
    if state not in PRESENT:
        return 0
    block = index - index // (cr + 1)
    return min(params.block_size, params.virtual_size - block * params.block_size)


# -- opening -------------------------------------------------------------------------------
def open_vhdx_file(file: ImageFile) -> VhdxImage:
    """Parse an opened VHDX (replaying a pending log when ``file`` is writable)."""
    where = str(file.path)
    header, slot, _ = read_headers(file.pread, where)
    pending = None
    if header.log_guid != NIL:
        if file.writable:
            replay_log(file, header, slot, where)
        else:
            pending = find_replay(file.pread, header, file.size(), where)
    pread = file.pread if pending is None else overlay(file.pread, pending)
    return VhdxImage(file, read_structure(pread, where), pending)


def open_vhdx(path: Path, *, writable: bool = False, lock: bool = True, resolve_parent: bool = True,
              seen: tuple[Path, ...] = ()) -> VhdxImage:  # fmt: skip
    """Open the VHDX at ``path`` and, for a differencing one, its parent chain.

    Raises CorruptDisk subclasses (BadVhdxHeader, BadRegionTable, BadMetadata,
    BadBlockTable, BadLog) for malformed files, ParentLinkError for a broken chain and
    DiskInUse when another program holds the file. Parents are opened read-only.
    """
    file = ImageFile(path, writable=writable, lock=lock)
    try:
        disk = open_vhdx_file(file)
        if resolve_parent and disk.s.params.has_parent:
            disk.parent = _open_parent(disk, lock, (*seen, path.resolve()))
    except BaseException:
        file.close()
        raise
    return disk


def replay_pending_log(path: Path | str) -> bool:
    """Replay the pending log of the VHDX at ``path``, if any; True when one was replayed.

    Call it before handing a VHDX to QEMU (which refuses to open a dirty VHDX read-only
    and replays it itself otherwise). Raises BadLog when the log cannot be replayed,
    DiskInUse when another program holds the file, CorruptDisk for unusable headers.
    """
    with ImageFile(Path(path), writable=True) as file:
        header, slot, _ = read_headers(file.pread, str(path))
        if header.log_guid == NIL:
            return False
        replay_log(file, header, slot, str(path))
        return True


def parent_candidates(disk: VhdxImage) -> list[Path]:
    """Where the parent may be: relative_path, then absolute paths (§2.6.2.6.1)."""
    loc, here = disk.s.locator or {}, disk.path.absolute().parent
    out = []
    rel = loc.get("relative_path")
    if rel:
        out.append(here / rel.replace("\\", "/"))
    for key in ("absolute_win32_path", "volume_path"):
        text = loc.get(key, "")
        if text.startswith("/"):
            out.append(Path(text))
        elif len(text) > 2 and text[1] == ":":
            out.append(here / text.replace("\\", "/").rsplit("/", 1)[-1])
    return list(dict.fromkeys(out))


def _open_parent(child: VhdxImage, lock: bool, seen: tuple[Path, ...]) -> VhdxImage:
    if len(seen) > MAX_CHAIN_DEPTH:
        raise ParentLinkError(f"{child.path}: parent chain deeper than {MAX_CHAIN_DEPTH}")
    link = (child.s.locator or {}).get("parent_linkage", "").strip("{}").lower()
    tried = []
    for cand in parent_candidates(child):
        if not cand.is_file():
            tried.append(f"{cand} (missing)")
            continue
        if cand.resolve() in seen:
            raise ParentLinkError(f"{child.path}: parent chain loops back to {cand}")
        parent = open_vhdx(cand, lock=lock, seen=seen)
        if str(parent.s.header.data_write_guid) == link and parent.size == child.size:
            return parent
        parent.close()
        tried.append(f"{cand} (DataWriteGuid or size differs)")
    raise ParentLinkError(
        f"{child.path}: parent with DataWriteGuid {link or '(none)'} not found; tried: "
        + ("; ".join(tried) or "no parent locator path")
    )


def require_vhdx_size(size: int) -> int:
    """``size`` rounded up to 512, or InvalidDiskArgument outside 512 B .. 64 TiB."""
    from .vhdx_layout import MAX_VIRTUAL_SIZE

    if not 0 < size <= MAX_VIRTUAL_SIZE:
        raise InvalidDiskArgument(
            f"virtual size {size} is outside the allowed range for VHDX: 512 bytes .. 64 TiB"
        )
    return -(-size // 512) * 512

"""The VHDX log (MS-VHDX §2.3): finding the active sequence, replaying it, writing entries.

A VHDX whose current header carries a non-zero LogGuid has a pending log: metadata (and
possibly data) writes that were logged but may not have reached their final place.
Replay (§2.3.3) writes every logged sector to its file offset, extends the file to the
entry's LastFileOffset, flushes, and only then clears LogGuid in both headers. Writes
land on absolute offsets with logged contents, so replay is idempotent: a crash in the
middle leaves LogGuid set and the next open replays the same sequence again.

A file opened read-only cannot be replayed; its readers see the log applied through
:func:`overlay` instead (the file stays untouched).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from .fileio import ImageFile
from .vhdx_layout import (
    DESCRIPTOR_SIZE,
    HEADER1_OFFSET,
    HEADER2_OFFSET,
    LOG_HEADER_SIZE,
    LOG_SECTOR,
    NIL,
    BadLog,
    Descriptor,
    Header,
    LogEntryHeader,
    checksum_ok,
    descriptor_sectors,
    pack_data_sector,
    unpack_data_sector,
    with_checksum,
)

HEADER_OFFSETS = (HEADER1_OFFSET, HEADER2_OFFSET)
Pread = Callable[[int, int], bytes]


@dataclass(frozen=True)
class LogWrite:
    """One logged change: ``data`` at ``file_offset``, or ``length`` zeros when data is None."""

    file_offset: int
    length: int
    data: bytes | None = None


@dataclass(frozen=True)
class Replay:
    """The active sequence's writes, in order, and the file size it requires."""

    writes: tuple[LogWrite, ...]
    flushed_file_offset: int
    last_file_offset: int
    sequence_number: int


# -- reading the log ----------------------------------------------------------------------
def _entry_at(log: bytes, pos: int, log_guid: uuid.UUID) -> tuple[LogEntryHeader, list[LogWrite]]:
    """The valid entry at ``pos`` of ``log`` with its writes; ValueError when invalid."""
    head = LogEntryHeader.unpack(log[pos : pos + LOG_HEADER_SIZE])
    if head is None or head.log_guid != log_guid:
        raise ValueError("no entry")
    n = head.entry_length
    if n < LOG_SECTOR or n % LOG_SECTOR or pos + n > len(log):
        raise ValueError("bad length")
    raw = log[pos : pos + n]
    if not checksum_ok(raw):
        raise ValueError("bad checksum")
    dsec = descriptor_sectors(head.descriptor_count)
    descs = [
        Descriptor.unpack(raw[LOG_HEADER_SIZE + i * DESCRIPTOR_SIZE :], "log")
        for i in range(head.descriptor_count)
    ]
    writes, data_pos = [], dsec * LOG_SECTOR
    for d in descs:
        if d.sequence_number != head.sequence_number:
            raise ValueError("descriptor sequence")
        if d.is_zero:
            writes.append(LogWrite(d.file_offset, d.zero_length))
            continue
        sector = unpack_data_sector(raw[data_pos : data_pos + LOG_SECTOR], d)
        if sector is None:
            raise ValueError("bad data sector")
        writes.append(LogWrite(d.file_offset, LOG_SECTOR, sector))
        data_pos += LOG_SECTOR
    if data_pos != n:
        raise ValueError("entry length does not match its descriptors")
    return head, writes


def _scan(log: bytes, log_guid: uuid.UUID) -> dict[int, tuple[LogEntryHeader, list[LogWrite]]]:
    found = {}
    for pos in range(0, len(log), LOG_SECTOR):
        try:
            found[pos] = _entry_at(log, pos, log_guid)
        except (ValueError, BadLog):
            continue
    return found


def _sequence(found: dict[int, tuple[LogEntryHeader, list[LogWrite]]], start: int,
              size: int) -> list[int]:  # fmt: skip
    """Offsets of the chain of entries from ``start`` with consecutive sequence numbers."""
    out, pos = [start], start
    while True:
        nxt = (pos + found[pos][0].entry_length) % size
        if nxt not in found or nxt in out:
            return out
        if found[nxt][0].sequence_number != found[pos][0].sequence_number + 1:
            return out
        out.append(nxt)
        pos = nxt


def find_replay(pread: Pread, header: Header, file_size: int, where: str) -> Replay:
    """The active sequence of the log named by ``header`` (§2.3.2).

    The sequence is the longest chain of valid entries (signature, CRC-32C, LogGuid,
    consecutive sequence numbers) that ends with the highest sequence number and whose
    last entry's Tail points into it. Without any valid entry the replay is empty (an
    entry is written and flushed before anything it describes, so a torn entry changed
    nothing; QEMU agrees). Raises BadLog when the file is shorter than the sequence's
    FlushedFileOffset (data the log relies on is missing).
    """
    log = pread(header.log_length, header.log_offset)
    if len(log) < header.log_length:
        raise BadLog(f"{where}: log at {header.log_offset} (+{header.log_length}) is cut off")
    found = _scan(log, header.log_guid)
    best: list[int] = []
    for start in found:
        seq = _sequence(found, start, len(log))
        tail = found[seq[-1]][0].tail
        if tail not in seq:
            continue
        seq = seq[seq.index(tail) :]
        if not best or found[seq[-1]][0].sequence_number > found[best[-1]][0].sequence_number:
            best = seq
    if not best:  # a torn first entry: nothing was applied in place, nothing to replay
        return Replay((), 0, 0, 0)
    last = found[best[-1]][0]
    if file_size < last.flushed_file_offset:
        raise BadLog(
            f"{where}: file has {file_size} bytes, the log needs {last.flushed_file_offset}"
        )
    writes = tuple(w for pos in best for w in found[pos][1])
    return Replay(writes, last.flushed_file_offset, last.last_file_offset, last.sequence_number)


def overlay(pread: Pread, replay: Replay) -> Pread:
    """A ``pread`` that returns what the file will hold after ``replay`` (read-only view)."""

    def patched(length: int, offset: int) -> bytes:
        buf = bytearray(pread(length, offset))
        if len(buf) < length and offset + length <= replay.last_file_offset:
            buf += bytes(length - len(buf))
        for w in replay.writes:
            lo, hi = max(offset, w.file_offset), min(offset + len(buf), w.file_offset + w.length)
            if lo < hi:
                src = (
                    bytes(hi - lo)
                    if w.data is None
                    else w.data[lo - w.file_offset : hi - w.file_offset]
                )
                buf[lo - offset : hi - offset] = src
        return bytes(buf)

    return patched


# -- replay and header updates ----------------------------------------------------------
def apply(file: ImageFile, replay: Replay) -> None:
    """Write every logged change in order, extend the file, and flush (§2.3.3)."""
    for w in replay.writes:
        file.pwrite(w.data if w.data is not None else bytes(w.length), w.file_offset)
    if file.size() < replay.last_file_offset:
        file.truncate(replay.last_file_offset)
    file.sync()


def update_headers(
    file: ImageFile, current: Header, slot: int, **changes: object
) -> tuple[Header, int]:
    """Write ``current`` with ``changes`` to both header slots, the non-current one first.

    Each write carries a higher sequence number and is flushed before the next, so a
    crash at any point leaves one valid header that is either the old or the new one
    (§2.2.2.1). Returns the new current header and its slot.
    """
    new = replace(current, **changes)  # type: ignore[arg-type]
    for n, target in enumerate((1 - slot, slot), 1):
        new = replace(new, sequence_number=current.sequence_number + n)
        file.pwrite(new.pack(), HEADER_OFFSETS[target])
        file.sync()
    return new, slot


def replay_log(file: ImageFile, header: Header, slot: int, where: str) -> tuple[Header, int]:
    """Replay the pending log of the writable ``file`` and clear its LogGuid."""
    plan = find_replay(file.pread, header, file.size(), where)
    apply(file, plan)
    return update_headers(file, header, slot, log_guid=NIL)


# -- writing a log entry -----------------------------------------------------------------
def pack_entry(writes: list[LogWrite], sequence_number: int, log_guid: uuid.UUID,
               file_size: int, tail: int = 0) -> bytes:  # fmt: skip
    """One log entry holding ``writes`` (data writes must be 4 KiB, 4 KiB aligned)."""
    descs, sectors = [], []
    for w in writes:
        if w.data is None:
            descs.append(Descriptor(w.file_offset, sequence_number, zero_length=w.length))
            continue
        if len(w.data) != LOG_SECTOR or w.file_offset % LOG_SECTOR:
            raise ValueError("a logged data write is one aligned 4 KiB sector")
        body, lead, trail = pack_data_sector(w.data, sequence_number)
        descs.append(Descriptor(w.file_offset, sequence_number, leading=lead, trailing=trail))
        sectors.append(body)
    length = (descriptor_sectors(len(descs)) + len(sectors)) * LOG_SECTOR
    head = LogEntryHeader(length, tail, sequence_number, len(descs), log_guid, file_size, file_size)
    front = head.pack() + b"".join(d.pack() for d in descs)
    front += bytes(descriptor_sectors(len(descs)) * LOG_SECTOR - len(front))
    return with_checksum(front + b"".join(sectors))

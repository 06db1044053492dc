"""Checking a VHDX against MS-VHDX, and repairing what is safe to repair.

Named problems (``Problem.code``): ``header_invalid`` (one header's signature or
CRC-32C is bad; repaired from the other), ``headers_invalid`` (both), ``log_pending``
(a log waits for replay; repair replays it, §2.3.3), ``log_invalid`` (pending but not
replayable), ``region_table_invalid`` (one copy bad; repaired from the other),
``region_tables_invalid``, ``metadata_invalid``, ``bat_invalid``, ``bat_entry_state``
(a state the spec does not define), ``bat_entry_outside_file`` (repaired by marking the
block unallocated: its data is not in the file anyway), ``bat_entry_in_metadata``
(a block over the header section, log, metadata or BAT), ``bat_entries_overlap``,
``sector_bitmap_missing`` (a partially present block without its sector bitmap) and
``parent_link``.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from .check import CheckReport, Problem, run_checker
from .errors import CorruptDisk, DiskError
from .fileio import ImageFile
from .vhdx import Structure, entry_extent, open_vhdx, read_headers, read_regions, read_structure
from .vhdx_layout import (
    NIL,
    PAYLOAD_PARTIALLY_PRESENT,
    PAYLOAD_STATES,
    REGION1_OFFSET,
    REGION2_OFFSET,
    SB_NOT_PRESENT,
    SB_PRESENT,
    BadLog,
    Header,
    MiB,
    bat_entry,
    entry_offset,
    entry_state,
)
from .vhdx_log import Pread, find_replay, overlay, replay_log, update_headers


def check_vhdx(path: Path, repair: bool = False) -> CheckReport:
    """Check the VHDX at ``path``; with ``repair`` fix the safe problems in place."""
    return run_checker(path, repair, _Checker)


class _Checker:
    """One pass over a VHDX's structures, collecting problems and repair steps."""

    def __init__(self, file: ImageFile):
        self.file, self.where, self.size = file, str(file.path), file.size()
        self.problems: list[Problem] = []
        self.pread: Pread = file.pread
        self.s: Structure | None = None
        self.bat_fixes: dict[int, int] = {}
        self.fix_headers = self.fix_regions = self.replay = False

    def add(self, code: str, message: str, repairable: bool = False, warn: bool = False) -> None:
        severity = "warning" if warn else "error"
        self.problems.append(Problem(code, f"{self.where}: {message}", repairable, severity))

    def run(self) -> list[Problem]:
        if self._headers() and self._regions() and self._structure():
            self._bat()
            self._parent()
        return self.problems

    def _headers(self) -> bool:
        try:
            header, _, valid = read_headers(self.pread, self.where)
        except CorruptDisk as err:
            self.add("headers_invalid", _strip(err, self.where))
            return False
        for n, ok in enumerate(valid, 1):
            if not ok:
                self.add("header_invalid", f"header {n}: bad signature or CRC-32C checksum", True)
                self.fix_headers = True
        if header.log_guid != NIL:
            return self._log(header)
        return True

    def _log(self, header: Header) -> bool:
        try:
            plan = find_replay(self.pread, header, self.size, self.where)
        except BadLog as err:
            self.add("log_invalid", _strip(err, self.where))
            return False
        self.add("log_pending", f"log {header.log_guid} has {len(plan.writes)} changes "
                 "waiting for replay (repair replays it)", True)  # fmt: skip
        self.replay, self.pread = True, overlay(self.file.pread, plan)
        return True

    def _regions(self) -> bool:
        try:
            _, valid = read_regions(self.pread, self.where)
        except CorruptDisk as err:
            self.add("region_tables_invalid", _strip(err, self.where))
            return False
        for n, ok in enumerate(valid, 1):
            if not ok:
                self.add("region_table_invalid", f"region table {n}: bad signature, CRC-32C "
                         "or entries", True)  # fmt: skip
                self.fix_regions = True
        return True

    def _structure(self) -> bool:
        try:
            self.s = read_structure(self.pread, self.where)
        except CorruptDisk as err:
            code = "bat_invalid" if "BAT" in str(err) else "metadata_invalid"
            self.add(code, _strip(err, self.where))
            return False
        return True

    def _bat(self) -> None:
        assert self.s is not None
        s = self.s
        cr = s.params.chunk_ratio
        meta = [(0, 1 * MiB), (s.header.log_offset, s.header.log_offset + s.header.log_length)]
        meta += [(r.file_offset, r.file_offset + r.length) for r in (s.meta_region, s.bat_region)]
        live: list[tuple[int, int, int]] = []
        for i, e in enumerate(s.bat):
            bitmap = i % (cr + 1) == cr
            state, off = entry_state(e), entry_offset(e)
            length = entry_extent(i, e, s.params)
            if not self._state_ok(i, state, bitmap) or not length:
                continue
            if off + length > self.size:
                self.add("bat_entry_outside_file", f"BAT entry {i} at {off} (+{length}) runs "
                         f"past the file end {self.size}", True)  # fmt: skip
                self.bat_fixes[i] = 0
            elif any(off < hi and lo < off + length for lo, hi in meta):
                self.add("bat_entry_in_metadata", f"BAT entry {i} at {off} overlaps the header "
                         "section, log, metadata or BAT")  # fmt: skip
            else:
                live.append((off, length, i))
            if not bitmap and state == PAYLOAD_PARTIALLY_PRESENT:
                self._bitmap_present(i, cr)
        live.sort()
        for (a, n, i), (b, _, j) in itertools.pairwise(live):
            if b < a + n:
                self.add(
                    "bat_entries_overlap", f"BAT entries {i} (at {a}) and {j} (at {b}) overlap"
                )

    def _state_ok(self, i: int, state: int, bitmap: bool) -> bool:
        allowed = (SB_NOT_PRESENT, SB_PRESENT) if bitmap else tuple(PAYLOAD_STATES)
        assert self.s is not None
        if not bitmap and not self.s.params.has_parent:  # §2.5.1.1: differencing only
            allowed = tuple(st for st in allowed if st != PAYLOAD_PARTIALLY_PRESENT)
        if state in allowed:
            return True
        what = "sector bitmap" if bitmap else "payload block"
        self.add("bat_entry_state", f"BAT entry {i}: state {state} is not a valid {what} state")
        return False

    def _bitmap_present(self, i: int, cr: int) -> None:
        assert self.s is not None
        sb = (i // (cr + 1)) * (cr + 1) + cr
        if entry_state(self.s.bat[sb]) != SB_PRESENT:
            self.add("sector_bitmap_missing", f"BAT entry {i} is partially present but its "
                     f"sector bitmap (entry {sb}) is not present")  # fmt: skip

    def _parent(self) -> None:
        assert self.s is not None
        if not self.s.params.has_parent or self.replay:
            return
        try:
            with open_vhdx(self.file.path, lock=False):
                pass
        except DiskError as err:
            self.add("parent_link", _strip(err, self.where))

    # -- repair ------------------------------------------------------------------------
    def repair(self) -> list[str]:
        done: list[str] = []
        header, slot, _ = read_headers(self.file.pread, self.where)
        if self.replay:
            header, slot = replay_log(self.file, header, slot, self.where)
            done.append("replayed the pending log")
        elif self.fix_headers:
            update_headers(self.file, header, slot)
            done.append("rewrote both headers from the valid one")
        if self.fix_regions:
            table, _ = read_regions(self.file.pread, self.where)
            for off in (REGION1_OFFSET, REGION2_OFFSET):
                self.file.pwrite(table.pack(), off)
            self.file.sync()
            done.append("rewrote both region tables from the valid one")
        if self.bat_fixes and self.s is not None:
            for i in sorted(self.bat_fixes):
                self._unallocate(i)
            self.file.sync()
            done.append(f"unallocated {len(self.bat_fixes)} BAT entries pointing past the file end")
        return done

    def _unallocate(self, i: int) -> None:
        assert self.s is not None
        state = 2 if self.s.params.has_parent else 0  # differencing: ZERO, not "see parent"
        if i % (self.s.params.chunk_ratio + 1) == self.s.params.chunk_ratio:
            state = SB_NOT_PRESENT
        self.file.pwrite(bat_entry(state, 0).to_bytes(8, "little"),
                         self.s.bat_region.file_offset + i * 8)  # fmt: skip


def _strip(err: Exception, where: str) -> str:
    return str(err).replace(where + ": ", "")

"""Checking a VHD against the specification, and repairing what is safe to repair.

Every problem gets a stable ``code`` and a message naming the structure, the block and
the offsets involved. Safe repairs: restore a bad or missing footer copy from the good
one, set the reserved feature bit, fix a fixed disk's data offset, and unallocate BAT
entries that point past the end of the file (their data is not in the file anyway).

A trailing footer that is missing because the file was cut in the middle of it is
rewritten over its fragment, right after the last structure (block, BAT, header, parent
locator); when more than a sector of unknown bytes follows the last structure, the
footer is appended after them instead (nothing is overwritten). Either way the file
then ends exactly with the footer, where every reader looks for it (a repair truncates
at most the sub-sector tail of an unaligned file). Blocks are judged against the end
of the data area, which is the file's end when the trailing footer is missing, so a cut
footer never costs a complete block. A footer whose disk type is not 2, 3 or 4 is
reported (``disk_type``), never repaired.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from .detect import sniff
from .errors import BadDynamicHeader, DiskError, UnsupportedDisk
from .fileio import ImageFile
from .vhd import SparseVhd, bat_from_bytes, open_disk, read_footers, vhd_mtime
from .vhd_layout import (
    ALL_ONES_64,
    DISK_DIFFERENCING,
    DISK_DYNAMIC,
    DISK_FIXED,
    FEATURE_RESERVED,
    FOOTER_SIZE,
    HEADER_SIZE,
    MAX_VIRTUAL_SIZE,
    SECTOR,
    UNALLOCATED,
    DynamicHeader,
    Footer,
    bitmap_size,
)


@dataclass(frozen=True)
class Problem:
    """One finding: ``severity`` is "error" or "warning"."""

    code: str
    message: str
    repairable: bool = False
    severity: str = "error"


@dataclass
class CheckReport:
    """Problems found (before any repair), repairs made, and problems left afterwards."""

    path: str
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    remaining: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no error (warnings allowed) remains."""
        left = self.remaining if self.repaired else self.problems
        return not any(p.severity == "error" for p in left)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``ok``."""
        return {**asdict(self), "ok": self.ok}


def check(path: Path | str, repair: bool = False) -> CheckReport:
    """Check the VHD or VHDX at ``path``; with ``repair`` fix the safe problems in place.

    Raises UnsupportedDisk for non-VHD files and DiskInUse when a VM holds the disk.
    """
    path = Path(path)
    fmt = sniff(path)
    if fmt == "vhdx":  # VHDX problems and repairs live in vhdx_check
        from .vhdx_check import check_vhdx

        return check_vhdx(path, repair)
    if fmt != "vpc":
        raise UnsupportedDisk(f"{path}: is a {fmt} image; check works on VHD files")
    return run_checker(path, repair, _Checker)


class Checker(Protocol):
    """One pass over a file's structures (VHD here, VHDX in :mod:`.vhdx_check`)."""

    def run(self) -> list[Problem]:
        """The problems found."""

    def repair(self) -> list[str]:
        """Fix the repairable problems ``run`` found; what was done, one line each."""


def run_checker(path: Path, repair: bool, make: Callable[[ImageFile], Checker]) -> CheckReport:
    """Check ``path`` with the checker ``make`` builds; with ``repair`` fix the safe
    problems in place and check again (``remaining``)."""
    report = CheckReport(str(path))
    with ImageFile(path, writable=repair, lock=True) as file:
        checker = make(file)
        report.problems = checker.run()
        if repair and any(p.repairable for p in report.problems):
            report.repaired = checker.repair()
            report.remaining = make(file).run()
    return report


class _Checker:
    """One pass over a file's structures, collecting problems and repair steps."""

    def __init__(self, file: ImageFile):
        self.file, self.size, self.where = file, file.size(), str(file.path)
        self.problems: list[Problem] = []
        self.footer: Footer | None = None
        self.header: DynamicHeader | None = None
        self.bat_fixes: dict[int, int] = {}
        self.footer_fix = False
        self.tail_present = True
        self.data_end = self.size - FOOTER_SIZE

    def add(self, code: str, message: str, repairable: bool = False, warn: bool = False) -> None:
        severity = "warning" if warn else "error"
        self.problems.append(Problem(code, f"{self.where}: {message}", repairable, severity))

    def run(self) -> list[Problem]:
        if not (self._footers() and self.footer and self._footer_fields(self.footer)):
            return self.problems
        if self.footer.disk_type in (DISK_DYNAMIC, DISK_DIFFERENCING) and self._header():
            self._bat()
            self._parent()
        return self.problems

    # -- footers ---------------------------------------------------------------------
    def _footers(self) -> bool:
        tail, head = read_footers(self.file)
        good = [f for f in (tail, head) if f is not None and f.checksum_ok]
        if not good:
            self.add("footer_invalid", "no footer copy with a valid cookie and checksum")
            return False
        self.footer = good[0]
        if self.footer.disk_type not in (DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING):
            return True  # reported by _footer_fields; nothing here is safe to repair
        self.tail_present = tail is not None
        self.data_end = self.size - (FOOTER_SIZE if tail is not None else 0)
        sparse = self.footer.disk_type != DISK_FIXED
        if tail is None:
            self.add("footer_missing", "trailing footer missing or without cookie", sparse)
        elif not tail.checksum_ok:
            self.add("footer_checksum", "trailing footer checksum mismatch", sparse)
        if sparse:
            self._footer_copy(tail, head)
        self.footer_fix = sparse and any(p.repairable for p in self.problems)
        return True

    def _footer_copy(self, tail: Footer | None, head: Footer | None) -> None:
        if head is None:
            self.add("footer_copy_missing", "footer copy at offset 0 missing", True)
        elif not head.checksum_ok:
            self.add("footer_copy_checksum", "footer copy at offset 0: checksum mismatch", True)
        elif tail is not None and tail.checksum_ok and tail != head:
            self.add(
                "footer_copies_differ",
                "footer copy at offset 0 differs from the trailing footer",
                True,
            )

    def _footer_fields(self, f: Footer) -> bool:
        """Check the footer's fields; False when its disk type makes the rest unreadable."""
        if f.disk_type not in (DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING):
            self.add(
                "disk_type",
                f"footer disk type {f.disk_type} is not one of 2 (fixed), 3 (dynamic), "
                "4 (differencing); the rest of the file cannot be checked",
            )
            self.footer = None
            return False
        if not f.features & FEATURE_RESERVED:
            self.add("features", "footer feature bit 0x2 (reserved, must be set) is clear", True)
        if f.disk_type == DISK_FIXED and f.data_offset != ALL_ONES_64:
            self.add(
                "data_offset", f"fixed disk data offset {f.data_offset:#x}, expected all ones", True
            )
        if f.current_size > MAX_VIRTUAL_SIZE or f.current_size % SECTOR:
            self.add(
                "virtual_size", f"virtual size {f.current_size} not a 512 multiple <= 2040 GiB"
            )
        if f.disk_type == DISK_FIXED and self.size < f.current_size + FOOTER_SIZE:
            self.add(
                "truncated", f"fixed disk needs {f.current_size + 512} bytes, file has {self.size}"
            )
        if f.saved_state:
            self.add(
                "saved_state", "saved-state flag is set (compact and expand refused)", warn=True
            )
        return True

    # -- header and BAT --------------------------------------------------------------
    def _header(self) -> bool:
        assert self.footer is not None
        off = self.footer.data_offset
        if off % SECTOR or off + HEADER_SIZE > self.size:
            self.add("header_offset", f"dynamic header offset {off} is outside the file")
            return False
        try:
            self.header = DynamicHeader.unpack(self.file.pread(HEADER_SIZE, off), self.where)
        except BadDynamicHeader as err:
            self.add("header_invalid", str(err).removeprefix(self.where + ": "))
            return False
        if not self.header.checksum_ok:
            self.add("header_checksum", "dynamic header checksum mismatch")
        return True

    def _bat(self) -> None:
        assert self.footer is not None and self.header is not None
        h, needed = self.header, -(-self.footer.current_size // self.header.block_size)
        if h.max_table_entries < needed:
            self.add("bat_too_small", f"BAT has {h.max_table_entries} entries, size needs {needed}")
        elif h.max_table_entries > needed:
            self.add(
                "bat_extra_entries",
                f"BAT has {h.max_table_entries} entries, size needs only {needed} "
                "(Azure refuses this)",
                warn=True,
            )
        nbytes = h.max_table_entries * 4
        if h.table_offset % SECTOR or h.table_offset + nbytes > self.size:
            self.add(
                "bat_outside_file", f"BAT at {h.table_offset} (+{nbytes}) lies outside the file"
            )
            return
        bat = bat_from_bytes(self.file.pread(nbytes, h.table_offset))
        self._bat_entries(bat, h)

    def _bat_entries(self, bat: Any, h: DynamicHeader) -> None:
        stride = bitmap_size(h.block_size) + h.block_size
        meta_end = max(
            h.table_offset + nbytes_sector(h.max_table_entries * 4), SECTOR + HEADER_SIZE
        )
        live: list[tuple[int, int]] = []
        for i, e in enumerate(bat):
            if e == UNALLOCATED:
                continue
            off = e * SECTOR
            if off + stride > self.data_end:
                self.add(
                    "bat_entry_outside_file",
                    f"block {i} at {off} (+{stride}) runs past the data area end {self.data_end}",
                    True,
                )
                self.bat_fixes[i] = UNALLOCATED
            elif off < meta_end:
                self.add(
                    "bat_entry_in_metadata",
                    f"block {i} at {off} overlaps the header/BAT area (ends at {meta_end})",
                )
            else:
                live.append((off, i))
        live.sort()
        for (a, i), (b, j) in itertools.pairwise(live):
            if b < a + stride:
                self.add("bat_entries_overlap", f"blocks {i} (at {a}) and {j} (at {b}) overlap")

    def _parent(self) -> None:
        assert self.footer is not None and self.header is not None
        if self.footer.disk_type != DISK_DIFFERENCING:
            return
        try:
            with open_disk(self.file.path, lock=False) as disk:
                assert isinstance(disk, SparseVhd) and disk.parent is not None
                if self.header.parent_timestamp != vhd_mtime(disk.parent.path):
                    self.add(
                        "parent_timestamp",
                        f"parent {disk.parent.path} was modified after the link was recorded",
                        warn=True,
                    )
        except DiskError as err:
            self.add("parent_link", str(err).removeprefix(self.where + ": "))

    # -- repair ----------------------------------------------------------------------
    def repair(self) -> list[str]:
        done: list[str] = []
        if self.bat_fixes and self.header is not None:
            self._repair_bat(self.header)
            done.append(f"unallocated {len(self.bat_fixes)} BAT entries pointing past the file end")
        if self.footer is not None and (self.footer_fix or self._footer_field_fix()):
            self._repair_footers(self.footer)
            done.append("rewrote footer copies from the valid footer")
        return done

    def _footer_field_fix(self) -> bool:
        return any(p.code in ("features", "data_offset") for p in self.problems)

    def _repair_bat(self, h: DynamicHeader) -> None:
        for i in sorted(self.bat_fixes):
            self.file.pwrite(b"\xff\xff\xff\xff", h.table_offset + i * 4)
        self.file.sync()

    def _repair_footers(self, f: Footer) -> None:
        fixed = f.disk_type == DISK_FIXED
        f = replace(f, features=f.features | FEATURE_RESERVED)
        if fixed:
            self.file.pwrite(replace(f, data_offset=ALL_ONES_64).pack(), f.current_size)
            return
        position = self._footer_position()
        self.file.pwrite(f.pack(), position)
        self.file.sync()
        if self.file.size() > position + FOOTER_SIZE:
            self.file.truncate(position + FOOTER_SIZE)
            self.file.sync()
        self.file.pwrite(f.pack(), 0)
        self.file.sync()

    def _footer_position(self) -> int:
        """Where the trailing footer goes: after the last structure, or where it is now."""
        assert self.header is not None
        h = self.header
        stride = bitmap_size(h.block_size) + h.block_size
        ends = [h.table_offset + nbytes_sector(h.max_table_entries * 4), SECTOR + HEADER_SIZE]
        bat = bat_from_bytes(self.file.pread(h.max_table_entries * 4, h.table_offset))
        ends += [e * SECTOR + stride for e in bat if e != UNALLOCATED]
        ends += [lo.data_offset + (lo.space_bytes() or 0) for lo in h.locators if lo.platform]
        last = max(ends)
        if self.tail_present:
            return max(last, (self.size - FOOTER_SIZE) // SECTOR * SECTOR)
        if self.size - last < FOOTER_SIZE:  # a cut footer: overwrite its fragment
            return last
        return nbytes_sector(self.size)  # unknown bytes after the data: keep them


def nbytes_sector(n: int) -> int:
    """``n`` rounded up to a whole sector."""
    return -(-n // SECTOR) * SECTOR

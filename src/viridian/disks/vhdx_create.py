"""Creating VHDX files: fixed, dynamic and differencing, and writing a disk's content as VHDX.

Layout of every file we write (MS-VHDX §2.2, the same places QEMU and Hyper-V use):
file type identifier at 0, headers at 64 and 128 KiB, region tables at 192 and 256 KiB,
a 1 MiB log at 1 MiB, the metadata region (1 MiB) at 2 MiB, the BAT at 3 MiB (rounded
up to 1 MiB), then payload blocks, each 1 MiB aligned. Default block size 32 MiB.
"""

from __future__ import annotations

import os
import uuid
from array import array
from dataclasses import dataclass
from pathlib import Path

from .fileio import ImageFile
from .image import DiskImage
from .progress import Progress, no_progress
from .space import allocate, require_space
from .vhdx import VhdxImage, open_vhdx, require_vhdx_size
from .vhdx_layout import (
    BAT_GUID,
    DEFAULT_BLOCK_SIZE,
    DEFAULT_LOG_LENGTH,
    FILE_PARAMETERS_GUID,
    FP_HAS_PARENT,
    FP_LEAVE_BLOCKS_ALLOCATED,
    HEADER1_OFFSET,
    HEADER2_OFFSET,
    HEADER_SECTION,
    LOGICAL_SECTOR_GUID,
    MAX_BLOCK_SIZE,
    META_IS_REQUIRED,
    META_IS_VIRTUAL_DISK,
    METADATA_GUID,
    METADATA_TABLE_SIZE,
    MIN_BLOCK_SIZE,
    PAGE83_GUID,
    PARENT_LOCATOR_GUID,
    PAYLOAD_FULLY_PRESENT,
    PHYSICAL_SECTOR_GUID,
    REGION1_OFFSET,
    REGION2_OFFSET,
    VIRTUAL_DISK_SIZE_GUID,
    DiskParameters,
    Header,
    MetadataEntry,
    MetadataTable,
    MiB,
    RegionEntry,
    RegionTable,
    bat_entry,
    entry_offset,
    guid_bytes,
    pack_file_identifier,
    pack_file_parameters,
    pack_parent_locator,
    pack_u32,
    pack_u64,
)

LOG_OFFSET = HEADER_SECTION
META_OFFSET = LOG_OFFSET + DEFAULT_LOG_LENGTH
META_LENGTH = 1 * MiB
BAT_OFFSET = META_OFFSET + META_LENGTH
ITEM_FLAGS = META_IS_REQUIRED | META_IS_VIRTUAL_DISK


def check_vhdx_block_size(size: int) -> int:
    """``size`` when a power of two from 1 MiB to 256 MiB, else InvalidDiskArgument."""
    from .errors import InvalidDiskArgument

    if not (MIN_BLOCK_SIZE <= size <= MAX_BLOCK_SIZE and size & (size - 1) == 0):
        raise InvalidDiskArgument(
            f"block size {size} is not allowed for VHDX; use a power of two from 1 MiB to "
            "256 MiB (e.g. 1M, 32M)"
        )
    return size


@dataclass(frozen=True)
class Plan:
    """Where everything of a new VHDX goes."""

    params: DiskParameters
    locator: dict[str, str] | None

    @property
    def bat_length(self) -> int:
        """The BAT region's length: entries * 8 rounded up to 1 MiB."""
        return -(-self.params.bat_entries * 8 // MiB) * MiB

    @property
    def first_block(self) -> int:
        """File offset of the first payload block."""
        return BAT_OFFSET + self.bat_length

    def metadata(self) -> bytes:
        """The metadata region: table plus items, items from 64 KiB (§2.6.1)."""
        p = self.params
        flags = (FP_LEAVE_BLOCKS_ALLOCATED if p.leave_blocks_allocated else 0) | (
            FP_HAS_PARENT if p.has_parent else 0)  # fmt: skip
        items = [
            (FILE_PARAMETERS_GUID, pack_file_parameters(p.block_size, flags), META_IS_REQUIRED),
            (VIRTUAL_DISK_SIZE_GUID, pack_u64(p.virtual_size), ITEM_FLAGS),
            (PAGE83_GUID, guid_bytes(p.page83), ITEM_FLAGS),
            (LOGICAL_SECTOR_GUID, pack_u32(p.logical_sector), ITEM_FLAGS),
            (PHYSICAL_SECTOR_GUID, pack_u32(p.physical_sector), ITEM_FLAGS),
        ]
        if self.locator is not None:
            items.append((PARENT_LOCATOR_GUID, pack_parent_locator(self.locator),
                          META_IS_REQUIRED))  # fmt: skip
        entries, blob, off = [], b"", METADATA_TABLE_SIZE
        for guid, raw, fl in items:
            entries.append(MetadataEntry(guid, off + len(blob), len(raw), fl))
            blob += raw + bytes(-len(raw) % 8)
        return MetadataTable(tuple(entries)).pack() + blob

    def head(self) -> list[tuple[int, bytes]]:
        """(offset, bytes) of identifier, headers, region tables and metadata."""
        guid = uuid.uuid4()
        regions = RegionTable((RegionEntry(BAT_GUID, BAT_OFFSET, self.bat_length),
                               RegionEntry(METADATA_GUID, META_OFFSET, META_LENGTH)))  # fmt: skip
        h = Header(0, guid, uuid.uuid4(), log_offset=LOG_OFFSET)
        return [
            (0, pack_file_identifier()),
            (HEADER1_OFFSET, h.pack()),
            (HEADER2_OFFSET, Header(1, guid, h.data_write_guid, log_offset=LOG_OFFSET).pack()),
            (REGION1_OFFSET, regions.pack()),
            (REGION2_OFFSET, regions.pack()),
            (META_OFFSET, self.metadata()),
        ]


def write_skeleton(out: ImageFile, plan: Plan, bat: array[int]) -> None:
    """Write headers, metadata and ``bat`` of ``plan`` into the new file ``out``."""
    for off, raw in plan.head():
        out.pwrite(raw, off)
    raw_bat = bat.tobytes()
    out.pwrite(raw_bat + bytes(plan.bat_length - len(raw_bat)), BAT_OFFSET)


def fixed_bat(plan: Plan) -> array[int]:
    """A BAT with every payload block present, in order, from ``plan.first_block``."""
    p, bat = plan.params, array("Q", bytes(8 * plan.params.bat_entries))
    for b in range(p.payload_blocks):
        bat[b + b // p.chunk_ratio] = bat_entry(PAYLOAD_FULLY_PRESENT,
                                                plan.first_block + b * p.block_size)  # fmt: skip
    return bat


def _params(size: int, block_size: int, *, fixed: bool, parent: bool = False) -> DiskParameters:
    return DiskParameters(block_size=check_vhdx_block_size(block_size),
                          virtual_size=require_vhdx_size(size), leave_blocks_allocated=fixed,
                          has_parent=parent)  # fmt: skip


class _Created:
    """Create a new file exclusively; remove it again if the block fails."""

    def __init__(self, path: Path):
        self.path, self.file = path, ImageFile(path, writable=True, create=True)

    def __enter__(self) -> ImageFile:
        return self.file

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.file.close()
        if exc_type is not None:
            self.path.unlink(missing_ok=True)


def new_vhdx_fixed(path: Path | str, size: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
    """Create a fixed VHDX of ``size`` bytes (rounded up to 512), allocated up front.

    Raises InvalidDiskArgument (size, block size), DiskExists, DiskNotFound, NoSpace;
    on any error no file is left behind.
    """
    path = Path(path)
    plan = Plan(_params(size, block_size, fixed=True), None)
    total = plan.first_block + plan.params.payload_blocks * plan.params.block_size
    require_space(path, total)
    with _Created(path) as f:
        allocate(f, path, total)
        write_skeleton(f, plan, fixed_bat(plan))
        f.sync()


def new_vhdx_dynamic(path: Path | str, size: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
    """Create a dynamically expanding VHDX of ``size`` bytes with ``block_size`` blocks."""
    path = Path(path)
    plan = Plan(_params(size, block_size, fixed=False), None)
    with _Created(path) as f:
        write_skeleton(f, plan, array("Q", bytes(8 * plan.params.bat_entries)))
        f.truncate(plan.first_block)
        f.sync()


def parent_locator(child: Path, parent: VhdxImage) -> dict[str, str]:
    """The VHDX parent locator pairs (§2.6.2.6.1) linking ``child`` to ``parent``."""
    rel = os.path.relpath(parent.path.absolute(), child.absolute().parent).replace("/", "\\")
    return {
        "parent_linkage": "{" + str(parent.s.header.data_write_guid) + "}",  # libvhdi: lower case
        "relative_path": rel if rel.startswith("..\\") else ".\\" + rel,
        "absolute_win32_path": str(parent.path.absolute()),
    }


def new_vhdx_differencing(path: Path | str, parent: Path | str) -> None:
    """Create a differencing VHDX (AVHDX) of the VHDX ``parent``, with its block size."""
    from .errors import InvalidDiskArgument
    from .vhdx_open import sniff_is_vhdx

    child, parent = Path(path), Path(parent)
    if not sniff_is_vhdx(parent):
        raise InvalidDiskArgument(f"{parent}: a differencing VHDX's parent must be a VHDX")
    with open_vhdx(parent) as par:
        assert isinstance(par, VhdxImage)
        p = par.s.params
        params = DiskParameters(p.block_size, p.virtual_size, p.logical_sector,
                                p.physical_sector, has_parent=True)  # fmt: skip
        plan = Plan(params, parent_locator(child, par))
    with _Created(child) as f:
        write_skeleton(f, plan, array("Q", bytes(8 * params.bat_entries)))
        f.truncate(plan.first_block)
        f.sync()


def write_vhdx(disk: DiskImage, out: ImageFile, public: Path, fixed: bool, block_size: int,
               progress: Progress = no_progress) -> None:  # fmt: skip
    """Write ``disk``'s content into the new, empty file ``out`` as a VHDX.

    Dynamic: all-zero blocks stay unallocated and only data runs are written (holes in
    the rest of each block). Fixed: every block is allocated, in order.

    Only the non-zero pieces of the data runs are written (:func:`.convert.nonzero_pieces`:
    kernel copies from a file source, no whole-block buffer); a dynamic block is
    allocated at its first non-zero piece, so blocks keep their order.
    """
    from .convert import COPY_CHUNK, Writeback, nonzero_pieces, runs_by_block, scratch

    plan = Plan(_params(disk.size, block_size, fixed=fixed), None)
    p = plan.params
    if fixed:
        total = plan.first_block + p.payload_blocks * p.block_size
        require_space(public, total)
        allocate(out, public, total)
        bat = fixed_bat(plan)
    else:
        bat = array("Q", bytes(8 * p.bat_entries))
    pos, buf = plan.first_block, scratch(min(p.block_size, COPY_CHUNK))  # >= 1 MiB
    writeback = Writeback(out)
    for block, runs in runs_by_block(disk, p.block_size):
        index, target = block + block // p.chunk_ratio, -1  # -1: nothing written yet
        for start, stop in runs:
            for piece in nonzero_pieces(disk, start, stop, buf):
                if target < 0:
                    if not fixed:
                        bat[index] = bat_entry(PAYLOAD_FULLY_PRESENT, pos)
                        pos += p.block_size
                    target = entry_offset(bat[index])
                piece.put(out, target + piece.offset - block * p.block_size)
        progress(runs[-1][1], disk.size)
        if target >= 0:
            writeback.reached(target + p.block_size)
    write_skeleton(out, plan, bat)
    if out.size() < pos:
        out.truncate(pos)
    progress(disk.size, disk.size)


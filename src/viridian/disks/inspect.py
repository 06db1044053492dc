"""Inspecting a disk: everything Hyper-V's Inspect Disk shows, and a bit more."""

from __future__ import annotations

import datetime
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import DiskError
from .fileio import ImageFile
from .image import DiskImage
from .vhd import FixedVhd, SparseVhd, read_footers, vhd_mtime
from .vhd_layout import VHD_EPOCH
from .vhdx import VhdxImage
from .vhdx_inspect import describe_vhdx
from .vhdx_open import open_disk


@dataclass
class DiskInfo:
    """What :func:`inspect` reports; ``to_dict`` gives the JSON form."""

    path: str
    format: str  # QEMU driver name: "vpc", "vhdx" or "raw"
    disk_type: str  # "fixed", "dynamic", "differencing" or "raw"
    virtual_size: int
    file_size: int
    allocated_on_host: int  # bytes the file occupies on the host filesystem
    original_size: int | None = None
    block_size: int | None = None
    blocks_total: int | None = None
    blocks_allocated: int | None = None
    geometry: dict[str, int] | None = None
    creator_application: str | None = None  # printable: NUL padding cut, others as \xNN
    size_source: str | None = None  # "current_size" or "geometry" (how readers size it)
    creator_version: str | None = None
    creator_host_os: str | None = None
    unique_id: str | None = None
    timestamp: str | None = None
    footer_checksum_valid: bool | None = None
    footer_copy_checksum_valid: bool | None = None
    footer_copies_match: bool | None = None
    header_checksum_valid: bool | None = None
    saved_state: bool | None = None
    parent_unique_id: str | None = None
    parent_path: str | None = None
    parent_timestamp_matches: bool | None = None
    parent_error: str | None = None
    logical_sector_size: int | None = None  # VHDX only
    physical_sector_size: int | None = None  # VHDX only
    log_pending: bool | None = None  # VHDX only: a log waits for replay
    chain: list[DiskInfo] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (the parent chain nested under "chain")."""
        return asdict(self)


def inspect(path: Path | str) -> DiskInfo:
    """Describe the disk at ``path`` and its whole parent chain (nearest parent first).

    Reads without taking locks (like ``qemu-img info -U``). A broken parent link is
    reported in ``parent_error`` rather than raised; a malformed disk raises CorruptDisk.
    """
    path = Path(path)
    with open_disk(path, lock=False, resolve_parent=False) as disk:
        info = _describe(disk)
    if info.disk_type == "differencing":
        _add_chain(path, info)
    return info


def _add_chain(path: Path, info: DiskInfo) -> None:
    try:
        with open_disk(path, lock=False) as disk:
            parents = disk.chain()[1:]
            info.chain = [_describe(p) for p in parents]
            info.parent_path = str(parents[0].path)
            info.parent_timestamp_matches = _timestamp_matches(disk, parents[0])
    except DiskError as err:
        info.parent_error = str(err)


def _timestamp_matches(child: DiskImage, parent: DiskImage) -> bool | None:
    if not isinstance(child, SparseVhd):
        return None
    return child.header.parent_timestamp == vhd_mtime(parent.path)


def _describe(disk: DiskImage) -> DiskInfo:
    st = disk.path.stat()
    info = DiskInfo(
        path=str(disk.path), format=disk.format, disk_type=disk.disk_type,
        virtual_size=disk.size, file_size=st.st_size, allocated_on_host=st.st_blocks * 512,
    )  # fmt: skip
    if isinstance(disk, FixedVhd | SparseVhd):
        _describe_footer(disk, info)
    if isinstance(disk, SparseVhd):
        _describe_sparse(disk, info)
    if isinstance(disk, VhdxImage):
        describe_vhdx(disk, info)
    return info


def _describe_footer(disk: FixedVhd | SparseVhd, info: DiskInfo) -> None:
    f = disk.footer
    info.original_size = f.original_size
    info.geometry = dict(zip(("cylinders", "heads", "sectors_per_track"), f.geometry, strict=True))
    info.creator_application = printable(f.creator_app)
    info.size_source = "geometry" if f.sized_by_geometry else "current_size"
    info.creator_version = f"{f.creator_version >> 16}.{f.creator_version & 0xFFFF}"
    info.creator_host_os = printable(f.creator_host_os)
    info.unique_id = str(f.uuid)
    when = datetime.datetime.fromtimestamp(f.timestamp + VHD_EPOCH, datetime.UTC)
    info.timestamp = when.isoformat()
    info.saved_state = bool(f.saved_state)
    tail, head = read_footers(disk.file)
    info.footer_checksum_valid = tail is not None and tail.checksum_ok
    if isinstance(disk, SparseVhd):
        info.footer_copy_checksum_valid = head is not None and head.checksum_ok
        info.footer_copies_match = _same_footer(disk.file)


def printable(field: bytes) -> str:
    """A fixed-width ASCII field as text: trailing NULs cut, other bytes outside
    printable ASCII written as ``\\xNN`` (so "d2v\\0" shows as ``d2v``)."""
    text = field.rstrip(b"\0")
    return "".join(chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}" for b in text)


def _same_footer(file: ImageFile) -> bool:
    size = file.size()
    return size >= 1024 and file.pread(512, 0) == file.pread(512, size - 512)


def _describe_sparse(disk: SparseVhd, info: DiskInfo) -> None:
    info.block_size = disk.block_size
    info.blocks_total = disk.block_count
    info.blocks_allocated = disk.allocated_blocks()
    info.header_checksum_valid = disk.header.checksum_ok
    if disk.disk_type == "differencing":
        info.parent_unique_id = str(_uuid(disk.header.parent_unique_id))


def _uuid(raw: bytes) -> str:
    return str(uuid.UUID(bytes=raw))

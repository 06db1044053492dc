"""What ``inspect`` shows of a VHDX (MS-VHDX §2.2, §2.6): identity, sizes, blocks, log."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .vhdx import VhdxImage

if TYPE_CHECKING:
    from .inspect import DiskInfo


def describe_vhdx(disk: VhdxImage, info: DiskInfo) -> None:
    """Fill ``info`` with the VHDX's fields; the pending log shows as ``log_pending``."""
    s = disk.s
    info.block_size = disk.block_size
    info.blocks_total = disk.block_count
    info.blocks_allocated = disk.allocated_blocks()
    info.creator_application = s.creator
    info.unique_id = str(s.params.page83)
    info.logical_sector_size = s.params.logical_sector
    info.physical_sector_size = s.params.physical_sector
    info.log_pending = disk.pending is not None
    info.header_checksum_valid = all(s.headers_valid)
    if s.locator is not None:
        info.parent_unique_id = s.locator.get("parent_linkage", "").strip("{}").lower() or None

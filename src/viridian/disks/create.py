"""Creating new VHDs: fixed, dynamic and differencing (notes §7 writer defaults)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from .errors import InvalidDiskArgument
from .fileio import ImageFile
from .image import DiskImage
from .locators import locator_payloads, padded_space
from .sizes import check_block_size, check_virtual_size
from .space import allocate, require_space
from .vhd import FixedVhd, SparseVhd, open_disk, vhd_mtime
from .vhd_layout import (
    ALL_ONES_64,
    DEFAULT_BLOCK_SIZE,
    DISK_DIFFERENCING,
    DISK_DYNAMIC,
    DISK_FIXED,
    FOOTER_SIZE,
    HEADER_SIZE,
    SECTOR,
    VHD_EPOCH,
    DynamicHeader,
    Footer,
    Locator,
    chs_geometry,
)

BAT_OFFSET = FOOTER_SIZE + HEADER_SIZE  # 1536, where every writer puts it


def make_footer(disk_type: int, size: int) -> Footer:
    """A fresh footer with our writer defaults (creator "win ", Wi2k, original == current)."""
    return Footer(
        disk_type=disk_type,
        current_size=size,
        original_size=size,
        data_offset=ALL_ONES_64 if disk_type == DISK_FIXED else FOOTER_SIZE,
        unique_id=uuid.uuid4().bytes,
        timestamp=max(0, int(time.time()) - VHD_EPOCH) & 0xFFFFFFFF,
        geometry=chs_geometry(size),
    )


def bat_size(entries: int) -> int:
    """Bytes the BAT takes on disk: 4 per entry, rounded up to a sector."""
    return -(-entries * 4 // SECTOR) * SECTOR


def sparse_layout(
    footer: Footer, header: DynamicHeader, locator_data: list[bytes]
) -> tuple[bytes, int]:
    """Everything before the first block of a new sparse VHD, and its length."""
    bat = b"\xff" * bat_size(header.max_table_entries)
    blobs = b"".join(d + bytes(padded_space(d) - len(d)) for d in locator_data)
    return footer.pack() + header.pack() + bat + blobs, BAT_OFFSET + len(bat) + len(blobs)


def write_new_sparse(
    path: Path, footer: Footer, header: DynamicHeader, locator_data: list[bytes]
) -> None:
    """Create ``path`` (must not exist) as an empty sparse VHD."""
    head, _ = sparse_layout(footer, header, locator_data)
    with _created(path) as f:
        f.pwrite(head + footer.pack(), 0)
        f.sync()


class _created:
    """Create a new file exclusively; remove it again if the block fails."""

    def __init__(self, path: Path):
        self.path = path
        self.file = ImageFile(path, writable=True, create=True)

    def __enter__(self) -> ImageFile:
        return self.file

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        self.file.close()
        if exc_type is not None:
            self.path.unlink(missing_ok=True)


def new_fixed(path: Path | str, size: int) -> None:
    """Create a fixed VHD of ``size`` bytes (rounded up to 512), zero-filled and
    allocated up front (``posix_fallocate``), as Hyper-V's fixed disks are.

    Raises InvalidDiskArgument for a bad size, DiskExists for an existing path,
    DiskNotFound for a missing folder, NoSpace (needed vs free bytes) when the file
    system is too small; on any error no file is left behind.
    """
    path, size = Path(path), check_virtual_size(size)
    require_space(path, size + FOOTER_SIZE)
    with _created(path) as f:
        allocate(f, path, size + FOOTER_SIZE)
        f.pwrite(make_footer(DISK_FIXED, size).pack(), size)
        f.sync()


def new_dynamic(path: Path | str, size: int, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
    """Create a dynamically expanding VHD of ``size`` bytes with ``block_size`` blocks."""
    size, block_size = check_virtual_size(size), check_block_size(block_size)
    entries = -(-size // block_size)
    header = DynamicHeader(BAT_OFFSET, entries, block_size)
    write_new_sparse(Path(path), make_footer(DISK_DYNAMIC, size), header, [])


def differencing_header(
    child: Path, parent: DiskImage, block_size: int
) -> tuple[DynamicHeader, list[bytes]]:
    """Header and locator data linking ``child`` to the VHD ``parent`` (W2ku + W2ru)."""
    assert isinstance(parent, SparseVhd | FixedVhd)
    entries = -(-parent.size // block_size)
    payloads = locator_payloads(child, parent.path)
    off, locs = BAT_OFFSET + bat_size(entries), []
    for platform, data in payloads:
        locs.append(Locator(platform, padded_space(data), len(data), off))
        off += padded_space(data)
    locs += [Locator()] * (8 - len(locs))
    header = DynamicHeader(
        table_offset=BAT_OFFSET,
        max_table_entries=entries,
        block_size=block_size,
        parent_unique_id=parent.footer.unique_id,
        parent_timestamp=vhd_mtime(parent.path),
        parent_name=parent.path.name[:256],
        locators=tuple(locs),
    )
    return header, [d for _, d in payloads]


def new_differencing(path: Path | str, parent: Path | str) -> None:
    """Create a differencing VHD recording changes to the VHD ``parent``.

    The child has the parent's size and block size (2 MiB for a fixed parent). Raises
    InvalidDiskArgument when the parent is not a VHD, ParentLinkError when the
    parent's own chain is broken.
    """
    child = Path(path)
    if child.suffix.lower() in (".vhdx", ".avhdx"):  # an AVHDX of a VHDX parent
        from .vhdx_create import new_vhdx_differencing

        return new_vhdx_differencing(child, parent)
    with open_disk(parent, raw_ok=False) as par:
        if not isinstance(par, SparseVhd | FixedVhd):
            raise InvalidDiskArgument(f"{parent}: a differencing parent must be a VHD")
        bs = par.block_size if isinstance(par, SparseVhd) else DEFAULT_BLOCK_SIZE
        header, data = differencing_header(child, par, bs)
        write_new_sparse(child, make_footer(DISK_DIFFERENCING, par.size), header, data)

"""Opening any disk the library reads: VHDX here, VHD and raw in :mod:`.vhd`.

This is the one dispatch point by file signature (:func:`.detect.sniff`), so callers
(convert, inspect, check, the public ``open_disk``) treat VHDX like every other format.
"""

from __future__ import annotations

from pathlib import Path

from .detect import sniff
from .image import DiskImage
from .vhd import open_disk as open_vhd_or_raw


def sniff_is_vhdx(path: Path) -> bool:
    """True when ``path`` starts with the VHDX file signature (DiskNotFound if missing)."""
    return sniff(path) == "vhdx"


def open_disk(
    path: Path | str,
    *,
    writable: bool = False,
    lock: bool = True,
    resolve_parent: bool = True,
    raw_ok: bool = True,
) -> DiskImage:
    """Open a VHDX, a VHD (with its whole parent chain) or a raw image.

    A VHDX with a pending log is replayed first when opened ``writable``; read-only it
    is read with the log applied in memory. Raises CorruptDisk subclasses for malformed
    files, UnsupportedDisk for qcow2 (or raw when ``raw_ok`` is False), ParentLinkError
    for broken chains and DiskInUse when QEMU holds the file.
    """
    path = Path(path)
    if sniff_is_vhdx(path):
        from .vhdx import open_vhdx  # VHDX code loads only for VHDX files (CLI start-up)

        return open_vhdx(path, writable=writable, lock=lock, resolve_parent=resolve_parent)
    return open_vhd_or_raw(path, writable=writable, lock=lock, resolve_parent=resolve_parent,
                           raw_ok=raw_ok)  # fmt: skip

"""What the floppy drive takes: a virtual floppy — a raw 1.44 MB image named ``*.vfd`` —
and nothing else (Hyper-V generation 1; docs/api.md, "Devices").

QEMU would open any file as a raw floppy: a VHD handed in would show the guest a floppy
of the VHD's bytes (footer and all) and be written through as such.
"""

from __future__ import annotations

import os
from pathlib import Path

from viridian.errors import InvalidSetting

FLOPPY_BYTES = 1_474_560  # 80 cylinders x 2 heads x 18 sectors x 512 bytes
FLOPPY_SUFFIX = ".vfd"
ALLOWED = (
    f"a virtual floppy: a raw 1.44 MB image ({FLOPPY_BYTES:,} bytes) named *{FLOPPY_SUFFIX} "
    "(make an empty one with 'viridian disk new NAME.vfd --floppy')"
)
SIGNATURES = {  # what a disk image of another kind starts or ends with
    b"conectix": "a VHD disk",
    b"vhdxfile": "a VHDX disk",
    b"QFI\xfb": "a qcow2 disk",
    b"KDMV": "a VMDK disk",
}


def check_floppy_image(path: str) -> None:
    """Accept ``path`` only when it is a virtual floppy.

    :raises InvalidSetting: (``floppy.path``) naming what the file is instead and what is
        allowed. A missing file is left to the settings validation (its own message).
    """
    try:
        size = os.stat(path).st_size
        kind = _image_kind(Path(path), size)
    except OSError:
        return
    if kind is None and size != FLOPPY_BYTES:
        kind = f"a file of {size:,} bytes"
    if kind is None and Path(path).suffix.lower() != FLOPPY_SUFFIX:
        kind = f"a file named *{Path(path).suffix or ' (no extension)'}"
    if kind is not None:
        raise InvalidSetting("floppy.path", path, ALLOWED, reason=f"it is {kind}")


def _image_kind(path: Path, size: int) -> str | None:
    """The kind of disk image ``path`` is by its signature, or None (raw)."""
    with open(path, "rb") as image:
        head = image.read(8)
        image.seek(max(size - 512, 0))
        tail = image.read(8)
    for signature, kind in SIGNATURES.items():
        if head.startswith(signature) or tail.startswith(signature):
            return kind
    return None

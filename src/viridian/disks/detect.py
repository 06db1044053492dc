"""Format sniffing: which QEMU driver reads a file, and whether a file is an image this
library leaves to ``qemu-img`` (VMDK, qcow2: :func:`foreign_format`).

Light on purpose: ``disk convert`` calls :func:`foreign_format` on every source, and
imports :mod:`.foreign_convert` (subprocess, the VMDK reader) only for such an image.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import BadFooter, DiskError, DiskNotFound, InvalidDiskArgument
from .vhd_layout import FOOTER_COOKIE, FOOTER_SIZE

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up cost)
if TYPE_CHECKING:
    from typing import BinaryIO

QCOW2_MAGIC = b"QFI\xfb"
VMDK_SPARSE_MAGIC = b"KDMV"
VMDK_DESCRIPTOR_MARK = b"# Disk DescriptorFile"
_MAGICS = ((b"vhdxfile", "vhdx"), (QCOW2_MAGIC, "qcow2"), (FOOTER_COOKIE, "vpc"))


def is_vmdk(head: bytes) -> bool:
    """``head`` (the first bytes of a file) starts a VMDK sparse extent or descriptor."""
    return head.startswith(VMDK_SPARSE_MAGIC) or head.lstrip().startswith(VMDK_DESCRIPTOR_MARK)


def foreign_format(path: Path) -> str | None:
    """"vmdk" or "qcow2" when ``path`` holds such an image; None otherwise (also when it
    cannot be read: the caller's own open reports that)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return None
    if head.startswith(QCOW2_MAGIC):
        return "qcow2"
    return "vmdk" if is_vmdk(head) else None


def sniff(path: Path) -> str:
    """QEMU driver name for ``path``: "vpc", "vhdx", "qcow2" or "raw".

    A fixed VHD is recognised by the cookie of its trailing footer (QEMU's own probe
    misses it, notes §0.3). Raises DiskNotFound when the file does not exist, and
    CorruptDisk rather than answer "raw" for a regular file that is empty or ends in a
    cut VHD footer (see :func:`doubt_raw`).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            st = os.fstat(f.fileno())
            tail = _read_at(f, st.st_size - FOOTER_SIZE) if st.st_size >= FOOTER_SIZE else b""
            cut = _read_at(f, st.st_size - st.st_size % FOOTER_SIZE)
    except FileNotFoundError:
        raise DiskNotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidDiskArgument(f"{path}: is a directory, expected a disk file") from None
    except OSError as err:
        raise DiskError(f"{path}: cannot read: {err.strerror}") from err
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    if tail == FOOTER_COOKIE:
        return "vpc"
    if stat.S_ISREG(st.st_mode) and (doubt := doubt_raw(st.st_size, cut)):
        raise BadFooter(f"{path}: {doubt}; not reading it as a raw image")
    return "raw"


def _read_at(f: BinaryIO, offset: int) -> bytes:
    f.seek(offset)
    return f.read(8)


def doubt_raw(size: int, last_sector_head: bytes) -> str | None:
    """Why a regular file without any known signature is not a plausible raw image.

    ``last_sector_head`` is the first bytes of the file's last, partial sector. An
    empty file is no disk; a partial last sector starting like a footer cookie is
    what is left of a fixed VHD cut inside its footer. None when raw is plausible.
    """
    if size == 0:
        return "the file is empty (0 bytes): no disk image, no VHD footer"
    left = size % FOOTER_SIZE
    if left and FOOTER_COOKIE.startswith(last_sector_head[:8]):
        return (
            f"the file looks like a fixed VHD cut inside its VHD footer ({left} of 512 "
            f"bytes left after {size - left} bytes of data; cookie 'conectix' found)"
        )
    return None


def detect_format(path: Path | str) -> str:
    """QEMU driver name ("vpc", "vhdx", "qcow2" or "raw") to pass as ``format=``.

    "vpc" covers fixed, dynamic and differencing VHDs; tell a differencing one (which
    QEMU must never be given) with ``inspect(path).disk_type == "differencing"``.
    """
    return sniff(Path(path))

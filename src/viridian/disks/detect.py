"""Format sniffing: which QEMU driver reads a file."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DiskError, DiskNotFound, InvalidDiskArgument
from .vhd_layout import FOOTER_COOKIE, FOOTER_SIZE

_MAGICS = ((b"vhdxfile", "vhdx"), (b"QFI\xfb", "qcow2"), (FOOTER_COOKIE, "vpc"))


def sniff(path: Path) -> str:
    """QEMU driver name for ``path``: "vpc", "vhdx", "qcow2" or "raw".

    A fixed VHD is recognised by the cookie of its trailing footer (QEMU's own probe
    misses it, notes §0.3). Raises DiskNotFound when the file does not exist.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            size = os.fstat(f.fileno()).st_size
            tail = b""
            if size >= FOOTER_SIZE:
                f.seek(size - FOOTER_SIZE)
                tail = f.read(8)
    except FileNotFoundError:
        raise DiskNotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidDiskArgument(f"{path}: is a directory, expected a disk file") from None
    except OSError as err:
        raise DiskError(f"{path}: cannot read: {err.strerror}") from err
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return "vpc" if tail == FOOTER_COOKIE else "raw"


def detect_format(path: Path | str) -> str:
    """QEMU driver name ("vpc", "vhdx", "qcow2" or "raw") to pass as ``format=``.

    "vpc" covers fixed, dynamic and differencing VHDs; tell a differencing one (which
    QEMU must never be given) with ``inspect(path).disk_type == "differencing"``.
    """
    return sniff(Path(path))

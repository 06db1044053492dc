"""Config disks: raw block devices that tell a guest-kit guest what to run after READY.

Layout (no file system): byte 0 holds the magic line ``VIRIDIAN-CFG\\n``, followed by a
shell script that ends at the first NUL byte; the guest reads only the first
:data:`CONFIG_AREA` bytes. The guest runs the script with ``sh`` after printing READY
and prints every output line as ``VIRIDIAN-GUEST CFG <line>``, then
``VIRIDIAN-GUEST CFG-EXIT <status>``.
"""

from __future__ import annotations

import os
from pathlib import Path

from viridian.errors import BadRequest

__all__ = [
    "CONFIG_AREA",
    "CONFIG_DISK_SIZE",
    "CONFIG_MAGIC",
    "encode_config",
    "make_config_disk",
]

CONFIG_MAGIC = b"VIRIDIAN-CFG\n"
CONFIG_AREA = 64 * 1024  # the guest reads 128 sectors
CONFIG_DISK_SIZE = 64 * 1024
SECTOR = 512
MAX_SCRIPT_BYTES = CONFIG_AREA - len(CONFIG_MAGIC) - 1  # room for the closing NUL


def encode_config(script: str) -> bytes:
    """The config area's bytes for ``script``: magic line, script, NUL.

    Raises BadRequest when the script contains a NUL character or is longer than
    MAX_SCRIPT_BYTES once UTF-8 encoded.
    """
    data = script.encode()
    if b"\0" in data:
        raise BadRequest("config disk script must not contain NUL characters")
    if len(data) > MAX_SCRIPT_BYTES:
        raise BadRequest(
            f"config disk script is {len(data)} bytes; allowed: at most "
            f"{MAX_SCRIPT_BYTES} bytes (UTF-8)"
        )
    return CONFIG_MAGIC + data + b"\0"


def make_config_disk(path: Path, script: str, size: int = CONFIG_DISK_SIZE) -> Path:
    """Write a raw config disk image for ``script`` at ``path`` and return ``path``.

    ``size`` (bytes) must be a multiple of 512 and at least CONFIG_AREA; pass 1474560
    for an image that QEMU accepts as a 1.44 MB floppy. The rest of the image is zeros
    (sparse). An existing file is replaced. Attach it with ``format=raw`` on any bus the
    guest kit has drivers for (IDE, SCSI, virtio-blk, floppy).

    Raises BadRequest for a bad script or size.
    """
    if size % SECTOR or size < CONFIG_AREA:
        raise BadRequest(
            f"config disk size {size} is invalid; allowed: a multiple of {SECTOR} "
            f"of at least {CONFIG_AREA} bytes"
        )
    content = encode_config(script)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as out:
        out.write(content)
        out.truncate(size)
    tmp.replace(path)
    return path

"""``disk convert`` of images this library does not read itself — VMDK (monolithicSparse,
monolithicFlat, twoGbMaxExtentSparse/Flat, streamOptimized, vmfs) and qcow2 — and into a
qcow2 target: the data is copied by ``qemu-img convert`` (docs/architecture.md, "Disks").

A VMDK's descriptor is read first (:mod:`.vmdk`): every extent must lie in the
descriptor's folder; so must a VMDK's parent and a qcow2's backing file, link by link
(:func:`check_chain`) — a conversion reads nothing but the disk's own files. The output
is written to a hidden temporary file beside the destination and renamed into place
only when complete and synced, like every conversion of :mod:`.convert`; nothing is
left behind on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import subprocess
from pathlib import Path

from .detect import QCOW2_MAGIC, foreign_format, is_vmdk
from .errors import DiskError, DiskExists, DiskNotFound, InvalidDiskArgument
from .progress import Progress, no_progress
from .vmdk import contained, read_vmdk

MAX_CHAIN = 16
VHDX_SUFFIXES = (".vhdx", ".avhdx")


def convert_foreign(src: Path, dst: Path, target_type: str, source_format: str | None,
                    progress: Progress = no_progress) -> None:
    """Write the content of ``src`` (``source_format`` "vmdk", "qcow2", or None for a
    VHD/VHDX/raw source, told apart by :func:`.detect.sniff`) into the new file ``dst``:
    a "dynamic" or "fixed" VHD (VHDX when ``dst`` ends in .vhdx), "raw", or "qcow2".

    :raises DiskExists: ``dst`` exists. :raises DiskNotFound: ``src`` or ``dst``'s folder
        is missing. :raises InvalidDiskArgument: a VMDK extent outside its folder.
    :raises DiskError: ``qemu-img`` failed (its message).
    """
    if dst.exists():
        raise DiskExists(f"{dst}: already exists; choose a new destination")
    if not src.is_file():
        raise DiskNotFound(f"{src}: no such file")
    if not dst.parent.is_dir():
        raise DiskNotFound(f"{dst}: folder {dst.parent} does not exist")
    if source_format is None:  # QEMU's own probe misses a fixed VHD (detect.sniff)
        from .detect import sniff

        source_format = sniff(src)
    check_chain(src)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.partial")
    # QEMU finds extents and backing files beside the name it is given: give it the real
    # one (a pinned /proc/self/fd/N would make it look in /proc/self/fd)
    argv = ["qemu-img", "convert", "-q", "-f", source_format,
            *output_options(dst, target_type), str(src.resolve()), str(tmp)]
    progress(0, 1)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise DiskError(f"{src}: cannot convert: {done.stderr.strip()}")
        _sync(tmp)
        tmp.rename(dst)
        _sync(dst.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    progress(1, 1)


def foreign_virtual_size(path: Path) -> int | None:
    """The virtual size of a VMDK or qcow2 image (``qemu-img info``), None for any other
    file or when it cannot be read."""
    if foreign_format(path) is None:
        return None
    done = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(path.resolve())],
                          capture_output=True, text=True, check=False)
    try:
        return int(json.loads(done.stdout)["virtual-size"]) if done.returncode == 0 else None
    except (ValueError, KeyError, TypeError):
        return None


def check_chain(path: Path) -> None:
    """Every file QEMU reads for the image ``path`` lies in its own folder: a VMDK's
    extents and parent (:func:`.vmdk.read_vmdk`), a qcow2's backing file — each link of
    the chain in turn (at most :data:`MAX_CHAIN`).

    :raises InvalidDiskArgument: a file outside the folder of the image naming it, or a
        chain longer than :data:`MAX_CHAIN`.
    """
    current: Path | None = path
    for _ in range(MAX_CHAIN):
        if current is None:
            return
        with open(current, "rb") as f:
            head = f.read(512)
        if is_vmdk(head):
            current = read_vmdk(current).parent
        elif head.startswith(QCOW2_MAGIC):
            current = _qcow2_backing(current, head)
        else:
            return
    raise InvalidDiskArgument(f"{path}: its backing chain is longer than {MAX_CHAIN} images")


def _qcow2_backing(path: Path, head: bytes) -> Path | None:
    """The backing file a qcow2 header names (qcow2 spec: offset and size at bytes 8 and
    16, big-endian), resolved and checked to lie in ``path``'s folder."""
    offset, size = struct.unpack_from(">QI", head, 8)
    if not offset or not size:
        return None
    with open(path, "rb") as f:
        f.seek(offset)
        name = f.read(min(size, 1023)).decode("utf-8", "replace")
    if name.startswith(("json:", "nbd:", "http:", "https:", "ssh:", "file:")) or \
            ":" in name.split("/", 1)[0]:
        raise InvalidDiskArgument(f"{path}: backing file {name!r} is not a plain file name; "
                                  "only files in the image's own folder are read")
    return contained(path, name, "backing")


def output_options(dst: Path, target_type: str) -> list[str]:
    """``qemu-img convert`` output format options for a ``target_type`` ``dst``."""
    if target_type == "qcow2":
        return ["-O", "qcow2"]
    if target_type == "raw":
        return ["-O", "raw"]
    if target_type not in ("dynamic", "fixed"):
        raise InvalidDiskArgument(f"disk type {target_type!r} is not allowed; use one of: "
                                  "fixed, dynamic, raw, qcow2")
    if dst.suffix.lower() in VHDX_SUFFIXES:
        return ["-O", "vhdx", "-o", f"subformat={target_type}"]
    return ["-O", "vpc", "-o", f"subformat={target_type},force_size=on"]


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Reading a VMDK's descriptor (VMware Virtual Disk Format 1.1) and finding its extent
files (only the descriptor is read; QEMU reads the data, docs/architecture.md "Disks").

A VMDK is either a text *descriptor file* (``# Disk DescriptorFile``: monolithicFlat,
twoGbMaxExtentSparse/Flat, vmfs) whose extent lines name the data files, or a *sparse
extent* (magic ``KDMV``: monolithicSparse, streamOptimized) with the descriptor embedded
at ``descriptorOffset`` (sectors; header offsets 28 and 36, little-endian).

Extent lines: ``ACCESS SECTORS TYPE ["FILE" [OFFSET]]`` (types FLAT, SPARSE, ZERO,
VMFS, VMFSSPARSE). Extent files, and a parent named by ``parentFileNameHint``, are
resolved relative to the descriptor's folder and must stay inside it (after symbolic
links): an absolute path elsewhere or ``..`` is refused, so an import or a conversion
reads nothing but the disk's own files.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path

from .detect import VMDK_DESCRIPTOR_MARK as DESCRIPTOR_MARK
from .detect import VMDK_SPARSE_MAGIC as SPARSE_MAGIC
from .detect import is_vmdk as is_vmdk  # re-exported: callers read VMDKs from here
from .errors import DiskNotFound, InvalidDiskArgument, UnsupportedDisk

CREATE_TYPES = ("monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse",
                "twoGbMaxExtentFlat", "streamOptimized", "vmfs", "vmfsSparse")
EXTENT = re.compile(r'^(RW|RDONLY|NOACCESS)\s+(\d+)\s+(\w+)(?:\s+"([^"]*)"(?:\s+(\d+))?)?\s*$')
KEY = re.compile(r'^([A-Za-z0-9_.]+)\s*=\s*"?([^"]*)"?\s*$')
MAX_DESCRIPTOR = 1 << 20


@dataclass(frozen=True)
class VmdkExtent:
    access: str
    sectors: int
    type: str
    file: Path | None  # absolute, inside the descriptor's folder; None for ZERO


@dataclass(frozen=True)
class VmdkDescriptor:
    """A VMDK: ``create_type`` (one of :data:`CREATE_TYPES`), its extents, the size in
    bytes and the parent of a delta disk (None for a base disk)."""

    path: Path
    create_type: str
    extents: tuple[VmdkExtent, ...]
    parent: Path | None

    @property
    def size(self) -> int:
        return sum(e.sectors for e in self.extents) * 512

    @property
    def files(self) -> tuple[Path, ...]:
        """Every file that holds this disk's data (the descriptor's file first)."""
        own = [e.file for e in self.extents if e.file is not None and e.file != self.path]
        return (self.path, *own)


def read_vmdk(path: Path) -> VmdkDescriptor:
    """The descriptor of the VMDK at ``path``, its extents checked to exist inside the
    folder of ``path``.

    :raises UnsupportedDisk: not a VMDK, or an unknown create type.
    :raises InvalidDiskArgument: an extent or parent outside the folder.
    :raises DiskNotFound: an extent file is missing.
    """
    with open(path, "rb") as f:
        head = f.read(512)
        if head.startswith(SPARSE_MAGIC):
            offset, size = struct.unpack_from("<QQ", head, 28)
            if not offset or not size or size * 512 > MAX_DESCRIPTOR:
                return _embedded_without_descriptor(path, head)
            f.seek(offset * 512)
            text = f.read(size * 512)
        elif head.lstrip().startswith(DESCRIPTOR_MARK):
            f.seek(0)
            text = f.read(MAX_DESCRIPTOR)
        else:
            raise UnsupportedDisk(f"{path}: not a VMDK (neither a sparse extent nor a "
                                  "descriptor file)")
    return parse_descriptor(text.split(b"\0", 1)[0].decode("utf-8", "replace"), path,
                            embedded=head.startswith(SPARSE_MAGIC))


def parse_descriptor(text: str, path: Path, embedded: bool = False) -> VmdkDescriptor:
    """The descriptor ``text`` of the VMDK at ``path`` (see :func:`read_vmdk`). An
    ``embedded`` descriptor (in a sparse extent) describes the file itself: its extent
    names are not followed (QEMU does not follow them either)."""
    keys: dict[str, str] = {}
    extents: list[VmdkExtent] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        extent = EXTENT.match(line)
        if extent:
            access, sectors, kind, name, _ = extent.groups()
            file = None if kind.upper() == "ZERO" or name is None else \
                path.resolve() if embedded else contained(path, name, "extent")
            if file is not None and not file.is_file():
                raise DiskNotFound(f"{path}: extent file {name!r} is missing")
            extents.append(VmdkExtent(access, int(sectors), kind.upper(), file))
        elif (match := KEY.match(line)):
            keys[match.group(1)] = match.group(2)
    create_type = keys.get("createType", "")
    if create_type not in CREATE_TYPES:
        raise UnsupportedDisk(f"{path}: VMDK create type {create_type!r} is not supported; "
                              f"allowed: {', '.join(CREATE_TYPES)}")
    if not extents:
        raise UnsupportedDisk(f"{path}: the VMDK descriptor names no extent")
    hint = keys.get("parentFileNameHint")
    parent = contained(path, hint, "parent") if hint else None
    return VmdkDescriptor(path, create_type, tuple(extents), parent)


def contained(descriptor: Path, name: str, what: str) -> Path:
    """``name`` (as the descriptor at ``descriptor`` wrote it) resolved in the
    descriptor's folder; it must stay in that folder.

    :raises InvalidDiskArgument: ``name`` escapes the folder (absolute elsewhere, ``..``,
        or a symbolic link pointing out).
    """
    folder = descriptor.resolve().parent
    target = (folder / name).resolve()
    if target.parent != folder and folder not in target.parents:
        raise InvalidDiskArgument(f"{descriptor}: {what} file {name!r} is outside the disk's "
                                  f"folder {folder}; a VMDK may only name files in its own "
                                  "folder; nothing was changed")
    return target


def _embedded_without_descriptor(path: Path, head: bytes) -> VmdkDescriptor:
    """A sparse extent without an embedded descriptor (older hosted products): one
    SPARSE extent of the header's capacity."""
    capacity = struct.unpack_from("<Q", head, 12)[0]
    return VmdkDescriptor(path, "monolithicSparse",
                          (VmdkExtent("RW", capacity, "SPARSE", path.resolve()),), None)


def extent_files_size(vmdk: VmdkDescriptor) -> int:
    """Bytes the VMDK's files take on disk (for progress and space checks)."""
    return sum(os.stat(f).st_blocks * 512 for f in set(vmdk.files))

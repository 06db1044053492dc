"""Reading an OVA safely (DMTF DSP0243 §5.3): an OVF package stored as one tar file whose
first member is the descriptor (``.ovf``), followed by the manifest and certificate
and then the files the descriptor references.

Members are checked from their headers before any data is written: each must be a
regular file with a plain name (no folder, no absolute name, no ``..``; symbolic and
hard links, devices and folders are refused), names must be unique, the descriptor
must come first (at most 16 MiB), a member's size must match the ``ovf:size`` its ``File`` declares,
and the whole package must fit in the free space. Data is copied member by member
(never ``tarfile.extract``) into files created exclusively in the given folder, which
the caller removes on any failure.
"""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

from viridian.errors import BadRequest
from viridian.interchange.ovf import parse_ovf

MAX_MEMBERS = 1000
MAX_DESCRIPTOR = 16 << 20  # bytes: a descriptor is read whole into memory
CHUNK = 1 << 20


def member_problem(member: tarfile.TarInfo) -> str | None:
    """Why ``member`` may not be unpacked (None: it may): pure, from its header."""
    name = member.name
    if not member.isreg():
        kind = ("a symbolic link" if member.issym() else "a hard link" if member.islnk()
                else "a folder" if member.isdir() else "a device or special file")
        return f"member {name!r} is {kind}; an OVA holds regular files only"
    if name.startswith("/"):
        return f"member {name!r} has an absolute name"
    parts = name.split("/")
    if ".." in parts:
        return f"member {name!r} points outside the package ('..')"
    if len(parts) != 1 or not name or name.startswith("."):
        return f"member {name!r} is not a plain file name (no folders, no leading dot)"
    return None


def check_members(members: list[tarfile.TarInfo], where: str) -> None:
    """Refuse the member list of the OVA ``where`` unless every member may be unpacked,
    names are unique and the descriptor comes first (DSP0243 §5.3).

    :raises BadRequest: naming the first member at fault.
    """
    if not members:
        raise BadRequest(f"{where} is an empty tar file, not an OVA; nothing was changed")
    if len(members) > MAX_MEMBERS:
        raise BadRequest(f"{where} has {len(members)} members (at most {MAX_MEMBERS}); "
                         "nothing was changed")
    seen: set[str] = set()
    for member in members:
        problem = member_problem(member)
        if problem:
            raise BadRequest(f"{where}: {problem}; nothing was changed", member=member.name)
        if member.name in seen:
            raise BadRequest(f"{where}: member {member.name!r} appears twice; nothing was "
                             "changed", member=member.name)
        seen.add(member.name)
    if members[0].size > MAX_DESCRIPTOR:
        raise BadRequest(f"{where}: the descriptor {members[0].name} holds "
                         f"{members[0].size} bytes (at most {MAX_DESCRIPTOR}); nothing was "
                         "changed", member=members[0].name)
    if not members[0].name.lower().endswith(".ovf"):
        raise BadRequest(f"{where}: the first member is {members[0].name!r}; an OVA starts "
                         "with its OVF descriptor (DSP0243 5.3); nothing was changed",
                         member=members[0].name)


def check_sizes(members: list[tarfile.TarInfo], declared: dict[str, int], where: str,
                free: int) -> None:
    """Each member's size equals the ``ovf:size`` of its ``File`` (when declared) and
    all of them fit in ``free`` bytes.

    :raises BadRequest: naming the member or both sizes.
    """
    for member in members:
        size = declared.get(member.name)
        if size is not None and size != member.size:
            raise BadRequest(f"{where}: member {member.name} holds {member.size} bytes, the "
                             f"descriptor says {size}; the package is damaged; nothing was "
                             "changed", member=member.name)
    total = sum(member.size for member in members)
    if total > free:
        raise BadRequest(f"{where} needs {total} bytes to unpack, {free} are free; nothing "
                         "was changed")


def unpack_ova(ova: Path, folder: Path,
               progress: Callable[[str], None] = lambda _: None) -> Path:
    """Unpack the OVA ``ova`` into the existing empty ``folder``; returns the descriptor
    there. The caller removes ``folder`` when this raises.

    :raises BadRequest: not a tar file, or any check of the module docstring fails.
    """
    where = str(ova)
    try:
        archive = tarfile.open(ova, "r:")  # noqa: SIM115 (closed by the with below)
    except (tarfile.TarError, OSError) as err:
        raise BadRequest(f"{where} is not an OVA (an uncompressed tar file): {err}; nothing "
                         "was changed", path=where) from err
    with archive:
        try:
            members = archive.getmembers()
        except tarfile.TarError as err:
            raise BadRequest(f"{where} is a damaged tar file ({err}); nothing was changed",
                             path=where) from err
        check_members(members, where)
        descriptor = _copy_member(archive, members[0], folder)
        system = parse_ovf(descriptor.read_bytes(), f"{where}: {members[0].name}")
        check_sizes(members, system.sizes, where, shutil.disk_usage(folder).free)
        for member in members[1:]:
            progress(member.name)
            _copy_member(archive, member, folder)
    return descriptor


def _copy_member(archive: tarfile.TarFile, member: tarfile.TarInfo, folder: Path) -> Path:
    """Copy exactly ``member.size`` bytes into a new file ``folder/<name>``."""
    target = folder / member.name
    source = archive.extractfile(member)
    if source is None:  # not a regular file: check_members refused it already
        raise BadRequest(f"member {member.name!r} holds no data; nothing was changed")
    left = member.size
    with source, target.open("xb") as out:
        while left:
            chunk = source.read(min(CHUNK, left))
            if not chunk:
                raise BadRequest(f"member {member.name} ends early (truncated OVA); nothing "
                                 "was changed", member=member.name)
            out.write(chunk)
            left -= len(chunk)
    return target

"""POSIX access ACLs, read and written as the ``system.posix_acl_access`` extended
attribute (layout: linux/include/uapi/linux/posix_acl_xattr.h; semantics: POSIX.1e draft
17 and acl(5)): how a confined QEMU gets exactly its VM's files (docs/architecture.md,
"Security").

Layout: a little-endian ``u32`` version (2), then entries of ``u16 tag, u16 perm,
u32 id``, sorted by tag then id. Named entries (``ACL_USER``/``ACL_GROUP``) need an
``ACL_MASK`` entry, which bounds every entry of the group class; the kernel mirrors the
mask into the file mode's group bits.

:func:`with_entry` / :func:`without_entry` are pure; :func:`grant` and :func:`revoke`
read and write a file's ACL.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Entry", "decode", "encode", "entry_of", "from_mode", "grant", "revoke",
           "with_entry", "without_entry"]

XATTR = "system.posix_acl_access"
VERSION = 2
USER_OBJ, USER, GROUP_OBJ, GROUP, MASK, OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
UNDEFINED_ID = 0xFFFFFFFF
_HEADER = struct.Struct("<I")
_ENTRY = struct.Struct("<HHI")
GROUP_CLASS = (USER, GROUP_OBJ, GROUP)


@dataclass(frozen=True, order=True)
class Entry:
    """One ACL entry: ``tag`` (USER, GROUP…), ``id`` (uid/gid; UNDEFINED_ID for the
    owner, owning group, mask and other entries) and ``perm`` (r=4, w=2, x=1)."""

    tag: int
    id: int
    perm: int


def decode(data: bytes) -> list[Entry]:
    """:raises ValueError: not a version-2 ACL."""
    if len(data) < _HEADER.size or (len(data) - _HEADER.size) % _ENTRY.size:
        raise ValueError(f"an ACL of {len(data)} bytes is not 4 + 8n bytes")
    (version,) = _HEADER.unpack_from(data)
    if version != VERSION:
        raise ValueError(f"ACL version {version}, expected {VERSION}")
    return [Entry(tag, ident, perm) for tag, perm, ident in
            _ENTRY.iter_unpack(data[_HEADER.size:])]


def encode(entries: list[Entry]) -> bytes:
    ordered = sorted(entries, key=lambda e: (e.tag, e.id))
    return _HEADER.pack(VERSION) + b"".join(_ENTRY.pack(e.tag, e.perm, e.id) for e in ordered)


def from_mode(mode: int) -> list[Entry]:
    """The minimal ACL a file without one has (acl(5), "ACL equivalence")."""
    return [Entry(USER_OBJ, UNDEFINED_ID, (mode >> 6) & 7),
            Entry(GROUP_OBJ, UNDEFINED_ID, (mode >> 3) & 7),
            Entry(OTHER, UNDEFINED_ID, mode & 7)]


def with_entry(entries: list[Entry], tag: int, ident: int, perm: int) -> list[Entry]:
    """``entries`` with (tag, ident) set to exactly ``perm`` and the mask recomputed as
    the union of the group class, so that no other entry gains or loses access."""
    kept = [e for e in entries if (e.tag, e.id) != (tag, ident) and e.tag != MASK]
    return _masked([*kept, Entry(tag, ident, perm)], entries)


def without_entry(entries: list[Entry], tag: int, ident: int) -> list[Entry]:
    kept = [e for e in entries if (e.tag, e.id) != (tag, ident) and e.tag != MASK]
    return _masked(kept, entries)


def _masked(kept: list[Entry], before: list[Entry]) -> list[Entry]:
    named = [e for e in kept if e.tag in (USER, GROUP)]
    if not named:
        # Back to a minimal ACL: the owning group keeps what the old mask allowed it.
        mask = next((e.perm for e in before if e.tag == MASK), 7)
        return [e if e.tag != GROUP_OBJ else Entry(GROUP_OBJ, e.id, e.perm & mask)
                for e in kept]
    union = 0
    for entry in kept:
        if entry.tag in GROUP_CLASS:
            union |= entry.perm
    return sorted([*kept, Entry(MASK, UNDEFINED_ID, union)])


def read(path: Path) -> list[Entry]:
    """The file's ACL (its minimal ACL when it has none). :raises OSError."""
    try:
        return decode(os.getxattr(path, XATTR))
    except OSError as err:
        if err.errno != errno.ENODATA:
            raise
    return from_mode(os.stat(path).st_mode)


def grant(path: Path, tag: int, ident: int, perm: int) -> bool:
    """Give ``ident`` (a USER or GROUP) exactly ``perm`` on ``path``, the mask widened to
    let it through (a ``chmod`` narrows the mask: acl(5)); whether the ACL had to change.
    :raises OSError."""
    current = read(path)
    if Entry(tag, ident, perm) in current and _mask_allows(current, perm):
        return False
    os.setxattr(path, XATTR, encode(with_entry(current, tag, ident, perm)))
    return True


def entry_of(path: Path, tag: int, ident: int) -> Entry | None:
    """``ident``'s entry in ``path``'s ACL, if any. :raises OSError."""
    return next((e for e in read(path) if (e.tag, e.id) == (tag, ident)), None)


def revoke(path: Path, tag: int, ident: int) -> None:
    """Remove ``ident``'s entry from ``path``'s ACL (nothing when it has none)."""
    current = read(path)
    if any((e.tag, e.id) == (tag, ident) for e in current):
        os.setxattr(path, XATTR, encode(without_entry(current, tag, ident)))


def _mask_allows(entries: list[Entry], perm: int) -> bool:
    mask = next((e.perm for e in entries if e.tag == MASK), 7)
    return mask & perm == perm

"""QEMU-compatible image locking with open file description locks.

QEMU's file-posix driver (block/file-posix.c, ``raw_apply_lock_bytes``) takes shared
F_OFD_SETLK read locks on byte ``100 + p`` for each permission ``p`` it uses and on
``200 + p`` for each permission it does not share with others. Permissions:
0 consistent read, 1 write, 2 write unchanged, 3 resize, 4 graph modification.

We do exactly what QEMU does: take our own locks first (so a QEMU starting after us
refuses), then test for locks held by anyone else that conflict with ours.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from pathlib import Path

from .errors import DiskInUse

PERM_BASE = 100
SHARED_BASE = 200
PERM_NAMES = ("consistent read", "write", "write unchanged", "resize", "graph modification")
_FLOCK = struct.Struct("hhqqi4x")  # struct flock on Linux x86_64/aarch64


def _lock(fd: int, cmd: int, kind: int, offset: int) -> bytes:
    return fcntl.fcntl(fd, cmd, _FLOCK.pack(kind, os.SEEK_SET, offset, 1, 0))


def _held_by_other(fd: int, offset: int) -> bool:
    """True when another open file description holds any lock on byte ``offset``."""
    kind: int = _FLOCK.unpack(_lock(fd, fcntl.F_OFD_GETLK, fcntl.F_WRLCK, offset))[0]
    return kind != fcntl.F_UNLCK


def acquire_image_locks(fd: int, path: Path, *, writable: bool) -> None:
    """Lock ``fd`` as QEMU would for a reader (writable=False) or an exclusive writer.

    A reader uses "consistent read" and refuses to share "write"; a writer uses every
    permission and shares nothing. Raises DiskInUse naming the conflicting permission.
    Filesystems without OFD locks are tolerated (no locking, like QEMU's locking=auto).
    """
    used = range(5) if writable else (0,)
    unshared = range(5) if writable else (1, 3)
    try:
        for p in used:
            _lock(fd, fcntl.F_OFD_SETLK, fcntl.F_RDLCK, PERM_BASE + p)
        for p in unshared:
            _lock(fd, fcntl.F_OFD_SETLK, fcntl.F_RDLCK, SHARED_BASE + p)
        conflicts = [p for p in used if _held_by_other(fd, SHARED_BASE + p)]
        conflicts += [p for p in unshared if _held_by_other(fd, PERM_BASE + p)]
    except OSError as err:
        if err.errno in (errno.EAGAIN, errno.EACCES):
            raise DiskInUse(_in_use_message(path, [])) from None
        if err.errno in (errno.ENOLCK, errno.EINVAL, errno.ENOTSUP):
            return
        raise
    if conflicts:
        raise DiskInUse(_in_use_message(path, sorted(set(conflicts))))


def _in_use_message(path: Path, perms: list[int]) -> str:
    what = ", ".join(PERM_NAMES[p] for p in perms) or "an exclusive"
    return (
        f"{path}: in use by another program (a running VM or qemu-img holds a conflicting "
        f"'{what}' lock); stop the VM or detach the disk and retry; nothing was changed"
    )

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
            raise DiskInUse(_in_use_message(path, [], holders(fd))) from None
        if err.errno in (errno.ENOLCK, errno.EINVAL, errno.ENOTSUP):
            return
        raise
    if conflicts:
        raise DiskInUse(_in_use_message(path, sorted(set(conflicts)), holders(fd)))


def holders(fd: int) -> list[tuple[int, str]]:
    """The other processes with the file of ``fd`` open, as ``(pid, program name)``.

    OFD locks carry no pid (``F_OFD_GETLK`` answers -1), so the holders are found the way
    ``fuser`` does: every ``/proc/<pid>/fd`` entry whose target is the same inode. Only
    processes this user may inspect are seen (all of them for root). Used on the error
    path only: it reads every process's descriptor table.
    """
    wanted = os.fstat(fd)
    found: list[tuple[int, str]] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        if _has_open(entry / "fd", wanted.st_dev, wanted.st_ino):
            found.append((int(entry.name), _program(entry)))
    return found


def _has_open(fd_dir: Path, dev: int, ino: int) -> bool:
    try:
        for link in fd_dir.iterdir():
            try:
                st = link.stat()
            except OSError:
                continue
            if st.st_ino == ino and st.st_dev == dev:
                return True
    except OSError:
        return False
    return False


def _program(proc_dir: Path) -> str:
    """The program's name: argv[0]'s base name (``comm`` is cut at 15 characters)."""
    try:
        argv0 = (proc_dir / "cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return "?"
    return os.path.basename(argv0.decode(errors="replace")) or "?"


STORAGE_DAEMON_HINT = (
    "a viridian VM's storage daemon holds the disks of a registered VM also while it is "
    "Off: run the disk command with the service running (it goes through the service) "
    "or remove the VM first"
)


def _in_use_message(path: Path, perms: list[int], held_by: list[tuple[int, str]]) -> str:
    what = ", ".join(PERM_NAMES[p] for p in perms) or "an exclusive"
    who = ", ".join(f"{name} pid {pid}" for pid, name in held_by) or (
        "a running VM or qemu-img")
    advice = ("stop the VM or detach the disk and retry" if not any(
        name == "qemu-storage-daemon" for _, name in held_by) else STORAGE_DAEMON_HINT)
    return (
        f"{path}: in use by another program ({who} holds a conflicting '{what}' lock); "
        f"{advice}; nothing was changed"
    )

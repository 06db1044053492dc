"""Up-front allocation of fixed disks, refused with the numbers when space is short.

A fixed VHD is allocated when it is created, as Hyper-V does (that is what makes it
"fixed": no later ENOSPC inside the guest). Before any file is created the free space
of the destination's file system is compared with what the disk needs; the allocation
itself (``posix_fallocate``) may still hit ENOSPC when something else filled the file
system meanwhile, which is reported the same way.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from .errors import DiskError, DiskNotFound, NoSpace
from .fileio import ImageFile
from .sizes import describe_bytes


def free_bytes(folder: Path) -> int:
    """Bytes an unprivileged writer may still use on ``folder``'s file system.

    Raises DiskNotFound when ``folder`` does not exist.
    """
    try:
        st = os.statvfs(folder)
    except FileNotFoundError:
        raise DiskNotFound(f"folder {folder} does not exist") from None
    except OSError as err:
        raise DiskError(f"{folder}: cannot read free space: {err.strerror}") from err
    return st.f_bavail * st.f_frsize


def no_space(path: Path, needed: int, free: int, *, created: bool = True) -> NoSpace:
    """The refusal for ``path``: needed and free bytes, and that nothing was changed."""
    done = "nothing was created" if created else "nothing was changed"
    folder = path.absolute().parent
    return NoSpace(
        f"{path}: a fixed disk needs {describe_bytes(needed)} but the file system of "
        f"{folder} has {describe_bytes(free)} free; {done} "
        "(free some space, or use a dynamic disk)",
        needed=needed,
        free=free,
    )


def require_space(path: Path, needed: int, *, created: bool = True) -> None:
    """Raise NoSpace (or DiskNotFound for a missing folder) unless ``needed`` bytes fit.

    ``created`` says whether the refused operation would have created ``path`` (the
    message then says "nothing was created", else "nothing was changed").
    """
    free = free_bytes(path.parent)
    if needed > free:
        raise no_space(path, needed, free, created=created)


def allocate(
    file: ImageFile, public_path: Path, needed: int, offset: int = 0, *, created: bool = True
) -> None:
    """Allocate ``needed`` bytes of ``file`` at ``offset``; NoSpace names ``public_path``."""
    if needed <= 0:
        return
    try:
        file.allocate(offset, needed)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            free = free_bytes(public_path.parent)
            raise no_space(public_path, needed, free, created=created) from err
        raise DiskError(f"{public_path}: cannot allocate: {err.strerror}") from err

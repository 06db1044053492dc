"""The files a confined user's disk operation opens are the files that were checked
(docs/architecture.md, "Access": storage paths; issue 17, the symlink swap between the
check and the open).

The access gate checks a request's paths against the user's storage paths when the
request arrives; the job opens them later. In between the user could swap a folder or
the file for a symlink out of their storage path. So, for a user whose paths are
confined, the job first opens each file (``O_PATH``) — or, for a file it creates, its
folder — and checks where the *descriptor* really is (``/proc/self/fd/N``, the kernel's
own answer, no path resolved again); the disk library is then handed
``/proc/self/fd/N``, which opens that very inode, whatever the path names by then.

A differencing disk's parent is found relative to the child's folder, so such a disk
is reached through its pinned folder (``/proc/self/fd/D/name``), its last component
checked to be no symlink; a created file's last component needs no check (the library
creates with ``O_EXCL``, which refuses a symlink).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from viridian import disks
from viridian.access.confinement import check_paths
from viridian.errors import Forbidden

__all__ = ["NoPins", "Pins"]

MAX_CHAIN = 64


class Pins:
    """Pinned descriptors of one job; :meth:`close` (or ``with``) releases them."""

    def __init__(self, user: str, roots: Sequence[str]) -> None:
        self.user, self.roots = user, list(roots)
        self._stack = ExitStack()
        self._names: dict[str, str] = {}

    def __enter__(self) -> Pins:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._stack.close()

    def file(self, path: Path) -> Path:
        """An existing file, pinned: ``/proc/self/fd/N`` (or its pinned folder + name
        for a differencing disk). :raises Forbidden: it is not inside the storage paths
        (any more). :raises FileNotFoundError."""
        chain = _parents(path)
        if not chain:
            return self._named(path, self._pin(path, 0))
        check_paths(self.user, chain, self.roots)  # what the operation reads through it
        folder = self._pin(path.parent, os.O_DIRECTORY)
        if stat.S_ISLNK(os.lstat(path.name, dir_fd=int(folder.name)).st_mode):
            return self.file(Path(os.path.realpath(path)))  # checked, reached by its folder
        return self._named(path, folder / path.name)

    def new_file(self, path: Path) -> Path:
        """A file the operation creates: its nearest existing folder pinned, the rest
        of the path below it."""
        existing, rest = path.parent, [path.name]
        while not existing.exists() and existing != existing.parent:
            rest.insert(0, existing.name)
            existing = existing.parent
        return self._named(path, self._pin(existing, os.O_DIRECTORY).joinpath(*rest))

    def shown(self, result: Any) -> Any:
        """``result`` with every pinned name replaced by the path the user gave."""
        if isinstance(result, dict):
            return {k: self.shown(v) for k, v in result.items()}
        if isinstance(result, list):
            return [self.shown(v) for v in result]
        if isinstance(result, str):
            for pinned in sorted(self._names, key=len, reverse=True):
                result = result.replace(pinned, self._names[pinned])
        return result

    def _pin(self, path: Path, flags: int) -> Path:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC | flags)
        self._stack.callback(os.close, fd)
        where = Path(f"/proc/self/fd/{fd}")
        check_paths(self.user, [os.readlink(where)], self.roots)
        mode = os.fstat(fd).st_mode
        if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
            raise Forbidden(f"{self.user} may not use {path}: host devices are not allowed; "
                            "nothing was changed", path=str(path), user=self.user)
        return where

    def _named(self, given: Path, pinned: Path) -> Path:
        self._names[str(pinned)] = str(given)
        return pinned


class NoPins(Pins):
    """For a caller whose paths are not confined: every path as given."""

    def __init__(self) -> None:
        super().__init__("", [])

    def file(self, path: Path) -> Path:
        return path

    def new_file(self, path: Path) -> Path:
        return path


def _parents(path: Path) -> list[str]:
    """The parent chain of a differencing disk (empty for any other file)."""
    chain: list[str] = []
    current = path
    while len(chain) < MAX_CHAIN:
        try:
            parent = disks.inspect(current).parent_path
        except (disks.DiskError, OSError, ValueError):
            break
        if parent is None:
            break
        chain.append(os.path.normpath(parent))
        current = Path(parent)
    return chain

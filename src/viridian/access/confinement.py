"""Path confinement (docs/architecture.md, "Access"): a principal without ``host.manage``
on the host may name host files only inside the storage paths granted to it or to one
of its groups (``viridian user storage add``).

A request's paths are the strings under the keys of :data:`PATH_KEYS` (at any depth of
the JSON body, and in the query) and every string that starts with ``/``. Each must be
absolute, have no ``..`` component, resolve (symlinks followed, :func:`os.path.realpath`)
inside a granted storage path, and not be a block or character device. A refusal is
:class:`~viridian.errors.Forbidden` naming the path, the rule and the granted paths.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from typing import Any

from viridian.errors import Forbidden

__all__ = ["PATH_KEYS", "check_paths", "paths_in"]

PATH_KEYS = frozenset({"path", "paths", "folder", "vhd", "dvd", "floppy", "pipe", "parent",
                       "checkpoint_folder", "destination", "source", "file", "iso",
                       "directory", "target", "target_folder"})


def paths_in(document: Any, key: str | None = None) -> Iterator[str]:
    """Every path-like string of a JSON document (module docstring)."""
    if isinstance(document, dict):
        for name, value in document.items():
            yield from paths_in(value, str(name))
    elif isinstance(document, list):
        for item in document:
            yield from paths_in(item, key)
    elif isinstance(document, str) and (key in PATH_KEYS or document.startswith("/")):
        yield document


def _inside(real: str, root: str) -> bool:
    return real == root or real.startswith(root.rstrip("/") + "/")


def check_paths(user: str, paths: Sequence[str], roots: Sequence[str]) -> None:
    """Return when every path of ``paths`` is allowed inside ``roots``; else raise
    :class:`Forbidden` for the first that is not."""
    real_roots = [os.path.realpath(r) for r in roots]
    allowed = ", ".join(real_roots) or "none (ask an administrator: 'viridian user storage "
    allowed += "" if real_roots else "add')"
    for text in paths:
        why = _refusal(text, real_roots)
        if why:
            raise Forbidden(f"{user} may not use {text!r}: {why}; your storage paths: "
                            f"{allowed}; nothing was changed", path=text, user=user,
                            storage_paths=real_roots)


def _refusal(text: str, roots: Sequence[str]) -> str | None:
    if not text.startswith("/"):
        return "paths must be absolute"
    if ".." in text.split("/"):
        return "'..' is not allowed in a path"
    real = os.path.realpath(text)
    try:
        mode = os.stat(real).st_mode
    except OSError:
        mode = 0
    if stat.S_ISBLK(mode) or stat.S_ISCHR(mode):
        return "host devices are not allowed"
    if not any(_inside(real, root) for root in roots):
        where = "" if real == text else f" (it resolves to {real})"
        return f"it is outside your storage paths{where}"
    return None

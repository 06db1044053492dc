"""Parent locators of differencing VHDs: writing them and resolving them to paths.

Spec "Parent Locator Entries" plus observed practice (notes §1.7): W2ru holds a relative
path starting with ``.\\`` and using ``\\``; W2ku an absolute path; both UTF-16LE, no NUL;
data space written in bytes (a multiple of 512).
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from .fileio import ImageFile
from .vhd_layout import (
    PLATFORM_MACX,
    PLATFORM_W2KU,
    PLATFORM_W2RU,
    SECTOR,
    DynamicHeader,
)

MAX_LOCATOR_BYTES = 64 * 1024


def relative_locator(child: Path, parent: Path) -> str:
    """The W2ru string for ``parent`` seen from ``child``'s folder, e.g. ``.\\base.vhd``."""
    rel = os.path.relpath(parent.absolute(), child.absolute().parent).replace("/", "\\")
    return rel if rel.startswith("..\\") else ".\\" + rel


def locator_payloads(child: Path, parent: Path) -> list[tuple[int, bytes]]:
    """(platform code, encoded data) for the W2ku and W2ru locators of ``child``."""
    absolute = str(parent.absolute()).encode("utf-16-le")
    relative = relative_locator(child, parent).encode("utf-16-le")
    return [(PLATFORM_W2KU, absolute), (PLATFORM_W2RU, relative)]


def padded_space(data: bytes) -> int:
    """Bytes reserved for one locator's data: a multiple of 512, at least 512."""
    return max(SECTOR, -(-len(data) // SECTOR) * SECTOR)


def _decode(platform: int, raw: bytes) -> str | None:
    if platform in (PLATFORM_W2RU, PLATFORM_W2KU):
        return raw.decode("utf-16-le", errors="replace").split("\0", 1)[0]
    if platform == PLATFORM_MACX:
        text = raw.decode("utf-8", errors="replace").split("\0", 1)[0]
        return urllib.parse.unquote(urllib.parse.urlparse(text).path)
    return None


def _to_path(child_dir: Path, platform: int, text: str) -> Path | None:
    if platform == PLATFORM_W2RU:
        return child_dir / text.replace("\\", "/")
    if text.startswith("/"):
        return Path(text)
    if len(text) > 2 and text[1] == ":":  # a Windows drive path: try its name beside us
        return child_dir / text.replace("\\", "/").rsplit("/", 1)[-1]
    return None


def parent_candidates(file: ImageFile, header: DynamicHeader) -> list[Path]:
    """Paths where the parent may be, in the order of notes §1.7 (W2ru, W2ku, MacX, name)."""
    child_dir = file.path.absolute().parent
    order = {PLATFORM_W2RU: 0, PLATFORM_W2KU: 1, PLATFORM_MACX: 2}
    found: list[tuple[int, Path]] = []
    size = file.size()
    for loc in header.locators:
        space = loc.space_bytes()
        if loc.platform not in order or space is None:
            continue
        length = min(loc.data_length, space, MAX_LOCATOR_BYTES)
        if length <= 0 or loc.data_offset + length > size:
            continue
        text = _decode(loc.platform, file.pread(length, loc.data_offset))
        path = _to_path(child_dir, loc.platform, text) if text else None
        if path is not None:
            found.append((order[loc.platform], path))
    paths = [p for _, p in sorted(found, key=lambda t: t[0])]
    if header.parent_name:
        name = header.parent_name.replace("\\", "/").rsplit("/", 1)[-1]
        if name:
            paths.append(child_dir / name)
    return list(dict.fromkeys(paths))

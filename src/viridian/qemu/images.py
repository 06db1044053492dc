"""Offline image operations on qcow2 overlays through ``qemu-img`` (QEMU's own tool, so the
chains it writes are exactly what QEMU reads).

Every backing reference is written with its format (``-F``): a fixed VHD without an
explicit format would be probed as raw (docs/architecture.md, "The storage path").
Images that a running QEMU holds as read-only backing files may be read here (``-U``
shares them); an image QEMU writes to is never opened here.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from viridian.qemu.errors import QemuError

QEMU_IMG = "qemu-img"


class ImageError(QemuError):
    """``qemu-img`` failed; the message quotes its error output."""

    code = "image_error"


async def _run(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        QEMU_IMG, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise ImageError(f"qemu-img {args[0]} failed: {err.decode(errors='replace').strip()}",
                         command=[QEMU_IMG, *args])
    return out.decode()


async def create_overlay(path: Path, backing: str, backing_format: str) -> None:
    """A new empty qcow2 ``path`` (0600) reading through to ``backing``; replaces a
    leftover file of the same name (an interrupted earlier attempt)."""
    path.unlink(missing_ok=True)
    await _run("create", "-q", "-f", "qcow2", "-b", backing, "-F", backing_format, str(path))
    os.chmod(path, 0o600)


async def info(path: str) -> dict[str, Any]:
    text = await _run("info", "-U", "--output=json", path)
    result = json.loads(text)
    assert isinstance(result, dict)
    return result


async def backing_of(path: str) -> str | None:
    """The backing file ``path`` names in its header (None for a standalone image)."""
    data = await info(path)
    backing = data.get("full-backing-filename") or data.get("backing-filename")
    return str(backing) if backing else None


async def rebase(target: str, new_backing: str, new_backing_format: str) -> None:
    """Safe rebase: copy into ``target`` every cluster where its old and new backing
    chains differ, then point its header at ``new_backing``. Interrupted, ``target``
    reads as before (the header changes last), so it can simply be run again."""
    await _run("rebase", "-q", "-U", "-f", "qcow2", "-b", new_backing, "-F",
               new_backing_format, target)


async def commit(top: str) -> None:
    """Write ``top``'s data into its backing image. Interrupted, the chain through
    ``top`` still reads the same (``top`` is unchanged), so it can be run again."""
    await _run("commit", "-q", "-f", "qcow2", "-d", top)

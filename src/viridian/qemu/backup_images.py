"""``qemu-img`` steps of backup and restore (docs/architecture.md, "Backup"): staging
images, a copy of an Off VM's disk, the backing reference of an incremental image, and
the chain of a point written back into a disk of the VM's own format."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from viridian.qemu.errors import QemuError

QEMU_IMG = "qemu-img"

CREATE_OPTIONS = {"vpc": ["-o", "subformat=dynamic,force_size=on"],
                  "vhdx": ["-o", "subformat=dynamic"], "qcow2": [], "raw": []}
"""How a restored disk of each format is made: the VHD keeps its exact size
(``force_size``: no CHS rounding) and is dynamic, as ``viridian disk`` makes them."""


class BackupImageError(QemuError):
    """``qemu-img`` failed; the message quotes its error output."""

    code = "image_error"


async def _run(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        QEMU_IMG, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    if process.returncode != 0:
        raise BackupImageError(
            f"qemu-img {args[0]} failed: {err.decode(errors='replace').strip()}",
            command=[QEMU_IMG, *args])
    return out.decode()


STAGING_CLUSTER = 1 << 20
"""Cluster size of staging images: a backup job copies in units of the target's cluster,
and 1 MiB units copied 4-10x faster than qcow2's default 64 KiB here (bench/bench_backup.py)
at the price of copying a whole MiB around each changed block of an incremental point."""


async def create_staging(path: Path, size: int) -> None:
    """An empty qcow2 of ``size`` bytes (no backing) for a backup job to write."""
    path.unlink(missing_ok=True)
    await _run("create", "-q", "-f", "qcow2", "-o", f"cluster_size={STAGING_CLUSTER}",
               str(path), str(size))


async def copy_off_disk(source: str, source_format: str, target: Path) -> None:
    """The disk image ``source`` (read through its backing chain) as a standalone sparse
    qcow2 ``target`` — the backup of a VM that is Off."""
    await _run("convert", "-q", "-U", "-f", source_format, "-O", "qcow2", source, str(target))


async def set_backing(path: Path, backing: str) -> None:
    """Write ``backing`` (qcow2, relative to ``path``'s folder) into ``path``'s header
    without touching data (``rebase -u``)."""
    await _run("rebase", "-q", "-u", "-f", "qcow2", "-b", backing, "-F", "qcow2", str(path))


async def virtual_size(path: str, image_format: str) -> int:
    data: Any = json.loads(await _run("info", "-U", "--output=json", "-f", image_format, path))
    return int(data["virtual-size"])


async def write_disk(source: Path, target: Path, target_format: str, size: int) -> None:
    """The point image ``source`` (through its chain) as a new disk ``target`` of
    ``target_format`` and exactly ``size`` bytes."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    await _run("create", "-q", "-f", target_format, *CREATE_OPTIONS.get(target_format, []),
               str(target), str(size))
    await _run("convert", "-q", "-n", "--target-is-zero", "-f", "qcow2", "-O", target_format,
               str(source), str(target))

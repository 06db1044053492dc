"""File work of backup points: JSON files, the copy from local staging to the target
(optionally rate limited), the checksum manifest, durable publishing."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

from viridian.backup.manifest import Manifest, sums_of
from viridian.service.vms.package_files import copy_sparse, sync_folder

CHUNK = 1 << 20


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


async def copy_to_target(source: Path, target: Path, rate_bps: int | None) -> int:
    """Copy ``source`` to ``target`` keeping holes; with ``rate_bps``, at most that many
    bytes per second (a NAS spared, or a slow target emulated). Returns the bytes of
    data copied (holes excluded)."""
    if rate_bps is None:
        await copy_sparse(source, target)
        return _data_bytes(target)
    return await asyncio.to_thread(_copy_throttled, source, target, rate_bps)


def _copy_throttled(source: Path, target: Path, rate_bps: int) -> int:
    started, written = time.monotonic(), 0
    size = source.stat().st_size
    with source.open("rb") as src, target.open("wb") as dst:
        for offset, length in _data_extents(src.fileno(), size):
            src.seek(offset)
            dst.seek(offset)
            while length > 0:
                block = src.read(min(CHUNK, length))
                dst.write(block)
                written += len(block)
                length -= len(block)
                delay = started + written / rate_bps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        dst.truncate(size)
    return written


def _data_extents(fd: int, size: int) -> list[tuple[int, int]]:
    extents: list[tuple[int, int]] = []
    offset = 0
    while offset < size:
        try:
            start = os.lseek(fd, offset, os.SEEK_DATA)
        except OSError:  # ENXIO: only a hole is left
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        extents.append((start, end - start))
        offset = end
    return extents


def _data_bytes(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY)
    try:
        return sum(length for _, length in _data_extents(fd, os.fstat(fd).st_size))
    finally:
        os.close(fd)


def build_manifest(folder: Path, names: list[str]) -> Manifest:
    """The checksums of the point-relative files ``names`` of ``folder``."""
    return Manifest({name: sums_of(folder / name) for name in names})


def finish_folder(partial: Path, final: Path) -> None:
    """Sync everything in ``partial``, rename it to ``final``, sync the parent."""
    sync_folder(partial)
    partial.rename(final)
    fd = os.open(final.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

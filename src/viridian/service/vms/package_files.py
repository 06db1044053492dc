"""File work of export and import: sparse copies, qcow2 headers pointed at moved backing
files, durable folders, and the staging journal that lets a restarted service remove
what a killed export or import left half made (docs/architecture.md, "Export and
import")."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from pathlib import Path

from viridian.errors import HostError
from viridian.service.catalog import Catalog

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS interchange_staging (
    path TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    vm_id TEXT
);
"""


async def run(*argv: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await process.communicate()
    if process.returncode != 0:
        raise HostError(f"{argv[0]} failed: {err.decode(errors='replace').strip()}",
                        command=list(argv))


async def copy_sparse(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target`` keeping holes (a dynamic disk stays small)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    await run("cp", "--sparse=always", "--reflink=auto", "--", str(source), str(target))


async def point_backing(overlay: Path, backing: str, backing_format: str) -> None:
    """Write ``backing`` (with its format) into the qcow2 header of ``overlay`` without
    reading either image (``qemu-img rebase -u``): the data is unchanged, only where
    the backing file now lives."""
    await run("qemu-img", "rebase", "-u", "-f", "qcow2", "-b", backing, "-F",
               backing_format, str(overlay))


def sync_folder(folder: Path) -> None:
    """fsync every file below ``folder`` and every folder (itself included)."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name, os.O_RDONLY)
        _fsync(Path(root), os.O_RDONLY | os.O_DIRECTORY)


def publish(staging: Path, final: Path) -> None:
    """Rename the complete ``staging`` folder to ``final`` and make the rename durable."""
    staging.rename(final)
    _fsync(final.parent, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class StagingJournal:
    """Staging folders in the making, recorded in the catalog *before* they are created
    and forgotten once published or removed: a service killed in between removes them
    at its next start (:meth:`sweep`)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.execute_script(_SCHEMA)

    def begin(self, path: Path, kind: str, vm_id: str | None = None) -> None:
        with self.catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO interchange_staging VALUES (?,?,?)",
                       (str(path), kind, vm_id))

    def end(self, path: Path) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM interchange_staging WHERE path=?", (str(path),))

    def discard(self, path: Path) -> None:
        """Remove ``path`` (a staging folder) and its record."""
        shutil.rmtree(path, ignore_errors=True)
        self.end(path)

    def leftovers(self) -> list[tuple[Path, str, str | None]]:
        rows = self.catalog.read("SELECT path, kind, vm_id FROM interchange_staging")
        return [(Path(row[0]), str(row[1]), row[2]) for row in rows]

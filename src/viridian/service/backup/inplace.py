"""``backup restore ID`` in place: the disks of a registered VM (Off, no checkpoints)
rewritten from a point (docs/architecture.md, "Backup").

Journaled so that a kill leaves either every disk as it was or every disk restored:
the journal (table ``backup_inplace``) is written *before* the first file, phase
``writing``; each disk is written beside its file (``.<name>.restore``) and synced; one
transaction turns the phase to ``renaming``; then each is renamed over its disk and the
journal row goes. At the next start (:func:`recover_in_place`, before any VM may start)
a ``writing`` restore is undone (the files beside are removed) and a ``renaming`` one is
completed (every file still beside is renamed over its disk). The VM's storage daemon is
ended first: it must not keep serving the replaced files. Fault points
``restore.written`` (all written, none renamed) and ``restore.renamed`` (after the
first rename).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from viridian.backup.records import BackupRecord
from viridian.checkpoints import Tree
from viridian.errors import Conflict
from viridian.model.slots import hard_disks
from viridian.model.states import VMState
from viridian.qemu import backup_images
from viridian.service.catalog import Catalog
from viridian.service.checkpoints.operations import fault
from viridian.service.jobs import Job
from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS backup_inplace (
    id TEXT PRIMARY KEY,
    phase TEXT NOT NULL,
    pairs TEXT NOT NULL
);
"""

Pairs = list[tuple[Path, Path]]
"""(file beside, the disk it replaces)."""


class InPlaceJournal:
    """In-place restores under way (module docstring)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.execute_script(_SCHEMA)

    def begin(self, restore_id: str, pairs: Pairs) -> None:
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO backup_inplace VALUES (?, 'writing', ?)",
                       (restore_id, json.dumps([[str(b), str(f)] for b, f in pairs])))

    def renaming(self, restore_id: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("UPDATE backup_inplace SET phase = 'renaming' WHERE id = ?",
                       (restore_id,))

    def end(self, restore_id: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM backup_inplace WHERE id = ?", (restore_id,))

    def under_way(self) -> list[tuple[str, str, Pairs]]:
        rows = self.catalog.read("SELECT id, phase, pairs FROM backup_inplace")
        return [(str(r[0]), str(r[1]), [(Path(b), Path(f)) for b, f in json.loads(r[2])])
                for r in rows]


async def restore_in_place(live: LiveVM, tree: Tree, record: BackupRecord,
                           journal: InPlaceJournal, job: Job) -> dict[str, Any]:
    """Rewrite the disks of ``live`` (Off, no checkpoints) from the point (module
    docstring). The caller holds the VM's queue.

    :raises Conflict: the VM is not Off, or has checkpoints (nothing changed)."""
    if live.state is not VMState.OFF or tree.checkpoints:
        raise Conflict(f"cannot restore backup {record.id} into VM '{live.record.name}' in "
                       f"place: it is {live.state.value}"
                       f"{' with checkpoints' if tree.checkpoints else ''}; in place needs "
                       "it Off without checkpoints — turn it off (and delete its "
                       "checkpoints) or restore as a new VM with --as NAME; nothing was "
                       "changed", vm=live.record.name, state=live.state.value)
    point = Path(record.folder)
    disks = {d.slot: d for d in record.disks}
    slots = [s for s in hard_disks(live.record.settings) if s.path and s.id in disks]
    pairs = [(Path(s.path or "").with_name(f".{Path(s.path or '').name}.restore"),
              Path(s.path or "")) for s in slots]
    await live.end_storage_daemon()
    restore_id = uuid.uuid4().hex
    journal.begin(restore_id, pairs)
    try:
        for index, (slot, (beside, _)) in enumerate(zip(slots, pairs, strict=True)):
            job.report(5 + 80 * index / max(1, len(slots)), f"writing {slot.label}")
            disk = disks[slot.id]
            await backup_images.write_disk(point / disk.file, beside,
                                           str(slot.format or "raw"), disk.size)
            _fsync(beside, os.O_RDONLY)
    except BaseException:
        _undo(pairs)
        journal.end(restore_id)
        raise
    fault("restore.written")
    journal.renaming(restore_id)
    _complete(pairs, after_first=lambda: fault("restore.renamed"))
    journal.end(restore_id)
    live.view_changed()
    return {**live.to_dict(), "restored_from": record.id, "in_place": True}


def recover_in_place(journal: InPlaceJournal) -> None:
    """Undo (``writing``) or complete (``renaming``) what a killed restore left."""
    for restore_id, phase, pairs in journal.under_way():
        if phase == "renaming":
            log.warning("completing the in-place restore %s (%d disk(s))", restore_id,
                        len(pairs))
            _complete(pairs)
        else:
            log.warning("undoing the unfinished in-place restore %s", restore_id)
            _undo(pairs)
        journal.end(restore_id)


def _complete(pairs: Pairs, after_first: Callable[[], None] | None = None) -> None:
    for index, (beside, final) in enumerate(pairs):
        if beside.exists():  # else renamed before the kill
            os.replace(beside, final)
            _fsync(final.parent, os.O_RDONLY | os.O_DIRECTORY)
        if index == 0 and after_first is not None:
            after_first()


def _undo(pairs: Pairs) -> None:
    for beside, _ in pairs:
        beside.unlink(missing_ok=True)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Checkpoint records, Now's overlays and the operation journal, in the catalog's SQLite.

Three tables beside ``vms``; every change that must be atomic with a VM record (settings,
state) goes through one :meth:`Catalog.transaction` (``synchronous=FULL``): a committed
change survives SIGKILL and power loss, an uncommitted one never happened.

The journal holds at most one unfinished checkpoint operation per VM: its plan (every
file it creates, merges or deletes) and the last step that completed. It is written
*before* the first file is touched, so recovery knows exactly what may exist.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from viridian.checkpoints import Checkpoint, NowDisk, Tree
from viridian.service.catalog import Catalog

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY,
    vm_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    record TEXT NOT NULL,
    UNIQUE (vm_id, name)
);
CREATE TABLE IF NOT EXISTS checkpoint_now (
    vm_id TEXT PRIMARY KEY,
    parent_id TEXT,
    disks TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoint_journal (
    vm_id TEXT PRIMARY KEY,
    op TEXT NOT NULL,
    step TEXT NOT NULL,
    plan TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class JournalEntry:
    vm_id: str
    op: str  # take | apply | delete
    step: str  # the last step that completed
    plan: dict[str, Any]


class CheckpointStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.execute_script(_SCHEMA)

    # --- reading ---------------------------------------------------------------------

    def tree(self, vm_id: str) -> Tree:
        rows = self.catalog.read(
            "SELECT record FROM checkpoints WHERE vm_id=? ORDER BY seq", (vm_id,))
        checkpoints = tuple(Checkpoint.from_dict(json.loads(row[0])) for row in rows)
        now = self.catalog.read(
            "SELECT parent_id, disks FROM checkpoint_now WHERE vm_id=?", (vm_id,))
        if not now:
            return Tree(checkpoints)
        parent_id, disks = now[0]
        return Tree(checkpoints, parent_id,
                    {slot: NowDisk.from_dict(d) for slot, d in json.loads(disks).items()})

    def next_seq(self, vm_id: str) -> int:
        rows = self.catalog.read("SELECT MAX(seq) FROM checkpoints WHERE vm_id=?", (vm_id,))
        return int(rows[0][0] or 0) + 1

    def journal(self, vm_id: str) -> JournalEntry | None:
        rows = self.catalog.read(
            "SELECT op, step, plan FROM checkpoint_journal WHERE vm_id=?", (vm_id,))
        if not rows:
            return None
        op, step, plan = rows[0]
        return JournalEntry(vm_id, op, step, json.loads(plan))

    def journals(self) -> list[JournalEntry]:
        rows = self.catalog.read("SELECT vm_id, op, step, plan FROM checkpoint_journal")
        return [JournalEntry(r[0], r[1], r[2], json.loads(r[3])) for r in rows]

    # --- writing (each call one durable transaction, or part of ``db``'s) ---------------

    def begin(self, vm_id: str, op: str, plan: Mapping[str, Any]) -> JournalEntry:
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO checkpoint_journal VALUES (?,?,?,?)",
                       (vm_id, op, "planned", json.dumps(plan)))
        return JournalEntry(vm_id, op, "planned", dict(plan))

    def step(self, entry: JournalEntry, step: str, db: sqlite3.Connection | None = None) -> \
            JournalEntry:
        sql = "UPDATE checkpoint_journal SET step=?, plan=? WHERE vm_id=?"
        params = (step, json.dumps(entry.plan), entry.vm_id)
        if db is not None:
            db.execute(sql, params)
        else:
            with self.catalog.transaction() as tx:
                tx.execute(sql, params)
        return JournalEntry(entry.vm_id, entry.op, step, entry.plan)

    def finish(self, vm_id: str, db: sqlite3.Connection | None = None) -> None:
        if db is not None:
            db.execute("DELETE FROM checkpoint_journal WHERE vm_id=?", (vm_id,))
            return
        with self.catalog.transaction() as tx:
            tx.execute("DELETE FROM checkpoint_journal WHERE vm_id=?", (vm_id,))

    @staticmethod
    def put_checkpoint(db: sqlite3.Connection, vm_id: str, cp: Checkpoint) -> None:
        db.execute("INSERT OR REPLACE INTO checkpoints VALUES (?,?,?,?,?)",
                   (cp.id, vm_id, cp.seq, cp.name, json.dumps(cp.to_dict())))

    @staticmethod
    def put_tree(db: sqlite3.Connection, vm_id: str, tree: Tree) -> None:
        """Replace the VM's whole tree (checkpoints and Now) with ``tree``."""
        db.execute("DELETE FROM checkpoints WHERE vm_id=?", (vm_id,))
        for cp in tree.checkpoints:
            CheckpointStore.put_checkpoint(db, vm_id, cp)
        db.execute("INSERT OR REPLACE INTO checkpoint_now VALUES (?,?,?)",
                   (vm_id, tree.now_parent,
                    json.dumps({s: n.to_dict() for s, n in tree.now_disks.items()})))

    def forget_vm(self, vm_id: str) -> None:
        with self.catalog.transaction() as db:
            for table in ("checkpoints", "checkpoint_now", "checkpoint_journal"):
                db.execute(f"DELETE FROM {table} WHERE vm_id=?", (vm_id,))

"""The catalog's index of backup points (table ``backups``). A row is written *partial*
before the first file of a point exists and turned *good* only after the point's folder
holds every file, synced (docs/architecture.md, "Backup"): a restarted service finds
every unfinished point here and removes or finishes it."""

from __future__ import annotations

import json

from viridian.backup.records import BackupRecord
from viridian.errors import NotFound
from viridian.service.catalog import Catalog

_SCHEMA = """
CREATE TABLE IF NOT EXISTS backups (
    id TEXT PRIMARY KEY,
    vm_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS backups_vm ON backups(vm_id);
"""


class BackupStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.execute_script(_SCHEMA)

    def put(self, record: BackupRecord) -> None:
        """Insert or replace ``record`` (one durable transaction)."""
        with self.catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO backups(id, vm_id, created_at, status, record) "
                       "VALUES (?, ?, ?, ?, ?)",
                       (record.id, record.vm_id, record.created_at, record.status,
                        json.dumps(record.to_dict())))

    def forget(self, backup_id: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM backups WHERE id = ?", (backup_id,))

    def all(self) -> list[BackupRecord]:
        """Every recorded point, oldest first."""
        rows = self.catalog.read("SELECT record FROM backups ORDER BY created_at, id")
        return [BackupRecord.from_dict(json.loads(row[0])) for row in rows]

    def good(self) -> list[BackupRecord]:
        return [record for record in self.all() if record.good]

    def partial(self) -> list[BackupRecord]:
        return [record for record in self.all() if not record.good]

    def get(self, backup_id: str) -> BackupRecord:
        """The good point ``backup_id``.

        :raises NotFound: no such point, or it is not complete (a partial point is never
            shown as a backup)."""
        rows = self.catalog.read("SELECT record FROM backups WHERE id = ? AND status = 'good'",
                                 (backup_id,))
        if not rows:
            raise NotFound(f"no backup with id {backup_id} (list them with 'viridian backup "
                           "list')", backup=backup_id)
        return BackupRecord.from_dict(json.loads(rows[0][0]))

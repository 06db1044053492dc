"""The catalog: SQLite (WAL) in the data folder, the one source of truth for defined VMs.

Contract: every method that changes something has committed (``synchronous=FULL``) before
it returns, so a state change acknowledged to a client survives SIGKILL and power loss.
The catalog stores *settled* state (Off, Running, Paused, Saved); transitional states
live only in memory while a job runs and are reconciled with reality at service start.

Job records are history, not state: they are written through a second connection with
``synchronous=NORMAL`` (WAL), which survives a killed service but may lose the newest
job records on power loss. That keeps an fsync off the path of every request.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from viridian.errors import Conflict, NotFound
from viridian.model import VMSettings, settings_from_dict, to_dict
from viridian.model.states import VMState
from viridian.service.shared_settings import shared
from viridian.service.usage_index import UsageIndex, uses_of

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS vms (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    settings TEXT NOT NULL,
    state TEXT NOT NULL,
    status TEXT,
    folder TEXT NOT NULL,
    created_at TEXT NOT NULL,
    auto_stopped INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    vm_id TEXT,
    vm_name TEXT,
    state TEXT NOT NULL,
    progress INTEGER NOT NULL,
    message TEXT NOT NULL,
    result TEXT,
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    submitted_by TEXT
);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_JOB_COLUMNS = ("id, kind, vm_id, vm_name, state, progress, message, result, error, "
                "created_at, started_at, finished_at, submitted_by")


@dataclass(frozen=True, slots=True)
class VMRecord:
    """One defined VM as the catalog holds it: typed settings and its settled state.
    The settings dict shape exists only in the ``settings`` column (converted here).
    Slotted: one per defined VM (docs/architecture.md, "Scale")."""

    id: str
    name: str
    settings: VMSettings
    state: VMState
    status: str | None
    folder: str
    created_at: str
    auto_stopped: bool = False

    def __post_init__(self) -> None:
        # Equal settings parts are one object across VMs (service/shared_settings.py).
        object.__setattr__(self, "settings", shared(self.settings))


@dataclass(frozen=True)
class JobRecord:
    id: str
    kind: str
    vm_id: str | None
    vm_name: str | None
    state: str
    progress: int
    message: str
    result: Any
    error: dict[str, Any] | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    submitted_by: str | None = None
    """The user name of the principal whose request submitted the job (``admin-token``
    for the bootstrap token); None: unknown (a job recorded before submitters were, or
    one no request started)."""


class Catalog:
    """Synchronous, tiny and fast; called from the event loop (each call is sub-millisecond)."""

    def __init__(self, path: Path) -> None:
        self._db = _connect(path, "FULL")
        self._db.executescript(_SCHEMA)
        _add_submitted_by(self._db)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._history = _connect(path, "NORMAL")
        self._usage: UsageIndex | None = None

    def close(self) -> None:
        self._history.close()
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable transaction on the state connection, for stores that keep their own
        tables beside the VMs (checkpoints) and must change both atomically."""
        with self._transaction() as db:
            yield db

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self._db.execute(sql, params).fetchall()

    def execute_script(self, script: str) -> None:
        self._db.executescript(script)

    @contextmanager
    def _transaction(self, db: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        db = db or self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            if db is self._db:
                self._usage = None  # it may hold a change that was rolled back: rebuild
            raise
        db.execute("COMMIT")

    # --- VMs -------------------------------------------------------------------------

    def insert_vm(self, vm: VMRecord) -> None:
        """Register ``vm``; raises ``Conflict`` if the name is taken."""
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO vms VALUES (?,?,?,?,?,?,?,?)",
                    (vm.id, vm.name, json.dumps(to_dict(vm.settings)), vm.state.value, vm.status,
                     vm.folder, vm.created_at, int(vm.auto_stopped)),
                )
        except sqlite3.IntegrityError as err:
            raise Conflict(
                f"a VM named '{vm.name}' already exists; nothing was created", name=vm.name
            ) from err
        self._index(vm)

    def update_vm(self, vm: VMRecord, db: sqlite3.Connection | None = None) -> None:
        """Persist every field of ``vm`` (found by id); inside ``db``'s transaction when
        given (see :meth:`transaction`)."""
        try:
            with contextlib.nullcontext(db) if db else self._transaction() as tx:
                cursor = tx.execute(
                    "UPDATE vms SET name=?, settings=?, state=?, status=?, folder=?, "
                    "auto_stopped=? WHERE id=?",
                    (vm.name, json.dumps(to_dict(vm.settings)), vm.state.value, vm.status,
                     vm.folder,
                     int(vm.auto_stopped), vm.id),
                )
        except sqlite3.IntegrityError as err:
            raise Conflict(
                f"a VM named '{vm.name}' already exists; nothing was changed", name=vm.name
            ) from err
        if cursor.rowcount != 1:
            raise NotFound(f"VM {vm.id} is not in the catalog", vm=vm.id)
        self._index(vm)

    def set_state(self, vm: VMRecord, state: VMState, status: str | None) -> VMRecord:
        """Commit ``vm`` in the settled ``state`` with ``status``; returns the new record."""
        updated = replace(vm, state=state, status=status)
        self.update_vm(updated)
        return updated

    def delete_vm(self, vm_id: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM vms WHERE id=?", (vm_id,))
        if self._usage is not None:
            self._usage.drop(vm_id)

    def list_vms(self) -> list[VMRecord]:
        rows = self._db.execute("SELECT * FROM vms ORDER BY name").fetchall()
        return [_vm_from_row(row) for row in rows]

    def ids_and_names(self, ref: str) -> list[tuple[str, str]]:
        """(id, name) of the VMs named ``ref`` or with id ``ref`` (index lookups, no
        settings decoded): at most two."""
        rows = self._db.execute("SELECT id, name FROM vms WHERE name=? OR id=?", (ref, ref))
        return [(str(vm_id), str(name)) for vm_id, name in rows]

    @property
    def usage(self) -> UsageIndex:
        """Disk files and MACs of every VM in the catalog, kept in step with every write
        (built from the rows on first use, and again after a rolled-back transaction)."""
        if self._usage is None:
            usage = UsageIndex()
            for vm_id, name, settings in self._db.execute("SELECT id, name, settings FROM vms"):
                usage.put(vm_id, name, uses_of(settings_from_dict(json.loads(settings))))
            self._usage = usage
        return self._usage

    def _index(self, vm: VMRecord) -> None:
        if self._usage is not None:
            self._usage.put(vm.id, vm.name, uses_of(vm.settings))

    def get_vm(self, vm_id: str) -> VMRecord | None:
        row = self._db.execute("SELECT * FROM vms WHERE id=?", (vm_id,)).fetchone()
        return _vm_from_row(row) if row else None

    def find_vm(self, ref: str) -> VMRecord:
        """The VM named ``ref``, or with id ``ref``; raises ``NotFound``."""
        row = self._db.execute(
            "SELECT * FROM vms WHERE name=? OR id=? ORDER BY name=? DESC", (ref, ref, ref)
        ).fetchone()
        if row is None:
            raise NotFound(f"no VM named '{ref}' (see 'viridian vm list')", vm=ref)
        return _vm_from_row(row)

    # --- jobs ------------------------------------------------------------------------

    def put_job(self, job: JobRecord) -> None:
        with self._transaction(self._history) as db:
            db.execute(
                f"INSERT OR REPLACE INTO jobs ({_JOB_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job.id, job.kind, job.vm_id, job.vm_name, job.state, job.progress,
                 job.message, json.dumps(job.result),
                 json.dumps(job.error) if job.error else None,
                 job.created_at, job.started_at, job.finished_at, job.submitted_by),
            )

    def get_job(self, job_id: str) -> JobRecord | None:
        row = self._db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job_from_row(row) if row else None

    def list_jobs(self, limit: int = 100) -> list[JobRecord]:
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_job_from_row(row) for row in rows]

    def unfinished_jobs(self) -> list[JobRecord]:
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE state IN ('queued','running')"
        ).fetchall()
        return [_job_from_row(row) for row in rows]

    # --- meta ------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return str(row[0]) if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, value))


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA busy_timeout=5000")
    # 512 KiB page cache (SQLite's default is 2 MiB a connection): at ten thousand VMs a
    # full scan would keep megabytes the OS page cache holds anyway (docs/architecture.md,
    # "Scale").
    db.execute("PRAGMA cache_size=-512")
    return db


def _vm_from_row(row: tuple[Any, ...]) -> VMRecord:
    vm_id, name, settings, state, status, folder, created_at, auto_stopped = row
    return VMRecord(vm_id, name, settings_from_dict(json.loads(settings)), VMState(state),
                    status, folder, created_at, bool(auto_stopped))


def _add_submitted_by(db: sqlite3.Connection) -> None:
    """Give a jobs table made before submitters were recorded its ``submitted_by``
    column (NULL in the old rows: unknown submitter)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
    if "submitted_by" not in columns:
        db.execute("ALTER TABLE jobs ADD COLUMN submitted_by TEXT")


def _job_from_row(row: tuple[Any, ...]) -> JobRecord:
    (job_id, kind, vm_id, vm_name, state, progress, message, result, error,
     created_at, started_at, finished_at, submitted_by) = row
    return JobRecord(job_id, kind, vm_id, vm_name, state, progress, message,
                     json.loads(result) if result else None,
                     json.loads(error) if error else None,
                     created_at, started_at, finished_at, submitted_by)

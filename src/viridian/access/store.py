"""The access store: users, groups, realms, roles, grants, tokens, sessions, quotas, VM
owners and tags in ``<data>/access.sqlite`` (mode 0600; docs/architecture.md, "Access").

Thin shell: SQL only, no decisions (those are in :mod:`viridian.access.control` and
:mod:`viridian.access.policy`). Secrets are never stored: tokens and sessions keep a
SHA-256 of their secret, local passwords an scrypt hash.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "AccessStore"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, realm TEXT NOT NULL,
    password_hash TEXT, totp_secret TEXT, groups TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS members (grp TEXT NOT NULL, user TEXT NOT NULL,
    PRIMARY KEY (grp, user));
CREATE TABLE IF NOT EXISTS realms (name TEXT PRIMARY KEY, kind TEXT NOT NULL,
    config TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY, operations TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS grants (id INTEGER PRIMARY KEY AUTOINCREMENT, role TEXT NOT NULL,
    subject TEXT NOT NULL, scope TEXT NOT NULL, UNIQUE (role, subject, scope));
CREATE TABLE IF NOT EXISTS tokens (id TEXT PRIMARY KEY, user TEXT NOT NULL, name TEXT NOT NULL,
    role TEXT, hash TEXT NOT NULL, created REAL NOT NULL, revoked REAL,
    UNIQUE (user, name));
CREATE TABLE IF NOT EXISTS sessions (id TEXT PRIMARY KEY, user TEXT NOT NULL,
    realm TEXT NOT NULL, groups TEXT NOT NULL, hash TEXT NOT NULL, created REAL NOT NULL,
    expires REAL NOT NULL);
CREATE TABLE IF NOT EXISTS quotas (user TEXT PRIMARY KEY, vms INTEGER, memory_mb INTEGER,
    processors INTEGER, disk_mb INTEGER);
CREATE TABLE IF NOT EXISTS vm_owners (vm_id TEXT PRIMARY KEY, user TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS vm_tags (vm_id TEXT NOT NULL, tag TEXT NOT NULL,
    PRIMARY KEY (vm_id, tag));
CREATE TABLE IF NOT EXISTS storage_paths (user TEXT NOT NULL, path TEXT NOT NULL,
    PRIMARY KEY (user, path));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def create_private_file(path: Path) -> None:
    """Make ``path`` exist with mode 0600 (an existing file is narrowed to 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class AccessStore:
    """One SQLite connection shared by the service's threads (serialised by a lock)."""

    def __init__(self, path: Path) -> None:
        create_private_file(path)
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                os.chmod(side, 0o600)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._db.execute(sql, params).fetchall())

    def row(self, sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def write(self, sql: str, params: tuple[Any, ...] = ()) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        with self.transaction() as db:
            return db.execute(sql, params).rowcount

    def get_meta(self, key: str) -> Any:
        found = self.row("SELECT value FROM meta WHERE key=?", (key,))
        return json.loads(found[0]) if found else None

    def set_meta(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        sql = "INSERT OR REPLACE INTO meta VALUES (?, ?)"
        if db is not None:
            db.execute(sql, (key, json.dumps(value)))
        else:
            self.write(sql, (key, json.dumps(value)))

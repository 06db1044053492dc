"""The library's tables in the catalog's SQLite file: registered libraries, checksums
(cached by size and modification time) and uploads in progress."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from viridian.errors import Conflict, NotFound
from viridian.library.uploads import Upload
from viridian.service.catalog import Catalog
from viridian.service.jobs import now_iso

_SCHEMA = """
CREATE TABLE IF NOT EXISTS library_shares (
    name TEXT PRIMARY KEY, path TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS library_checksums (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS library_uploads (
    id TEXT PRIMARY KEY, library TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    sha256 TEXT NOT NULL, offset INTEGER NOT NULL, partial TEXT NOT NULL,
    created_at TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Share:
    name: str
    path: Path


class LibraryStore:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        catalog.execute_script(_SCHEMA)

    # --- libraries ---------------------------------------------------------------------

    def shares(self) -> list[Share]:
        rows = self.catalog.read("SELECT name, path FROM library_shares ORDER BY name")
        return [Share(name, Path(path)) for name, path in rows]

    def share(self, name: str) -> Share:
        for share in self.shares():
            if share.name == name:
                return share
        known = ", ".join(s.name for s in self.shares()) or "none"
        raise NotFound(f"no library named '{name}'; libraries: {known}", library=name)

    def add_share(self, name: str, path: Path) -> Share:
        for share in self.shares():
            if share.name == name or share.path == path:
                raise Conflict(f"library '{share.name}' already has that name or path "
                               f"({share.path}); nothing was changed", library=share.name)
        with self.catalog.transaction() as db:
            db.execute("INSERT INTO library_shares VALUES (?, ?, ?)",
                       (name, str(path), now_iso()))
        return Share(name, path)

    def remove_share(self, name: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM library_shares WHERE name = ?", (name,))

    # --- checksums -----------------------------------------------------------------------

    def cached_sha256(self, path: Path, size: int, mtime_ns: int) -> str | None:
        rows = self.catalog.read("SELECT sha256 FROM library_checksums WHERE path = ? AND "
                                 "size = ? AND mtime_ns = ?", (str(path), size, mtime_ns))
        return str(rows[0][0]) if rows else None

    def remember_sha256(self, path: Path, size: int, mtime_ns: int, sha256: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO library_checksums VALUES (?, ?, ?, ?)",
                       (str(path), size, mtime_ns, sha256))

    # --- uploads -------------------------------------------------------------------------

    def put_upload(self, upload: Upload) -> None:
        with self.catalog.transaction() as db:
            db.execute("INSERT OR REPLACE INTO library_uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (upload.id, upload.library, upload.name, upload.size, upload.sha256,
                        upload.offset, upload.partial, upload.created_at))

    def upload(self, upload_id: str) -> Upload:
        rows = self.catalog.read("SELECT * FROM library_uploads WHERE id = ?", (upload_id,))
        if not rows:
            raise NotFound(f"no upload with id '{upload_id}'", upload=upload_id)
        return Upload(*rows[0])

    def uploads(self) -> list[Upload]:
        return [Upload(*row) for row in self.catalog.read("SELECT * FROM library_uploads")]

    def drop_upload(self, upload_id: str) -> None:
        with self.catalog.transaction() as db:
            db.execute("DELETE FROM library_uploads WHERE id = ?", (upload_id,))

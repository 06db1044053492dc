"""Resumable uploads into a library (protocol: :mod:`viridian.library.uploads`).

Received bytes go to ``<library>/.uploads/<id>.partial``; the offset is committed after
each chunk is written and flushed, so a chunk cut by a broken connection or a killed
service is simply sent again. When the last byte is in, the whole file's SHA-256 is
compared with the announced one: equal — the file is renamed to its name in the library;
different — the partial file and the upload are deleted and the request refused.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path

from viridian.errors import BadRequest, Conflict
from viridian.library.items import LibraryItem, check_item_name
from viridian.library.uploads import Upload, check_sha256, check_size, chunk_accepted
from viridian.service.jobs import now_iso
from viridian.service.library import images
from viridian.service.library.shares import PARTIAL_SUFFIX, LibraryIndex

UPLOADS_FOLDER = ".uploads"


class Uploads:
    def __init__(self, index: LibraryIndex) -> None:
        self.index, self.store = index, index.store
        self._lock = asyncio.Lock()

    def begin(self, library: str, name: str, size: int, sha256: str) -> Upload:
        """A new upload of ``name`` (``size`` bytes, ``sha256``) into ``library``.

        :raises Conflict: the library holds a file of that name already."""
        share = self.store.share(library)
        check_item_name(name)
        upload_id = str(uuid.uuid4())
        folder = share.path / UPLOADS_FOLDER
        folder.mkdir(mode=0o700, exist_ok=True)
        target = self.index.resolve(share, name)
        if target.exists():
            raise Conflict(f"library '{library}' already holds '{name}'; remove it first; "
                           "nothing was changed", library=library, name=name)
        upload = Upload(upload_id, library, name, check_size(size), check_sha256(sha256), 0,
                        str(folder / f"{upload_id}{PARTIAL_SUFFIX}"), now_iso())
        Path(upload.partial).touch(mode=0o600)
        self.store.put_upload(upload)
        return upload

    async def receive(self, upload_id: str, offset: int, data: bytes) -> dict[str, object]:
        """Write ``data`` at ``offset``; the answer is the upload, plus ``item`` once the
        file is complete and verified.

        :raises Conflict: ``offset`` is not the upload's (named in the answer).
        :raises BadRequest: past the announced size, or the checksum differs (then the
            upload is gone and nothing of it is kept)."""
        async with self._lock:
            upload = self.store.upload(upload_id)
            after = chunk_accepted(upload, offset, len(data))
            await asyncio.to_thread(_write_at, Path(upload.partial), offset, data)
            self.store.put_upload(after)
            if after.offset < after.size:
                return after.to_dict()
            item = await self._finish(after)
            return {**after.to_dict(), "item": item.to_dict()}

    def abort(self, upload_id: str) -> dict[str, object]:
        upload = self.store.upload(upload_id)
        Path(upload.partial).unlink(missing_ok=True)
        self.store.drop_upload(upload_id)
        return {"aborted": upload_id, "name": upload.name}

    async def _finish(self, upload: Upload) -> LibraryItem:
        partial = Path(upload.partial)
        os.truncate(partial, upload.size)
        actual = await asyncio.to_thread(images.sha256_of, partial)
        share = self.store.share(upload.library)
        target = self.index.resolve(share, upload.name)
        if actual != upload.sha256 or target.exists():
            partial.unlink(missing_ok=True)
            self.store.drop_upload(upload.id)
            if target.exists():
                raise Conflict(f"library '{upload.library}' got another '{upload.name}' "
                               "meanwhile; the upload was discarded", name=upload.name)
            raise BadRequest(f"checksum mismatch for '{upload.name}': announced "
                             f"{upload.sha256}, received {actual}; the upload was "
                             "discarded and nothing was kept", name=upload.name,
                             expected=upload.sha256, actual=actual)
        partial.rename(target)
        self.store.drop_upload(upload.id)
        stat = target.stat()
        self.store.remember_sha256(target, stat.st_size, stat.st_mtime_ns, actual)
        return await self.index.describe(share, target)


def _write_at(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())

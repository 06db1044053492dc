"""Resumable uploads into a library: the protocol's rules, without I/O.

Modelled on tus 1.0 (tus.io, "Core Protocol"): ``POST`` announces the file (name, size,
SHA-256) and returns an upload; each ``PATCH`` carries the next bytes with
``Upload-Offset`` equal to what the service already holds; ``HEAD`` (or ``GET``) tells
that offset, so a client whose connection broke resumes from there. When the last byte
arrives the whole file's checksum is compared with the announced one: a mismatch deletes
everything received and the file never appears in the library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from viridian.errors import BadRequest, Conflict, InvalidSetting

__all__ = ["Upload", "check_sha256", "check_size", "chunk_accepted"]

MAX_UPLOAD_BYTES = 1 << 42  # 4 TiB, more than any disk a VM may have (2040 GiB VHD)
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Upload:
    """An upload in progress: ``offset`` bytes of ``size`` are held in ``partial``."""

    id: str
    library: str
    name: str
    size: int
    sha256: str
    offset: int
    partial: str
    created_at: str

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "library": self.library, "name": self.name,
                "size": self.size, "sha256": self.sha256, "offset": self.offset,
                "complete": self.offset == self.size, "created_at": self.created_at}


def check_sha256(value: str) -> str:
    """``value`` lower-cased if it is 64 hex digits, else :class:`InvalidSetting`."""
    low = value.lower()
    if not _HEX64.fullmatch(low):
        raise InvalidSetting("sha256", value, "the file's SHA-256 as 64 hex digits")
    return low


def check_size(size: int) -> int:
    if not 0 <= size <= MAX_UPLOAD_BYTES:
        raise InvalidSetting("size", size, f"0..{MAX_UPLOAD_BYTES} bytes")
    return size


def chunk_accepted(upload: Upload, offset: int, length: int) -> Upload:
    """``upload`` after ``length`` bytes sent at ``offset`` were written.

    :raises Conflict: ``offset`` is not what the service holds (the answer names it, so
        the client resumes there); nothing was written.
    :raises BadRequest: the chunk runs past the announced size; nothing was written.
    """
    if offset != upload.offset:
        raise Conflict(f"upload {upload.id} of '{upload.name}' holds {upload.offset} bytes; "
                       f"a chunk at offset {offset} does not follow them; resume at "
                       f"Upload-Offset {upload.offset}; nothing was written",
                       upload=upload.id, offset=upload.offset)
    if offset + length > upload.size:
        raise BadRequest(f"a chunk of {length} bytes at offset {offset} runs past the "
                         f"announced size {upload.size} of '{upload.name}'; nothing was "
                         "written", upload=upload.id, offset=upload.offset)
    return replace(upload, offset=offset + length)

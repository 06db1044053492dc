"""The per-block checksum manifest of a backup point and its verification.

Every file of a point (its disk images and configuration files; not ``backup.json``,
written after the manifest) is cut into blocks of :data:`BLOCK_SIZE` bytes and each block's
SHA-256 recorded. ``backup verify`` re-reads every block and compares; a changed, lost
or truncated block is reported with its file and offset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from viridian.errors import BadRequest

BLOCK_SIZE = 1 << 20
ALGORITHM = "sha256"


@dataclass(frozen=True)
class FileSums:
    size: int
    blocks: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    """``files``: point-relative path → its size and block checksums."""

    files: dict[str, FileSums]
    block_size: int = BLOCK_SIZE

    def to_dict(self) -> dict[str, Any]:
        return {"algorithm": ALGORITHM, "block_size": self.block_size,
                "files": {name: {"size": s.size, "blocks": list(s.blocks)}
                          for name, s in sorted(self.files.items())}}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Manifest:
        """:raises BadRequest: not a manifest this viridian writes."""
        try:
            if data["algorithm"] != ALGORITHM:
                raise ValueError(f"algorithm {data['algorithm']!r} is not {ALGORITHM}")
            return cls({str(k): FileSums(int(v["size"]), tuple(map(str, v["blocks"])))
                        for k, v in data["files"].items()}, int(data["block_size"]))
        except (KeyError, TypeError, ValueError) as err:
            raise BadRequest(f"{where}: malformed checksum manifest ({err})",
                             path=where) from err


def block_sums(stream: BinaryIO, block_size: int = BLOCK_SIZE) -> Iterator[str]:
    """The checksum of each block read from ``stream`` (the last may be short)."""
    while block := stream.read(block_size):
        yield hashlib.sha256(block).hexdigest()


def sums_of(path: Path, block_size: int = BLOCK_SIZE) -> FileSums:
    with path.open("rb") as stream:
        blocks = tuple(block_sums(stream, block_size))
    return FileSums(path.stat().st_size, blocks)


def compare(expected: FileSums, found: FileSums, name: str, block_size: int) -> list[str]:
    """What differs between the recorded and the re-read sums of file ``name``."""
    pairs = enumerate(zip(expected.blocks, found.blocks, strict=False))
    problems = [f"{name}: block {i} (offset {i * block_size}) does not match its checksum"
                for i, (a, b) in pairs if a != b]
    if found.size != expected.size:
        problems.append(f"{name}: {found.size} bytes, recorded {expected.size}")
    return problems

"""``backup verify ID``: every block of every file of the point and of the points it
builds on re-read and compared with its manifest (docs/architecture.md, "Backup")."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from viridian.backup import layout
from viridian.backup.manifest import Manifest, compare, sums_of
from viridian.backup.records import BackupRecord
from viridian.errors import BadRequest
from viridian.service.backup.files import read_json
from viridian.service.jobs import Job


def verify_point(record: BackupRecord) -> list[str]:
    """The problems found in ``record``'s folder (empty: every block matches)."""
    folder = Path(record.folder)
    where = str(folder / layout.MANIFEST)
    try:
        manifest = Manifest.from_dict(read_json(folder / layout.MANIFEST), where)
    except (OSError, ValueError, BadRequest) as err:
        return [f"{where}: unreadable ({err})"]
    problems: list[str] = []
    for name, expected in sorted(manifest.files.items()):
        try:
            found = sums_of(folder / name, manifest.block_size)
        except OSError as err:
            problems.append(f"{name}: cannot be read ({err.strerror})")
            continue
        problems += compare(expected, found, name, manifest.block_size)
    return [f"{record.id}: {p}" for p in problems]


async def verify_chain(points: list[BackupRecord], job: Job) -> dict[str, Any]:
    """Verify each point of a chain (full point first); the result lists problems."""
    problems: list[str] = []
    for index, record in enumerate(points):
        job.report(100 * index / len(points), f"verifying {record.id}")
        problems += await asyncio.to_thread(verify_point, record)
    return {"backup": points[-1].id, "points": [p.id for p in points],
            "ok": not problems, "problems": problems}

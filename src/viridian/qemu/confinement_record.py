"""``<data>/confinement.json``: which uid each VM's processes run as and which files were
given to that uid (docs/architecture.md, "Security"), so the grants can be taken back when
a disk leaves the VM or the VM leaves the host.

Content: ``{"uids": {vm_id: uid}, "granted": {vm_id: [real path, …]}}``, mode 0600,
replaced atomically, read and changed under an ``flock`` of ``.confinement.json.lock``
(the service and a helper process may both change it).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["RECORD_NAME", "UID_BASE", "UID_COUNT", "Record", "locked", "preferred_uid"]

UID_BASE = 2_100_000_001
UID_COUNT = 1_000_000
RECORD_NAME = "confinement.json"


@dataclass
class Record:
    """The record's content: uids by VM id, granted real paths by VM id."""

    uids: dict[str, int] = field(default_factory=dict)
    granted: dict[str, set[str]] = field(default_factory=dict)

    def allocate(self, vm_id: str) -> int:
        """The VM's uid: kept, else its preferred one, else the next free one."""
        if vm_id not in self.uids:
            used = set(self.uids.values())
            first = preferred_uid(vm_id) - UID_BASE
            self.uids[vm_id] = next(
                UID_BASE + (first + n) % UID_COUNT for n in range(UID_COUNT)
                if UID_BASE + (first + n) % UID_COUNT not in used)
        return self.uids[vm_id]

    def vm_of(self, uid: int) -> str | None:
        return next((vm for vm, known in self.uids.items() if known == uid), None)


def preferred_uid(vm_id: str) -> int:
    """The uid a VM gets unless this host already gave it to another VM: derived from
    the VM's id, so two services sharing its storage (a move between hosts) agree."""
    digest = hashlib.sha256(vm_id.encode()).digest()
    return UID_BASE + int.from_bytes(digest[:8], "big") % UID_COUNT


@contextmanager
def locked(data_dir: Path) -> Iterator[Record]:
    """The record, exclusively; written back (0600) when the block ends without error."""
    path = data_dir / RECORD_NAME
    with open(data_dir / f".{RECORD_NAME}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        record = read(path)
        before = _content(record)
        yield record
        if _content(record) != before:
            _write_private(path, _content(record))


def read(path: Path) -> Record:
    """The record at ``path`` (empty when missing or unreadable)."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError):
        return Record()
    if not isinstance(found, dict):
        return Record()
    uids, granted = found.get("uids", {}), found.get("granted", {})
    return Record(
        {str(k): int(v) for k, v in uids.items()} if isinstance(uids, dict) else {},
        {str(k): {str(p) for p in v} for k, v in granted.items()}
        if isinstance(granted, dict) else {})


def _content(record: Record) -> dict[str, object]:
    return {"uids": dict(record.uids),
            "granted": {vm: sorted(paths) for vm, paths in record.granted.items() if paths}}


def _write_private(path: Path, content: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(content, file)
    os.replace(tmp, path)

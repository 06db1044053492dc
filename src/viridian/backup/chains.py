"""Chains of backup points (pure): an incremental point reads through its parent down to
a full point, so a point may be removed only with the points that depend on it, and
an incremental point may only follow a good point of the same VM."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from viridian.backup.records import BackupRecord
from viridian.errors import Conflict, NotFound


def by_id(records: Iterable[BackupRecord]) -> dict[str, BackupRecord]:
    return {record.id: record for record in records}


def chain(records: Iterable[BackupRecord], point: str) -> list[BackupRecord]:
    """The points ``point`` reads, from its full point up to ``point`` itself.

    :raises NotFound: ``point`` or one of its ancestors is not recorded (a broken chain).
    """
    known = by_id(records)
    found: list[BackupRecord] = []
    current: str | None = point
    while current is not None:
        if current not in known:
            raise NotFound(f"backup {current} is not recorded (the chain of {point} is "
                           "broken)", backup=current)
        found.append(known[current])
        current = known[current].parent
    return list(reversed(found))


def dependants(records: Sequence[BackupRecord], point: str) -> list[BackupRecord]:
    """Every point whose chain includes ``point`` (not ``point`` itself), oldest first."""
    ids = {point}
    for record in sorted(records, key=lambda r: r.created_at):
        if record.parent in ids:
            ids.add(record.id)
    return [r for r in sorted(records, key=lambda r: r.created_at)
            if r.id in ids and r.id != point]


def check_removable(records: Sequence[BackupRecord], point: str) -> None:
    """:raises Conflict: later points are incremental on top of ``point`` (named)."""
    later = dependants(records, point)
    if later:
        raise Conflict(f"backup {point} is the base of {len(later)} later incremental "
                       f"backup(s) ({', '.join(r.id for r in later)}); remove those first "
                       "(newest first); nothing was changed", backup=point,
                       dependants=[r.id for r in later])


def latest_good(records: Iterable[BackupRecord], vm_id: str) -> BackupRecord | None:
    """The newest good point of VM ``vm_id`` (the parent of its next incremental)."""
    mine = [r for r in records if r.vm_id == vm_id and r.good]
    return max(mine, key=lambda r: r.created_at) if mine else None

"""Retention of backup points (pure): ``--keep-daily N`` keeps the newest good point of
each of the N most recent days that have points, ``--keep-weekly M`` the newest of each
of the M most recent ISO weeks that have points (Proxmox's and restic's reading: the
rules count periods with backups, not calendar days, so a host that was off for a week
loses nothing). The newest point is always kept. A kept incremental point keeps every
point it builds on, so a chain is never cut; what is removed is removed newest first
(an incremental point before its parent)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from viridian.backup.chains import by_id
from viridian.backup.records import BackupRecord
from viridian.errors import InvalidSetting


@dataclass(frozen=True)
class Retention:
    keep_daily: int = 0
    keep_weekly: int = 0

    def __post_init__(self) -> None:
        for name, value in (("keep_daily", self.keep_daily), ("keep_weekly", self.keep_weekly)):
            if not 0 <= value <= 10_000:
                raise InvalidSetting(name, value, "a whole number from 0 to 10000")

    @property
    def active(self) -> bool:
        return bool(self.keep_daily or self.keep_weekly)


@dataclass(frozen=True)
class RetentionPlan:
    keep: tuple[str, ...]
    remove: tuple[str, ...]


def _day(record: BackupRecord) -> str:
    return _when(record).date().isoformat()


def _week(record: BackupRecord) -> str:
    year, week, _ = _when(record).isocalendar()
    return f"{year}-W{week:02d}"


def _when(record: BackupRecord) -> datetime:
    return datetime.fromisoformat(record.created_at.replace("Z", "+00:00"))


def _newest_per_period(points: Sequence[BackupRecord], period: Callable[[BackupRecord], str],
                       count: int) -> set[str]:
    chosen: dict[str, BackupRecord] = {}
    for record in sorted(points, key=lambda r: r.created_at, reverse=True):
        if len(chosen) >= count and period(record) not in chosen:
            break
        chosen.setdefault(period(record), record)
    return {record.id for record in chosen.values()}


def plan(points: Sequence[BackupRecord], rules: Retention) -> RetentionPlan:
    """Which of one VM's good ``points`` (in one target) to keep and which to remove."""
    if not rules.active or not points:
        return RetentionPlan(tuple(p.id for p in points), ())
    newest = max(points, key=lambda r: r.created_at)
    keep = {newest.id} | _newest_per_period(points, _day, rules.keep_daily) \
        | _newest_per_period(points, _week, rules.keep_weekly)
    known = by_id(points)
    for point_id in list(keep):
        parent = known[point_id].parent
        while parent is not None and parent in known:
            keep.add(parent)
            parent = known[parent].parent
    ordered = sorted(points, key=lambda r: r.created_at)
    return RetentionPlan(tuple(p.id for p in ordered if p.id in keep),
                         tuple(p.id for p in reversed(ordered) if p.id not in keep))

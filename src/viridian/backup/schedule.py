"""Backup schedules (pure): which VMs' scheduled backups are due at a moment.

A schedule takes a point of one VM into one target every ``every_minutes`` minutes
(incremental or full, with retention rules). A schedule that never ran is due at once;
after a run (whether it succeeded or not: a failing VM must not be retried in a tight
loop) the next is due ``every_minutes`` after that run's start. A service that was down
runs a missed schedule once when it is back, not once per missed period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from viridian.errors import InvalidSetting

MIN_MINUTES = 1
MAX_MINUTES = 60 * 24 * 366


@dataclass(frozen=True)
class Schedule:
    vm_id: str
    target: str
    every_minutes: int
    incremental: bool = True
    keep_daily: int = 0
    keep_weekly: int = 0
    last_run: str | None = None

    def __post_init__(self) -> None:
        if not MIN_MINUTES <= self.every_minutes <= MAX_MINUTES:
            raise InvalidSetting("every_minutes", self.every_minutes,
                                 f"a whole number of minutes from {MIN_MINUTES} to "
                                 f"{MAX_MINUTES}")

    def next_run(self) -> datetime | None:
        """When it is due next (None: at once, it never ran)."""
        if self.last_run is None:
            return None
        return _parse(self.last_run) + timedelta(minutes=self.every_minutes)

    def to_dict(self) -> dict[str, Any]:
        due = self.next_run()
        return {"vm_id": self.vm_id, "target": self.target,
                "every_minutes": self.every_minutes, "incremental": self.incremental,
                "keep_daily": self.keep_daily, "keep_weekly": self.keep_weekly,
                "last_run": self.last_run,
                "next_run": _format(due) if due else "now"}


def due(schedules: list[Schedule], now: datetime) -> list[Schedule]:
    """The schedules due at ``now`` (aware UTC), most overdue first."""
    ready = [s for s in schedules if (s.next_run() or now) <= now]
    return sorted(ready, key=lambda s: s.next_run() or now)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _format(when: datetime) -> str:
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")

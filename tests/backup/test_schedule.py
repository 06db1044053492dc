"""The schedule planner (pure) with a fake clock: due at once when it never ran, then
every period after the start of the last run; a long outage runs it once."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from viridian.backup.schedule import Schedule, due
from viridian.errors import InvalidSetting


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def test_a_day_of_hourly_and_four_hourly_schedules() -> None:
    clock = datetime(2026, 5, 1, tzinfo=UTC)
    hourly, slow = Schedule("a", "/t", 60), Schedule("b", "/t", 240)
    runs: dict[str, int] = {"a": 0, "b": 0}
    for _ in range(24 * 60):  # one tick a minute for a day
        for schedule in due([hourly, slow], clock):
            runs[schedule.vm_id] += 1
            ran = replace(schedule, last_run=_iso(clock))
            hourly, slow = (ran, slow) if schedule.vm_id == "a" else (hourly, ran)
        clock += timedelta(minutes=1)
    assert runs == {"a": 24, "b": 6}


def test_an_outage_runs_a_missed_schedule_once_and_overdue_first() -> None:
    start = datetime(2026, 5, 1, 8, tzinfo=UTC)
    a = Schedule("a", "/t", 60, last_run=_iso(start))
    b = Schedule("b", "/t", 30, last_run=_iso(start - timedelta(hours=5)))
    later = start + timedelta(hours=10)
    assert [s.vm_id for s in due([a, b], later)] == ["b", "a"]
    assert due([replace(a, last_run=_iso(later))], later + timedelta(minutes=59)) == []
    assert Schedule("c", "/t", 5).to_dict()["next_run"] == "now"


def test_bad_periods_are_refused() -> None:
    with pytest.raises(InvalidSetting, match="every_minutes"):
        Schedule("a", "/t", 0)

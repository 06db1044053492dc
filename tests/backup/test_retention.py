"""Retention (pure) over simulated months with a fake clock: a backup every 6 hours,
incremental except the first of each week, retention applied after each backup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from viridian.backup.chains import chain
from viridian.backup.records import BackupRecord
from viridian.backup.retention import Retention, plan
from viridian.errors import InvalidSetting


def _point(n: int, when: datetime, parent: str | None) -> BackupRecord:
    return BackupRecord(f"p{n:04d}", "vm", "vm", when.isoformat().replace("+00:00", "Z"),
                        "incremental" if parent else "full", parent, "crash", "Running", "",
                        f"/t/vm/p{n:04d}", (), "good")


def _simulate(rules: Retention, days: int) -> list[BackupRecord]:
    clock = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    kept: list[BackupRecord] = []
    for n in range(days * 4):
        full = (clock.weekday() == 0 and clock.hour == 0) or not kept
        kept.append(_point(n, clock, None if full else kept[-1].id))
        result = plan(kept, rules)
        assert set(result.keep) | set(result.remove) == {p.id for p in kept}
        removed = set(result.remove)
        for point_id in result.remove:  # newest first: nothing kept builds on it
            assert not any(p.parent == point_id for p in kept if p.id not in removed)
        kept = [p for p in kept if p.id not in removed]
        for point in kept:  # every kept chain is whole
            assert chain(kept, point.id)[0].kind == "full"
        clock += timedelta(hours=6)
    return kept


def test_daily_and_weekly_keep_whole_chains() -> None:
    kept = _simulate(Retention(keep_daily=3, keep_weekly=2), days=40)
    days = {p.created_at[:10] for p in kept}
    assert len(days) >= 3
    assert kept[-1].created_at.startswith("2026-02-13")  # the newest point is kept
    # incremental chains make the ancestors of kept points stay: bounded by one week
    assert len(kept) <= 2 * 7 * 4 + 3


def test_full_points_only_keep_exactly_the_periods() -> None:
    clock = datetime(2026, 3, 2, 22, tzinfo=UTC)
    points = [_point(n, clock + timedelta(days=n), None) for n in range(30)]
    result = plan(points, Retention(keep_daily=5, keep_weekly=3))
    kept_days = [p.created_at[:10] for p in points if p.id in result.keep]
    assert kept_days[-5:] == ["2026-03-27", "2026-03-28", "2026-03-29", "2026-03-30",
                              "2026-03-31"]
    # weeks (ISO) of Mar 30, Mar 23 and Mar 16: their newest points are the 31st and
    # the 29th (daily ones already) and the 22nd
    assert result.keep == ("p0020", "p0025", "p0026", "p0027", "p0028", "p0029")
    assert result.remove == tuple(sorted(result.remove, reverse=True))


def test_no_rules_keep_everything_and_bad_values_are_refused() -> None:
    points = [_point(0, datetime(2026, 1, 1, tzinfo=UTC), None)]
    assert plan(points, Retention()).remove == ()
    with pytest.raises(InvalidSetting, match="keep_daily"):
        Retention(keep_daily=-1)

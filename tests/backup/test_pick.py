"""``restore --to-time`` (pure): the newest good point at or before the time, in any
offset; a time before every point is refused naming the oldest point; partial points
and other VMs' points are never picked; bad times are refused naming the allowed forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from tests.backup.test_chains import _point
from viridian.backup.pick import parse_time, point_at
from viridian.errors import InvalidSetting, NotFound

PLUS1 = timezone(timedelta(hours=1))
POINTS = [_point("a", None, "2026-01-01T10:00:00.000+00:00"),
          _point("b", "a", "2026-01-02T10:00:00.000+00:00"),
          _point("c", "b", "2026-01-03T10:00:00.000+00:00", status="partial")]


def test_newest_good_point_at_or_before() -> None:
    def at(text: str) -> str:
        return point_at(POINTS, "vm", "vm", parse_time(text, UTC)).id
    assert at("2026-01-01T10:00:00Z") == "a"  # exactly its time
    assert at("2026-01-02 09:59") == "a"
    assert at("2026-01-02 10:00") == "b"
    assert at("2026-01-05 00:00") == "b"  # c is partial: never picked
    # 10:30 at +01:00 is 09:30 UTC: before b
    assert point_at(POINTS, "vm", "vm", parse_time("2026-01-02 10:30", PLUS1)).id == "a"
    assert at("2026-01-02T11:30+01:00") == "b"


def test_too_early_names_the_oldest() -> None:
    with pytest.raises(NotFound) as err:
        point_at(POINTS, "vm", "vm", parse_time("2025-12-31 23:00", UTC))
    assert "the oldest is a, taken 2026-01-01T10:00:00+00:00" in str(err.value)
    assert err.value.details["oldest"] == "a"
    with pytest.raises(NotFound, match="VM 'other' has no backup point"):
        point_at(POINTS, "other-id", "other", datetime.now(UTC))


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01 10:00", "", "10:00"])
def test_bad_times_are_refused(text: str) -> None:
    with pytest.raises(InvalidSetting, match="allowed: an ISO 8601 time"):
        parse_time(text, UTC)

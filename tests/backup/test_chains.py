"""Chains of points (pure): a chain reads from its full point up; a point others build
on cannot be removed (the refusal names them); a broken chain is named; records
round-trip through their JSON and a foreign one is refused."""

from __future__ import annotations

import pytest

from viridian.backup.chains import chain, check_removable, dependants, latest_good
from viridian.backup.records import BackupDisk, BackupRecord
from viridian.errors import BadRequest, Conflict, NotFound


def _point(name: str, parent: str | None, when: str, status: str = "good") -> BackupRecord:
    return BackupRecord(name, "vm", "vm", when, "incremental" if parent else "full", parent,
                        "application", "Running", "", f"/t/vm/{name}",
                        (BackupDisk("ide:0:0", "disks/ide-0-0.qcow2", "vpc", 1 << 20),),
                        status)  # type: ignore[arg-type]


POINTS = [_point("a", None, "2026-01-01T00:00:00Z"), _point("b", "a", "2026-01-02T00:00:00Z"),
          _point("c", "b", "2026-01-03T00:00:00Z"), _point("d", None, "2026-01-04T00:00:00Z"),
          _point("e", "d", "2026-01-05T00:00:00Z", status="partial")]


def test_chain_and_dependants() -> None:
    assert [p.id for p in chain(POINTS, "c")] == ["a", "b", "c"]
    assert [p.id for p in dependants(POINTS, "a")] == ["b", "c"]
    assert latest_good(POINTS, "vm") is not None
    assert latest_good(POINTS, "vm").id == "d"  # type: ignore[union-attr]
    with pytest.raises(NotFound, match="chain of c is broken"):
        chain(POINTS[1:], "c")


def test_removal_refused_while_others_build_on_it() -> None:
    with pytest.raises(Conflict, match=r"base of 2 later incremental backup\(s\) \(b, c\)"):
        check_removable(POINTS, "a")
    check_removable(POINTS, "c")


def test_records_round_trip_and_foreign_ones_are_refused() -> None:
    assert BackupRecord.from_dict(POINTS[2].to_dict()) == POINTS[2]
    with pytest.raises(BadRequest, match="format_version"):
        BackupRecord.from_dict({"format_version": 9}, "x/backup.json")
    broken = {**POINTS[0].to_dict(), "disks": [{"slot": "ide:0:0"}]}
    with pytest.raises(BadRequest, match="malformed"):
        BackupRecord.from_dict(broken, "x/backup.json")

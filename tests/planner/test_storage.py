"""RAID write penalties, functional IOPS and drive counts against worked examples."""

from __future__ import annotations

import pytest

from viridian.planner import DEFAULT_DRIVE_IOPS, RAID_LEVELS, drives_needed, functional_iops


@pytest.mark.parametrize(("level", "penalty"), [(0, 1), (1, 2), (5, 4), (6, 6), (10, 2)])
def test_write_penalties(level: int, penalty: int) -> None:
    # 100 pure writes cost 100 x the penalty back-end I/Os; 100 pure reads cost 100.
    assert functional_iops(100, 0, RAID_LEVELS[level]) == 100 * penalty
    assert functional_iops(100, 100, RAID_LEVELS[level]) == 100


def test_worked_example_raid5_15k() -> None:
    # 1000 IOPS at 60/40: 600 + 400 x 4 = 2200 functional IOPS; 2200 / 175 = 12.57 -> 13.
    raid5 = RAID_LEVELS[5]
    functional = functional_iops(1000, 60, raid5)
    assert functional == 2200
    need = drives_needed(functional, 0, DEFAULT_DRIVE_IOPS["15k"], 600, raid5)
    assert (need.for_iops, need.total) == (13, 13)


def test_worked_example_raid10_and_raid6() -> None:
    # RAID 10: 600 + 400 x 2 = 1400 -> 1400 / 175 = 8 drives exactly.
    assert (
        drives_needed(
            functional_iops(1000, 60, RAID_LEVELS[10]), 0, 175, 600, RAID_LEVELS[10]
        ).for_iops
        == 8
    )
    # RAID 6: 600 + 400 x 6 = 3000 -> 3000 / 125 (10k) = 24 drives.
    assert (
        drives_needed(
            functional_iops(1000, 60, RAID_LEVELS[6]), 0, 125, 600, RAID_LEVELS[6]
        ).for_iops
        == 24
    )


def test_default_drive_figures() -> None:
    assert DEFAULT_DRIVE_IOPS == {"7.2k": 75, "10k": 125, "15k": 175, "ssd": 5000}


@pytest.mark.parametrize(
    ("level", "capacity_gb", "drives"),
    [
        (0, 2500, 3),  # 3 x 1 TB striped
        (1, 900, 2),  # one mirrored pair
        (1, 2500, 6),  # three mirrored pairs
        (5, 2500, 4),  # 3 data + 1 parity
        (6, 2500, 5),  # 3 data + 2 parity
        (10, 100, 4),  # RAID 10 needs at least 4 drives
        (10, 4100, 10),  # 5 mirrored pairs (4100 GB > 4 TB)
    ],
)
def test_drives_for_capacity(level: int, capacity_gb: float, drives: int) -> None:
    need = drives_needed(0, capacity_gb, 75, 1024, RAID_LEVELS[level])
    assert need.for_capacity == drives
    assert RAID_LEVELS[level].usable_drives(drives) * 1024 >= capacity_gb


def test_mirrored_levels_round_iops_drives_up_to_pairs() -> None:
    # 560 functional IOPS / 75 = 7.47 -> 8 drives; 5 drives' worth -> 6 (pairs).
    assert drives_needed(560, 0, 75, 1024, RAID_LEVELS[1]).for_iops == 8
    assert drives_needed(5 * 75 - 1, 0, 75, 1024, RAID_LEVELS[10]).for_iops == 6
    assert drives_needed(5 * 75 - 1, 0, 75, 1024, RAID_LEVELS[5]).for_iops == 5

"""Drives and RAID: per-drive IOPS, write penalties, usable capacity, drives needed.

Per-drive random IOPS (defaults; every figure can be overridden in the input). The
convention is the usual rule of thumb for a spinning disk, IOPS ≈ 1 / (average seek time
+ average rotational latency), rounded down to the low end of the commonly quoted ranges:

    7.2k RPM  ≈ 75-100   → 75   (8.5 ms seek + 4.2 ms half rotation ≈ 79)
    10k RPM   ≈ 125-150  → 125  (4.5 ms + 3.0 ms ≈ 133)
    15k RPM   ≈ 175-210  → 175  (3.5 ms + 2.0 ms ≈ 182)
    SSD       → 5000 (a conservative figure for mixed random I/O; set your drive's own)

RAID write penalty (back-end I/Os per front-end write) and usable capacity of n drives:

    RAID 0   penalty 1   n drives usable            at least 1 drive
    RAID 1   penalty 2   n/2 (mirrored pairs)       2 drives; more than 2 are mirrored pairs
    RAID 5   penalty 4   n-1 (one parity drive)     at least 3 drives
    RAID 6   penalty 6   n-2 (two parity drives)    at least 4 drives
    RAID 10  penalty 2   n/2 (striped mirrors)      at least 4 drives, an even number

Functional IOPS (what the drives must deliver) = reads + writes x penalty; drives for the
IOPS = functional IOPS / per-drive IOPS, rounded up. Worked example: 1000 IOPS at 60 %
reads on RAID 5 = 600 + 400 x 4 = 2200 functional IOPS → 2200 / 175 = 12.6 → 13 drives
of 15k RPM.
"""

from __future__ import annotations

from dataclasses import dataclass

from viridian.planner.units import round_up

__all__ = [
    "DEFAULT_DRIVE_IOPS",
    "DRIVE_TYPES",
    "RAID_LEVELS",
    "DriveNeed",
    "RaidLevel",
    "drives_needed",
    "functional_iops",
]

DRIVE_TYPES = ("7.2k", "10k", "15k", "ssd")
DEFAULT_DRIVE_IOPS: dict[str, float] = {"7.2k": 75.0, "10k": 125.0, "15k": 175.0, "ssd": 5000.0}


@dataclass(frozen=True)
class RaidLevel:
    """One RAID level: its write penalty and how many drives it needs and leaves usable."""

    level: int
    write_penalty: int
    min_drives: int
    mirrored: bool  # usable = n/2 and n must be even
    parity_drives: int = 0

    def usable_drives(self, drives: int) -> float:
        """How many drives' worth of capacity ``drives`` drives hold at this level."""
        if self.mirrored:
            return drives / 2
        return max(drives - self.parity_drives, 0)

    def valid_count(self, drives: int) -> int:
        """The smallest drive count ≥ ``drives`` this level can be built with."""
        count = max(drives, self.min_drives)
        return count + 1 if self.mirrored and count % 2 else count

    def drives_for_capacity(self, capacity_gb: float, drive_size_gb: float) -> int:
        """The fewest drives whose usable capacity holds ``capacity_gb``."""
        data = round_up(capacity_gb / drive_size_gb) if capacity_gb > 0 else 0
        return self.valid_count(2 * data if self.mirrored else data + self.parity_drives)


RAID_LEVELS: dict[int, RaidLevel] = {
    0: RaidLevel(0, write_penalty=1, min_drives=1, mirrored=False),
    1: RaidLevel(1, write_penalty=2, min_drives=2, mirrored=True),
    5: RaidLevel(5, write_penalty=4, min_drives=3, mirrored=False, parity_drives=1),
    6: RaidLevel(6, write_penalty=6, min_drives=4, mirrored=False, parity_drives=2),
    10: RaidLevel(10, write_penalty=2, min_drives=4, mirrored=True),
}


def functional_iops(iops: float, read_percent: float, raid: RaidLevel) -> float:
    """reads + writes x the level's write penalty."""
    reads = iops * read_percent / 100
    return reads + (iops - reads) * raid.write_penalty


@dataclass(frozen=True)
class DriveNeed:
    """Drives one array needs: for the IOPS, for the capacity, and the total (the larger,
    made valid for the RAID level)."""

    for_iops: int
    for_capacity: int
    total: int


def drives_needed(
    functional: float, capacity_gb: float, drive_iops: float, drive_size_gb: float, raid: RaidLevel
) -> DriveNeed:
    """Drives for ``functional`` back-end IOPS and ``capacity_gb`` usable GB at ``raid``."""
    for_iops = raid.valid_count(round_up(functional / drive_iops))
    for_capacity = raid.drives_for_capacity(capacity_gb, drive_size_gb)
    return DriveNeed(for_iops, for_capacity, max(for_iops, for_capacity))

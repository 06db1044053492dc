"""The numeric ranges of settings, built from :mod:`viridian.model.limits`.

One place for both the check and the text shown in errors ("an integer 1..4").
"""

from __future__ import annotations

from dataclasses import dataclass

from viridian.errors import InvalidSetting
from viridian.model import limits


@dataclass(frozen=True)
class IntRange:
    low: int
    high: int
    unit: str = ""

    @property
    def text(self) -> str:
        """E.g. ``"an integer 8..65536 (MB)"``."""
        unit = f" ({self.unit})" if self.unit else ""
        return f"an integer {self.low}..{self.high}{unit}"

    def check(self, setting: str, value: int) -> None:
        """Raise :class:`InvalidSetting` when ``value`` is outside the range."""
        if not self.low <= value <= self.high:
            raise InvalidSetting(setting, value, self.text)


MEMORY_MB = IntRange(limits.MEMORY_MIN_MB, limits.MEMORY_MAX_MB, "MB")
PROCESSOR_COUNT = IntRange(limits.PROCESSOR_COUNT_MIN, limits.PROCESSOR_COUNT_MAX)
RESERVE_PCT = IntRange(limits.PERCENT_MIN, limits.PERCENT_MAX, "percent")
LIMIT_PCT = IntRange(limits.PERCENT_MIN, limits.PERCENT_MAX, "percent")
WEIGHT = IntRange(limits.WEIGHT_MIN, limits.WEIGHT_MAX)
IDE_CONTROLLER = IntRange(0, limits.IDE_CONTROLLERS - 1)
IDE_LOCATION = IntRange(0, limits.IDE_LOCATIONS - 1)
SCSI_CONTROLLER = IntRange(0, limits.SCSI_CONTROLLERS - 1)
SCSI_LOCATION = IntRange(0, limits.SCSI_DISKS_PER_CONTROLLER - 1)
VLAN_ID = IntRange(limits.VLAN_MIN, limits.VLAN_MAX)
START_DELAY_S = IntRange(0, limits.AUTOMATIC_START_DELAY_MAX_S, "seconds")

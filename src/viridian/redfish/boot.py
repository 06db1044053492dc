"""Boot source overrides (ComputerSystem ``Boot``): a device booted first once or until
changed, without touching the VM's BIOS startup order (docs/architecture.md, "Redfish").

The override is applied to the settings QEMU is started with (the VM's ``disk_view``),
never committed: ``Once`` is used by the next start from Off and then cleared."""

from __future__ import annotations

from dataclasses import dataclass, replace

from viridian.model import VMSettings
from viridian.model.choices import BootDevice

TARGETS: dict[str, BootDevice] = {
    "Cd": BootDevice.CD, "Hdd": BootDevice.IDE, "Pxe": BootDevice.NET,
    "Floppy": BootDevice.FLOPPY,
}
TARGET_NAMES = ["None", *TARGETS]
ENABLED = ["Disabled", "Once", "Continuous"]


@dataclass(frozen=True)
class BootOverride:
    """``BootSourceOverrideEnabled`` and ``BootSourceOverrideTarget``."""

    enabled: str = "Disabled"
    target: str = "None"

    @property
    def active(self) -> bool:
        return self.enabled != "Disabled" and self.target != "None"


def apply(settings: VMSettings, override: BootOverride) -> VMSettings:
    """``settings`` with the override's device first in the startup order."""
    if not override.active:
        return settings
    first = TARGETS[override.target]
    order = (first, *(d for d in settings.bios.startup_order if d is not first))
    return replace(settings, bios=replace(settings.bios, startup_order=order))


def boot_order_names(settings: VMSettings) -> list[str]:
    """The BIOS startup order in Redfish's target names (Cd, Hdd, Pxe, Floppy)."""
    names = {device: name for name, device in TARGETS.items()}
    return [names[d] for d in settings.bios.startup_order]

"""The drive slots of a VM: the one enumeration of its IDE and SCSI drives.

A slot id is ``ide:C:L`` or ``scsi:C:L`` (bus, controller, location) — the one spelling
used by checkpoints, counters and the service. Pure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from viridian.model.choices import DiskFormat, DriveKind
from viridian.model.settings import IdeDrive, ScsiDisk, VMSettings

Bus = Literal["ide", "scsi"]


@dataclass(frozen=True)
class DriveSlot:
    """One drive of a VM. ``path`` None: an empty DVD drive."""

    bus: Bus
    controller: int
    location: int
    kind: DriveKind
    path: str | None
    format: DiskFormat | None

    @property
    def id(self) -> str:
        """``ide:C:L`` or ``scsi:C:L``."""
        return slot_id(self.bus, self.controller, self.location)

    @property
    def label(self) -> str:
        """Hyper-V's name of the slot as an admin reads it: ``IDE 0:1``, ``SCSI 2:5``."""
        return slot_label(self.id)

    @property
    def setting(self) -> str:
        """The setting named in a refusal of this drive's file: ``ide[0:1].path``."""
        return f"{self.bus}[{self.controller}:{self.location}].path"

    @property
    def is_hard_disk_image(self) -> bool:
        """A hard disk with a file (DVD media and empty drives are not)."""
        return self.kind is DriveKind.HARD_DISK and self.path is not None


def slot_id(bus: Bus, controller: int, location: int) -> str:
    """The slot id of ``bus`` ``controller``:``location``."""
    return f"{bus}:{controller}:{location}"


def slot_label(slot: str) -> str:
    """A slot id as an admin reads it: ``ide:0:1`` → ``IDE 0:1`` (other text unchanged)."""
    bus, _, where = slot.partition(":")
    return f"{bus.upper()} {where}" if where else slot


def drive_slots(settings: VMSettings) -> tuple[DriveSlot, ...]:
    """Every IDE drive, then every SCSI disk, in settings order."""
    ide = tuple(DriveSlot("ide", d.controller, d.location, d.kind, d.path, d.format)
                for d in settings.ide)
    scsi = tuple(DriveSlot("scsi", c.controller, d.location, DriveKind.HARD_DISK, d.path,
                           d.format)
                 for c in settings.scsi for d in c.disks)
    return ide + scsi


def hard_disks(settings: VMSettings) -> tuple[DriveSlot, ...]:
    """The slots holding a hard disk image (IDE hard disks and SCSI disks)."""
    return tuple(slot for slot in drive_slots(settings) if slot.is_hard_disk_image)


def map_drives(settings: VMSettings, change: Callable[[DriveSlot], DriveSlot]) -> VMSettings:
    """``settings`` with each drive's ``path`` and ``format`` taken from ``change(slot)``
    (bus, controller, location and kind stay)."""

    def ide(drive: IdeDrive) -> IdeDrive:
        new = change(DriveSlot("ide", drive.controller, drive.location, drive.kind,
                               drive.path, drive.format))
        return replace(drive, path=new.path, format=new.format)

    def scsi(controller: int, disk: ScsiDisk) -> ScsiDisk:
        new = change(DriveSlot("scsi", controller, disk.location, DriveKind.HARD_DISK,
                               disk.path, disk.format))
        return replace(disk, path=new.path or disk.path, format=new.format)

    return replace(
        settings,
        ide=tuple(ide(d) for d in settings.ide),
        scsi=tuple(replace(c, disks=tuple(scsi(c.controller, d) for d in c.disks))
                   for c in settings.scsi))

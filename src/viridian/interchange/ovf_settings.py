"""An OVF virtual system mapped to viridian's typed settings (pure).

Generation-1 rules (docs/architecture.md, "Export and import"): a VM starts only from
IDE, so when the package has no IDE hard disk its first disk (on SCSI or SATA) goes to
IDE 0:0; a SCSI disk keeps its controller and location (when allowed and free), other
disks go to the next free location of SCSI controller 0. Every adapter becomes a
synthetic (virtio-net) adapter, not connected. Each such decision, and every value
brought into viridian's limits, is listed in the result's ``unmapped``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from viridian.interchange.ovf import OvfDrive, OvfSystem
from viridian.model import VMSettings, default_settings, limits
from viridian.model.choices import DriveKind
from viridian.model.settings import (
    IdeDrive,
    MemorySettings,
    NetworkAdapter,
    ScsiController,
    ScsiDisk,
)


@dataclass(frozen=True)
class Mapped:
    """``settings`` (disk paths are the package's file names, to be replaced by the
    converted disks' paths) and what could not be mapped as it was."""

    settings: VMSettings
    unmapped: tuple[str, ...]
    disks: dict[str, str]  # slot label → package file


def map_system(system: OvfSystem, name: str) -> Mapped:
    """``system`` as the settings of a new VM called ``name``; ``paths`` of disks and
    DVDs are the package's file names (relative)."""
    notes = list(system.unmapped)
    settings = default_settings(name)
    if system.memory_mb is not None:
        memory = min(max(system.memory_mb, limits.MEMORY_MIN_MB), limits.MEMORY_MAX_MB)
        if memory != system.memory_mb:
            notes.append(f"memory {system.memory_mb} MB set to {memory} MB (allowed "
                         f"{limits.MEMORY_MIN_MB}..{limits.MEMORY_MAX_MB})")
        settings = replace(settings, memory=MemorySettings(startup_mb=memory))
    if system.processors is not None:
        count = min(max(system.processors, 1), limits.PROCESSOR_COUNT_MAX)
        if count != system.processors:
            notes.append(f"{system.processors} processors set to {count} (allowed "
                         f"1..{limits.PROCESSOR_COUNT_MAX})")
        settings = replace(settings, processor=replace(settings.processor, count=count))
    ide, scsi, disks = _drives(system.drives, notes)
    adapters = tuple(NetworkAdapter() for _ in system.nics[:limits.SYNTHETIC_ADAPTERS_MAX])
    for nic in system.nics:
        notes.append(f"{nic.adapter_type} adapter on network {nic.network or '(none)'} → "
                     "synthetic adapter, not connected")
    settings = replace(settings, ide=ide, scsi=scsi, network_adapters=adapters)
    return Mapped(settings, tuple(notes), disks)


def _drives(drives: tuple[OvfDrive, ...], notes: list[str]) -> tuple[
        tuple[IdeDrive, ...], tuple[ScsiController, ...], dict[str, str]]:
    ide: dict[tuple[int, int], IdeDrive] = {}
    scsi: dict[tuple[int, int], ScsiDisk] = {}
    disks: dict[str, str] = {}
    has_ide_disk = any(d.bus == "ide" and d.kind == "hard_disk" for d in drives)
    for drive in drives:
        if drive.kind == "hard_disk" and drive.file is None:
            notes.append(f"blank disk on {drive.bus} {drive.controller}:{drive.location} "
                         "(no file in the package) left out")
            continue
        slot = _ide_slot(drive, ide, has_ide_disk)
        if slot is not None:
            kind = DriveKind.HARD_DISK if drive.kind == "hard_disk" else DriveKind.DVD
            ide[slot] = IdeDrive(slot[0], slot[1], kind, drive.file)
            has_ide_disk = has_ide_disk or kind is DriveKind.HARD_DISK
            if drive.bus != "ide":
                notes.append(f"{drive.kind} on {drive.bus} {drive.controller}:"
                             f"{drive.location} attached at IDE {slot[0]}:{slot[1]}"
                             + (" (generation-1 VMs start from IDE)"
                                if kind is DriveKind.HARD_DISK else ""))
            if drive.file and kind is DriveKind.HARD_DISK:
                disks[f"IDE {slot[0]}:{slot[1]}"] = drive.file
        elif drive.kind == "hard_disk" and drive.file and \
                (where := _scsi_slot(drive, scsi)) is not None:
            scsi[where] = ScsiDisk(where[1], drive.file)
            disks[f"SCSI {where[0]}:{where[1]}"] = drive.file
            if (drive.bus, drive.controller, drive.location) != ("scsi", *where):
                notes.append(f"disk on {drive.bus} {drive.controller}:{drive.location} "
                             f"attached at SCSI {where[0]}:{where[1]}")
        else:
            notes.append(f"{drive.kind} on {drive.bus} {drive.controller}:{drive.location}: "
                         "no free slot")
    controllers = tuple(ScsiController(number, tuple(
        disk for (c, _), disk in sorted(scsi.items()) if c == number))
        for number in sorted({c for c, _ in scsi}))
    return tuple(ide[key] for key in sorted(ide)), controllers, disks


def _scsi_slot(drive: OvfDrive, taken: dict[tuple[int, int], ScsiDisk]) \
        -> tuple[int, int] | None:
    """A SCSI disk keeps its controller and location when they are free and allowed;
    any other disk takes the next free location of SCSI controller 0."""
    if drive.bus == "scsi" and drive.controller < limits.SCSI_CONTROLLERS and \
            drive.location < limits.SCSI_DISKS_PER_CONTROLLER and \
            (drive.controller, drive.location) not in taken:
        return drive.controller, drive.location
    return next(((0, n) for n in range(limits.SCSI_DISKS_PER_CONTROLLER)
                 if (0, n) not in taken), None)


def _ide_slot(drive: OvfDrive, taken: dict[tuple[int, int], IdeDrive],
              has_ide_disk: bool) -> tuple[int, int] | None:
    if drive.bus == "ide" and drive.controller < 2 and drive.location < 2 and \
            (drive.controller, drive.location) not in taken:
        return drive.controller, drive.location
    if drive.kind == "hard_disk" and has_ide_disk:
        return None
    order = [(0, 0), (0, 1), (1, 0), (1, 1)] if drive.kind == "hard_disk" else \
        [(1, 0), (1, 1), (0, 1), (0, 0)]
    return next((slot for slot in order if slot not in taken), None)

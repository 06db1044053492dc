"""Confined QEMU's file grants follow the VM's settings (docs/architecture.md, "Security"):
the capability ``serve`` adds when host setting ``confine_qemu`` is on.

- ``attach`` / ``settings_changed``: the VM's own folders and disks are told to the
  :class:`~viridian.qemu.confinement.Confinement` (backing files among them may be
  written, any other only read); a drive file (disk, ISO, diskette) the committed
  settings no longer name — detached, replaced, or moved by move-storage — loses the
  VM uid's ACL entry, with its backing files unless a remaining disk still reads them.
- ``removed`` (removed, or moved to another host): every entry of the VM's uid is taken
  back and the uid released.
- ``start``: VMs recorded in ``confinement.json`` but no longer in the catalog (removed
  while the service was killed) are released the same way.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from viridian.model import VMSettings
from viridian.model.slots import drive_slots
from viridian.qemu.confinement import Confinement
from viridian.service.capability import Capability

if TYPE_CHECKING:
    from viridian.service.context import ServiceContext
    from viridian.service.vms.live import LiveVM

__all__ = ["ConfinementGrants", "drive_files"]

log = logging.getLogger(__name__)


def drive_files(settings: VMSettings) -> set[str]:
    """Every file the VM's drives name: disks, DVD media, the diskette."""
    files = {slot.path for slot in drive_slots(settings) if slot.path}
    if settings.floppy.path:
        files.add(settings.floppy.path)
    return files


def own_roots(vm: LiveVM) -> list[Path]:
    """What the VM writes: its folder, its checkpoint folder, its disks."""
    settings = vm.record.settings
    roots = [Path(vm.record.folder), *map(Path, drive_files(settings))]
    if settings.checkpoint_folder:
        roots.append(Path(settings.checkpoint_folder))
    return roots


class ConfinementGrants(Capability):
    """Takes a confined VM's file grants back when its settings or the host drop a file."""

    name = "confinement"

    def __init__(self, confinement: Confinement, context: ServiceContext) -> None:
        self.confinement = confinement
        self.context = context
        self.files: dict[str, set[str]] = {}

    def attach(self, vm: LiveVM) -> None:
        self.files[vm.record.id] = drive_files(vm.record.settings)
        self.confinement.own(vm.record.id, own_roots(vm))

    def start(self) -> None:
        for vm_id in self.confinement.sweep(self.context.vms()):
            log.info("confine_qemu: released the uid and file grants of removed VM %s", vm_id)

    def settings_changed(self, vm: LiveVM) -> None:
        vm_id, now = vm.record.id, drive_files(vm.record.settings)
        gone = self.files.get(vm_id, set()) - now
        self.files[vm_id] = now
        self.confinement.own(vm_id, own_roots(vm))
        if gone:
            taken = self.confinement.revoke(vm_id, gone, keep=now)
            log.info("confine_qemu: VM %s no longer has %s", vm.record.name, ", ".join(taken))

    def removed(self, vm: LiveVM, delete_files: bool) -> None:
        self.files.pop(vm.record.id, None)
        self.confinement.release(vm.record.id)

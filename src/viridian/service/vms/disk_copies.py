"""Where a VM's disk came from when the service attached a copy instead of the disk the
admin named (docs/api.md, "VMs": ``notices`` and ``disk_copies``).

QEMU misreads differencing VHDs, so a differencing VHD handed in is replaced by a
standalone copy of its chain (:mod:`viridian.service.storage.checks`); the guest's writes
then go to the copy, not to the admin's chain. That must never be silent: the answer that
attached it carries a notice, and every vm object lists, per drive, the copy and the disk
it was ``copied_from``. The pairs are kept in the catalog's meta table (durable) and in
memory (a vm object is built without a query).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from viridian.model import VMSettings
from viridian.model.slots import drive_slots
from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.vms.live import LiveVM

META_PREFIX = "disk_copy:"
Snapshot = list[tuple[dict[str, Any], Any]]


def _disk_entries(patch: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for drive in patch.get("ide") or []:
        if isinstance(drive, dict):
            yield drive
    for controller in patch.get("scsi") or []:
        if isinstance(controller, dict):
            yield from (d for d in controller.get("disks") or [] if isinstance(d, dict))


def snapshot(patch: dict[str, Any]) -> Snapshot:
    """Every disk entry of ``patch`` with its path now (before conversion)."""
    return [(entry, entry.get("path")) for entry in _disk_entries(patch)]


def copies_made(before: Snapshot) -> list[tuple[str, str]]:
    """(original, copy) for every entry whose path the conversion replaced."""
    return [(str(old), str(entry["path"])) for entry, old in before
            if isinstance(old, str) and entry.get("path") != old]


def notice(original: str, copy: str) -> str:
    """The sentence an admin reads when ``copy`` was attached instead of ``original``."""
    return (f"differencing disk {original} was copied to standalone {copy}; the guest "
            f"writes go to {copy}, not to {original} or its parent")


class DiskCopies(Capability):
    """Remembers (copy → original) and shows it in every vm object."""

    name = "disk_copies"

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        rows = context.catalog.read("SELECT key, value FROM meta WHERE key LIKE ?",
                                    (META_PREFIX + "%",))
        self.origins = {str(key)[len(META_PREFIX):]: str(value) for key, value in rows}

    def record(self, pairs: list[tuple[str, str]]) -> list[str]:
        """Keep each (original, copy) pair; returns the notices to show."""
        for original, copy in pairs:
            self.context.catalog.set_meta(META_PREFIX + copy, original)
            self.origins[copy] = original
        return [notice(original, copy) for original, copy in pairs]

    def describe(self, vm: LiveVM) -> dict[str, Any]:
        copies = [{"drive": drive, "path": path, "copied_from": self.origins[path]}
                  for drive, path in _drives(vm.record.settings) if path in self.origins]
        return {"disk_copies": copies} if copies else {}


def _drives(settings: VMSettings) -> Iterator[tuple[str, str]]:
    for slot in drive_slots(settings):
        if slot.path:
            yield f"{slot.bus.upper()} {slot.controller}:{slot.location}", slot.path

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
from dataclasses import dataclass
from typing import Any

from viridian.model import VMSettings, settings_from_dict
from viridian.model.slots import drive_slots
from viridian.service.capability import Capability
from viridian.service.context import ServiceContext
from viridian.service.vms.live import LiveVM

META_PREFIX = "disk_copy:"


@dataclass(frozen=True)
class Snapshot:
    """A request's drives before the differencing disks in it were copied:
    ``patch`` (changed in place by the conversion) and slot id → path then."""

    patch: dict[str, Any]
    paths: dict[str, str]


def snapshot(patch: dict[str, Any]) -> Snapshot:
    """The drives of ``patch`` (API dict shape) and their paths now, before conversion.

    :raises BadRequest, InvalidSetting: the drives of ``patch`` are not valid settings
        (refused before any disk is copied; nothing was changed).
    """
    return Snapshot(patch, _drive_paths(patch))


def copies_made(before: Snapshot) -> list[tuple[str, str]]:
    """(original, copy) for every drive whose path the conversion replaced."""
    after = _drive_paths(before.patch)
    return [(path, after[slot]) for slot, path in before.paths.items()
            if after.get(slot, path) != path]


def _drive_paths(patch: dict[str, Any]) -> dict[str, str]:
    """Slot id → path of the drives ``patch`` names, read through the model
    (:func:`viridian.model.slots.drive_slots`)."""
    drives: dict[str, Any] = {key: patch[key] for key in ("ide", "scsi") if key in patch}
    settings = settings_from_dict({"name": "vm", **drives})
    return {slot.id: slot.path for slot in drive_slots(settings) if slot.path}


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
            yield slot.label, slot.path

"""Turning requests into validated VM settings, with the checks that need the host:
files exist, their format is known and runnable, no disk is attached twice, MACs assigned.

The pure rules (ranges, slots, kinds) live in ``viridian.model``; this module adds only
what needs the file system or the catalog.
"""

from __future__ import annotations

import os
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from viridian.disks import detect_format, inspect
from viridian.errors import Conflict, InvalidSetting, NotFound
from viridian.model import VMSettings, default_settings, merge_settings, to_dict
from viridian.model.choices import ComKind, DiskFormat, DriveKind
from viridian.model.settings import ProcessorSettings
from viridian.model.slots import DriveSlot, drive_slots, map_drives
from viridian.model.states import VMState
from viridian.model.validation import ALLOWED_NAME, limit_below_reserve
from viridian.service.catalog import Catalog, VMRecord
from viridian.service.devices.hotplug import (
    ALLOWED_LIVE,
    HOT_PLUGGABLE,
    check_live_storage_changes,
)
from viridian.service.storage.checks import check_pass_through, is_block_device
from viridian.service.switches.service import adapters_changeable_live
from viridian.service.vms.macs import assign_macs, pool_octets

# Settings an admin may change while the VM runs (Hyper-V allows these at any time).
CHANGEABLE_WHILE_ACTIVE = frozenset({"name", "notes", "automatic_start", "automatic_stop",
                                     "processor.reserve_pct", "processor.limit_pct",
                                     "processor.weight", "integration_services",
                                     "high_availability"})  # failover cluster role


class VMConfigurator:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def new_settings(self, name: str, patch: dict[str, Any], memory_mb: int | None,
                     processors: int | None, dvd: str | None, vhd: str | None) -> VMSettings:
        """The checked settings of a new VM from the API's request (the dict boundary)."""
        patch = dict(patch)
        patch["name"] = name
        if memory_mb is not None:
            patch["memory"] = {**patch.get("memory", {}), "startup_mb": memory_mb}
        if processors is not None:
            patch["processor"] = {**patch.get("processor", {}), "count": processors}
        if dvd is not None or vhd is not None:
            patch["ide"] = _ide_with(patch.get("ide"), dvd, vhd)
        return self._checked(merge_settings(default_settings(name), patch), vm_id=None)

    def registered_settings(self, vm_id: str, name: str, settings: dict[str, Any], *,
                            replacing: bool = False) -> VMSettings:
        """The checked settings of a VM registered again from its configuration file
        (``vm import --register-in-place``): its id and name must be free as a name and
        as an id, and its files pass the same checks as a new VM's. ``replacing``: the VM
        registered with ``vm_id`` is to be replaced by this one (a move's older copy,
        ``service.migration.incoming``), so its id, name, disks and MACs count as free.

        :raises Conflict: ``vm_id`` or ``name`` is already used by a VM (named).
        """
        for vm in self._catalog.list_vms():
            if replacing and vm.id == vm_id:
                continue
            if vm.id == vm_id or vm.name == vm_id:
                raise Conflict(
                    f"cannot register VM '{name}': its id {vm_id} is already used by the "
                    f"registered VM '{vm.name}'; remove that VM first or import a copy; "
                    "nothing was changed", vm=vm.name, id=vm_id)
        merged = merge_settings(default_settings(name), {**settings, "name": name})
        return self._checked(merged, vm_id=vm_id if replacing else None)

    def changed_settings(self, record: VMRecord, patch: dict[str, Any],
                         state: VMState) -> VMSettings:
        """``record``'s settings with ``patch`` (API dict shape) applied and checked.

        :raises Conflict: a change not allowed in ``state`` (named, with what is allowed).
        """
        new = _merged_naming_the_limit(record.settings, patch)
        changed = _changed_settings(record.settings, new)
        if adapters_changeable_live(record.settings.network_adapters, new.network_adapters):
            changed.discard("network_adapters")  # switch and VLAN change live (switches.py)
        frozen = sorted(changed - CHANGEABLE_WHILE_ACTIVE - HOT_PLUGGABLE)
        if frozen and state is not VMState.OFF:
            raise Conflict(
                f"cannot change {', '.join(frozen)} of VM '{record.name}' while it is "
                f"{state.value}; turn it off first. Changeable now: "
                f"{', '.join(sorted(CHANGEABLE_WHILE_ACTIVE))}, and {ALLOWED_LIVE}; "
                "nothing was changed",
                vm=record.name, state=state.value, settings=frozen)
        check_live_storage_changes(record.name, record.settings, new, state)
        return self._checked(new, vm_id=record.id)

    def disk_paths(self, settings: VMSettings) -> list[Path]:
        """Every image file ``settings`` open: drives (model.slots), then the floppy."""
        paths = [Path(slot.path) for slot in drive_slots(settings) if slot.path]
        return paths + ([Path(settings.floppy.path)] if settings.floppy.path else [])

    # --- host checks --------------------------------------------------------------------

    def _checked(self, settings: VMSettings, vm_id: str | None) -> VMSettings:
        """``settings`` with every drive's format resolved, after the host checks: name
        free, files exist and are runnable, pipe folders exist, disks attached to no
        other VM, MACs free (dynamic ones assigned)."""
        _check_name_free(settings.name, vm_id, self._catalog)
        settings = map_drives(settings, _checked_drive)
        if settings.floppy.path:
            _checked_file("floppy.path", settings.floppy.path, media=True)
        _check_pipe_folders(settings)
        self._check_not_attached_elsewhere(settings, vm_id)
        plain = to_dict(settings)
        assign_macs(plain, self._catalog.usage.macs_except(vm_id), pool_octets(self._catalog))
        return merge_settings(default_settings(settings.name), plain)

    def _check_not_attached_elsewhere(self, settings: VMSettings,
                                      vm_id: str | None) -> None:
        """A disk file (same real path, or a hard link to the same inode) belongs to one
        VM; other VMs' read-only media may be shared. One index lookup per disk
        (:class:`~viridian.service.usage_index.UsageIndex`), whatever the number of VMs."""
        for path in self.disk_paths(settings):
            holder = self._catalog.usage.disk_holder(str(path), vm_id)
            if holder is not None:
                raise Conflict(
                    f"disk {holder.path} is already attached to VM '{holder.vm_name}'; a "
                    "disk can be attached to one VM only; nothing was changed",
                    path=holder.path, vm=holder.vm_name)


def _check_name_free(name: str, vm_id: str | None, catalog: Catalog) -> None:
    """A name is another VM's neither name nor id: a reference is never ambiguous."""
    for other_id, other_name in catalog.ids_and_names(name):
        if other_id == vm_id:
            continue
        if other_name == name:
            raise Conflict(f"a VM named '{name}' already exists; nothing was changed",
                           name=name)
        if other_id == name:
            raise Conflict(
                f"cannot name a VM '{name}': that is the id of VM '{other_name}', and a name "
                f"must never be mistaken for an id; allowed: {ALLOWED_NAME}, other than "
                "every VM's name and id; nothing was changed", name=name, vm=other_name)


def _changed_settings(current: VMSettings, new: VMSettings) -> set[str]:
    """The top-level settings that differ; ``processor`` is named per field
    (``processor.limit_pct``…): reserve, limit and weight may change while it runs."""
    changed = {f.name for f in fields(VMSettings)
               if getattr(new, f.name) != getattr(current, f.name)}
    if "processor" in changed:
        changed = (changed - {"processor"}) | {
            f"processor.{f.name}" for f in fields(ProcessorSettings)
            if getattr(new.processor, f.name) != getattr(current.processor, f.name)}
    return changed


def _merged_naming_the_limit(current: VMSettings, patch: dict[str, Any]) -> VMSettings:
    """``current`` merged with ``patch``; when the patch lowers ``processor.limit_pct``
    alone below the reserve, the error names the limit (the setting the admin changed)."""
    try:
        return merge_settings(current, patch)
    except InvalidSetting as err:
        cpu = patch.get("processor") if isinstance(patch, dict) else None
        if not isinstance(cpu, dict) or "limit_pct" not in cpu or "reserve_pct" in cpu:
            raise
        if err.details.get("setting") == "processor.reserve_pct":
            raise limit_below_reserve(cpu["limit_pct"], current.processor.reserve_pct) from err
        raise


def _check_pipe_folders(settings: VMSettings) -> None:
    """A COM port's pipe is created at start: its folder must exist now."""
    for port, com in (("com1", settings.com1), ("com2", settings.com2)):
        if com.kind is not ComKind.PIPE or not com.path:
            continue
        folder = Path(com.path).parent
        if not folder.is_dir():
            raise InvalidSetting(
                f"{port}.path", com.path,
                "a path in an existing folder (the pipe itself is created when the VM "
                "starts)", reason=f"folder {folder} does not exist")


def _ide_with(ide: list[dict[str, Any]] | None, dvd: str | None,
              vhd: str | None) -> list[dict[str, Any]]:
    slots = {(d["controller"], d["location"]): d for d in (ide or [])}
    if vhd is not None:
        slots[(0, 0)] = {"controller": 0, "location": 0, "kind": "hard_disk", "path": vhd,
                         "format": None}
    slots[(1, 0)] = {"controller": 1, "location": 0, "kind": "dvd", "path": dvd, "format": None}
    return [slots[key] for key in sorted(slots)]


def _checked_drive(slot: DriveSlot) -> DriveSlot:
    """``slot`` with its image's format resolved (after :func:`_checked_file`)."""
    if not slot.path:
        return slot
    media = slot.kind is DriveKind.DVD
    return replace(slot, format=DiskFormat(_checked_file(slot.setting, slot.path, media)))


def _checked_file(setting: str, raw: str, media: bool) -> str:
    """The format of the image ``raw`` names: absolute, existing, readable, of a format
    QEMU can run safely. ``media`` (DVD, floppy): always raw, never a host device."""
    if not os.path.isabs(raw):
        raise InvalidSetting(setting, raw, "an absolute path to an existing file on the host")
    path = Path(raw)
    if is_block_device(raw) and not media:
        check_pass_through(setting, raw)  # a host disk handed to the VM as it is
        return "raw"
    if path.is_dir():
        raise InvalidSetting(setting, raw, "an absolute path to an image file (not a folder)",
                             reason=f"{path} is a folder")
    if not path.is_file():
        raise NotFound(f"{setting}: file {path} does not exist; nothing was changed",
                       setting=setting, path=raw)
    if media:
        return "raw"
    fmt = detect_format(path)
    if fmt in ("vpc", "vhdx") and inspect(path).disk_type == "differencing":
        raise InvalidSetting(
            setting, raw, "a fixed or dynamic VHD, VHDX, qcow2 or raw disk",
            "QEMU misreads differencing VHDs and refuses differencing VHDX (AVHDX); "
            "flatten it first with 'viridian disk merge' or 'viridian disk convert'")
    return fmt

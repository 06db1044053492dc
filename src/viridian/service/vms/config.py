"""Turning requests into validated VM settings, with the checks that need the host:
files exist, their format is known and runnable, no disk is attached twice, MACs assigned.

The pure rules (ranges, slots, kinds) live in ``viridian.model``; this module adds only
what needs the file system or the catalog.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from viridian.disks import detect_format, inspect
from viridian.errors import Conflict, InvalidSetting, NotFound
from viridian.model import default_settings, merge_settings, to_dict
from viridian.model.states import VMState
from viridian.service.catalog import Catalog, VMRecord
from viridian.service.devices.hotplug import (
    ALLOWED_LIVE,
    HOT_PLUGGABLE,
    check_live_storage_changes,
)
from viridian.service.storage.checks import check_pass_through, is_block_device
from viridian.service.switches.service import adapters_changeable_live
from viridian.service.vms.macs import assign_macs, macs_in_use, pool_octets

# Settings an admin may change while the VM runs (Hyper-V allows these at any time).
CHANGEABLE_WHILE_ACTIVE = frozenset({"name", "notes", "automatic_start", "automatic_stop",
                                     "processor.reserve_pct", "processor.limit_pct",
                                     "processor.weight", "integration_services"})


class VMConfigurator:
    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog

    def new_settings(self, name: str, patch: dict[str, Any], memory_mb: int | None,
                     processors: int | None, dvd: str | None, vhd: str | None) -> dict[str, Any]:
        patch = dict(patch)
        patch["name"] = name
        if memory_mb is not None:
            patch["memory"] = {**patch.get("memory", {}), "startup_mb": memory_mb}
        if processors is not None:
            patch["processor"] = {**patch.get("processor", {}), "count": processors}
        if dvd is not None or vhd is not None:
            patch["ide"] = _ide_with(patch.get("ide"), dvd, vhd)
        settings = to_dict(merge_settings(default_settings(name), patch))
        return self._checked(settings, vm_id=None)

    def changed_settings(self, record: VMRecord, patch: dict[str, Any],
                         state: VMState) -> dict[str, Any]:
        current = to_dict(merge_settings(default_settings(record.name), record.settings))
        settings = to_dict(merge_settings(
            merge_settings(default_settings(record.name), record.settings), patch))
        changed = {key for key in settings if settings[key] != current.get(key)}
        if "processor" in changed:  # reserve, limit and weight may change while it runs
            changed = (changed - {"processor"}) | {
                f"processor.{k}" for k, v in settings["processor"].items()
                if v != current["processor"].get(k)}
        if adapters_changeable_live(current["network_adapters"], settings["network_adapters"]):
            changed.discard("network_adapters")  # switch and VLAN change live (switches.py)
        frozen = sorted(changed - CHANGEABLE_WHILE_ACTIVE - HOT_PLUGGABLE)
        if frozen and state is not VMState.OFF:
            raise Conflict(
                f"cannot change {', '.join(frozen)} of VM '{record.name}' while it is "
                f"{state.value}; turn it off first. Changeable now: "
                f"{', '.join(sorted(CHANGEABLE_WHILE_ACTIVE))}, and {ALLOWED_LIVE}; "
                "nothing was changed",
                vm=record.name, state=state.value, settings=frozen)
        check_live_storage_changes(record.name, current, settings, state)
        return self._checked(settings, vm_id=record.id)

    def disk_paths(self, settings: dict[str, Any]) -> list[Path]:
        return [Path(entry["path"]) for _, entry in _disk_entries(settings) if entry.get("path")]

    # --- host checks --------------------------------------------------------------------

    def _checked(self, settings: dict[str, Any], vm_id: str | None) -> dict[str, Any]:
        others = [vm for vm in self._catalog.list_vms() if vm.id != vm_id]
        _check_name_free(settings["name"], others)
        for setting, entry in _disk_entries(settings):
            if entry.get("path"):
                entry["path"], image_format = _checked_file(setting, entry)
                if setting != "floppy.path":  # a floppy is always raw: it has no format key
                    entry["format"] = image_format
        self._check_not_attached_elsewhere(settings, others)
        assign_macs(settings, macs_in_use(others, vm_id), pool_octets(self._catalog))
        return to_dict(merge_settings(default_settings(settings["name"]), settings))

    def _check_not_attached_elsewhere(self, settings: dict[str, Any],
                                      others: list[VMRecord]) -> None:
        mine = {os.path.realpath(p) for p in self.disk_paths(settings)}
        for vm in others:
            for path in self.disk_paths(vm.settings):
                real = os.path.realpath(path)
                if real in mine and not _is_read_only_media(path):
                    raise Conflict(
                        f"disk {path} is already attached to VM '{vm.name}'; a disk can be "
                        "attached to one VM only; nothing was changed",
                        path=str(path), vm=vm.name)



def _check_name_free(name: str, others: list[VMRecord]) -> None:
    if any(vm.name == name for vm in others):
        raise Conflict(f"a VM named '{name}' already exists; nothing was changed", name=name)


def _ide_with(ide: list[dict[str, Any]] | None, dvd: str | None,
              vhd: str | None) -> list[dict[str, Any]]:
    slots = {(d["controller"], d["location"]): d for d in (ide or [])}
    if vhd is not None:
        slots[(0, 0)] = {"controller": 0, "location": 0, "kind": "hard_disk", "path": vhd,
                         "format": None}
    slots[(1, 0)] = {"controller": 1, "location": 0, "kind": "dvd", "path": dvd, "format": None}
    return [slots[key] for key in sorted(slots)]


def _disk_entries(settings: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for drive in settings.get("ide", []):
        yield f"ide[{drive['controller']}:{drive['location']}].path", drive
    for controller in settings.get("scsi", []):
        for disk in controller.get("disks", []):
            yield f"scsi[{controller['controller']}:{disk['location']}].path", disk
    floppy = settings.get("floppy") or {}
    if floppy.get("path"):
        yield "floppy.path", floppy


def _is_read_only_media(path: Path) -> bool:
    return path.suffix.lower() in (".iso", ".vfd")


def _checked_file(setting: str, entry: dict[str, Any]) -> tuple[str, str]:
    """Absolute, existing, readable, of a format QEMU can run safely."""
    raw = str(entry["path"])
    if not os.path.isabs(raw):
        raise InvalidSetting(setting, raw, "an absolute path to an existing file on the host")
    path = Path(raw)
    if is_block_device(raw) and entry.get("kind") != "dvd" and setting != "floppy.path":
        check_pass_through(setting, raw)  # a host disk handed to the VM as it is
        return raw, "raw"
    if not path.is_file():
        raise NotFound(f"{setting}: file {path} does not exist; nothing was changed",
                       setting=setting, path=raw)
    if entry.get("kind") == "dvd" or setting == "floppy.path":
        return raw, "raw"
    fmt = detect_format(path)
    if fmt == "vpc" and inspect(path).disk_type == "differencing":
        raise InvalidSetting(
            setting, raw, "a fixed or dynamic VHD, VHDX, qcow2 or raw disk",
            "QEMU misreads differencing VHDs; flatten it first with "
            "'viridian disk merge' or 'viridian disk convert'")
    return raw, fmt

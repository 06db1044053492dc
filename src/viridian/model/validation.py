"""Validation of :class:`VMSettings` against Hyper-V's generation-1 rules.

:func:`validate` is the one gate: ``settings_from_dict`` and ``merge_settings`` call it,
and anything that builds settings itself must too. Every error is an
:class:`~viridian.errors.InvalidSetting` naming the setting by its dict path
(``"ide[0].path"``), the value and the allowed range. Whether files and folders exist is
the service's business, not checked here.
"""

from __future__ import annotations

import posixpath
import unicodedata
from collections.abc import Iterator

from viridian.errors import InvalidSetting
from viridian.model import limits, ranges
from viridian.model.address import ALLOWED_ADDRESS, parse_address
from viridian.model.choices import AdapterKind, BootDevice, ComKind, DriveKind, MacMode
from viridian.model.mac import ALLOWED_MAC, normalise_mac
from viridian.model.settings import (
    BiosSettings,
    ComPort,
    IdeDrive,
    NetworkAdapter,
    ProcessorSettings,
    ScsiController,
    VMSettings,
)

ALLOWED_NAME = (
    f"1..{limits.VM_NAME_MAX_CHARS} characters without '/', NUL or control characters, "
    "not '.' or '..', not blank and without leading or trailing spaces"
)
ALLOWED_PATH = "an absolute path without NUL characters"
ALLOWED_STARTUP_ORDER = "a permutation of cd, ide, net, floppy (each exactly once)"


def validate(settings: VMSettings) -> None:
    """Raise :class:`InvalidSetting` for the first rule ``settings`` breaks."""
    check_vm_name(settings.name)
    _check_notes(settings.notes)
    _check_bios(settings.bios)
    ranges.MEMORY_MB.check("memory.startup_mb", settings.memory.startup_mb)
    _check_processor(settings.processor)
    _check_ide(settings.ide)
    _check_scsi(settings.scsi)
    _check_adapters(settings.network_adapters)
    _check_com("com1", settings.com1)
    _check_com("com2", settings.com2)
    if settings.floppy.path is not None:
        check_path("floppy.path", settings.floppy.path)
    ranges.START_DELAY_S.check("automatic_start.delay_s", settings.automatic_start.delay_s)
    if settings.checkpoint_folder is not None:
        check_path("checkpoint_folder", settings.checkpoint_folder)
    _check_disks_attached_once(settings)
    _check_pipes_distinct(settings)


def check_vm_name(name: str) -> None:
    """Raise :class:`InvalidSetting` unless ``name`` is a valid VM name (Hyper-V: 1..100)."""
    bad = (
        not 1 <= len(name) <= limits.VM_NAME_MAX_CHARS
        or name in (".", "..")
        or any(ch == "/" or unicodedata.category(ch) == "Cc" for ch in name)
    )
    if bad:
        raise InvalidSetting("name", name, ALLOWED_NAME)
    if name.strip() != name:
        why = "only spaces" if not name.strip() else "leading or trailing spaces"
        raise InvalidSetting("name", name, ALLOWED_NAME, reason=why)


def limit_below_reserve(limit_pct: int, reserve_pct: int) -> InvalidSetting:
    """The error for a ``processor.limit_pct`` set below the VM's ``processor.reserve_pct``
    (the rule: reserve ≤ limit), naming the limit and the values it may take."""
    allowed = (
        f"{reserve_pct}..{ranges.LIMIT_PCT.high} (the limit may not be below "
        f"processor.reserve_pct, which is {reserve_pct}; lower the reserve first to go lower)"
    )
    return InvalidSetting("processor.limit_pct", limit_pct, allowed)


def check_path(setting: str, path: str) -> None:
    """Raise :class:`InvalidSetting` unless ``path`` is absolute and free of NUL."""
    if not path.startswith("/") or "\0" in path:
        raise InvalidSetting(setting, path, ALLOWED_PATH)


def _check_notes(notes: str) -> None:
    if len(notes) > limits.NOTES_MAX_CHARS or "\0" in notes:
        shown = notes if len(notes) <= 40 else notes[:40] + "..."
        allowed = f"text of at most {limits.NOTES_MAX_CHARS} characters without NUL"
        raise InvalidSetting("notes", shown, allowed, reason=f"{len(notes)} characters")


def _check_bios(bios: BiosSettings) -> None:
    order = [str(device) for device in bios.startup_order]
    if sorted(order) != sorted(device.value for device in BootDevice):
        raise InvalidSetting("bios.startup_order", order, ALLOWED_STARTUP_ORDER)


def _check_processor(cpu: ProcessorSettings) -> None:
    ranges.PROCESSOR_COUNT.check("processor.count", cpu.count)
    ranges.RESERVE_PCT.check("processor.reserve_pct", cpu.reserve_pct)
    ranges.LIMIT_PCT.check("processor.limit_pct", cpu.limit_pct)
    ranges.WEIGHT.check("processor.weight", cpu.weight)
    if cpu.reserve_pct > cpu.limit_pct:
        allowed = f"{ranges.RESERVE_PCT.low}..{cpu.limit_pct} (at most processor.limit_pct)"
        raise InvalidSetting("processor.reserve_pct", cpu.reserve_pct, allowed)


def _check_ide(drives: tuple[IdeDrive, ...]) -> None:
    used: dict[tuple[int, int], str] = {}
    for index, drive in enumerate(drives):
        setting = f"ide[{index}]"
        ranges.IDE_CONTROLLER.check(f"{setting}.controller", drive.controller)
        ranges.IDE_LOCATION.check(f"{setting}.location", drive.location)
        _check_slot_free(used, (drive.controller, drive.location), setting, "IDE")
        _check_ide_media(setting, drive)


def _check_slot_free(
    used: dict[tuple[int, int], str], slot: tuple[int, int], setting: str, bus: str
) -> None:
    if slot in used:
        where = f"{bus} {slot[0]}:{slot[1]}"
        raise InvalidSetting(
            setting, where, "a free location", reason=f"{where} is already used by {used[slot]}"
        )
    used[slot] = setting


def _check_ide_media(setting: str, drive: IdeDrive) -> None:
    if drive.path is None:
        if drive.kind == DriveKind.HARD_DISK:
            raise InvalidSetting(
                f"{setting}.path",
                None,
                "a path to a virtual hard disk (a hard disk drive needs one)",
            )
        if drive.format is not None:
            raise InvalidSetting(
                f"{setting}.format", str(drive.format), "null for an empty DVD drive"
            )
        return
    check_path(f"{setting}.path", drive.path)


def _check_scsi(controllers: tuple[ScsiController, ...]) -> None:
    seen: dict[int, str] = {}
    for index, controller in enumerate(controllers):
        setting = f"scsi[{index}]"
        ranges.SCSI_CONTROLLER.check(f"{setting}.controller", controller.controller)
        if controller.controller in seen:
            raise InvalidSetting(
                f"{setting}.controller",
                controller.controller,
                "a controller number not used by another SCSI controller",
                reason=f"already used by {seen[controller.controller]}",
            )
        seen[controller.controller] = setting
        _check_scsi_disks(setting, controller)


def _check_scsi_disks(setting: str, controller: ScsiController) -> None:
    if len(controller.disks) > limits.SCSI_DISKS_PER_CONTROLLER:
        raise InvalidSetting(
            f"{setting}.disks",
            f"{len(controller.disks)} disks",
            f"at most {limits.SCSI_DISKS_PER_CONTROLLER} disks per SCSI controller",
        )
    used: dict[tuple[int, int], str] = {}
    for index, disk in enumerate(controller.disks):
        disk_setting = f"{setting}.disks[{index}]"
        ranges.SCSI_LOCATION.check(f"{disk_setting}.location", disk.location)
        _check_slot_free(used, (controller.controller, disk.location), disk_setting, "SCSI")
        check_path(f"{disk_setting}.path", disk.path)


def _check_adapters(adapters: tuple[NetworkAdapter, ...]) -> None:
    for kind, most in (
        (AdapterKind.SYNTHETIC, limits.SYNTHETIC_ADAPTERS_MAX),
        (AdapterKind.LEGACY, limits.LEGACY_ADAPTERS_MAX),
    ):
        count = sum(1 for adapter in adapters if adapter.kind == kind)
        if count > most:
            raise InvalidSetting(
                "network_adapters",
                f"{count} {kind.value} adapters",
                f"at most {most} {kind.value} adapters",
            )
    for index, adapter in enumerate(adapters):
        _check_adapter(f"network_adapters[{index}]", adapter)


def _check_adapter(setting: str, adapter: NetworkAdapter) -> None:
    if adapter.switch is not None:
        _check_switch_name(f"{setting}.switch", adapter.switch)
    if adapter.mac is None and adapter.mac_mode == MacMode.STATIC:
        raise InvalidSetting(f"{setting}.mac", None, ALLOWED_MAC, reason="a static MAC needs one")
    if adapter.mac is not None:
        canonical = normalise_mac(adapter.mac, setting=f"{setting}.mac")
        if canonical != adapter.mac:
            raise InvalidSetting(f"{setting}.mac", adapter.mac, f"the canonical form {canonical}")
    if adapter.vlan_id is not None:
        ranges.VLAN_ID.check(f"{setting}.vlan_id", adapter.vlan_id)
    _check_trunk(setting, adapter)


def _check_trunk(setting: str, adapter: NetworkAdapter) -> None:
    """Access mode (``vlan_id``) and trunk mode (``trunk_vlans`` + ``native_vlan``)
    exclude each other; a trunk lists each VLAN once."""
    for index, vlan in enumerate(adapter.trunk_vlans):
        ranges.VLAN_ID.check(f"{setting}.trunk_vlans[{index}]", vlan)
        if vlan in adapter.trunk_vlans[:index]:
            raise InvalidSetting(f"{setting}.trunk_vlans[{index}]", vlan,
                                 "each VLAN id once", reason="listed twice")
    if adapter.trunk_vlans and adapter.vlan_id is not None:
        raise InvalidSetting(f"{setting}.vlan_id", adapter.vlan_id,
                             "null on a trunk (its untagged VLAN is native_vlan)",
                             reason="an adapter is in access or in trunk mode")
    if adapter.native_vlan is not None:
        ranges.VLAN_ID.check(f"{setting}.native_vlan", adapter.native_vlan)
        if not adapter.trunk_vlans:
            raise InvalidSetting(f"{setting}.native_vlan", adapter.native_vlan,
                                 "null unless trunk_vlans is set (an access port uses vlan_id)")


def _check_switch_name(setting: str, name: str) -> None:
    bad = not 1 <= len(name) <= limits.SWITCH_NAME_MAX_CHARS or any(
        unicodedata.category(ch) == "Cc" for ch in name
    )
    if bad:
        allowed = (
            f"null (not connected) or a switch name of 1..{limits.SWITCH_NAME_MAX_CHARS} "
            "characters without control characters"
        )
        raise InvalidSetting(setting, name, allowed)


def _check_com(setting: str, port: ComPort) -> None:
    if port.kind == ComKind.REMOTE:
        _check_remote_com(setting, port)
        return
    if port.address is not None:
        raise InvalidSetting(
            f"{setting}.address", port.address, "null unless kind is 'remote' (HOST:PORT)"
        )
    if port.path is None:
        return
    if port.kind == ComKind.NONE:
        raise InvalidSetting(
            f"{setting}.path", port.path, "null when kind is 'none' (a path needs kind 'pipe')"
        )
    check_path(f"{setting}.path", port.path)
    size = len(port.path.encode())
    if size > limits.UNIX_SOCKET_PATH_MAX_BYTES:
        raise InvalidSetting(
            f"{setting}.path",
            port.path,
            f"a path of at most {limits.UNIX_SOCKET_PATH_MAX_BYTES} bytes (UNIX socket limit)",
            reason=f"{size} bytes",
        )


def _check_remote_com(setting: str, port: ComPort) -> None:
    if port.path is not None:
        raise InvalidSetting(
            f"{setting}.path", port.path, "null when kind is 'remote' (it connects to address)"
        )
    if port.address is None:
        raise InvalidSetting(
            f"{setting}.address", None, ALLOWED_ADDRESS, reason="a remote COM port needs one"
        )
    parse_address(port.address, setting=f"{setting}.address")


def _disk_paths(settings: VMSettings) -> Iterator[tuple[str, str]]:
    """(setting, path) of every image the VM opens."""
    for index, drive in enumerate(settings.ide):
        if drive.path is not None:
            yield f"ide[{index}].path", drive.path
    for c_index, controller in enumerate(settings.scsi):
        for d_index, disk in enumerate(controller.disks):
            yield f"scsi[{c_index}].disks[{d_index}].path", disk.path
    if settings.floppy.path is not None:
        yield "floppy.path", settings.floppy.path


def _check_disks_attached_once(settings: VMSettings) -> None:
    seen: dict[str, str] = {}
    for setting, path in _disk_paths(settings):
        key = posixpath.normpath(path)
        if key in seen:
            raise InvalidSetting(
                setting,
                path,
                "an image not attached elsewhere in this VM",
                reason=f"disk attached twice: also at {seen[key]}",
            )
        seen[key] = setting


def _check_pipes_distinct(settings: VMSettings) -> None:
    one, two = settings.com1.path, settings.com2.path
    if one is not None and two is not None and posixpath.normpath(one) == posixpath.normpath(two):
        raise InvalidSetting("com2.path", two, "a pipe path different from com1.path")

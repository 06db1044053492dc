"""The settings dict: conversion between :class:`VMSettings` and its JSON-ready shape.

The dict shape is the API's, the CLI's and the catalog's; keys equal the dataclass field
names. :func:`settings_from_dict` accepts a partial dict (missing keys take Hyper-V's
defaults; ``name`` and the keys identifying a drive are required), refuses unknown keys
with :class:`BadRequest` naming the key and the allowed keys, refuses wrongly-typed values
with :class:`InvalidSetting`, normalises MAC addresses and then validates.
``settings_from_dict(to_dict(s)) == s`` for every valid ``s``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from viridian.errors import BadRequest, InvalidSetting
from viridian.model import ranges
from viridian.model.choices import (
    AdapterKind,
    BootDevice,
    ComKind,
    DiskFormat,
    DriveKind,
    FailoverPriority,
    MacMode,
    StartAction,
    StopAction,
    allowed_text,
)
from viridian.model.mac import normalise_mac
from viridian.model.ranges import IntRange
from viridian.model.settings import (
    AutomaticStart,
    AutomaticStop,
    BiosSettings,
    ComPort,
    FloppyDrive,
    HighAvailability,
    IdeDrive,
    IntegrationServices,
    MemorySettings,
    NetworkAdapter,
    ProcessorSettings,
    ScsiController,
    ScsiDisk,
    VMSettings,
)
from viridian.model.validation import validate

E = TypeVar("E", bound=StrEnum)
_REQUIRED: Any = object()


def to_dict(settings: VMSettings) -> dict[str, Any]:
    """The settings as a plain, JSON-serialisable dict (enums as strings, tuples as lists)."""
    result = _plain(settings)
    assert isinstance(result, dict)
    return result


def settings_from_dict(data: Mapping[str, Any]) -> VMSettings:
    """Parse and validate a (possibly partial) settings dict.

    Raises :class:`BadRequest` for unknown or missing required keys and
    :class:`InvalidSetting` for wrongly-typed or invalid values.
    """
    settings = _vm_settings(data)
    validate(settings)
    return settings


def default_settings(name: str) -> VMSettings:
    """Hyper-V's defaults for a new VM called ``name`` (validated)."""
    return settings_from_dict({"name": name})


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(item) for item in value]
    if isinstance(value, StrEnum):
        return value.value
    return value


# --- readers: one value, its setting path, the allowed text --------------------------


def _object(data: Any, path: str, cls: type[Any], extra: Sequence[str] = ()) -> Mapping[str, Any]:
    """``data`` as a mapping whose keys are all fields of ``cls`` (or ``extra``)."""
    keys = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(data, Mapping):
        raise InvalidSetting(path or "settings", data, f"an object with keys {', '.join(keys)}")
    for key in data:
        if key not in keys and key not in extra:
            name = f"{path}.{key}" if path else str(key)
            where = f" of {path}" if path else ""
            raise BadRequest(
                f"unknown setting {name!r}; allowed keys{where}: {', '.join(keys)}",
                setting=name,
                allowed=keys,
            )
    return data


def _field(data: Mapping[str, Any], key: str, path: str, default: Any) -> Any:
    if key in data:
        return data[key]
    if default is _REQUIRED:
        name = f"{path}.{key}" if path else key
        raise BadRequest(f"missing setting {name!r}", setting=name)
    return default


def _int(value: Any, setting: str, allowed: IntRange | str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidSetting(setting, value, allowed if isinstance(allowed, str) else allowed.text)
    return value


def _opt_int(value: Any, setting: str, allowed: IntRange) -> int | None:
    return None if value is None else _int(value, setting, f"null or {allowed.text}")


def _bool(value: Any, setting: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidSetting(setting, value, "true or false")
    return value


def _str(value: Any, setting: str, allowed: str = "a string") -> str:
    if not isinstance(value, str):
        raise InvalidSetting(setting, value, allowed)
    return value


def _opt_str(value: Any, setting: str, allowed: str = "a string or null") -> str | None:
    return None if value is None else _str(value, setting, allowed)


def _choice(value: Any, setting: str, choices: type[E]) -> E:
    try:
        return choices(value)
    except ValueError as err:
        raise InvalidSetting(setting, value, allowed_text(choices)) from err


def _opt_choice(value: Any, setting: str, choices: type[E]) -> E | None:
    if value is None:
        return None
    try:
        return choices(value)
    except ValueError as err:
        raise InvalidSetting(setting, value, f"null or {allowed_text(choices)}") from err


def _list(value: Any, setting: str, allowed: str) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidSetting(setting, value, allowed)
    return list(value)


# --- sections -------------------------------------------------------------------------


def _vm_settings(data: Mapping[str, Any]) -> VMSettings:
    d = _object(data, "", VMSettings)
    base = VMSettings(name="")
    return VMSettings(
        name=_str(_field(d, "name", "", _REQUIRED), "name"),
        notes=_str(_field(d, "notes", "", base.notes), "notes"),
        bios=_bios(_field(d, "bios", "", {})),
        memory=_memory(_field(d, "memory", "", {})),
        processor=_processor(_field(d, "processor", "", {})),
        ide=_ide(_field(d, "ide", "", _plain(base.ide))),
        scsi=_scsi(_field(d, "scsi", "", [])),
        network_adapters=_adapters(_field(d, "network_adapters", "", [])),
        com1=_com(_field(d, "com1", "", {}), "com1"),
        com2=_com(_field(d, "com2", "", {}), "com2"),
        floppy=_floppy(_field(d, "floppy", "", {})),
        automatic_start=_automatic_start(_field(d, "automatic_start", "", {})),
        automatic_stop=_automatic_stop(_field(d, "automatic_stop", "", {})),
        integration_services=_integration(_field(d, "integration_services", "", {})),
        checkpoint_folder=_opt_str(
            _field(d, "checkpoint_folder", "", base.checkpoint_folder), "checkpoint_folder"),
        high_availability=_high_availability(_field(d, "high_availability", "", {})),
    )


def _bios(data: Any) -> BiosSettings:
    d, base = _object(data, "bios", BiosSettings), BiosSettings()
    order = _list(
        _field(d, "startup_order", "bios", base.startup_order),
        "bios.startup_order",
        "a list: a permutation of cd, ide, net, floppy",
    )
    return BiosSettings(
        num_lock=_bool(_field(d, "num_lock", "bios", base.num_lock), "bios.num_lock"),
        startup_order=tuple(
            _choice(item, f"bios.startup_order[{i}]", BootDevice) for i, item in enumerate(order)
        ),
    )


def _memory(data: Any) -> MemorySettings:
    d, base = _object(data, "memory", MemorySettings), MemorySettings()
    value = _field(d, "startup_mb", "memory", base.startup_mb)
    return MemorySettings(startup_mb=_int(value, "memory.startup_mb", ranges.MEMORY_MB))


def _processor(data: Any) -> ProcessorSettings:
    d, base = _object(data, "processor", ProcessorSettings), ProcessorSettings()

    def number(key: str, allowed: IntRange) -> int:
        return _int(_field(d, key, "processor", getattr(base, key)), f"processor.{key}", allowed)

    mode = _field(d, "compatibility_mode", "processor", base.compatibility_mode)
    return ProcessorSettings(
        count=number("count", ranges.PROCESSOR_COUNT),
        reserve_pct=number("reserve_pct", ranges.RESERVE_PCT),
        limit_pct=number("limit_pct", ranges.LIMIT_PCT),
        weight=number("weight", ranges.WEIGHT),
        compatibility_mode=_bool(mode, "processor.compatibility_mode"),
    )


def _ide(data: Any) -> tuple[IdeDrive, ...]:
    items = _list(data, "ide", "a list of IDE drives")
    return tuple(_ide_drive(item, f"ide[{i}]") for i, item in enumerate(items))


def _ide_drive(data: Any, path: str) -> IdeDrive:
    d = _object(data, path, IdeDrive)
    return IdeDrive(
        controller=_int(
            _field(d, "controller", path, _REQUIRED), f"{path}.controller", ranges.IDE_CONTROLLER
        ),
        location=_int(
            _field(d, "location", path, _REQUIRED), f"{path}.location", ranges.IDE_LOCATION
        ),
        kind=_choice(_field(d, "kind", path, _REQUIRED), f"{path}.kind", DriveKind),
        path=_opt_str(_field(d, "path", path, None), f"{path}.path"),
        format=_opt_choice(_field(d, "format", path, None), f"{path}.format", DiskFormat),
    )


def _scsi(data: Any) -> tuple[ScsiController, ...]:
    items = _list(data, "scsi", "a list of SCSI controllers")
    return tuple(_scsi_controller(item, f"scsi[{i}]") for i, item in enumerate(items))


def _scsi_controller(data: Any, path: str) -> ScsiController:
    d = _object(data, path, ScsiController)
    disks = _list(_field(d, "disks", path, []), f"{path}.disks", "a list of SCSI hard disks")
    return ScsiController(
        controller=_int(
            _field(d, "controller", path, _REQUIRED), f"{path}.controller", ranges.SCSI_CONTROLLER
        ),
        disks=tuple(_scsi_disk(item, f"{path}.disks[{i}]") for i, item in enumerate(disks)),
    )


def _scsi_disk(data: Any, path: str) -> ScsiDisk:
    d = _object(data, path, ScsiDisk, extra=("kind",) if _is_dvd(data) else ())
    if "kind" in d:
        raise InvalidSetting(
            f"{path}.kind",
            d["kind"],
            "SCSI controllers hold hard disks only",
            reason="DVD drives attach to IDE only",
        )
    return ScsiDisk(
        location=_int(
            _field(d, "location", path, _REQUIRED), f"{path}.location", ranges.SCSI_LOCATION
        ),
        path=_str(
            _field(d, "path", path, _REQUIRED), f"{path}.path", "a path to a virtual hard disk"
        ),
        format=_opt_choice(_field(d, "format", path, None), f"{path}.format", DiskFormat),
    )


def _is_dvd(data: Any) -> bool:
    return isinstance(data, Mapping) and data.get("kind") == DriveKind.DVD.value


def _adapters(data: Any) -> tuple[NetworkAdapter, ...]:
    items = _list(data, "network_adapters", "a list of network adapters")
    return tuple(_adapter(item, f"network_adapters[{i}]") for i, item in enumerate(items))


def _adapter(data: Any, path: str) -> NetworkAdapter:
    d, base = _object(data, path, NetworkAdapter), NetworkAdapter()
    mac = _opt_str(_field(d, "mac", path, base.mac), f"{path}.mac", "a MAC address or null")
    return NetworkAdapter(
        kind=_choice(_field(d, "kind", path, base.kind), f"{path}.kind", AdapterKind),
        switch=_opt_str(_field(d, "switch", path, base.switch), f"{path}.switch"),
        mac_mode=_choice(_field(d, "mac_mode", path, base.mac_mode), f"{path}.mac_mode", MacMode),
        mac=None if mac is None else normalise_mac(mac, setting=f"{path}.mac"),
        vlan_id=_opt_int(
            _field(d, "vlan_id", path, base.vlan_id), f"{path}.vlan_id", ranges.VLAN_ID
        ),
        trunk_vlans=_vlan_list(_field(d, "trunk_vlans", path, []), f"{path}.trunk_vlans"),
        native_vlan=_opt_int(
            _field(d, "native_vlan", path, base.native_vlan), f"{path}.native_vlan",
            ranges.VLAN_ID,
        ),
    )


def _vlan_list(data: Any, setting: str) -> tuple[int, ...]:
    items = _list(data, setting, f"a list of VLAN ids ({ranges.VLAN_ID.text})")
    return tuple(_int(item, f"{setting}[{i}]", ranges.VLAN_ID) for i, item in enumerate(items))


def _com(data: Any, path: str) -> ComPort:
    d, base = _object(data, path, ComPort), ComPort()
    return ComPort(
        kind=_choice(_field(d, "kind", path, base.kind), f"{path}.kind", ComKind),
        path=_opt_str(_field(d, "path", path, base.path), f"{path}.path"),
        address=_opt_str(_field(d, "address", path, base.address), f"{path}.address"),
    )


def _floppy(data: Any) -> FloppyDrive:
    d = _object(data, "floppy", FloppyDrive)
    return FloppyDrive(path=_opt_str(_field(d, "path", "floppy", None), "floppy.path"))


def _automatic_start(data: Any) -> AutomaticStart:
    d, base = _object(data, "automatic_start", AutomaticStart), AutomaticStart()
    return AutomaticStart(
        action=_choice(
            _field(d, "action", "automatic_start", base.action),
            "automatic_start.action",
            StartAction,
        ),
        delay_s=_int(
            _field(d, "delay_s", "automatic_start", base.delay_s),
            "automatic_start.delay_s",
            ranges.START_DELAY_S,
        ),
    )


def _automatic_stop(data: Any) -> AutomaticStop:
    d, base = _object(data, "automatic_stop", AutomaticStop), AutomaticStop()
    return AutomaticStop(
        action=_choice(
            _field(d, "action", "automatic_stop", base.action), "automatic_stop.action", StopAction
        ),
    )


def _integration(data: Any) -> IntegrationServices:
    d, base = _object(data, "integration_services", IntegrationServices), IntegrationServices()
    return IntegrationServices(**{
        f.name: _bool(_field(d, f.name, "integration_services", getattr(base, f.name)),
                      f"integration_services.{f.name}")
        for f in dataclasses.fields(IntegrationServices)
    })


def _names(data: Any, setting: str) -> tuple[str, ...]:
    items = _list(data, setting, "a list of names")
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip() or item != item.strip():
            raise InvalidSetting(f"{setting}[{i}]", item, "a non-empty name")
    return tuple(items)


def _high_availability(data: Any) -> HighAvailability:
    path = "high_availability"
    d, base = _object(data, path, HighAvailability), HighAvailability()
    return HighAvailability(
        ha=_bool(_field(d, "ha", path, base.ha), f"{path}.ha"),
        priority=_choice(_field(d, "priority", path, base.priority), f"{path}.priority",
                         FailoverPriority),
        preferred_hosts=_names(_field(d, "preferred_hosts", path, ()),
                               f"{path}.preferred_hosts"),
        anti_affinity=_names(_field(d, "anti_affinity", path, ()), f"{path}.anti_affinity"),
        failback=_bool(_field(d, "failback", path, base.failback), f"{path}.failback"),
        preferred_site=_site(_field(d, "preferred_site", path, base.preferred_site),
                             f"{path}.preferred_site"),
        failback_window=_hours(_field(d, "failback_window", path, None),
                               f"{path}.failback_window"),
    )


def _hours(value: Any, setting: str) -> tuple[int, int] | None:
    """``[start, end]`` hours 0-23 (start != end), or None."""
    if value is None:
        return None
    allowed = "[START, END] hours 0-23 that differ (e.g. [22, 6]), or null"
    items = _list(value, setting, allowed)
    if len(items) != 2 or not all(isinstance(h, int) and not isinstance(h, bool)
                                  and 0 <= h <= 23 for h in items) or items[0] == items[1]:
        raise InvalidSetting(setting, value, allowed)
    return int(items[0]), int(items[1])


def _site(value: Any, setting: str) -> str:
    """A cluster site name ("" for none), as ``cluster create/join --site`` accepts."""
    text = _str(value, setting, "a site name or \"\"")
    if text and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", text):
        raise InvalidSetting(setting, value, "1-63 letters, digits, '.', '_', '-' "
                             "(starting with a letter or digit), or \"\" for none")
    return text

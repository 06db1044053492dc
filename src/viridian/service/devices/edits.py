"""Pure edits of a VM's settings for the device commands (``vm disk|dvd|floppy|nic|com``).

Each function takes the VM's current, typed settings and returns a *patch* (the
top-level keys it changes, each whole, in the API's dict shape: docs/api.md,
"Settings") for the service's one settings path (validation, the Hyper-V rules for
running VMs, hot plug, commit). Refusals that only these commands can phrase well — an
occupied location, a full SCSI controller, a DVD drive on SCSI, no such drive or
adapter — are raised here, naming what is allowed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from viridian.errors import BadRequest, Conflict, InvalidSetting, NotFound
from viridian.model import (
    AdapterKind,
    DriveKind,
    IdeDrive,
    MacMode,
    NetworkAdapter,
    ScsiController,
    ScsiDisk,
    VMSettings,
    limits,
    to_dict,
)
from viridian.model.address import parse_address
from viridian.model.mac import normalise_mac

Patch = dict[str, Any]
IDE_SLOTS = [(c, loc) for c in range(limits.IDE_CONTROLLERS) for loc in range(limits.IDE_LOCATIONS)]
ALLOWED_IDE = "0:0, 0:1, 1:0 or 1:1 (controller:location)"
ALLOWED_SCSI = (
    f"C:L with controller C 0..{limits.SCSI_CONTROLLERS - 1} and location L "
    f"0..{limits.SCSI_DISKS_PER_CONTROLLER - 1} (or just C: the first free location)"
)


def parse_location(bus: str, text: str) -> tuple[int, int | None]:
    """``"C:L"`` (or ``"C"`` on SCSI) → (controller, location or None)."""
    controller, _, location = str(text).partition(":")
    allowed = ALLOWED_IDE if bus == "ide" else ALLOWED_SCSI
    most = (
        (limits.IDE_CONTROLLERS, limits.IDE_LOCATIONS)
        if bus == "ide"
        else (limits.SCSI_CONTROLLERS, limits.SCSI_DISKS_PER_CONTROLLER)
    )
    ok = controller.isdigit() and int(controller) < most[0]
    in_range = location.isdigit() and int(location) < most[1]
    ok = ok and (in_range or (bus == "scsi" and not location))
    if not ok:
        raise InvalidSetting("location", text, allowed)
    return int(controller), int(location) if location else None


def _ide_location(text: str) -> tuple[int, int]:
    """``"C:L"`` on IDE (both numbers required)."""
    controller, location = parse_location("ide", text)
    assert location is not None  # parse_location requires it on IDE
    return controller, location


def _patch(settings: VMSettings, **changes: Any) -> Patch:
    """The patch setting the top-level ``changes`` (typed) in the API's dict shape."""
    plain = to_dict(replace(settings, **changes))
    return {key: plain[key] for key in changes}


# --- disks -----------------------------------------------------------------------------


def add_disk(settings: VMSettings, bus: str, location: str, path: str | None,
             dvd: bool) -> Patch:
    """Patch adding a hard disk (or, on IDE, a DVD drive) at ``location``."""
    if bus == "scsi" and dvd:
        raise InvalidSetting(
            "controller",
            "scsi",
            "ide for a DVD drive (SCSI controllers hold hard disks only)",
            reason="DVD drives attach to IDE only, as in Hyper-V generation 1",
        )
    if not dvd and not path:
        raise BadRequest("a hard disk needs a virtual hard disk file: give --path DISK")
    if bus == "ide":
        return _add_ide(settings, location, path, dvd)
    return _add_scsi(settings, location, path or "")


def _add_ide(settings: VMSettings, location: str, path: str | None, dvd: bool) -> Patch:
    controller, slot = _ide_location(location)
    used = {(d.controller, d.location): d for d in settings.ide}
    if (controller, slot) in used:
        free = ", ".join(f"{c}:{loc}" for c, loc in IDE_SLOTS if (c, loc) not in used) or "none"
        raise Conflict(
            f"IDE {controller}:{slot} is already used by {_drive_text(used[(controller, slot)])}; "
            f"free IDE locations: {free}; nothing was changed",
            location=f"{controller}:{slot}",
        )
    new = IdeDrive(controller, slot, DriveKind.DVD if dvd else DriveKind.HARD_DISK, path)
    ordered = sorted([*settings.ide, new], key=lambda d: (d.controller, d.location))
    return _patch(settings, ide=tuple(ordered))


def _drive_text(drive: IdeDrive) -> str:
    kind = "a DVD drive" if drive.kind is DriveKind.DVD else "a hard disk"
    return f"{kind} ({drive.path or 'empty'})"


def _add_scsi(settings: VMSettings, location: str, path: str) -> Patch:
    number, slot = parse_location("scsi", location)
    controllers = {c.controller: c for c in settings.scsi}
    controller = controllers.get(number, ScsiController(number))
    disks = controller.disks
    if len(disks) >= limits.SCSI_DISKS_PER_CONTROLLER:
        raise Conflict(
            f"SCSI controller {number} already holds {len(disks)} hard disks, the most a SCSI "
            f"controller can hold ({limits.SCSI_DISKS_PER_CONTROLLER}); use another SCSI "
            f"controller (0..{limits.SCSI_CONTROLLERS - 1}); nothing was changed",
            controller=number,
        )
    used = {d.location: d for d in disks}
    if slot is None:
        slot = min(set(range(limits.SCSI_DISKS_PER_CONTROLLER)) - used.keys())
    if slot in used:
        raise Conflict(
            f"SCSI {number}:{slot} is already used by the hard disk {used[slot].path}; "
            f"give a free location (or only the controller, --location {number}, for the "
            "first free one); nothing was changed",
            location=f"{number}:{slot}",
        )
    added = tuple(sorted([*disks, ScsiDisk(slot, path)], key=lambda d: d.location))
    controllers[number] = replace(controller, disks=added)
    return _patch(settings, scsi=tuple(controllers[n] for n in sorted(controllers)))


def remove_disk(settings: VMSettings, bus: str, location: str) -> Patch:
    """Patch removing the drive at ``location`` (an empty SCSI controller stays)."""
    controller, slot = parse_location(bus, location)
    if bus == "ide":
        kept = tuple(d for d in settings.ide if (d.controller, d.location) != (controller, slot))
        if len(kept) == len(settings.ide):
            raise NotFound(_no_drive("IDE", controller, slot, settings.ide), location=location)
        return _patch(settings, ide=kept)
    for entry in settings.scsi:
        left = tuple(d for d in entry.disks if d.location != slot)
        if entry.controller == controller and len(left) < len(entry.disks):
            return _patch(settings, scsi=tuple(replace(c, disks=left) if c is entry else c
                                               for c in settings.scsi))
    raise NotFound(
        f"there is no hard disk at SCSI {location}; see 'viridian vm show'", location=location
    )


def _no_drive(bus: str, controller: int, slot: int | None, drives: Sequence[IdeDrive]) -> str:
    used = ", ".join(f"{d.controller}:{d.location}" for d in drives) or "none"
    return f"there is no drive at {bus} {controller}:{slot}; used IDE locations: {used}"


# --- media -----------------------------------------------------------------------------


def set_dvd_media(settings: VMSettings, path: str | None, location: str | None) -> Patch:
    """Patch putting ``path`` (None: eject) into a DVD drive: the one at ``location``,
    else the first DVD drive in controller:location order."""
    dvds = sorted((d for d in settings.ide if d.kind is DriveKind.DVD),
                  key=lambda d: (d.controller, d.location))
    if location is not None:
        wanted = _ide_location(location)
        dvds = [d for d in dvds if (d.controller, d.location) == wanted]
    if not dvds:
        where = f" at IDE {location}" if location else ""
        raise NotFound(
            f"the VM has no DVD drive{where}; add one with 'viridian vm disk add NAME "
            "--controller ide --location 1:0 --dvd' (the VM must be Off)",
            location=location,
        )
    target = dvds[0]
    return _patch(settings, ide=tuple(replace(d, path=path, format=None) if d is target else d
                                      for d in settings.ide))


def set_floppy_media(path: str | None) -> Patch:
    return {"floppy": {"path": path}}


# --- network adapters --------------------------------------------------------------------


def add_adapter(
    settings: VMSettings,
    legacy: bool,
    switch: str | None,
    mac: str | None,
    vlan: str | None,
    trunk: str | None = None,
    native: str | None = None,
) -> Patch:
    """Patch adding an adapter with the model's defaults (:class:`NetworkAdapter`)."""
    kind = AdapterKind.LEGACY if legacy else AdapterKind.SYNTHETIC
    adapter = _with_mac(NetworkAdapter(kind=kind, switch=switch), mac)
    adapter = _with_trunk(_with_vlan(adapter, vlan), trunk, native)
    return _patch(settings, network_adapters=(*settings.network_adapters, adapter))


def set_adapter(
    settings: VMSettings,
    index: int | None,
    legacy: bool | None,
    switch: str | None,
    mac: str | None,
    vlan: str | None,
    trunk: str | None = None,
    native: str | None = None,
) -> Patch:
    """Patch changing adapter ``index`` (1-based, as ``vm show`` numbers them).
    ``switch`` "none" disconnects; ``vlan`` "none" clears the VLAN id. A ``vlan`` makes
    the adapter an access port, a ``trunk`` ("10,20-22") a trunk port with ``native``."""
    adapters = list(settings.network_adapters)
    number = pick_adapter(adapters, index) - 1
    adapter = adapters[number]
    if legacy is not None:
        adapter = replace(adapter, kind=AdapterKind.LEGACY if legacy else AdapterKind.SYNTHETIC)
    if switch is not None:
        adapter = replace(adapter, switch=None if switch == "none" else switch)
    if mac is not None:
        adapter = _with_mac(adapter, mac)
    adapters[number] = _with_trunk(_with_vlan(adapter, vlan), trunk, native)
    return _patch(settings, network_adapters=tuple(adapters))


def remove_adapter(settings: VMSettings, index: int | None) -> Patch:
    adapters = list(settings.network_adapters)
    del adapters[pick_adapter(adapters, index) - 1]
    return _patch(settings, network_adapters=tuple(adapters))


def pick_adapter(adapters: Sequence[NetworkAdapter], index: int | None) -> int:
    """The 1-based index of the adapter meant; the only one when ``index`` is None."""
    if not adapters:
        raise NotFound("the VM has no network adapter; add one with 'viridian vm nic add NAME'")
    if index is None:
        if len(adapters) == 1:
            return 1
        raise BadRequest(
            f"the VM has {len(adapters)} network adapters; name one with --index "
            f"1..{len(adapters)} (the numbers 'viridian vm show' uses)"
        )
    if not 1 <= index <= len(adapters):
        raise NotFound(
            f"there is no network adapter {index}; allowed: --index 1..{len(adapters)}",
            index=index,
        )
    return index


def _with_mac(adapter: NetworkAdapter, mac: str | None) -> NetworkAdapter:
    """``mac`` None or "dynamic": a dynamic MAC (a static one is given up); else static."""
    if mac is None or mac.lower() == "dynamic":
        kept = adapter.mac if adapter.mac_mode is MacMode.DYNAMIC else None
        return replace(adapter, mac_mode=MacMode.DYNAMIC, mac=kept)
    return replace(adapter, mac_mode=MacMode.STATIC, mac=normalise_mac(mac, setting="mac"))


def _with_vlan(adapter: NetworkAdapter, vlan: str | None) -> NetworkAdapter:
    """``vlan`` given: an access port on it ("none": untagged)."""
    if vlan is None:
        return adapter
    access = replace(adapter, trunk_vlans=(), native_vlan=None)
    if vlan.lower() == "none":
        return replace(access, vlan_id=None)
    return replace(access, vlan_id=_vlan_number("vlan", vlan))


def _vlan_number(option: str, text: str) -> int:
    text = text.strip()
    if not text.isdigit() or not limits.VLAN_MIN <= int(text) <= limits.VLAN_MAX:
        raise InvalidSetting(option, text, f"{limits.VLAN_MIN}..{limits.VLAN_MAX} or none")
    return int(text)


def _with_trunk(adapter: NetworkAdapter, trunk: str | None,
                native: str | None) -> NetworkAdapter:
    """Trunk mode: ``trunk`` lists VLAN ids and ranges ("10,20-22"); ``native`` (or
    "none" = VLAN 1) is the VLAN of untagged frames. ``trunk`` "none" = access mode."""
    if trunk is not None and trunk.lower() == "none":
        adapter = replace(adapter, trunk_vlans=(), native_vlan=None)
    elif trunk is not None:
        adapter = replace(adapter, trunk_vlans=tuple(parse_vlan_list(trunk)), vlan_id=None)
    if native is not None and not adapter.trunk_vlans:
        raise BadRequest(
            "--native needs a trunk: give --trunk IDS too (an access port uses --vlan ID)"
        )
    if native is not None:
        vlan = None if native.lower() == "none" else _vlan_number("native", native)
        adapter = replace(adapter, native_vlan=vlan)
    return adapter


def parse_vlan_list(text: str) -> list[int]:
    """``"10,20-22"`` → [10, 20, 21, 22] (sorted, each once)."""
    vlans: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        first, last = _vlan_number("trunk", low), _vlan_number("trunk", high or low)
        if first > last:
            raise InvalidSetting("trunk", part, "ranges written low-high, e.g. 20-22")
        vlans.update(range(first, last + 1))
    if not vlans:
        raise InvalidSetting("trunk", text, "VLAN ids and ranges, e.g. 10,20-22, or none")
    return sorted(vlans)


# --- COM ports -----------------------------------------------------------------------------


def set_com(port: int, pipe: str | None, remote: str | None, none: bool) -> Patch:
    """Patch for COM``port``: exactly one of a pipe path ("" = the runtime folder's default
    socket), a remote ``HOST:PORT``, or none."""
    if port not in limits.COM_PORTS:
        raise InvalidSetting("port", port, "1 or 2")
    given = [x for x in (pipe is not None, remote is not None, none) if x]
    if len(given) != 1:
        raise BadRequest("give exactly one of --pipe PATH, --remote HOST:PORT or --none")
    key = f"com{port}"
    if remote is not None:
        parse_address(remote, setting=f"{key}.address")
        return {key: {"kind": "remote", "path": None, "address": remote}}
    if pipe is not None:
        return {key: {"kind": "pipe", "path": pipe or None, "address": None}}
    return {key: {"kind": "none", "path": None, "address": None}}

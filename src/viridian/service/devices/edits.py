"""Pure edits of a VM's settings dict for the device commands (``vm disk|dvd|floppy|nic|com``).

Each function takes the VM's full, current settings dict (docs/api.md shape) and returns a
*patch* (the top-level keys it changes, each whole) for the service's one settings path
(validation, the Hyper-V rules for running VMs, hot plug, commit). Refusals that only
these commands can phrase well — an occupied location, a full SCSI controller, a DVD
drive on SCSI, no such drive or adapter — are raised here, naming what is allowed.
"""

from __future__ import annotations

import copy
from typing import Any

from viridian.errors import BadRequest, Conflict, InvalidSetting, NotFound
from viridian.model import AdapterKind, NetworkAdapter, limits
from viridian.model.address import parse_address
from viridian.model.mac import normalise_mac
from viridian.service.switches.service import to_dict_adapter

Settings = dict[str, Any]
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


# --- disks -----------------------------------------------------------------------------


def add_disk(settings: Settings, bus: str, location: str, path: str | None, dvd: bool) -> Settings:
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


def _add_ide(settings: Settings, location: str, path: str | None, dvd: bool) -> Settings:
    controller, slot = parse_location("ide", location)
    drives = settings.get("ide", [])
    used = {(d["controller"], d["location"]): d for d in drives}
    if (controller, slot) in used:
        free = ", ".join(f"{c}:{loc}" for c, loc in IDE_SLOTS if (c, loc) not in used) or "none"
        raise Conflict(
            f"IDE {controller}:{slot} is already used by {_drive_text(used[(controller, slot)])}; "
            f"free IDE locations: {free}; nothing was changed",
            location=f"{controller}:{slot}",
        )
    new = {
        "controller": controller,
        "location": slot,
        "kind": "dvd" if dvd else "hard_disk",
        "path": path,
        "format": None,
    }
    ordered = sorted([*drives, new], key=lambda d: (d["controller"], d["location"]))
    return {"ide": ordered}


def _drive_text(drive: dict[str, Any]) -> str:
    kind = "a DVD drive" if drive["kind"] == "dvd" else "a hard disk"
    return f"{kind} ({drive.get('path') or 'empty'})"


def _add_scsi(settings: Settings, location: str, path: str) -> Settings:
    number, slot = parse_location("scsi", location)
    controllers = copy.deepcopy(settings.get("scsi", []))
    controller = next((c for c in controllers if c["controller"] == number), None)
    if controller is None:
        controller = {"controller": number, "disks": []}
        controllers = sorted([*controllers, controller], key=lambda c: c["controller"])
    disks = controller["disks"]
    if len(disks) >= limits.SCSI_DISKS_PER_CONTROLLER:
        raise Conflict(
            f"SCSI controller {number} already holds {len(disks)} hard disks, the most a SCSI "
            f"controller can hold ({limits.SCSI_DISKS_PER_CONTROLLER}); use another SCSI "
            f"controller (0..{limits.SCSI_CONTROLLERS - 1}); nothing was changed",
            controller=number,
        )
    used = {d["location"]: d for d in disks}
    if slot is None:
        slot = min(set(range(limits.SCSI_DISKS_PER_CONTROLLER)) - used.keys())
    if slot in used:
        raise Conflict(
            f"SCSI {number}:{slot} is already used by the hard disk {used[slot]['path']}; "
            f"give a free location (or only the controller, --location {number}, for the "
            "first free one); nothing was changed",
            location=f"{number}:{slot}",
        )
    disks.append({"location": slot, "path": path, "format": None})
    disks.sort(key=lambda d: d["location"])
    return {"scsi": controllers}


def remove_disk(settings: Settings, bus: str, location: str) -> Settings:
    """Patch removing the drive at ``location`` (an empty SCSI controller stays)."""
    controller, slot = parse_location(bus, location)
    if bus == "ide":
        drives = settings.get("ide", [])
        kept = [d for d in drives if (d["controller"], d["location"]) != (controller, slot)]
        if len(kept) == len(drives):
            raise NotFound(_no_drive("IDE", controller, slot, drives), location=location)
        return {"ide": kept}
    controllers = copy.deepcopy(settings.get("scsi", []))
    for entry in controllers:
        if entry["controller"] == controller:
            before = len(entry["disks"])
            entry["disks"] = [d for d in entry["disks"] if d["location"] != slot]
            if len(entry["disks"]) < before:
                return {"scsi": controllers}
    raise NotFound(
        f"there is no hard disk at SCSI {location}; see 'viridian vm show'", location=location
    )


def _no_drive(bus: str, controller: int, slot: int | None, drives: list[dict[str, Any]]) -> str:
    used = ", ".join(f"{d['controller']}:{d['location']}" for d in drives) or "none"
    return f"there is no drive at {bus} {controller}:{slot}; used IDE locations: {used}"


# --- media -----------------------------------------------------------------------------


def set_dvd_media(settings: Settings, path: str | None, location: str | None) -> Settings:
    """Patch putting ``path`` (None: eject) into a DVD drive: the one at ``location``,
    else the first DVD drive in controller:location order."""
    drives = copy.deepcopy(settings.get("ide", []))
    dvds = sorted(
        (d for d in drives if d["kind"] == "dvd"), key=lambda d: (d["controller"], d["location"])
    )
    if location is not None:
        controller, slot = parse_location("ide", location)
        dvds = [d for d in dvds if (d["controller"], d["location"]) == (controller, slot)]
    if not dvds:
        where = f" at IDE {location}" if location else ""
        raise NotFound(
            f"the VM has no DVD drive{where}; add one with 'viridian vm disk add NAME "
            "--controller ide --location 1:0 --dvd' (the VM must be Off)",
            location=location,
        )
    dvds[0]["path"], dvds[0]["format"] = path, None
    return {"ide": drives}


def set_floppy_media(path: str | None) -> Settings:
    return {"floppy": {"path": path}}


# --- network adapters --------------------------------------------------------------------


def add_adapter(
    settings: Settings,
    legacy: bool,
    switch: str | None,
    mac: str | None,
    vlan: str | None,
    trunk: str | None = None,
    native: str | None = None,
) -> Settings:
    """Patch adding an adapter with the model's defaults (:class:`NetworkAdapter`)."""
    kind = AdapterKind.LEGACY if legacy else AdapterKind.SYNTHETIC
    adapter = to_dict_adapter(NetworkAdapter(kind=kind, switch=switch))
    _apply_mac(adapter, mac)
    _apply_vlan(adapter, vlan)
    _apply_trunk(adapter, trunk, native)
    return {"network_adapters": [*settings.get("network_adapters", []), adapter]}


def set_adapter(
    settings: Settings,
    index: int | None,
    legacy: bool | None,
    switch: str | None,
    mac: str | None,
    vlan: str | None,
    trunk: str | None = None,
    native: str | None = None,
) -> Settings:
    """Patch changing adapter ``index`` (1-based, as ``vm show`` numbers them).
    ``switch`` "none" disconnects; ``vlan`` "none" clears the VLAN id. A ``vlan`` makes
    the adapter an access port, a ``trunk`` ("10,20-22") a trunk port with ``native``."""
    adapters = copy.deepcopy(settings.get("network_adapters", []))
    adapter = adapters[pick_adapter(adapters, index) - 1]
    if legacy is not None:
        adapter["kind"] = "legacy" if legacy else "synthetic"
    if switch is not None:
        adapter["switch"] = None if switch == "none" else switch
    if mac is not None:
        _apply_mac(adapter, mac)
    if vlan is not None:
        _apply_vlan(adapter, vlan)
    _apply_trunk(adapter, trunk, native)
    return {"network_adapters": adapters}


def remove_adapter(settings: Settings, index: int | None) -> Settings:
    adapters = list(settings.get("network_adapters", []))
    del adapters[pick_adapter(adapters, index) - 1]
    return {"network_adapters": adapters}


def pick_adapter(adapters: list[dict[str, Any]], index: int | None) -> int:
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


def _apply_mac(adapter: dict[str, Any], mac: str | None) -> None:
    if mac is None or mac.lower() == "dynamic":
        if adapter.get("mac_mode") != "dynamic":
            adapter["mac"] = None
        adapter["mac_mode"] = "dynamic"
        return
    adapter["mac_mode"], adapter["mac"] = "static", normalise_mac(mac, setting="mac")


def _apply_vlan(adapter: dict[str, Any], vlan: str | None) -> None:
    if vlan is None:
        return
    adapter["trunk_vlans"], adapter["native_vlan"] = [], None  # access mode
    if vlan.lower() == "none":
        adapter["vlan_id"] = None
        return
    adapter["vlan_id"] = _vlan_number("vlan", vlan)


def _vlan_number(option: str, text: str) -> int:
    text = text.strip()
    if not text.isdigit() or not limits.VLAN_MIN <= int(text) <= limits.VLAN_MAX:
        raise InvalidSetting(option, text, f"{limits.VLAN_MIN}..{limits.VLAN_MAX} or none")
    return int(text)


def _apply_trunk(adapter: dict[str, Any], trunk: str | None, native: str | None) -> None:
    """Trunk mode: ``trunk`` lists VLAN ids and ranges ("10,20-22"); ``native`` (or
    "none" = VLAN 1) is the VLAN of untagged frames. ``trunk`` "none" = access mode."""
    if trunk is not None and trunk.lower() == "none":
        adapter["trunk_vlans"], adapter["native_vlan"] = [], None
    elif trunk is not None:
        adapter["trunk_vlans"], adapter["vlan_id"] = parse_vlan_list(trunk), None
    if native is not None and not adapter.get("trunk_vlans"):
        raise BadRequest(
            "--native needs a trunk: give --trunk IDS too (an access port uses --vlan ID)"
        )
    if native is not None:
        adapter["native_vlan"] = (
            None if native.lower() == "none" else _vlan_number("native", native)
        )


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


def set_com(port: int, pipe: str | None, remote: str | None, none: bool) -> Settings:
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

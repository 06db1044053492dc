"""Reading an OVF descriptor (DMTF DSP0243, OVF 0.9, 1.x and 2.x) into what a viridian
VM can hold (pure).

The VirtualSystem's VirtualHardwareSection is read item by item (``Item``, and OVF 2's
``StorageItem`` and ``EthernetPortItem``), by CIM ResourceType (DSP0243 §9 and the
CIM_ResourceAllocationSettingData value map): 3 processors, 4 memory, 5 IDE controller,
6 SCSI controller, 20 other storage controller (SATA), 10 Ethernet adapter, 15/16 CD/DVD
drive, 17 disk drive. Element and attribute names are matched by local name, so the
envelope namespaces of every OVF version read alike. Items of a deployment option other
than the default one are skipped. What cannot be mapped (video, USB, sound, a disk on a
controller that is not there…) is listed in :attr:`OvfSystem.unmapped`, never dropped
silently. References that name nothing (a disk drive whose Disk is not in the
DiskSection, a drive whose Parent is no controller) are in :attr:`OvfSystem.broken`:
such a package is refused on import.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from viridian.errors import BadRequest

PROCESSOR, MEMORY, IDE, SCSI, ETHERNET = "3", "4", "5", "6", "10"
OTHER_STORAGE, CD_DRIVE, DVD_DRIVE, DISK_DRIVE = "20", "15", "16", "17"
CONTROLLERS = {IDE: "ide", SCSI: "scsi", OTHER_STORAGE: "sata"}
UNIT = re.compile(r"^\s*byte\s*(?:\*\s*(\d+)\s*\^\s*(\d+))?\s*$", re.IGNORECASE)
NAMED_UNITS = {"bytes": 1, "kilobytes": 1 << 10, "megabytes": 1 << 20, "gigabytes": 1 << 30,
               "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}


@dataclass(frozen=True)
class OvfDrive:
    """A disk or CD/DVD drive on its controller: ``bus`` ``ide``, ``scsi`` or ``sata``
    (the controller's kind), ``controller`` its number among controllers of that kind."""

    kind: str  # "hard_disk" | "dvd"
    bus: str
    controller: int
    location: int
    file: str | None  # the File's href in the package (None: an empty drive / blank disk)
    format: str | None  # the Disk's format URI
    capacity: int | None  # bytes (disks)


@dataclass(frozen=True)
class OvfNic:
    adapter_type: str
    network: str | None
    address: str | None = None  # rasd:Address: the adapter's MAC, as the package wrote it


@dataclass(frozen=True)
class OvfSystem:
    name: str
    memory_mb: int | None
    processors: int | None
    drives: tuple[OvfDrive, ...]
    nics: tuple[OvfNic, ...]
    unmapped: tuple[str, ...] = field(default=())
    files: dict[str, str] = field(default_factory=dict)  # File id → href
    sizes: dict[str, int] = field(default_factory=dict)  # href → ovf:size (when given)
    broken: tuple[str, ...] = field(default=())


def parse_ovf(text: bytes, where: str = "the OVF descriptor") -> OvfSystem:
    """The first virtual system of the descriptor ``text``.

    :raises BadRequest: not XML, not an OVF envelope, or no virtual system in it.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise BadRequest(f"{where} is not XML ({err}); nothing was changed") from err
    if _local(root.tag) != "Envelope":
        raise BadRequest(f"{where} is not an OVF envelope (root element {_local(root.tag)}); "
                         "nothing was changed")
    files = {_attr(f, "id") or "": _attr(f, "href") or "" for f in _all(root, "File")}
    sizes = {_attr(f, "href") or "": size for f in _all(root, "File")
             if (size := _int(_attr(f, "size"))) is not None}
    disks = {_attr(d, "diskId") or "": d for d in _all(root, "Disk")}
    system = next((e for e in root.iter() if _is(e, "VirtualSystem")), None)
    if system is None:
        raise BadRequest(f"{where} holds no VirtualSystem; nothing was changed")
    hardware = next((e for e in system.iter() if _is(e, "VirtualHardwareSection")), None)
    items = [] if hardware is None else [
        i for i in hardware if _local(i.tag) in ("Item", "StorageItem", "EthernetPortItem")
        and _in_default_profile(i, _default_profile(root))]
    name = _text(system, "Name") or _attr(system, "id") or "imported"
    return replace(_System(name, items, files, disks).read(), sizes=sizes)


class _System:
    def __init__(self, name: str, items: list[ET.Element], files: dict[str, str],
                 disks: dict[str, ET.Element]) -> None:
        self.name, self.items, self.files, self.disks = name, items, files, disks
        self.unmapped: list[str] = []
        self.broken: list[str] = []
        self.controllers: dict[str, tuple[str, int]] = {}

    def read(self) -> OvfSystem:
        memory = processors = None
        taken: set[tuple[str, int]] = set()
        for item in self.items:  # controllers first: drives name them by InstanceID
            kind = CONTROLLERS.get(_text(item, "ResourceType") or "")
            if kind:  # numbered by their Address when it is a free number, else counted
                address = _int(_text(item, "Address"))
                number = address if address is not None and 0 <= address < 64 and \
                    (kind, address) not in taken else \
                    next(n for n in range(len(taken) + 1) if (kind, n) not in taken)
                taken.add((kind, number))
                self.controllers[_text(item, "InstanceID") or ""] = (kind, number)
        drives: list[OvfDrive] = []
        nics: list[OvfNic] = []
        for item in self.items:
            rtype = _text(item, "ResourceType") or ""
            if rtype == PROCESSOR:
                processors = _int(_text(item, "VirtualQuantity"))
            elif rtype == MEMORY:
                memory = self._memory_mb(item)
            elif rtype in CONTROLLERS:
                continue
            elif rtype in (CD_DRIVE, DVD_DRIVE, DISK_DRIVE):
                drive = self._drive(item, rtype)
                if drive:
                    drives.append(drive)
            elif rtype == ETHERNET:
                nics.append(OvfNic(_text(item, "ResourceSubType") or "unspecified",
                                   _text(item, "Connection"), _text(item, "Address")))
            else:
                self.unmapped.append(f"{_label(item)} (ResourceType {rtype or '?'})")
        return OvfSystem(self.name, memory, processors, tuple(drives), tuple(nics),
                         tuple(self.unmapped), dict(self.files), {}, tuple(self.broken))

    def _broken(self, problem: str) -> None:
        self.unmapped.append(problem)
        self.broken.append(problem)

    def _memory_mb(self, item: ET.Element) -> int | None:
        quantity = _int(_text(item, "VirtualQuantity"))
        unit = _unit_bytes(_text(item, "AllocationUnits") or "byte * 2^20")
        if quantity is None or unit is None:
            self.unmapped.append(f"{_label(item)}: memory quantity or unit not understood")
            return None
        return quantity * unit // (1 << 20)

    def _drive(self, item: ET.Element, rtype: str) -> OvfDrive | None:
        parent = self.controllers.get(_text(item, "Parent") or "")
        if parent is None:
            self._broken(f"{_label(item)}: its controller "
                         f"({_text(item, 'Parent') or 'none'}) is not in the package")
            return None
        location = _int(_text(item, "AddressOnParent")) or 0
        resource = _text(item, "HostResource") or ""
        if rtype != DISK_DRIVE:
            file_id = resource.rsplit("/", 1)[-1] if "/file/" in resource else None
            return OvfDrive("dvd", *parent, location, self.files.get(file_id or ""), None, None)
        disk = self.disks.get(resource.rsplit("/", 1)[-1]) if "/disk/" in resource else None
        if disk is None:
            self._broken(f"{_label(item)}: disk reference {resource!r} names no Disk "
                         "of the DiskSection")
            return None
        file_ref = _attr(disk, "fileRef")
        capacity = _int(_attr(disk, "capacity"))
        unit = _unit_bytes(_attr(disk, "capacityAllocationUnits") or "byte")
        return OvfDrive("hard_disk", *parent, location, self.files.get(file_ref or ""),
                        _attr(disk, "format"),
                        capacity * unit if capacity is not None and unit else None)


def _unit_bytes(unit: str) -> int | None:
    """DSP0004 programmatic units (``byte * 2^20``) or the older names (``MegaBytes``)."""
    match = UNIT.match(unit)
    if match:
        base, power = match.groups()
        return int(base) ** int(power) if base else 1
    return NAMED_UNITS.get(unit.strip().lower())


def _default_profile(root: ET.Element) -> str | None:
    options = [c for c in root.iter() if _local(c.tag) == "Configuration"]
    chosen = [c for c in options if (_attr(c, "default") or "").lower() == "true"]
    candidates = chosen or options
    return _attr(candidates[0], "id") if candidates else None


def _in_default_profile(item: ET.Element, profile: str | None) -> bool:
    wanted = _attr(item, "configuration")
    return wanted is None or (profile is not None and profile in wanted.split())


def _is(element: ET.Element, section: str) -> bool:
    """``element`` is ``section`` — by name, or an OVF 0.9 ``Section``/``Content`` whose
    ``xsi:type`` is ``…section_Type``."""
    local = _local(element.tag)
    return local == section or (local in ("Section", "Content") and
                                (_attr(element, "type") or "").endswith(f"{section}_Type"))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _attr(element: ET.Element, name: str) -> str | None:
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return None


def _all(root: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in root.iter() if _local(e.tag) == name]


def _text(element: ET.Element, name: str) -> str | None:
    """The text of the first child named ``name`` (``InstanceId`` reads as
    ``InstanceID``: OVF 0.9 spells it so)."""
    for child in element:
        if _local(child.tag).lower() == name.lower():
            return (child.text or "").strip()
    return None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _label(item: ET.Element) -> str:
    return _text(item, "ElementName") or _text(item, "Caption") or \
        _text(item, "Description") or f"item {_text(item, 'InstanceID')}"

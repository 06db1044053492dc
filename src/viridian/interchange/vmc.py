"""Reading a Virtual Server 2005 / Virtual PC ``.vmc`` configuration (XML, usually
UTF-16) into the import plan of a foreign VM (pure).

``preferences/hardware``: ``memory/ram_size`` (MB); ``pci_bus/ide_adapter/
ide_controller[@id]/location[@id]`` drives (``drive_type`` 1 hard disk, 2 CD/DVD;
``pathname/relative`` and ``absolute`` — Windows paths, resolved at import beside the
``.vmc``); Virtual Server's ``pci_bus/scsi_adapter[@id]/location[@id]`` hard disks
(``drive_type``, ``pathname`` as above); ``pci_bus/ethernet_adapter/
ethernet_controller[@id]`` adapters (``virtual_network/name``, ``ethernet_card_address``
as bare hex). A single emulated processor (Virtual PC/Server give one); floppies, COM
ports, sound and undo disks are listed as not mapped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from viridian.errors import BadRequest
from viridian.interchange.foreign_plan import ForeignVM
from viridian.interchange.ovf import OvfDrive, OvfNic, OvfSystem
from viridian.interchange.xmltext import child, children, integer, local, parse_xml, text

HARD_DISK, CD = 1, 2


def parse_vmc(data: bytes, name: str, where: str = "the .vmc file") -> ForeignVM:
    """The VM described by the ``.vmc`` ``data``; ``name`` (the file's stem) names it.

    :raises BadRequest: not XML, or not a ``preferences`` document with ``hardware``.
    """
    root = parse_xml(data, where)
    hardware = child(root, "hardware")
    if local(root.tag) != "preferences" or hardware is None:
        raise BadRequest(f"{where} is not a Virtual PC/Virtual Server configuration "
                         "(preferences/hardware); nothing was changed")
    notes: list[str] = []
    bus = child(hardware, "pci_bus")
    drives = [*_ide(bus), *_scsi(bus, notes)]
    nics, macs = _nics(bus)
    if _has_file(child(hardware, "floppy")):
        notes.append("floppy drive image is not mapped")
    if child(root, "undo_drives") is not None and \
            (text(root, "undo_drives", "enabled") or "").lower() == "true":
        notes.append("undo disks are not kept (their changes are not merged)")
    if (text(hardware, "sound", "enabled") or "").lower() == "true":
        notes.append("sound card is not mapped")
    system = OvfSystem(name, integer(hardware, "memory", "ram_size"), 1, tuple(drives),
                       tuple(nics), tuple(notes))
    return ForeignVM("virtual-server", system, tuple(macs))


def drive_path(location: ET.Element) -> str | None:
    """The image of a drive: its ``relative`` path, else its ``absolute`` one."""
    return text(location, "pathname", "relative") or text(location, "pathname", "absolute")


def _ide(bus: ET.Element | None) -> list[OvfDrive]:
    drives = []
    for controller in children(child(bus, "ide_adapter"), "ide_controller"):
        for location in children(controller, "location"):
            kind = integer(location, "drive_type")
            path = drive_path(location)
            number, slot = _id(controller), _id(location)
            if kind == HARD_DISK and path:
                drives.append(OvfDrive("hard_disk", "ide", number, slot, path, "vpc", None))
            elif kind == CD:
                drives.append(OvfDrive("dvd", "ide", number, slot, path, None, None))
    return drives


def _scsi(bus: ET.Element | None, notes: list[str]) -> list[OvfDrive]:
    drives = []
    for adapter in children(bus, "scsi_adapter"):
        for location in children(adapter, "location"):
            path = drive_path(location)
            if integer(location, "drive_type") == HARD_DISK and path:
                drives.append(OvfDrive("hard_disk", "scsi", _id(adapter), _id(location),
                                       path, "vpc", None))
            elif path:
                notes.append(f"SCSI {_id(adapter)}:{_id(location)} {path}: not a hard disk, "
                             "left out")
    return drives


def _nics(bus: ET.Element | None) -> tuple[list[OvfNic], list[str | None]]:
    adapter = child(bus, "ethernet_adapter")
    count = integer(adapter, "controller_count")
    controllers = children(adapter, "ethernet_controller")
    if count is not None:
        controllers = controllers[:count]
    nics = [OvfNic("DEC 21140", text(c, "virtual_network", "name")) for c in controllers]
    return nics, [text(c, "ethernet_card_address") for c in controllers]


def _has_file(element: ET.Element | None) -> bool:
    return element is not None and any((e.text or "").strip() for e in element.iter()
                                       if local(e.tag) in ("absolute", "relative"))


def _id(element: ET.Element) -> int:
    try:
        return int(element.get("id", "0"))
    except ValueError:
        return 0

"""Reading the configuration XML of a Hyper-V 2008 / 2008 R2 VM (the ``<GUID>.xml`` of
its ``Virtual Machines`` folder, also what a configuration export holds) into the import
plan of a foreign VM (pure).

The document is ``configuration`` (UTF-16); devices are sections named after their
device class GUID: ``_83f8638b-8dca-4152-9eda-2ca8b33039b4_…`` the IDE controllers
(``controllerN/driveM``), ``_d422512d-2bf2-4752-809d-7b82b5fcb1b4_…`` a synthetic SCSI
controller (``controller0/driveM``), each drive with ``type`` (``VHD``, ``ISO``,
``NONE``) and ``pathname`` (a Windows path, resolved at import beside the file or in the
export's ``Virtual Hard Disks`` folder); any section with a ``MacAddress`` is a network
adapter (``FriendlyName``, ``Connection/AltSwitchName``, ``MacAddressIsStatic``); the
floppy section (``_8f0d2762-…``, type ``VFD``) is noted. ``properties/name`` names the VM;
``settings/memory/bank/size`` (MB, and ``dynamic_memory_enabled``) and
``settings/processors/count`` size it. Integration components of the manifest are
viridian's integration services and need no mapping.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from viridian.errors import BadRequest
from viridian.interchange.foreign_plan import ForeignVM
from viridian.interchange.ovf import OvfDrive, OvfNic, OvfSystem
from viridian.interchange.xmltext import child, integer, local, parse_xml, text

IDE_CLASS = "_83f8638b-8dca-4152-9eda-2ca8b33039b4_"
SCSI_CLASS = "_d422512d-2bf2-4752-809d-7b82b5fcb1b4_"
FLOPPY_CLASS = "_8f0d2762-0b00-4e04-af4f-19010527cb93_"
LEGACY_NIC = "Legacy Network Adapter"


def is_hyperv_config(root: ET.Element) -> bool:
    """``root`` is a Hyper-V 2008 configuration document."""
    return local(root.tag) == "configuration" and (
        child(root, "properties") is not None or child(root, "settings") is not None)


def parse_hyperv(data: bytes, where: str = "the Hyper-V configuration") -> ForeignVM:
    """The VM described by the Hyper-V 2008 configuration ``data``.

    :raises BadRequest: not XML, or not a Hyper-V configuration.
    """
    root = parse_xml(data, where)
    if not is_hyperv_config(root):
        raise BadRequest(f"{where} is not a Hyper-V 2008 configuration (configuration with "
                         "properties and settings); nothing was changed")
    notes: list[str] = []
    drives: list[OvfDrive] = []
    nics: list[OvfNic] = []
    macs: list[str | None] = []
    scsi_number = 0
    for section in root:
        tag = local(section.tag)
        if tag.startswith(IDE_CLASS):
            drives += _drives(section, "ide", None, notes)
        elif tag.startswith(SCSI_CLASS):
            drives += _drives(section, "scsi", scsi_number, notes)
            scsi_number += 1
        elif tag.startswith(FLOPPY_CLASS):
            image = text(section, "controller0", "drive0", "pathname")
            if image:
                notes.append(f"floppy image {image} is not mapped")
        elif child(section, "MacAddress") is not None:
            kind = text(section, "FriendlyName") or "Network Adapter"
            nics.append(OvfNic(kind, text(section, "Connection", "AltSwitchName")))
            static = (text(section, "MacAddressIsStatic") or "").lower() == "true"
            macs.append(text(section, "MacAddress") if static else None)
    memory = child(root, "settings", "memory", "bank")
    if (text(memory, "dynamic_memory_enabled") or "").lower() == "true":
        notes.append("dynamic memory setting not kept (startup memory is used)")
    name = text(root, "properties", "name") or "imported"
    system = OvfSystem(name, integer(memory, "size"),
                       integer(root, "settings", "processors", "count"), tuple(drives),
                       tuple(nics), tuple(notes))
    return ForeignVM("hyper-v-2008", system, tuple(macs))


def _drives(section: ET.Element, bus: str, scsi_number: int | None,
            notes: list[str]) -> list[OvfDrive]:
    drives = []
    for controller in section:
        name = local(controller.tag)
        if not name.startswith("controller"):
            continue
        number = scsi_number if scsi_number is not None else _suffix(name, "controller")
        for drive in controller:
            if not local(drive.tag).startswith("drive"):
                continue
            location = _suffix(local(drive.tag), "drive")
            kind = (text(drive, "type") or "NONE").upper()
            path = text(drive, "pathname")
            if kind == "VHD" and path:
                drives.append(OvfDrive("hard_disk", bus, number, location, path, None, None))
            elif kind == "ISO":
                drives.append(OvfDrive("dvd", bus, number, location, path, None, None))
            elif kind not in ("NONE", "VHD"):
                notes.append(f"{bus.upper()} {number}:{location}: drive type {kind} "
                             f"({path or 'no file'}) is not mapped")
    return drives


def _suffix(name: str, prefix: str) -> int:
    try:
        return int(name[len(prefix):])
    except ValueError:
        return 0

"""Reading a libvirt domain XML (https://libvirt.org/formatdomain.html) into the import
plan of a foreign VM (pure).

Read: ``name``; ``memory`` (or ``currentMemory``) with its ``unit`` (KiB when absent);
``vcpu``; ``os/type`` (``arch``, ``machine``: noted when not x86_64/i686 and a PC
machine); ``devices/disk`` with ``device`` disk or cdrom, ``driver/@type`` (raw, qcow2,
vmdk, vpc, vhdx…), ``source/@file`` (file disks only; block devices, network and volume
sources are listed as not mapped) and ``target/@bus`` + ``@dev`` (ide ``hda``…``hdd`` →
controller ``n // 2`` location ``n % 2``; scsi/sata/virtio disks by their order);
``devices/interface`` with ``mac/@address``, ``model/@type`` and its source network or
bridge. ``os/loader`` (UEFI), ``filesystem``, ``hostdev`` and similar are listed as not
mapped.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from viridian.errors import BadRequest
from viridian.interchange.foreign_plan import ForeignVM
from viridian.interchange.ovf import OvfDrive, OvfNic, OvfSystem
from viridian.interchange.xmltext import child, children, local, parse_xml, text

UNITS = {"b": 1, "bytes": 1, "k": 1 << 10, "kib": 1 << 10, "kb": 1000, "m": 1 << 20,
         "mib": 1 << 20, "mb": 10 ** 6, "g": 1 << 30, "gib": 1 << 30, "gb": 10 ** 9,
         "t": 1 << 40, "tib": 1 << 40, "tb": 10 ** 12}
NOTED_DEVICES = ("filesystem", "hostdev", "redirdev", "smartcard", "tpm", "sound",
                 "watchdog", "rng", "shmem", "iommu", "vsock")


def parse_domain(data: bytes, where: str = "the libvirt domain XML") -> ForeignVM:
    """The VM of the domain XML ``data``.

    :raises BadRequest: not XML, or no ``domain`` root.
    """
    root = parse_xml(data, where)
    if local(root.tag) != "domain":
        raise BadRequest(f"{where} is not a libvirt domain (root element "
                         f"{local(root.tag)}); nothing was changed")
    notes: list[str] = []
    _os_notes(child(root, "os"), notes)
    devices = child(root, "devices")
    drives = _disks(devices, notes)
    nics, macs = _interfaces(devices)
    for name in NOTED_DEVICES:
        for _ in children(devices, name):
            notes.append(f"{name} device is not mapped")
    memory = child(root, "memory") if child(root, "memory") is not None else \
        child(root, "currentMemory")
    system = OvfSystem(text(root, "name") or "imported", _memory_mb(memory),
                       _int(text(root, "vcpu")), tuple(drives), tuple(nics), tuple(notes))
    return ForeignVM("libvirt", system, tuple(macs))


def _os_notes(os_element: ET.Element | None, notes: list[str]) -> None:
    kind = child(os_element, "type")
    if kind is not None:
        arch, machine = kind.get("arch"), kind.get("machine") or ""
        if arch not in (None, "x86_64", "i686"):
            notes.append(f"architecture {arch} → x86_64 (viridian runs PC guests)")
        if machine and machine != "pc" and not machine.startswith("pc-i440fx"):
            notes.append(f"machine {machine} → pc-i440fx (generation 1)")
    if child(os_element, "loader") is not None:
        notes.append("firmware loader (UEFI) → BIOS (generation 1)")


def _disks(devices: ET.Element | None, notes: list[str]) -> list[OvfDrive]:
    drives: list[OvfDrive] = []
    other_bus: dict[str, int] = {}
    for disk in children(devices, "disk"):
        device = disk.get("device", "disk")
        target = child(disk, "target")
        bus = target.get("bus", "ide") if target is not None else "ide"
        dev = target.get("dev", "") if target is not None else ""
        source = child(disk, "source")
        path = source.get("file") if source is not None else None
        driver = child(disk, "driver")
        fmt = driver.get("type") if driver is not None else None
        if device not in ("disk", "cdrom"):
            notes.append(f"{device} {dev} is not mapped")
            continue
        if disk.get("type", "file") != "file" or (source is not None and path is None):
            notes.append(f"{device} {dev}: a {disk.get('type')} source is not mapped (only "
                         "file images are)")
            continue
        kind = "dvd" if device == "cdrom" else "hard_disk"
        if bus == "ide" and len(dev) == 3 and dev.startswith("hd"):
            number = ord(dev[2]) - ord("a")
            drives.append(OvfDrive(kind, "ide", number // 2, number % 2, path, fmt, None))
            continue
        mapped_bus = "scsi" if bus in ("scsi", "virtio", "sata") else bus
        index = other_bus.get(mapped_bus, 0)
        other_bus[mapped_bus] = index + 1
        if bus not in ("scsi", "ide"):
            notes.append(f"{device} {dev} on the {bus} bus → SCSI")
        drives.append(OvfDrive(kind, mapped_bus, 0, index, path, fmt, None))
    return drives


def _interfaces(devices: ET.Element | None) -> tuple[list[OvfNic], list[str | None]]:
    nics: list[OvfNic] = []
    macs: list[str | None] = []
    for interface in children(devices, "interface"):
        model = child(interface, "model")
        source = child(interface, "source")
        network = None if source is None else source.get("network") or source.get("bridge")
        nics.append(OvfNic(model.get("type", "rtl8139") if model is not None else "rtl8139",
                           network))
        mac = child(interface, "mac")
        macs.append(mac.get("address") if mac is not None else None)
    return nics, macs


def _memory_mb(memory: ET.Element | None) -> int | None:
    value = _int((memory.text or "").strip()) if memory is not None else None
    if memory is None or value is None:
        return None
    unit = UNITS.get(memory.get("unit", "KiB").lower())
    return value * unit // (1 << 20) if unit else None


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

"""Writing an OVF 1.x descriptor (DMTF DSP0243 1.1) for a viridian VM (pure).

OVF 1.x, not 2.x: it is the version every importer reads (VMware vSphere and ovftool,
VirtualBox — whose own default export is "OVF 1.0" — and the OVF 2 readers, which accept
1.x as well); OVF 2 adds nothing viridian needs. The envelope holds, in the order
DSP0243 §7 gives: ``References`` (one ``File`` per disk and per DVD image, with its
``ovf:size``), ``DiskSection`` (each disk's capacity in bytes and its format, a
streamOptimized VMDK), ``NetworkSection`` (one network per virtual switch an adapter is
connected to), then one ``VirtualSystem`` with its ``AnnotationSection`` (the VM's notes),
``OperatingSystemSection`` (id 1, "Other": viridian does not know the guest's OS) and
``VirtualHardwareSection``: a ``System`` (VSSD), then CIM RASD ``Item``s — processors
(3), memory (4, ``byte * 2^20``), the two IDE controllers (5), SCSI controllers (6),
disks (17, ``ovf:/disk/…``), DVD drives (15, ``ovf:/file/…`` or empty), and Ethernet
adapters (10, ``Address`` = MAC, ``Connection`` = network). RASD child elements are
written in the schema's (alphabetical) order. :mod:`viridian.interchange.ovf_check`
checks the result's structure; what the descriptor cannot say is returned as
``unexpressed`` (:func:`unexpressed`).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from viridian.model import VMSettings, default_settings
from viridian.model.choices import AdapterKind, ComKind, DriveKind, MacMode
from viridian.model.slots import drive_slots

OVF = "http://schemas.dmtf.org/ovf/envelope/1"
RASD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData"
VSSD = "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData"
STREAM_OPTIMIZED = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
SYSTEM_TYPE = "viridian-1"
SCSI_SUBTYPE = "virtio lsilogic"  # alternatives: the reader takes the first it knows
NIC_SUBTYPES = {AdapterKind.SYNTHETIC: "virtio", AdapterKind.LEGACY: "E1000"}
# CIM_ResourceAllocationSettingData's properties in schema order (DSP8023 sequence)
RASD_ORDER = ("Address", "AddressOnParent", "AllocationUnits", "AutomaticAllocation",
              "AutomaticDeallocation", "Caption", "Connection", "ConsumerVisibility",
              "Description", "ElementName", "HostResource", "InstanceID", "Limit",
              "MappingBehavior", "OtherResourceType", "Parent", "PoolID", "Reservation",
              "ResourceSubType", "ResourceType", "VirtualQuantity", "Weight")

ET.register_namespace("ovf", OVF)
ET.register_namespace("rasd", RASD)
ET.register_namespace("vssd", VSSD)


@dataclass(frozen=True)
class PackageFile:
    """A file of the package: its name (``href``) and size in bytes."""

    href: str
    size: int


@dataclass(frozen=True)
class PackageDisk:
    file: PackageFile
    capacity: int  # the virtual disk's size in bytes


@dataclass(frozen=True)
class Descriptor:
    text: bytes
    unexpressed: tuple[str, ...]


def build_ovf(settings: VMSettings, disks: Mapping[str, PackageDisk],
              media: Mapping[str, PackageFile]) -> Descriptor:
    """The descriptor of a VM with ``settings`` whose hard disks are ``disks`` and whose
    DVD images are ``media`` (both by slot id, ``ide:0:0``; a DVD slot not in ``media``
    is written as an empty drive), with what it cannot say."""
    envelope = ET.Element(_o("Envelope"))
    references = ET.SubElement(envelope, _o("References"))
    files: dict[str, str] = {}  # slot id → file id
    for slot, file in [*((s, d.file) for s, d in disks.items()), *media.items()]:
        files[slot] = f"file{len(files) + 1}"
        ET.SubElement(references, _o("File"), {_o("href"): file.href, _o("id"): files[slot],
                                               _o("size"): str(file.size)})
    if disks:
        section = _section(envelope, "DiskSection", "Virtual disk information")
        for number, (slot, disk) in enumerate(disks.items(), start=1):
            ET.SubElement(section, _o("Disk"), {
                _o("capacity"): str(disk.capacity), _o("capacityAllocationUnits"): "byte",
                _o("diskId"): f"vmdisk{number}", _o("fileRef"): files[slot],
                _o("format"): STREAM_OPTIMIZED})
    networks = sorted({a.switch for a in settings.network_adapters if a.switch})
    if networks:
        section = _section(envelope, "NetworkSection", "The networks the VM's adapters use")
        for network in networks:
            node = ET.SubElement(section, _o("Network"), {_o("name"): network})
            _text(node, _o("Description"), f"viridian virtual switch {network}")
    system = ET.SubElement(envelope, _o("VirtualSystem"), {_o("id"): settings.name})
    _text(system, _o("Info"), "A virtual machine exported by viridian")
    _text(system, _o("Name"), settings.name)
    if settings.notes:
        _text(_section(system, "AnnotationSection", "Notes"), _o("Annotation"),
              settings.notes)
    os_section = _section(system, "OperatingSystemSection", "The guest operating system",
                          {_o("id"): "1"})
    _text(os_section, _o("Description"), "Other")
    _hardware(system, settings, list(disks), files)
    ET.indent(envelope)
    text = ET.tostring(envelope, encoding="UTF-8", xml_declaration=True) + b"\n"
    return Descriptor(text, unexpressed(settings))


def _hardware(system: ET.Element, settings: VMSettings, disk_slots: list[str],
              files: Mapping[str, str]) -> None:
    hardware = _section(system, "VirtualHardwareSection", "Virtual hardware requirements")
    vssd = ET.SubElement(hardware, _o("System"))
    for name, value in (("ElementName", "Virtual Hardware Family"), ("InstanceID", "0"),
                        ("VirtualSystemIdentifier", settings.name),
                        ("VirtualSystemType", SYSTEM_TYPE)):
        _text(vssd, f"{{{VSSD}}}{name}", value)
    items: list[dict[str, str]] = [
        {"AllocationUnits": "hertz * 10^6", "Description": "Number of virtual processors",
         "ElementName": f"{settings.processor.count} virtual CPU(s)", "ResourceType": "3",
         "VirtualQuantity": str(settings.processor.count)},
        {"AllocationUnits": "byte * 2^20", "Description": "Memory size",
         "ElementName": f"{settings.memory.startup_mb} MB of memory", "ResourceType": "4",
         "VirtualQuantity": str(settings.memory.startup_mb)}]
    controllers: dict[str, int] = {}  # "ide:0" → item index
    for number in (0, 1):
        controllers[f"ide:{number}"] = len(items)
        items.append({"Address": str(number), "Description": f"IDE controller {number}",
                      "ElementName": f"IDE controller {number}", "ResourceSubType": "PIIX4",
                      "ResourceType": "5"})
    for controller in settings.scsi:
        controllers[f"scsi:{controller.controller}"] = len(items)
        items.append({"Address": str(controller.controller),
                      "Description": f"SCSI controller {controller.controller}",
                      "ElementName": f"SCSI controller {controller.controller}",
                      "ResourceSubType": SCSI_SUBTYPE, "ResourceType": "6"})
    drives: list[dict[str, str]] = []
    for slot in drive_slots(settings):
        parent = str(controllers[f"{slot.bus}:{slot.controller}"] + 1)
        item = {"AddressOnParent": str(slot.location), "Parent": parent,
                "ElementName": f"{'Hard disk' if slot.kind is DriveKind.HARD_DISK else 'DVD drive'}"
                               f" {slot.label}"}
        if slot.kind is DriveKind.HARD_DISK:
            if slot.id not in disk_slots:
                continue
            item |= {"HostResource": f"ovf:/disk/vmdisk{disk_slots.index(slot.id) + 1}",
                     "ResourceType": "17"}
        else:
            item |= {"AutomaticAllocation": "true" if slot.id in files else "false",
                     "ResourceType": "15"}
            if slot.id in files:
                item["HostResource"] = f"ovf:/file/{files[slot.id]}"
        drives.append(item)
    for number, adapter in enumerate(settings.network_adapters, start=1):
        nic = {"AutomaticAllocation": "true" if adapter.switch else "false",
               "Description": f"{adapter.kind.value} network adapter",
               "ElementName": f"Network adapter {number}",
               "ResourceSubType": NIC_SUBTYPES[adapter.kind], "ResourceType": "10"}
        if adapter.mac:
            nic["Address"] = adapter.mac
        if adapter.switch:
            nic["Connection"] = adapter.switch
        drives.append(nic)
    for instance, item in enumerate([*items, *drives], start=1):
        node = ET.SubElement(hardware, _o("Item"))
        for name in RASD_ORDER:
            text = str(instance) if name == "InstanceID" else item.get(name)
            if text is not None:
                _text(node, f"{{{RASD}}}{name}", text)


def unexpressed(settings: VMSettings) -> tuple[str, ...]:
    """The settings of ``settings`` an OVF 1.x descriptor cannot carry (those that
    differ from a new VM's), each as an admin would read it."""
    default = default_settings(settings.name)
    notes: list[str] = []
    processor = settings.processor
    if (processor.reserve_pct, processor.limit_pct, processor.weight) != (
            default.processor.reserve_pct, default.processor.limit_pct,
            default.processor.weight):
        notes.append(f"processor reserve {processor.reserve_pct} %, limit "
                     f"{processor.limit_pct} %, weight {processor.weight}")
    if processor.compatibility_mode:
        notes.append("processor compatibility mode")
    if settings.bios != default.bios:
        notes.append("BIOS startup order and Num Lock")
    for port in (1, 2):
        if settings.com(port).kind is not ComKind.NONE:
            notes.append(f"COM{port} ({settings.com(port).kind.value})")
    if settings.floppy.path:
        notes.append(f"floppy {settings.floppy.path}")
    for number, adapter in enumerate(settings.network_adapters, start=1):
        if adapter.kind is AdapterKind.LEGACY:
            notes.append(f"network adapter {number}: legacy (DEC 21140) written as E1000")
        if adapter.mac_mode is MacMode.STATIC:
            notes.append(f"network adapter {number}: static MAC mode (the MAC is written)")
        if adapter.vlan_id is not None or adapter.trunk_vlans:
            notes.append(f"network adapter {number}: VLAN settings")
    for controller in settings.scsi:
        notes.append(f"SCSI controller {controller.controller} (synthetic) written as "
                     f"'{SCSI_SUBTYPE}'")
    for label, value, fallback in (
            ("automatic start", settings.automatic_start, default.automatic_start),
            ("automatic stop", settings.automatic_stop, default.automatic_stop),
            ("integration services", settings.integration_services,
             default.integration_services),
            ("high availability", settings.high_availability, default.high_availability)):
        if value != fallback:
            notes.append(f"{label} settings")
    if settings.checkpoint_folder:
        notes.append(f"checkpoint file location {settings.checkpoint_folder}")
    return tuple(notes)


def _section(parent: ET.Element, name: str, info: str,
             attributes: dict[str, str] | None = None) -> ET.Element:
    section = ET.SubElement(parent, _o(name), attributes or {})
    _text(section, _o("Info"), info)
    return section


def _text(parent: ET.Element, tag: str, text: str) -> ET.Element:
    node = ET.SubElement(parent, tag)
    node.text = text
    return node


def _o(name: str) -> str:
    return f"{{{OVF}}}{name}"

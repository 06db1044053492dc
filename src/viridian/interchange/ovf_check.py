"""The structure of an OVF 1.x descriptor checked against DMTF DSP0243 1.1 (pure).

No OVF XSD ships with any package here, so this checks in code what the schema and the
specification's text require of what viridian writes: the root is an ``Envelope`` of
the OVF 1 namespace whose first child is ``References``; every ``File`` has a unique
``ovf:id`` and a relative ``ovf:href``, and a non-negative ``ovf:size``; each section
(and the ``VirtualSystem``) starts with ``Info`` (§9); every ``Disk`` has a unique
``ovf:diskId``, a ``ovf:capacity`` and a ``fileRef`` naming a ``File`` (§9.1); every
``Network`` has a unique ``ovf:name`` (§9.2); the ``VirtualSystem`` has an ``ovf:id`` and
a ``VirtualHardwareSection`` whose ``System`` (optional) precedes its ``Item``s (§8.3); every
``Item`` holds ``ElementName``, ``InstanceID`` (unique) and ``ResourceType`` in the CIM
RASD namespace, its elements in the schema's order; a ``Parent`` names another item's
``InstanceID``; a ``HostResource`` ``ovf:/disk/ID`` names a ``Disk`` and
``ovf:/file/ID`` a ``File``; a ``Connection`` names a ``Network``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator

from viridian.interchange.ovf_write import OVF, RASD, RASD_ORDER, VSSD

SECTIONS = ("DiskSection", "NetworkSection", "AnnotationSection", "OperatingSystemSection",
            "VirtualHardwareSection", "ProductSection", "DeploymentOptionSection")


def check_ovf(text: bytes) -> list[str]:
    """Every structural problem of the descriptor ``text`` (empty: none)."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        return [f"not XML: {err}"]
    if root.tag != _o("Envelope"):
        return [f"the root element is {root.tag}, not {{{OVF}}}Envelope"]
    problems: list[str] = []
    children = list(root)
    if not children or children[0].tag != _o("References"):
        problems.append("the Envelope's first child is not References")
    files = _unique_ids(root.iter(_o("File")), "id", "File", problems)
    for file in root.iter(_o("File")):
        href = file.get(_o("href"), "")
        if not href or href.startswith("/") or ".." in href.split("/"):
            problems.append(f"File {file.get(_o('id'))}: href {href!r} is not a relative name")
        if not (file.get(_o("size")) or "").isdigit():
            problems.append(f"File {file.get(_o('id'))}: ovf:size missing or not a number")
    disks = _unique_ids(root.iter(_o("Disk")), "diskId", "Disk", problems)
    for disk in root.iter(_o("Disk")):
        if disk.get(_o("fileRef")) not in files:
            problems.append(f"Disk {disk.get(_o('diskId'))}: fileRef names no File")
        if not (disk.get(_o("capacity")) or "").isdigit():
            problems.append(f"Disk {disk.get(_o('diskId'))}: capacity missing")
    networks = _unique_ids(root.iter(_o("Network")), "name", "Network", problems)
    for section in [e for e in root.iter() if e.tag in {_o(s) for s in SECTIONS}] + \
            list(root.iter(_o("VirtualSystem"))):
        if len(section) == 0 or section[0].tag != _o("Info"):
            problems.append(f"{_local(section.tag)} does not start with Info")
    systems = list(root.iter(_o("VirtualSystem")))
    if len(systems) != 1:
        problems.append(f"{len(systems)} VirtualSystem elements (one expected)")
    for system in systems:
        if not system.get(_o("id")):
            problems.append("the VirtualSystem has no ovf:id")
        hardware = system.find(_o("VirtualHardwareSection"))
        if hardware is None:
            problems.append("the VirtualSystem has no VirtualHardwareSection")
        else:
            problems += _hardware_problems(hardware, disks, files, networks)
    return problems


def _hardware_problems(hardware: ET.Element, disks: set[str], files: set[str],
                       networks: set[str]) -> list[str]:
    problems: list[str] = []
    tags = [child.tag for child in hardware]
    if _o("System") in tags and _o("Item") in tags[:tags.index(_o("System"))]:
        problems.append("VirtualHardwareSection: System after an Item")
    system = hardware.find(_o("System"))
    if system is not None:
        names = [_local(c.tag) for c in system]
        if names != sorted(names) or any(not c.tag.startswith(f"{{{VSSD}}}") for c in system):
            problems.append("System: VSSD elements out of order or not in the VSSD "
                            "namespace")
    items = hardware.findall(_o("Item"))
    ids = [_rasd(item, "InstanceID") for item in items]
    if len(set(ids)) != len(ids):
        problems.append("Item InstanceIDs are not unique")
    for item in items:
        problems += _item_problems(item, {i for i in ids if i}, disks, files, networks)
    return problems


def _item_problems(item: ET.Element, ids: set[str], disks: set[str], files: set[str],
                   networks: set[str]) -> list[str]:
    name = _rasd(item, "ElementName") or f"item {_rasd(item, 'InstanceID')}"
    problems = [f"{name}: {field} missing" for field in ("ElementName", "InstanceID",
                                                            "ResourceType")
                if not _rasd(item, field)]
    order = [_local(c.tag) for c in item if c.tag.startswith(f"{{{RASD}}}")]
    if any(n not in RASD_ORDER for n in order) or order != sorted(order, key=RASD_ORDER.index):
        problems.append(f"{name}: RASD elements unknown or out of schema order: {order}")
    parent = _rasd(item, "Parent")
    if parent is not None and parent not in ids:
        problems.append(f"{name}: Parent {parent} names no Item")
    resource = _rasd(item, "HostResource")
    if resource is not None:
        kind, _, ref = resource.removeprefix("ovf:/").partition("/")
        known = disks if kind == "disk" else files if kind == "file" else set()
        if ref not in known:
            problems.append(f"{name}: HostResource {resource} names no Disk or File")
    connection = _rasd(item, "Connection")
    if connection is not None and connection not in networks:
        problems.append(f"{name}: Connection {connection} names no Network")
    return problems


def _unique_ids(elements: Iterator[ET.Element], attribute: str, what: str,
                problems: list[str]) -> set[str]:
    values = [e.get(_o(attribute)) for e in elements]
    if None in values or "" in values:
        problems.append(f"a {what} has no ovf:{attribute}")
    found = {v for v in values if v}
    if len(found) != len([v for v in values if v]):
        problems.append(f"{what} ovf:{attribute} values are not unique")
    return found


def _rasd(item: ET.Element, name: str) -> str | None:
    node = item.find(f"{{{RASD}}}{name}")
    return None if node is None else (node.text or "").strip()


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _o(name: str) -> str:
    return f"{{{OVF}}}{name}"

"""The OVF 1.x writer and the DSP0243 structure check (issue 16 part 3), pure: a VM's
settings written and read back by the OVF reader and mapper give the same hardware;
the check passes the writer's output and VMware's cot sample, and names each broken
reference, order or missing element; what OVF cannot carry is listed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest

from viridian.interchange.ovf import parse_ovf
from viridian.interchange.ovf_check import check_ovf
from viridian.interchange.ovf_settings import map_system
from viridian.interchange.ovf_write import (
    OVF,
    RASD,
    PackageDisk,
    PackageFile,
    build_ovf,
    unexpressed,
)
from viridian.model import default_settings
from viridian.model.choices import AdapterKind, ComKind, DriveKind, MacMode
from viridian.model.settings import (
    ComPort,
    IdeDrive,
    NetworkAdapter,
    ScsiController,
    ScsiDisk,
)

SETTINGS = replace(
    default_settings("web"), notes="front end",
    ide=(IdeDrive(0, 0, DriveKind.HARD_DISK, "/v/a.vhd"), IdeDrive(1, 0, DriveKind.DVD,
                                                                    "/iso/x.iso"),
         IdeDrive(1, 1, DriveKind.DVD)),
    scsi=(ScsiController(0, (ScsiDisk(1, "/v/b.vhdx"),)),
          ScsiController(2, (ScsiDisk(5, "/v/c.qcow2"),))),
    network_adapters=(NetworkAdapter(switch="lan", mac_mode=MacMode.STATIC,
                                     mac="00:15:5D:01:02:03"),
                      NetworkAdapter(kind=AdapterKind.LEGACY)))
DISKS = {"ide:0:0": PackageDisk(PackageFile("web-disk1.vmdk", 1000), 1 << 30),
         "scsi:0:1": PackageDisk(PackageFile("web-disk2.vmdk", 500), 1 << 20),
         "scsi:2:5": PackageDisk(PackageFile("web-disk3.vmdk", 300), 3 << 20)}
MEDIA = {"ide:1:0": PackageFile("web-dvd1.iso", 4096)}


def _descriptor() -> bytes:
    return build_ovf(SETTINGS, DISKS, MEDIA).text


def test_written_descriptor_reads_back_the_same() -> None:
    text = _descriptor()
    assert check_ovf(text) == []
    system = parse_ovf(text)
    assert (system.name, system.memory_mb, system.processors) == ("web", 512, 1)
    assert system.sizes == {"web-disk1.vmdk": 1000, "web-disk2.vmdk": 500,
                            "web-disk3.vmdk": 300, "web-dvd1.iso": 4096}
    assert [(d.kind, d.bus, d.controller, d.location, d.file, d.capacity)
            for d in system.drives] == [
        ("hard_disk", "ide", 0, 0, "web-disk1.vmdk", 1 << 30),
        ("dvd", "ide", 1, 0, "web-dvd1.iso", None), ("dvd", "ide", 1, 1, None, None),
        ("hard_disk", "scsi", 0, 1, "web-disk2.vmdk", 1 << 20),
        ("hard_disk", "scsi", 2, 5, "web-disk3.vmdk", 3 << 20)]
    assert all(d.format and d.format.endswith("#streamOptimized")
               for d in system.drives if d.kind == "hard_disk")
    assert [(n.adapter_type, n.network) for n in system.nics] == [("virtio", "lan"),
                                                                  ("E1000", None)]
    assert [n.address for n in system.nics] == ["00:15:5D:01:02:03", None]
    mapped = map_system(system, "web").settings
    assert [(d.controller, d.location, d.kind, d.path) for d in mapped.ide] == [
        (0, 0, DriveKind.HARD_DISK, "web-disk1.vmdk"), (1, 0, DriveKind.DVD, "web-dvd1.iso"),
        (1, 1, DriveKind.DVD, None)]
    assert [(c.controller, [(d.location, d.path) for d in c.disks]) for c in mapped.scsi] \
        == [(0, [(1, "web-disk2.vmdk")]), (2, [(5, "web-disk3.vmdk")])]
    assert len(mapped.network_adapters) == 2


def test_rasd_elements_in_schema_order_and_sections_start_with_info() -> None:
    root = ET.fromstring(_descriptor())
    assert [c.tag for c in root] == [f"{{{OVF}}}{n}" for n in (
        "References", "DiskSection", "NetworkSection", "VirtualSystem")]
    item = next(root.iter(f"{{{OVF}}}Item"))
    assert [c.tag.split("}")[1] for c in item] == [
        "AllocationUnits", "Description", "ElementName", "InstanceID", "ResourceType",
        "VirtualQuantity"]
    assert root.find(f".//{{{OVF}}}AnnotationSection/{{{OVF}}}Annotation").text == \
        "front end"  # type: ignore[union-attr]


@pytest.mark.parametrize(("old", "new", "problem"), [
    (b'ovf:fileRef="file2"', b'ovf:fileRef="file9"', "Disk vmdisk2: fileRef names no File"),
    (b"ovf:/disk/vmdisk3", b"ovf:/disk/vmdisk7", "HostResource ovf:/disk/vmdisk7 names no"),
    (b"<rasd:Connection>lan", b"<rasd:Connection>wan", "Connection wan names no Network"),
    (b"<rasd:Parent>3</rasd:Parent>", b"<rasd:Parent>99</rasd:Parent>",
     "Parent 99 names no Item"),
    (b'ovf:href="web-disk1.vmdk"', b'ovf:href="../web-disk1.vmdk"', "not a relative name"),
    (b"<rasd:InstanceID>2</rasd:InstanceID>", b"<rasd:InstanceID>1</rasd:InstanceID>",
     "InstanceIDs are not unique"),
    (b"<ovf:Info>Virtual disk information</ovf:Info>", b"", "DiskSection does not start "
                                                         "with Info"),
    (b"<rasd:Description>Memory size</rasd:Description>", b"", None),
    (b"<rasd:ResourceType>4</rasd:ResourceType>", b"", "ResourceType missing")])
def test_check_names_what_breaks_dsp0243(old: bytes, new: bytes, problem: str | None) -> None:
    text = _descriptor()
    assert old in text
    problems = check_ovf(text.replace(old, new, 1))
    if problem is None:  # Description is optional
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_check_on_element_order_and_the_cot_samples(samples: Path) -> None:
    text = _descriptor()
    swapped = text.replace(b"<rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>\n"
                           b"        <rasd:Description>Number of virtual processors"
                           b"</rasd:Description>",
                           b"<rasd:Description>Number of virtual processors</rasd:Description>"
                           b"\n        <rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits>")
    assert swapped != text
    assert any("out of schema order" in p for p in check_ovf(swapped))
    assert check_ovf(b"<Envelope/>") == [
        f"the root element is Envelope, not {{{OVF}}}Envelope"]
    assert check_ovf((samples / "vmware.ovf").read_bytes()) == []
    assert check_ovf((samples / "invalid.ovf").read_bytes())
    assert RASD in text.decode()


def test_unexpressed_settings_are_listed() -> None:
    assert unexpressed(default_settings("plain")) == ()
    notes = unexpressed(replace(SETTINGS, com1=ComPort(ComKind.PIPE), floppy=replace(
        SETTINGS.floppy, path="/f.vfd"), processor=replace(SETTINGS.processor, weight=200)))
    assert notes == (
        "processor reserve 0 %, limit 100 %, weight 200", "COM1 (pipe)", "floppy /f.vfd",
        "network adapter 1: static MAC mode (the MAC is written)",
        "network adapter 2: legacy (DEC 21140) written as E1000",
        "SCSI controller 0 (synthetic) written as 'virtio lsilogic'",
        "SCSI controller 2 (synthetic) written as 'virtio lsilogic'")

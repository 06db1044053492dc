"""Foreign VM configurations read and mapped (issue 16 part 4, pure): a VMware .vmx, a
Virtual PC .vmc (UTF-16, as Virtual PC writes it), a Hyper-V 2008 configuration XML and a
libvirt domain XML become the same typed plan as OVF; what cannot be mapped is listed;
the kind is found by content, not by suffix; VMDK descriptors stay in their folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from viridian.errors import BadRequest
from viridian.interchange.foreign import foreign_kind, is_ovf_envelope, read_foreign
from viridian.interchange.foreign_plan import map_foreign, normal_mac
from viridian.model import to_dict

SAMPLES = Path(__file__).parent / "foreign_samples"


def _slots(settings: dict) -> dict[str, tuple[str, str | None]]:  # type: ignore[type-arg]
    slots = {f"IDE {d['controller']}:{d['location']}": (d["kind"], d["path"])
             for d in settings["ide"]}
    for controller in settings["scsi"]:
        for disk in controller["disks"]:
            slots[f"SCSI {controller['controller']}:{disk['location']}"] = \
                ("hard_disk", disk["path"])
    return slots


def _mapped(path: Path) -> tuple[dict, tuple[str, ...]]:  # type: ignore[type-arg]
    vm = read_foreign(path)
    mapped = map_foreign(vm, vm.system.name)
    return to_dict(mapped.settings), mapped.unmapped


def test_vmx() -> None:
    settings, notes = _mapped(SAMPLES / "web.vmx")
    assert settings["name"] == "web01"
    assert settings["memory"]["startup_mb"] == 768
    assert settings["processor"]["count"] == 2
    assert _slots(settings) == {"IDE 0:0": ("hard_disk", "web01.vmdk"),
                                "IDE 1:0": ("dvd", "debian.iso"),
                                "SCSI 0:1": ("hard_disk", "web01_1.vmdk")}
    adapters = settings["network_adapters"]
    assert [(a["mac_mode"], a["mac"]) for a in adapters] == [
        ("static", "00:50:56:01:02:03"), ("static", "00:0C:29:AA:BB:CC")]
    text = "\n".join(notes)
    for expected in ("floppy0 is not mapped", "sound is not mapped", "debian10-64",
                     "attached at IDE 0:0", "e1000 adapter on network VM Network"):
        assert expected in text
    assert "usb" not in text and "old.vmdk" not in text  # not present: nothing to say


def test_vmc_utf16() -> None:
    settings, notes = _mapped(SAMPLES / "XP.vmc")
    assert (settings["name"], settings["memory"]["startup_mb"]) == ("XP", 384)
    assert _slots(settings) == {"IDE 0:0": ("hard_disk", ".\\XP.vhd"),
                                "IDE 1:0": ("dvd", None),
                                "SCSI 0:3": ("hard_disk", ".\\data.vhd")}
    assert settings["network_adapters"][0]["mac"] == "00:03:FF:A5:1F:38"
    text = "\n".join(notes)
    assert "floppy drive image is not mapped" in text and "undo disks" in text
    assert "DEC 21140 adapter on network Local only" in text


def test_hyperv_2008_configuration() -> None:
    settings, notes = _mapped(SAMPLES / "sql01.xml")
    assert (settings["name"], settings["memory"]["startup_mb"],
            settings["processor"]["count"]) == ("sql01", 2048, 2)
    assert _slots(settings) == {
        "IDE 0:0": ("hard_disk", "D:\\Hyper-V\\Virtual Hard Disks\\sql01.vhd"),
        "IDE 1:0": ("dvd", "D:\\ISO\\w2k8.iso"),
        "SCSI 0:0": ("hard_disk", "D:\\Hyper-V\\Virtual Hard Disks\\sql01-data.vhd")}
    adapters = settings["network_adapters"]
    assert [(a["mac_mode"], a["mac"]) for a in adapters] == [
        ("static", "00:15:5D:01:02:03"), ("dynamic", None)]
    text = "\n".join(notes)
    assert "drive type PHYSICAL" in text and "floppy image D:\\floppy.vfd" in text
    assert "Legacy Network Adapter adapter on network Internal" in text


def test_libvirt_domain() -> None:
    settings, notes = _mapped(SAMPLES / "vm1.libvirt.xml")
    assert (settings["name"], settings["memory"]["startup_mb"],
            settings["processor"]["count"]) == ("vm1", 512, 2)
    assert _slots(settings) == {
        "IDE 0:0": ("hard_disk", "/var/lib/libvirt/images/vm1.qcow2"),
        "IDE 1:0": ("dvd", None),
        "SCSI 0:1": ("hard_disk", "/var/lib/libvirt/images/vm1-data.img")}
    assert settings["network_adapters"][0]["mac"] == "52:54:00:12:34:56"
    text = "\n".join(notes)
    for expected in ("machine pc-q35-7.2 → pc-i440fx", "disk vda on the virtio bus → SCSI",
                     "disk sdc: a block source is not mapped", "filesystem device"):
        assert expected in text


def test_kind_by_content_not_suffix(tmp_path: Path) -> None:
    for sample, kind in (("web.vmx", "vmware"), ("XP.vmc", "virtual-server"),
                         ("sql01.xml", "hyper-v-2008"), ("vm1.libvirt.xml", "libvirt")):
        renamed = tmp_path / f"{kind}.cfg"
        shutil.copy(SAMPLES / sample, renamed)
        assert foreign_kind(renamed.read_bytes()) == kind
        assert read_foreign(renamed).kind == kind
    ovf = tmp_path / "x.vmx"
    ovf.write_text("<Envelope xmlns='http://schemas.dmtf.org/ovf/envelope/1'/>")
    assert is_ovf_envelope(ovf.read_bytes()) and foreign_kind(ovf.read_bytes()) is None
    assert not is_ovf_envelope((SAMPLES / "XP.vmc").read_bytes())
    with pytest.raises(BadRequest, match=r"allowed: a VMware \.vmx"):
        read_foreign(ovf)
    broken = tmp_path / "broken.vmx"
    broken.write_text('config.version = "8"\nmemsize 512\n')
    with pytest.raises(BadRequest, match="line 2 is not key"):
        read_foreign(broken)


def test_macs() -> None:
    assert normal_mac("00-15-5d-01-02-03") == "00:15:5D:01:02:03"
    assert normal_mac("0003FFA51F38") == "00:03:FF:A5:1F:38"
    assert normal_mac("01:00:5e:00:00:01") is None  # multicast
    assert normal_mac("nonsense") is None

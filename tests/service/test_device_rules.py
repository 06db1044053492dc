"""The pure parts of device handling: settings edits, the live-change plan, the MAC pool,
the screen's PNG encoding, the Num Lock option ROM, HOST:PORT addresses."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from viridian.errors import BadRequest, Conflict, InvalidSetting, NotFound
from viridian.model import VMSettings, default_settings, settings_from_dict, to_dict
from viridian.model.address import parse_address
from viridian.model.states import VMState
from viridian.qemu.firmware import numlock_rom
from viridian.qemu.hotplug import (
    AttachScsiDisk,
    ChangeMedia,
    DetachScsiDisk,
    plan_live_changes,
)
from viridian.qemu.screen import Image, parse_ppm, png_bytes
from viridian.service.devices import edits
from viridian.service.devices.hotplug import check_live_storage_changes
from viridian.service.vms.macs import assign_macs, host_adapter_octets, macs_in_use, pool_octets


def base() -> VMSettings:
    return default_settings("vm")


def applied(settings: VMSettings, patch: dict[str, Any]) -> VMSettings:
    return settings_from_dict({**to_dict(settings), **patch})


# --- settings edits ---------------------------------------------------------------------------


def test_ide_location_in_use_is_refused_with_the_free_ones() -> None:
    with pytest.raises(Conflict) as err:
        edits.add_disk(base(), "ide", "1:0", "/d/x.vhd", dvd=False)
    assert str(err.value) == (
        "IDE 1:0 is already used by a DVD drive (empty); free IDE locations: 0:0, 0:1, 1:1; "
        "nothing was changed"
    )


def test_dvd_on_scsi_is_refused() -> None:
    with pytest.raises(InvalidSetting) as err:
        edits.add_disk(base(), "scsi", "0:1", "/d/a.iso", dvd=True)
    assert "DVD drives attach to IDE only" in str(err.value)


def test_a_65th_scsi_disk_is_refused() -> None:
    settings = base()
    for location in range(64):
        settings = applied(settings, edits.add_disk(settings, "scsi", "0", f"/d/{location}", False))
    assert [d["location"] for d in to_dict(settings)["scsi"][0]["disks"]] == list(range(64))
    with pytest.raises(Conflict) as err:
        edits.add_disk(settings, "scsi", "0", "/d/65", dvd=False)
    assert str(err.value).startswith(
        "SCSI controller 0 already holds 64 hard disks, the most a SCSI controller can hold (64)"
    )
    with pytest.raises(InvalidSetting) as bad:
        edits.add_disk(base(), "scsi", "0:64", "/d/x", dvd=False)
    assert "invalid value '0:64' for location" in str(bad.value)


def test_scsi_controller_is_created_and_locations_fill_in_order() -> None:
    first = applied(base(), edits.add_disk(base(), "scsi", "2:7", "/d/a", False))
    second = applied(first, edits.add_disk(first, "scsi", "2", "/d/b", False))
    assert to_dict(second)["scsi"] == [
        {
            "controller": 2,
            "disks": [
                {"location": 0, "path": "/d/b", "format": None},
                {"location": 7, "path": "/d/a", "format": None},
            ],
        }
    ]
    settings_from_dict(to_dict(second))


def test_remove_missing_drive_names_the_used_locations() -> None:
    with pytest.raises(NotFound) as err:
        edits.remove_disk(base(), "ide", "0:1")
    assert str(err.value) == "there is no drive at IDE 0:1; used IDE locations: 1:0"


def test_dvd_media_goes_to_the_first_dvd_drive() -> None:
    patch = edits.set_dvd_media(base(), "/iso/a.iso", None)
    assert patch["ide"][0]["path"] == "/iso/a.iso"
    with pytest.raises(NotFound, match="has no DVD drive at IDE 0:0"):
        edits.set_dvd_media(base(), "/iso/a.iso", "0:0")


def test_adapter_edits_and_selection() -> None:
    one = applied(base(), edits.add_adapter(base(), True, "user", "00-15-5d-00-00-09", "12"))
    assert to_dict(one)["network_adapters"] == [
        {
            "kind": "legacy",
            "switch": "user",
            "mac_mode": "static",
            "mac": "00:15:5D:00:00:09",
            "vlan_id": 12,
            "trunk_vlans": [],
            "native_vlan": None,
        }
    ]
    changed = edits.set_adapter(one, None, False, "none", "dynamic", "none")["network_adapters"]
    assert changed == [
        {"kind": "synthetic", "switch": None, "mac_mode": "dynamic", "mac": None, "vlan_id": None,
         "trunk_vlans": [], "native_vlan": None}
    ]
    two = applied(one, edits.add_adapter(one, False, None, None, None))
    with pytest.raises(BadRequest, match=r"name one with --index 1\.\.2"):
        edits.remove_adapter(two, None)
    with pytest.raises(NotFound, match=r"allowed: --index 1\.\.2"):
        edits.remove_adapter(two, 3)
    with pytest.raises(InvalidSetting, match="multicast"):
        edits.add_adapter(base(), False, None, "01:00:5E:00:00:01", None)


def test_com_edits() -> None:
    assert edits.set_com(1, None, "[::1]:4555", False) == {
        "com1": {"kind": "remote", "path": None, "address": "[::1]:4555"}
    }
    assert edits.set_com(2, "", None, False)["com2"]["path"] is None
    with pytest.raises(BadRequest, match="exactly one of"):
        edits.set_com(1, "/p", "h:1", False)
    with pytest.raises(InvalidSetting, match="HOST:PORT"):
        edits.set_com(1, None, "nohost", False)


# --- what may change while the VM runs ------------------------------------------------------


def test_plan_has_scsi_and_media_changes_and_refuses_ide_and_controllers() -> None:
    old = settings_from_dict(
        {
            "name": "v",
            "scsi": [
                {"controller": 0, "disks": [{"location": 1, "path": "/d/a", "format": "raw"}]}
            ],
        }
    )
    new = settings_from_dict(
        {
            "name": "v",
            "ide": [
                {"controller": 1, "location": 0, "kind": "dvd", "path": "/i.iso", "format": "raw"},
                {
                    "controller": 0,
                    "location": 0,
                    "kind": "hard_disk",
                    "path": "/d/h",
                    "format": "vpc",
                },
            ],
            "scsi": [
                {"controller": 0, "disks": [{"location": 2, "path": "/d/b", "format": "vpc"}]},
                {"controller": 3, "disks": []},
            ],
            "floppy": {"path": "/f.vfd"},
        }
    )
    plan = plan_live_changes(old, new)
    assert plan.changes == (
        DetachScsiDisk(0, 1, "/d/a", "raw"),  # type: ignore[arg-type]
        ChangeMedia("ide1-0", "the DVD drive at IDE 1:0", "/i.iso", None, True),
        ChangeMedia("floppy0", "the floppy drive", "/f.vfd", None, False),
        AttachScsiDisk(0, 2, "/d/b", "vpc"),  # type: ignore[arg-type]
    )
    assert plan.refused == ("adding the hard disk at IDE 0:0", "adding SCSI controller 3")


def test_gate_says_why_and_what_is_allowed() -> None:
    current = base()
    new = applied(current, edits.add_disk(current, "ide", "0:0", "/d/x", False))
    check_live_storage_changes("v", current, new, VMState.OFF)
    with pytest.raises(Conflict) as err:
        check_live_storage_changes("v", current, new, VMState.RUNNING)
    assert str(err.value) == (
        "cannot change the hardware of VM 'v' while it is Running: adding the hard disk at "
        "IDE 0:0 needs the VM Off (adding or removing devices needs the VM Off, as in "
        "Hyper-V); allowed while it runs: adding and removing SCSI hard disks, inserting and "
        "ejecting DVD and floppy media; nothing was changed"
    )
    scsi = applied(current, {"scsi": [{"controller": 0, "disks": []}]})
    hot = applied(scsi, edits.add_disk(scsi, "scsi", "0:0", "/d/y", False))
    check_live_storage_changes("v", scsi, hot, VMState.RUNNING)
    with pytest.raises(Conflict, match="while it is Saved: its saved state must keep"):
        check_live_storage_changes("v", scsi, hot, VMState.SAVED)
    media = applied(current, edits.set_dvd_media(current, "/i.iso", None))
    check_live_storage_changes("v", current, media, VMState.SAVED)


# --- MAC addresses ----------------------------------------------------------------------------


class FakeCatalog:
    def __init__(self) -> None:
        self.meta: dict[str, str] = {}

    def get_meta(self, key: str) -> str | None:
        return self.meta.get(key)

    def set_meta(self, key: str, value: str) -> None:
        self.meta[key] = value


def test_pool_octets_come_from_a_physical_adapter_and_are_kept(tmp_path: Path) -> None:
    for name, mac, physical in (
        ("br0", "02:00:00:00:12:34", False),
        ("eth0", "52:54:00:ab:cd:ef", True),
        ("lo", "00:00:00:00:00:00", False),
    ):
        (tmp_path / name).mkdir()
        (tmp_path / name / "address").write_text(mac + "\n")
        if physical:
            (tmp_path / name / "device").mkdir()
    assert host_adapter_octets(tmp_path) == "CD:EF"
    catalog = FakeCatalog()
    catalog.meta["mac_pool_host_octets"] = "12:34"
    assert pool_octets(catalog) == "12:34"


def test_dynamic_macs_skip_every_used_address_and_statics_must_be_unique() -> None:
    other = SimpleNamespace(
        id="o",
        name="other",
        settings=settings_from_dict({"name": "other", "network_adapters": [
            {"mac": "00:15:5D:CD:EF:00"}, {"mac": "00:15:5D:CD:EF:02"}]}),
    )
    used = macs_in_use([other], except_vm="me")
    settings = {
        "network_adapters": [
            {"mac_mode": "dynamic", "mac": None},
            {"mac_mode": "static", "mac": "00:15:5D:CD:EF:01"},
            {"mac_mode": "dynamic", "mac": None},
        ]
    }
    assign_macs(settings, used, "CD:EF")
    assert [a["mac"] for a in settings["network_adapters"]] == [
        "00:15:5D:CD:EF:03",
        "00:15:5D:CD:EF:01",
        "00:15:5D:CD:EF:04",
    ]
    duplicate = {"network_adapters": [{"mac_mode": "static", "mac": "00:15:5D:CD:EF:02"}]}
    with pytest.raises(Conflict) as err:
        assign_macs(duplicate, used, "CD:EF")
    assert str(err.value).startswith(
        "MAC address 00:15:5D:CD:EF:02 of network adapter 1 is already used by VM 'other' "
        "(network adapter 2); a MAC address must be unique on the host"
    )
    full = {f"00:15:5D:CD:EF:{n:02X}": "x" for n in range(256)}
    with pytest.raises(Conflict, match=r"pool of this host .* is exhausted"):
        assign_macs({"network_adapters": [{"mac_mode": "dynamic"}]}, full, "CD:EF")


# --- screen, firmware, addresses -------------------------------------------------------------


def test_ppm_to_png_keeps_every_pixel() -> None:
    rgb = bytes(range(2 * 3 * 3)) * 1
    ppm = b"P6\n# made by a test\n3 2\n255\n" + rgb
    image = parse_ppm(ppm)
    assert (image.width, image.height, image.rgb) == (3, 2, rgb)
    png = png_bytes(Image(3, 2, rgb))
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR" and struct.unpack(">II", png[16:24]) == (3, 2)
    idat_at = png.index(b"IDAT")
    (idat_len,) = struct.unpack(">I", png[idat_at - 4 : idat_at])
    raw = zlib.decompress(png[idat_at + 4 : idat_at + 4 + idat_len])
    assert raw == b"\x00" + rgb[:9] + b"\x00" + rgb[9:]


def test_numlock_rom_is_a_valid_option_rom() -> None:
    rom = numlock_rom()
    assert len(rom) == 512 and rom[:3] == b"\x55\xaa\x01" and sum(rom) % 256 == 0
    assert rom[3:15].hex() == "1e50b840008ed8800e170020"  # sets 0040:0017 bit 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host.example:4555", ("host.example", 4555)),
        ("10.0.0.1:1", ("10.0.0.1", 1)),
        ("[2001:db8::1]:65535", ("2001:db8::1", 65535)),
    ],
)
def test_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text, setting="com1.address") == expected


@pytest.mark.parametrize("text", ["host", "host:0", ":80", "a b:1", "host:99999", "[::1:80"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(InvalidSetting, match="HOST:PORT"):
        parse_address(text, setting="com1.address")

"""Hyper-V's SCSI limits seen from a real guest: many disks on all four controllers.

48 disks (4 controllers x 12 locations, including the last location 63) each with a
distinct size, so the guest's ``VIRIDIAN-GUEST DISK`` report says which is which. The
refusal of a 65th disk on one controller is covered in test_devices_api.py (service) and
test_device_rules.py (rule).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Console, act

pytestmark = pytest.mark.guest

MB = 1 << 20
CONTROLLERS = 4
LOCATIONS = (*range(11), 63)
DISK_LINE = re.compile(rb"VIRIDIAN-GUEST DISK (sd\w+) (\d+) QEMU_HARDDISK")


def _size(controller: int, index: int) -> int:
    return (1 + controller * len(LOCATIONS) + index) * MB


def _scsi(folder: Path) -> list[dict[str, object]]:
    controllers = []
    for c in range(CONTROLLERS):
        disks = []
        for i, location in enumerate(LOCATIONS):
            path = folder / f"c{c}l{location}.raw"
            with open(path, "wb") as image:
                image.truncate(_size(c, i))
            disks.append({"location": location, "path": str(path), "format": "raw"})
        controllers.append({"controller": c, "disks": disks})
    return controllers


def test_the_guest_sees_disks_on_every_scsi_controller_up_to_location_63(
    api: httpx.Client, service, guest_iso: Path, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    created = api.post("/vms", json={"name": "many", "memory_mb": 256, "processors": 1,
                                     "dvd": str(guest_iso),
                                     "settings": {"scsi": _scsi(tmp_path)}})
    assert created.status_code == 201, created.text
    act(api, "many", "start")
    console = Console(service.data_dir, created.json()["id"])
    report = console.wait_for(b"VIRIDIAN-GUEST READY", timeout=180)
    seen = sorted(int(size) for _, size in DISK_LINE.findall(report))
    expected = sorted(_size(c, i) for c in range(CONTROLLERS) for i in range(len(LOCATIONS)))
    assert seen == expected, (len(seen), sorted(set(expected) - set(seen)))
    vm = api.get("/vms/many").json()
    assert [len(c["disks"]) for c in vm["settings"]["scsi"]] == [len(LOCATIONS)] * CONTROLLERS

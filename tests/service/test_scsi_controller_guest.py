"""Issue 13, lane C, in a real guest (TCG): a SCSI controller added with ``vm scsi add``
is where the guest sees hard disks hot-added while it runs; a running VM is told it needs
a controller first; a checkpoint of a running VM with a VHD keeps its memory (by
default its storage daemon serves the VHD and the hot-added disk); and ``disk expand``
of its base is refused through the service.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.service.harness import Console, Service, act
from tests.service.test_devices_guest import block_sizes, eventually, raw_image
from tests.service.test_scsi_floppy_disk_guard import cli, ok, refused
from viridian.disks import inspect, new_dynamic

pytestmark = pytest.mark.guest

MB = 1024 * 1024


def test_a_controller_added_while_off_takes_hot_plugged_disks_the_guest_sees(
        service: Service, api: httpx.Client, guest_iso: Path, tmp_path: Path) -> None:
    vhd = tmp_path / "g1.vhd"
    new_dynamic(vhd, 20 * MB)
    created = api.post("/vms", json={"name": "g1", "memory_mb": 256, "dvd": str(guest_iso),
                                     "vhd": str(vhd)})
    assert created.status_code == 201, created.text
    ok(service, "vm", "scsi", "add", "g1")
    console = Console(service.data_dir, created.json()["id"])
    act(api, "g1", "start")
    try:
        console.wait_for(b"VIRIDIAN-GUEST READY")
        hot = raw_image(tmp_path / "hot.raw", 11 * MB)
        ok(service, "vm", "disk", "add", "g1", "--controller", "scsi", "--location", "0:2",
           "--path", hot)
        eventually(lambda: 11 * MB in block_sizes(api, "g1").values(),
                   "the hot-added disk on the new controller seen by the guest")

        text = refused(service, 4, "vm", "disk", "add", "g1", "--controller", "scsi",
                       "--location", "1:0", "--path", raw_image(tmp_path / "no.raw", MB))
        assert "a SCSI controller is needed first" in text
        assert "VM 'g1' has no SCSI controller 1 (its SCSI controllers: 0)" in text
        assert "viridian vm scsi add g1" in text

        taken = cli(service, "checkpoint", "new", "g1", "c1")
        assert taken.returncode == 0, taken.stderr
        assert taken.stdout == "g1: checkpoint 'c1' taken (Running with memory)\n"

        text = refused(service, 4, "disk", "expand", str(vhd), "--size", "40")
        assert f"disk {vhd} is the base of checkpoint 'c1' of VM 'g1' (IDE 0:0)" in text
        assert "VM 'g1' is Running" in text and text.endswith("nothing was changed")
        assert inspect(vhd).virtual_size == 20 * MB
    finally:
        act(api, "g1", "stop")

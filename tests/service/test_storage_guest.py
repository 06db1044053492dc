"""Storage handed in by the admin: a differencing VHD chain (converted into a standalone
disk, never given to QEMU as it is), a host block device passed through (refused while
mounted on the host), a dynamic VHDX; proven by what a real guest reads."""

from __future__ import annotations

import base64
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Console, Service, act
from viridian.disks import new_differencing, new_dynamic, open_disk

pytestmark = pytest.mark.guest

MB = 1024 * 1024


@contextlib.contextmanager
def loop_device(image: Path) -> Iterator[str]:
    device = subprocess.run(["losetup", "-f", "--show", str(image)], check=True,
                            capture_output=True, text=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def guest_read(api: httpx.Client, vm: str, size: int, offset: int, length: int) -> bytes:
    """``length`` bytes at ``offset`` of the guest's disk whose size is ``size``."""
    script = (f"for b in /sys/block/sd*; do [ $(cat $b/size) -eq {size // 512} ] && "
              f"dd if=/dev/${{b##*/}} bs=1 skip={offset} count={length} 2>/dev/null; done")
    deadline = time.monotonic() + 60
    while True:
        reply = api.post(f"/vms/{vm}/integration/exec",
                         json={"argv": ["/bin/sh", "-c", script], "timeout_s": 30})
        if reply.status_code == 200:
            return base64.b64decode(reply.json()["stdout_b64"])
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.5)


def test_differencing_vhd_and_pass_through_disk(
        service: Service, api: httpx.Client, guest_iso: Path, tmp_path: Path) -> None:
    parent, child = tmp_path / "parent.vhd", tmp_path / "child.vhd"
    new_dynamic(parent, 12 * MB)
    with open_disk(parent, writable=True) as disk:
        disk.write(0, b"FROM-PARENT")
        disk.write(MB, b"PARENT-OLD")
    new_differencing(child, parent)
    with open_disk(child, writable=True) as disk:
        disk.write(MB, b"CHILD-NEW!")
    child_before = child.read_bytes()
    vhdx = tmp_path / "data.vhdx"  # QEMU opens VHDX itself, always with the format named
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic",
                    str(vhdx), "7M"], check=True)
    subprocess.run(["qemu-io", "-f", "vhdx", "-c", "write -P 0x58 4096 4096", str(vhdx)],
                   check=True, capture_output=True)

    host_disk = tmp_path / "host.img"
    host_disk.write_bytes(b"HOST-BLOCK" + b"\0" * (9 * MB - 10))
    with loop_device(host_disk) as device:
        # Mounted on the host: refused, naming the mount point.
        subprocess.run(["mkfs.ext4", "-q", "-F", device], check=True)
        mount_point = tmp_path / "mnt"
        mount_point.mkdir()
        subprocess.run(["mount", device, str(mount_point)], check=True)
        try:
            created = api.post("/vms", json={"name": "store", "memory_mb": 256,
                                             "dvd": str(guest_iso), "vhd": str(child)})
            assert created.status_code == 201, created.text
            refused = api.post("/vms/store/disks", json={
                "controller": "ide", "location": "0:1", "path": device})
            assert refused.status_code == 409, refused.text
            assert f"mounted at {mount_point}" in refused.json()["error"]["message"]
        finally:
            subprocess.run(["umount", str(mount_point)], check=True)
        with open(device, "r+b") as raw:  # the host wrote a file system; put the marker back
            raw.write(b"HOST-BLOCK")

        attached = api.post("/vms/store/disks", json={
            "controller": "ide", "location": "0:1", "path": device})
        assert attached.status_code == 200, attached.text
        attached = api.post("/vms/store/disks", json={
            "controller": "scsi", "location": "0:0", "path": str(vhdx)})
        assert attached.status_code == 200, attached.text
        vm = attached.json()
        assert vm["settings"]["scsi"][0]["disks"][0]["format"] == "vhdx"
        ide = {(d["controller"], d["location"]): d for d in vm["settings"]["ide"]}
        converted = ide[(0, 0)]
        assert converted["path"] != str(child) and converted["format"] == "vpc"
        assert ide[(0, 1)] == {**ide[(0, 1)], "path": device, "format": "raw"}

        act(api, "store", "start")
        Console(service.data_dir, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY")
        assert guest_read(api, "store", 12 * MB, 0, 11) == b"FROM-PARENT"
        assert guest_read(api, "store", 12 * MB, MB, 10) == b"CHILD-NEW!"
        assert guest_read(api, "store", 9 * MB, 0, 10) == b"HOST-BLOCK"
        assert guest_read(api, "store", 7 * MB, 4096, 8) == b"XXXXXXXX"
        act(api, "store", "stop")
    assert child.read_bytes() == child_before  # the admin's chain was never written

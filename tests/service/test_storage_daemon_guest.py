"""The storage daemon (host setting ``storage_daemon: vhd``; docs/architecture.md, "The
storage path"): a VM booting from the guest kit's VHD with a VHDX data disk is saved and
started again — the guest continues (its in-memory tick counter goes on) and the markers
it wrote read back; the daemon ends with the VM."""

from __future__ import annotations

import base64
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.qemu_processes import qemu_under
from tests.service.harness import Console, Service, act, running_service

pytestmark = pytest.mark.guest

MB = 1024 * 1024
DATA_SIZE = 8 * MB


@contextlib.contextmanager
def daemon_service() -> Iterator[Service]:
    """A service whose host serves VHD/VHDX disks through storage daemons."""
    with running_service(host_settings={"storage_daemon": "vhd"}) as service:
        yield service


def guest_sh(api: httpx.Client, vm: str, script: str, timeout: float = 90) -> bytes:
    """Run ``script`` in the guest (waiting for its agent to answer); its stdout."""
    deadline = time.monotonic() + timeout
    while True:
        reply = api.post(f"/vms/{vm}/integration/exec",
                         json={"argv": ["/bin/sh", "-c", script], "timeout_s": 60})
        if reply.status_code == 200 and reply.json()["exit_code"] == 0:
            return base64.b64decode(reply.json()["stdout_b64"])
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.5)


def data_disk(sectors: int) -> str:
    """Shell: the guest's data disk device (the one of DATA_SIZE bytes)."""
    return (f"for b in /sys/block/sd*; do [ $(cat $b/size) -eq {sectors} ] && "
            "echo /dev/${b##*/}; done")


def write_markers(api: httpx.Client, vm: str, markers: dict[int, str]) -> None:
    dev = f"$({data_disk(DATA_SIZE // 512)})"
    script = "; ".join(f"printf '%-16s' '{text}' | dd of={dev} bs=512 seek={sector} "
                       "conv=notrunc,sync 2>/dev/null" for sector, text in markers.items())
    guest_sh(api, vm, script + "; sync")


def read_markers(api: httpx.Client, vm: str, sectors: list[int]) -> dict[int, str]:
    dev = f"$({data_disk(DATA_SIZE // 512)})"
    script = "sync; echo 3 > /proc/sys/vm/drop_caches; " + "; ".join(
        f"dd if={dev} bs=512 skip={s} count=1 2>/dev/null | head -c 16; echo" for s in sectors)
    lines = guest_sh(api, vm, script).decode(errors="replace").split("\n")
    return {s: line.strip("\0 ") for s, line in zip(sectors, lines, strict=False)}


def daemons(data_dir: Path) -> list[str]:
    return [p.cmdline for p in qemu_under(data_dir) if "qemu-storage-daemon" in p.cmdline]


def test_vhd_vm_with_vhdx_data_disk_saves_and_continues(tmp_path: Path) -> None:
    from viridian.guestkit import build

    boot, data = tmp_path / "boot.vhd", tmp_path / "data.vhdx"
    shutil.copyfile(build().vhd, boot)
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic",
                    str(data), str(DATA_SIZE)], check=True)
    with daemon_service() as service, service.client() as api:
        created = api.post("/vms", json={"name": "sd", "memory_mb": 256, "vhd": str(boot)})
        assert created.status_code == 201, created.text
        vm_id = created.json()["id"]
        added = api.post("/vms/sd/disks", json={"controller": "scsi", "location": "0:0",
                                                 "path": str(data)})
        assert added.status_code in (200, 201), added.text
        vm = api.get("/vms/sd").json()
        assert "save" in vm["allowed"] or vm["state"] == "Off"
        assert "save" not in vm["unavailable"], vm["unavailable"]

        act(api, "sd", "start")
        console = Console(service.data_dir, vm_id)
        console.wait_for(b"VIRIDIAN-GUEST READY")
        assert len(daemons(service.data_dir)) == 1  # one daemon serves both disks
        assert "save" in api.get("/vms/sd").json()["allowed"]
        write_markers(api, "sd", {1: "BEFORE-SAVE-1", 7: "BEFORE-SAVE-7"})
        before = console.wait_ticks(2)[-1][0]

        act(api, "sd", "save")
        assert api.get("/vms/sd").json()["state"] == "Saved"
        assert daemons(service.data_dir) == []  # ended with QEMU: the images are closed
        check = subprocess.run(["qemu-img", "check", "-q", "-f", "vhdx", str(data)],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr

        act(api, "sd", "start")
        assert api.get("/vms/sd").json()["state"] == "Running"
        first = Console(service.data_dir, vm_id).wait_ticks(1)[0][0]
        assert first > before  # the guest continued from its saved memory, no reboot
        assert b"VIRIDIAN-GUEST READY" not in Console(service.data_dir, vm_id).path.read_bytes()
        assert read_markers(api, "sd", [1, 7, 3]) == {1: "BEFORE-SAVE-1", 7: "BEFORE-SAVE-7",
                                                      3: ""}
        act(api, "sd", "stop")
        assert daemons(service.data_dir) == []

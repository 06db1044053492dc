"""An OVA round trip boots (issue 16 part 3): the guest kit's VM (its ISO in the DVD
drive, a data disk at IDE 0:0 holding a marker written before the export) is exported
as an OVA, removed with its files, imported from the OVA, started: the guest boots from
the DVD image that travelled in the package and reads the marker from its converted
disk (streamOptimized VMDK in the OVA, dynamic VHD after the import)."""

from __future__ import annotations

import base64
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Console, act, running_service, wait_job

pytestmark = [pytest.mark.guest]

VM = "ova-traveller"
MARKER = b"OVA-MARKER-1"
SECTOR = 100


def _sh(api: httpx.Client, vm: str, script: str) -> bytes:
    deadline = time.monotonic() + 120
    while True:  # the agent channel needs a moment after the boot
        reply = api.post(f"/vms/{vm}/integration/exec",
                         json={"argv": ["/bin/sh", "-c", script], "timeout_s": 60})
        if reply.status_code == 200:
            break
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.5)
    body = reply.json()
    assert body["exit_code"] == 0, base64.b64decode(body["stderr_b64"])
    return base64.b64decode(body["stdout_b64"])


def test_ova_round_trip_boots_and_keeps_the_marker(
        guest_iso: Path, tmp_path: Path) -> None:
    raw = tmp_path / "data.raw"
    with raw.open("wb") as file:
        file.truncate(16 << 20)
        file.seek(SECTOR * 512)
        file.write(MARKER)
    disk = tmp_path / "data.qcow2"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw),
                    str(disk)], check=True)
    exports = tmp_path / "exports"
    exports.mkdir()
    with running_service() as service, service.client() as api:
        created = api.post("/vms", json={"name": VM, "memory_mb": 256, "dvd": str(guest_iso),
                                         "vhd": str(disk)})
        assert created.status_code == 201, created.text
        exported = api.post(f"/vms/{VM}/export", json={"folder": str(exports),
                                                        "format": "ova"})
        assert exported.status_code == 202, exported.text
        assert wait_job(api, exported.json(), 300)["state"] == "completed"
        assert api.delete(f"/vms/{VM}", params={"delete_files": "true"}).status_code == 200
        imported = api.post("/imports", json={"path": str(exports / f"{VM}.ova")})
        job = wait_job(api, imported.json(), 300)
        assert job["state"] == "completed", job
        vm = job["result"]
        dvd = next(d for d in vm["settings"]["ide"] if d["kind"] == "dvd")
        assert dvd["path"].startswith(vm["folder"])  # the ISO came in the OVA
        act(api, VM, "start")
        Console(service.data_dir, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY", timeout=240)
        read = _sh(api, VM, f"dd if=/dev/sda bs=512 skip={SECTOR} count=1 2>/dev/null | "
                            f"head -c {len(MARKER)}")
        assert read == MARKER
        act(api, VM, "stop")


"""``backup new --with-memory`` of a real guest whose disks QEMU opens itself (a qcow2
boot disk and a raw data disk: no storage daemon), issue 16 — one shared guest, 256 MiB.

- The point holds the memory and the disks of one instant, and the guest keeps running
  with writable disks afterwards: a write made after the backup reaches the raw file,
  and is not in the point (which holds the write made before).
- Restored as a new VM the point is Saved, and started it continues where it was: a
  token the guest held only in memory (tmpfs) is there, and a counting loop (a process,
  in memory only) counts on from where it was.
- A Saved VM's point with memory (its saved state) restores as a Saved VM that resumes.
The guest's pause for the save (``timings_s.paused_s``, the downtime) is printed.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.backup.test_backup_guest import booted, done, sh
from tests.qemu_processes import qemu_under
from tests.service.harness import Service, act, running_service

pytestmark = pytest.mark.guest

VM = "bkm"
MB = 1024 * 1024
DATA_SIZE = 16 * MB
DEV = (f"$(for b in /sys/block/sd*; do [ $(cat $b/size) -eq {DATA_SIZE // 512} ] && "
       "echo /dev/${b##*/}; done)")
BEFORE, AFTER = 10, 20
"""Sectors of the data disk written before and after the backup."""
COUNTER = "i=0; while :; do i=$((i+1)); echo $i > /tmp/count; sleep 0.2; done"


def write_sector(api: httpx.Client, vm: str, sector: int, text: str) -> None:
    sh(api, vm, f"printf '%-16s' {text} | dd of={DEV} bs=512 seek={sector} "
                "conv=notrunc,sync,fsync oflag=direct 2>/dev/null")


def read_sector(api: httpx.Client, vm: str, sector: int) -> str:
    return sh(api, vm, f"dd if={DEV} bs=512 skip={sector} count=1 iflag=direct 2>/dev/null "
                       "| head -c 16 | tr -d '\\000'").strip()


def count(api: httpx.Client, vm: str) -> int:
    return int(sh(api, vm, "cat /tmp/count").strip())


def counts_on(api: httpx.Client, vm: str, beyond: int) -> int:
    """Wait until the guest's counting loop passed ``beyond``: it runs (not rebooted)."""
    deadline = time.monotonic() + 120
    while (now := count(api, vm)) <= beyond + 2:
        assert time.monotonic() < deadline, f"the loop of {vm} stopped at {now}"
        time.sleep(0.5)
    return now


def host_sector(image: Path, sector: int) -> str:
    with image.open("rb") as handle:
        handle.seek(sector * 512)
        return handle.read(16).decode(errors="replace").strip("\0 ")


def point_sector(point: dict[str, Any], sector: int, work: Path) -> str:
    raw = work / f"{point['id']}.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw",
                    str(Path(point["folder"]) / "disks/scsi-0-0.qcow2"), str(raw)], check=True)
    try:
        return host_sector(raw, sector)
    finally:
        raw.unlink()


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path, str]]:
    """VM ``bkm`` Running from a qcow2 with a raw data disk, its counting loop started
    and a token in its tmpfs; a target folder. Yields the service, work folder, token."""
    from viridian.guestkit import build

    work = tmp_path_factory.mktemp("backup-memory")
    boot, data = work / "boot.qcow2", work / "data.raw"
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(build().raw),
                    str(boot)], check=True)
    with data.open("wb") as handle:
        handle.truncate(DATA_SIZE)
    (work / "target").mkdir()
    token = uuid.uuid4().hex[:12]
    with running_service() as service, service.client() as api:
        booted(service, api, VM, boot, data)
        assert not [p for p in qemu_under(service.data_dir)
                    if "qemu-storage-daemon" in p.cmdline], "QEMU must open the disks"
        sh(api, VM, f"echo {token} > /tmp/token; "
                    f"setsid sh -c '{COUNTER}' >/dev/null 2>&1 < /dev/null &")
        counts_on(api, VM, 0)
        yield service, work, token


def test_memory_point_of_qemu_opened_disks_then_saved_vm_point(
        guest: tuple[Service, Path, str]) -> None:
    service, work, token = guest
    data = work / "data.raw"
    with service.client() as api:
        write_sector(api, VM, BEFORE, "BEFORE")
        before = count(api, VM)
        point = done(api, api.post("/backups", json={"vm": VM, "target": str(work / "target"),
                                                      "with_memory": True}))
        at_backup = count(api, VM)
        assert (point["memory"], point["vm_state"]) == ("memory.state", "Running"), point
        state_mib = (Path(point["folder"]) / "memory.state").stat().st_size / MB
        print(f"\nwith-memory point of a 256 MiB guest on QEMU-opened disks: paused "
              f"{point['timings_s']['paused_s']:.3f} s (downtime; memory state "
              f"{state_mib:.1f} MiB), phases {point['timings_s']}")

        # the guest runs on with writable disks; the point is of the instant before
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"
        counts_on(api, VM, at_backup)
        write_sector(api, VM, AFTER, "AFTER")
        assert read_sector(api, VM, AFTER) == "AFTER"
        assert host_sector(data, AFTER) == "AFTER"  # reached the raw file
        assert point_sector(point, BEFORE, work) == "BEFORE"
        assert point_sector(point, AFTER, work) == ""
        staging = service.data_dir / "backups/staging"
        assert not staging.exists() or not any(staging.iterdir())

        restored = _restored_continues(api, service, point, "bkm-r", token,
                                       before)
        try:
            act(api, "bkm-r", "save")
            saved = done(api, api.post("/backups", json={
                "vm": "bkm-r", "target": str(work / "target"), "with_memory": True}))
            assert (saved["memory"], saved["vm_state"]) == ("memory.state", "Saved"), saved
            assert api.delete("/vms/bkm-r", params={"delete_files": "true"}).status_code \
                == 200
            _restored_continues(api, service, saved, "bkm-r2", token, restored)
        finally:
            for name in ("bkm-r", "bkm-r2"):
                api.post(f"/vms/{name}/stop", params={"wait": 60})
                api.delete(f"/vms/{name}", params={"delete_files": "true"})


def _restored_continues(api: httpx.Client, service: Service, point: dict[str, Any],
                        name: str, token: str, at_least: int) -> int:
    """Restore ``point`` as VM ``name``: Saved; started, it has the token in memory, its
    loop counts on from where it was at the point (at least ``at_least``, its count read
    before the point was taken), its data disk is the point's and writable.
    The count it reached."""
    vm = done(api, api.post(f"/backups/{point['id']}/restore", json={"name": name}))
    assert vm["state"] == "Saved", vm
    act(api, name, "start")
    assert sh(api, name, "cat /tmp/token").strip() == token  # memory, not a reboot
    first = count(api, name)
    assert first >= at_least, (first, at_least)
    reached = counts_on(api, name, first)
    assert read_sector(api, name, BEFORE) == "BEFORE"
    assert read_sector(api, name, AFTER) == ""
    write_sector(api, name, AFTER + 1, "RESTORED")
    assert read_sector(api, name, AFTER + 1) == "RESTORED"
    return reached



def test_service_killed_inside_the_memory_save(guest: tuple[Service, Path, str]) -> None:
    """SIGKILL with the guest paused in ``postmigrate`` (images inactive) and the point's
    jobs started: after the restart the guest runs on where it was with writable disks,
    nothing partial is listed, and the next point with memory is taken."""
    service, work, token = guest
    target = work / "target"
    with service.client() as api:
        listed = [b["id"] for b in api.get("/backups").json()["backups"]]
    service.stop()
    service.env["VIRIDIAN_FAULT_POINTS"] = "backup.memory_saved"
    service.start()
    with service.client() as api:
        before = count(api, VM)
        assert api.post("/backups", json={"vm": VM, "target": str(target),
                                          "with_memory": True}).status_code == 202
    assert service.process is not None
    service.process.wait(timeout=180)
    service.env.pop("VIRIDIAN_FAULT_POINTS", None)
    service.start(timeout=120)
    with service.client() as api:
        shown = api.get(f"/vms/{VM}").json()
        assert shown["state"] == "Running", shown
        assert "running again after an interrupted backup with memory" in \
            service.log.read_text()  # the kill did leave it paused in postmigrate
        assert [b["id"] for b in api.get("/backups").json()["backups"]] == listed
        assert not [p for p in (target / VM).iterdir() if p.name.startswith(".partial")]
        assert sh(api, VM, "cat /tmp/token").strip() == token
        counts_on(api, VM, before)
        write_sector(api, VM, AFTER + 2, "RECOVERED")
        assert host_sector(work / "data.raw", AFTER + 2) == "RECOVERED"
        again = done(api, api.post("/backups", json={"vm": VM, "target": str(target),
                                                      "with_memory": True}))
        assert again["memory"] == "memory.state" and again["kind"] == "full", again

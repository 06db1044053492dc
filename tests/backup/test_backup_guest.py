"""Live backup of a real guest that writes all the time (issue 16 parts 1 and 2): a VM booting
from the guest kit's VHD (served by its storage daemon) with a VHDX data disk, a loop in
the guest writing marker ``M<i>`` to sector ``100+i`` and then counter ``C<i>`` to
sector 1, each synced.

- a full point, then an incremental one (a qcow2 on top of the first), each
  application-consistent (guest agent freeze);
- the storage daemon is SIGKILLed (the service starts it again, the bitmap is gone):
  the next incremental request is full and says why;
- each point restored as a new VM boots, and its data disk holds exactly a prefix of
  the markers — counter and markers agree (one instant for the whole disk), no fewer
  than the guest had written when the backup was asked for, no more than when it ended;
- a write rate of the guest during a backup to a throttled target is printed beside
  its rate without backup.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.qemu_processes import qemu_under
from tests.service.harness import Console, Service, act, running_service, wait_job

pytestmark = pytest.mark.guest

VM = "bk"
MB = 1024 * 1024
DATA_SIZE = 16 * MB
FIRST = 100
DEV = (f"$(for b in /sys/block/sd*; do [ $(cat $b/size) -eq {DATA_SIZE // 512} ] && "
       "echo /dev/${b##*/}; done)")
WRITER = (f"dev={DEV}; i=0; while [ ! -e /tmp/stop ]; do "
          "printf '%-16s' M$i | dd of=$dev bs=512 seek=$((100+i)) conv=notrunc,sync,fsync "
          "2>/dev/null; printf '%-16s' C$i | dd of=$dev bs=512 seek=1 conv=notrunc,sync,fsync "
          "2>/dev/null; i=$((i+1)); done")


def sh(api: httpx.Client, vm: str, script: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while True:
        reply = api.post(f"/vms/{vm}/integration/exec",
                         json={"argv": ["/bin/sh", "-c", script], "timeout_s": 60})
        if reply.status_code == 200 and reply.json()["exit_code"] == 0:
            return base64.b64decode(reply.json()["stdout_b64"]).decode(errors="replace")
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.5)


def counter(api: httpx.Client, vm: str) -> int:
    text = sh(api, vm, f"dd if={DEV} bs=512 skip=1 count=1 2>/dev/null | head -c 16").strip()
    return int(text[1:]) if text.startswith("C") else -1


def disk_state(api: httpx.Client, vm: str) -> tuple[int, list[int]]:
    """The counter and the marker numbers found, in sector order."""
    total = counter(api, vm) + 3
    text = sh(api, vm, f"echo 3 > /proc/sys/vm/drop_caches; dd if={DEV} bs=512 skip={FIRST} "
                       f"count={total + 20} 2>/dev/null | tr -d '\\000'")
    return counter(api, vm), [int(word[1:]) for word in text.split() if word.startswith("M")]


def done(api: httpx.Client, response: httpx.Response, timeout: float = 400) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json(), timeout)
    assert job["state"] == "completed", job.get("error")
    return dict(job["result"])


def booted(service: Service, api: httpx.Client, vm: str, boot: Path, data: Path) -> None:
    """VM ``vm`` (256 MiB) booting the guest kit from ``boot`` with ``data`` at SCSI 0:0,
    started and its guest READY."""
    created = api.post("/vms", json={"name": vm, "memory_mb": 256, "vhd": str(boot)})
    assert created.status_code == 201, created.text
    added = api.post(f"/vms/{vm}/disks", json={"controller": "scsi", "location": "0:0",
                                                "path": str(data)})
    assert added.status_code in (200, 201), added.text
    act(api, vm, "start")
    Console(service.data_dir, created.json()["id"]).wait_for(b"VIRIDIAN-GUEST READY")


def daemon_pid(data_dir: Path) -> int:
    found = [p.pid for p in qemu_under(data_dir) if "qemu-storage-daemon" in p.cmdline]
    assert len(found) == 1, found
    return found[0]


@pytest.fixture(scope="module")
def writing(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    """VM ``bk`` Running with the marker loop started, and a target folder."""
    from viridian.guestkit import build

    work = tmp_path_factory.mktemp("backup-guest")
    boot, data = work / "boot.vhd", work / "data.vhdx"
    shutil.copyfile(build().vhd, boot)
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic",
                    str(data), str(DATA_SIZE)], check=True)
    (work / "target").mkdir()
    with running_service() as service, service.client() as api:
        booted(service, api, VM, boot, data)
        sh(api, VM, f"setsid sh -c '{WRITER}' >/dev/null 2>&1 < /dev/null &")
        deadline = time.monotonic() + 60
        while counter(api, VM) < 3:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        yield service, work


def _point(api: httpx.Client, target: Path, incremental: bool) -> tuple[dict[str, Any],
                                                                         int, int]:
    before = counter(api, VM)
    record = done(api, api.post("/backups", json={"vm": VM, "target": str(target),
                                                  "incremental": incremental}))
    return record, before, counter(api, VM)


def _restored_in_guest(api: httpx.Client, service: Service,
                       point: dict[str, Any]) -> tuple[int, list[int]]:
    """Restore ``point`` as a new VM, boot it, read its data disk, remove it."""
    name = f"r-{point['id'][:6]}"
    vm = done(api, api.post(f"/backups/{point['id']}/restore", json={"name": name}))
    assert vm["name"] == name and vm["state"] == "Off"
    act(api, name, "start")
    Console(service.data_dir, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY")
    found = disk_state(api, name)
    act(api, name, "stop")
    assert api.delete(f"/vms/{name}", params={"delete_files": "true"}).status_code == 200
    return found


def _read_on_host(point: dict[str, Any], work: Path) -> tuple[int, list[int]]:
    """The counter and markers of the point's data disk, read through its chain."""
    raw = work / f"{point['id']}.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw",
                    str(Path(point["folder"]) / "disks/scsi-0-0.qcow2"), str(raw)], check=True)
    data = raw.read_bytes()
    raw.unlink()

    def sector(n: int) -> str:
        return data[n * 512:n * 512 + 16].decode(errors="replace").strip("\0 ")
    markers = [int(sector(n)[1:]) for n in range(FIRST, DATA_SIZE // 512)
               if sector(n).startswith("M")]
    text = sector(1)
    return (int(text[1:]) if text.startswith("C") else -1), markers


def _check(found: tuple[int, list[int]], low: int, high: int) -> int:
    count, markers = found
    assert markers == list(range(len(markers))), markers[-5:]  # a prefix, no holes
    assert len(markers) - 1 in (count, count + 1), (count, markers[-3:])  # one instant
    assert low <= count <= high, (low, count, high)
    return count


def test_full_incremental_lost_bitmap_and_restores(writing: tuple[Service, Path]) -> None:
    service, work = writing
    target = work / "target"
    with service.client() as api:
        full, low1, high1 = _point(api, target, incremental=False)
        assert (full["kind"], full["consistency"], full["vm_state"]) == \
            ("full", "application", "Running")
        inc, low2, high2 = _point(api, target, incremental=True)
        assert inc["kind"] == "incremental" and inc["parent"] == full["id"], inc
        chain = api.get(f"/backups/{inc['id']}").json()["chain"]
        assert chain == [full["id"], inc["id"]]

        os.kill(daemon_pid(service.data_dir), signal.SIGKILL)  # the bitmap goes with it
        deadline = time.monotonic() + 90
        while counter(api, VM) <= high2 + 2:  # the new daemon serves, the guest writes on
            assert time.monotonic() < deadline
            time.sleep(0.5)
        after, _, _ = _point(api, target, incremental=True)
        assert after["kind"] == "full" and after["parent"] is None
        assert "change tracking" in after["reason"] and "lost" in after["reason"]
        print(f"\nreason recorded: {after['reason']}")

        verified = done(api, api.post(f"/backups/{inc['id']}/verify"))
        assert verified["ok"] and verified["points"] == [full["id"], inc["id"]]

        count1 = _check(_read_on_host(full, work), low1, high1)
        count2 = _check(_restored_in_guest(api, service, inc), low2, high2)
        assert count2 > count1


def _rate(api: httpx.Client, seconds: float) -> float:
    start, began = counter(api, VM), time.monotonic()
    time.sleep(seconds)
    return (counter(api, VM) - start) / (time.monotonic() - began)


def test_slow_target_does_not_slow_the_guest(writing: tuple[Service, Path]) -> None:
    """Printed, not asserted beyond a very generous bound (the machine is shared)."""
    service, work = writing
    with service.client() as api:
        idle = _rate(api, 6)
        start, began = counter(api, VM), time.monotonic()
        record = done(api, api.post("/backups", json={
            "vm": VM, "target": str(work / "target"), "rate_limit_mib_s": 2}))
        during = (counter(api, VM) - start) / (time.monotonic() - began)
        took = time.monotonic() - began
    print(f"\nguest writes: {idle:.1f} markers/s without backup, {during:.1f} markers/s "
          f"during a {took:.0f} s backup to a 2 MiB/s target "
          f"({record['bytes_written'] / MB:.1f} MiB written); ratio {during / idle:.2f}")
    assert record["kind"] == "full" and took > 5  # the throttle really held the copy
    assert during > 0.2 * idle


def test_service_killed_during_live_backup(writing: tuple[Service, Path]) -> None:
    """SIGKILL while QEMU's jobs run: after the restart nothing partial is listed or left
    on disk, the VM runs on, and the chain still continues incrementally."""
    service, work = writing
    target = work / "target"
    with service.client() as api:
        last = done(api, api.post("/backups", json={"vm": VM, "target": str(target)}))
        listed = [b["id"] for b in api.get("/backups").json()["backups"]]
    service.stop()
    service.env["VIRIDIAN_FAULT_POINTS"] = "backup.started"
    service.start()
    with service.client() as api:
        assert api.post("/backups", json={"vm": VM, "target": str(target),
                                          "incremental": True}).status_code == 202
    assert service.process is not None
    service.process.wait(timeout=180)
    service.env.pop("VIRIDIAN_FAULT_POINTS", None)
    service.start(timeout=120)
    with service.client() as api:
        assert [b["id"] for b in api.get("/backups").json()["backups"]] == listed
        assert not [p for p in (target / VM).iterdir() if p.name.startswith(".partial")]
        assert not (service.data_dir / "backups/staging").exists()
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"
        low = counter(api, VM)
        nxt = done(api, api.post("/backups", json={"vm": VM, "target": str(target),
                                                   "incremental": True}))
        assert (nxt["kind"], nxt["parent"]) == ("incremental", last["id"]), nxt
        _check(_read_on_host(nxt, work), low, counter(api, VM))


def test_point_with_memory_restores_a_saved_vm_that_continues(
        writing: tuple[Service, Path]) -> None:
    """``--with-memory``: the point holds the guest's memory of the same instant as its
    disks; restored as a new VM it is Saved, and started it continues where it was —
    the marker loop (started by hand, so a rebooted guest has none) writes on from the
    point's counter on the restored data disk."""
    service, work = writing
    with service.client() as api:
        low = counter(api, VM)
        point = done(api, api.post("/backups", json={"vm": VM, "target": str(work / "target"),
                                                      "with_memory": True}))
        high = counter(api, VM)
        assert point["memory"] == "memory.state" and point["vm_state"] == "Running", point
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"
        at_point = _check(_read_on_host(point, work), low, high)
        vm = done(api, api.post(f"/backups/{point['id']}/restore", json={"name": "bk-mem"}))
        assert vm["state"] == "Saved", vm
        try:
            act(api, "bk-mem", "start")
            first = counter(api, "bk-mem")
            assert first >= at_point, (first, at_point)
            deadline = time.monotonic() + 120
            while counter(api, "bk-mem") <= first + 2:  # the loop runs on: not rebooted
                assert time.monotonic() < deadline, "the restored guest's loop stopped"
                time.sleep(0.5)
        finally:
            api.post("/vms/bk-mem/stop", params={"wait": 60})
            api.delete("/vms/bk-mem", params={"delete_files": "true"})

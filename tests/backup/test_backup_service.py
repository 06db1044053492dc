"""Backup of a VM that is Off (read from its files: a host without storage daemons)
against a real service: a point is
listed only once good; verify re-reads every block and finds a flipped byte (file and
offset named); a point another builds on cannot be removed; restore as a new VM gives
disks equal to the VM's (qemu-img compare) in their own formats; restore in place
rewrites the disks of the VM; bad requests are refused with what was wrong and change
nothing."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, running_service, wait_job

VM = "offline"


def _done(api: httpx.Client, response: httpx.Response, timeout: float = 180) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json(), timeout)
    assert job["state"] == "completed", job.get("error")
    return dict(job["result"])


def _qemu_io(path: Path, fmt: str, command: str) -> None:
    subprocess.run(["qemu-io", "-f", fmt, "-c", command, str(path)], check=True,
                   capture_output=True)


def _same(a: Path, fa: str, b: Path, fb: str) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", "-f", fa, "-F", fb, str(a), str(b)],
                          check=False).returncode == 0


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    """A service with VM ``offline`` (Off): a VHD at IDE 0:0 and a raw disk at IDE 0:1,
    both with data; and a target folder."""
    work = tmp_path_factory.mktemp("backup-offline")
    vhd, raw = work / "system.vhd", work / "data.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                    "subformat=dynamic,force_size=on", str(vhd), "24M"], check=True)
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "8M"], check=True)
    _qemu_io(vhd, "vpc", "write -P 0x5a 1M 3M")
    _qemu_io(raw, "raw", "write -P 0x33 0 1M")
    (work / "target").mkdir()
    # no storage daemon: the disks are read from their files (the daemon's way is the
    # running VM's, test_backup_guest.py)
    with running_service(host_settings={"storage_daemon": "off"}) as service, \
            service.client() as api:
        created = api.post("/vms", json={"name": VM, "memory_mb": 128, "vhd": str(vhd)})
        assert created.status_code == 201, created.text
        added = api.post(f"/vms/{VM}/disks", json={"controller": "ide", "location": "0:1",
                                                    "path": str(raw)})
        assert added.status_code in (200, 201), added.text
        yield service, work


def test_offline_backup_verify_remove_restore(offline: tuple[Service, Path]) -> None:
    service, work = offline
    target = work / "target"
    with service.client() as api:
        first = _done(api, api.post("/backups", json={"vm": VM, "target": str(target)}))
        assert (first["kind"], first["status"], first["vm_state"]) == ("full", "good", "Off")
        assert first["consistency"] == "crash"
        assert [d["slot"] for d in first["disks"]] == ["ide:0:0", "ide:0:1"]
        point = Path(first["folder"])
        assert point.parent == target / VM and point.is_dir()
        assert _same(point / "disks/ide-0-0.qcow2", "qcow2", work / "system.vhd", "vpc")

        _qemu_io(work / "data.raw", "raw", "write -P 0x44 2M 1M")
        second = _done(api, api.post("/backups", json={"vm": VM, "target": str(target),
                                                       "incremental": True}))
        assert second["kind"] == "full" and "not running" in second["reason"]
        listed = api.get("/backups", params={"vm": VM}).json()["backups"]
        assert [b["id"] for b in listed] == [first["id"], second["id"]]

        verified = _done(api, api.post(f"/backups/{first['id']}/verify"))
        assert verified["ok"] and verified["problems"] == []
        disk = point / "disks/ide-0-1.qcow2"
        with disk.open("r+b") as stream:  # one flipped byte in the data
            stream.seek(disk.stat().st_size - 4096)
            byte = stream.read(1)
            stream.seek(-1, 1)
            stream.write(bytes([byte[0] ^ 0xFF]))
        tampered = _done(api, api.post(f"/backups/{first['id']}/verify"))
        assert not tampered["ok"]
        assert any("disks/ide-0-1.qcow2: block" in p for p in tampered["problems"]), tampered

        restored = _done(api, api.post(f"/backups/{second['id']}/restore",
                                       json={"name": "offline-copy"}))
        assert restored["name"] == "offline-copy" and restored["state"] == "Off"
        copy = api.get("/vms/offline-copy").json()
        drives = sorted((d for d in copy["settings"]["ide"] if d["kind"] == "hard_disk"),
                        key=lambda d: (d["controller"], d["location"]))
        assert drives[0]["path"].endswith(".vhd") and drives[0]["format"] == "vpc"
        assert _same(Path(drives[0]["path"]), "vpc", work / "system.vhd", "vpc")
        assert _same(Path(drives[1]["path"]), "raw", work / "data.raw", "raw")
        assert copy["id"] != api.get(f"/vms/{VM}").json()["id"]

        _qemu_io(work / "data.raw", "raw", "write -P 0x99 0 4M")  # the VM's disk changes
        in_place = _done(api, api.post(f"/backups/{second['id']}/restore", json={}))
        assert in_place["in_place"] and in_place["name"] == VM
        assert _same(work / "data.raw", "raw", Path(drives[1]["path"]), "raw")

        removed = api.delete(f"/backups/{first['id']}")
        assert removed.status_code == 200 and not point.exists()
        assert [b["id"] for b in api.get("/backups").json()["backups"]] == [second["id"]]

        third = _done(api, api.post("/backups", json={"vm": VM, "target": str(target),
                                                      "keep_daily": 1}))
        assert third["pruned"] == [second["id"]]  # the same day: only the newest stays
        assert [b["id"] for b in api.get("/backups").json()["backups"]] == [third["id"]]
        assert not Path(second["folder"]).exists()


def test_bad_requests_change_nothing(offline: tuple[Service, Path]) -> None:
    service, work = offline
    with service.client() as api:
        before = api.get("/backups").json()
        relative = api.post("/backups", json={"vm": VM, "target": "relative/dir"})
        assert relative.status_code == 400 and "absolute" in relative.text
        missing = api.post("/backups", json={"vm": VM, "target": str(work / "nope")})
        assert missing.status_code == 404 and "not an existing folder" in missing.text
        unknown = api.post("/backups", json={"vm": "ghost", "target": str(work)})
        assert unknown.status_code == 404
        both = api.post("/backups", json={"vm": VM, "all": True, "target": str(work)})
        assert both.status_code == 400 and "not both" in both.text
        memory = api.post("/backups", json={"vm": VM, "target": str(work),
                                            "with_memory": True})
        assert memory.status_code == 409 and "cannot include the memory" in memory.text
        late = api.post(f"/backups/{VM}/restore", json={"to_time": "someday"})
        assert late.status_code == 400 and "ISO 8601" in late.text
        assert api.get("/backups/nope").status_code == 404
        assert api.post("/backups/nope/restore", json={}).status_code == 404
        assert api.get("/backups").json() == before
        assert not (work / "nope").exists()


def test_schedule_runs_in_the_service(offline: tuple[Service, Path]) -> None:
    """The first run of a new schedule is due at once: the service's loop takes it."""
    service, work = offline
    target = work / "scheduled"
    target.mkdir()
    with service.client() as api:
        bad = api.put(f"/backups/schedules/{VM}", json={"target": str(target),
                                                         "every_minutes": 0})
        assert bad.status_code == 400 and api.get("/backups/schedules").json() == {
            "schedules": []}
        set_ = api.put(f"/backups/schedules/{VM}", json={"target": str(target),
                                                          "every_minutes": 720,
                                                          "keep_daily": 2})
        assert set_.status_code == 200 and set_.json()["next_run"] == "now", set_.text
        deadline = time.monotonic() + 90
        while not [b for b in api.get("/backups").json()["backups"]
                   if b["folder"].startswith(str(target))]:
            assert time.monotonic() < deadline, "the scheduled backup did not run"
            time.sleep(1)
        schedule = api.get("/backups/schedules").json()["schedules"][0]
        assert schedule["vm"] == VM and schedule["last_run"] and schedule["next_run"] != "now"
        assert api.delete(f"/backups/schedules/{VM}").status_code == 200
        assert api.delete(f"/backups/schedules/{VM}").status_code == 404


def test_running_vm_without_daemon_is_backed_up_in_qemu(offline: tuple[Service, Path]) -> None:
    """A raw disk opened by QEMU itself (no storage daemon): the jobs and bitmaps run in
    QEMU. No guest OS (nothing boots, nothing writes): the points equal the disk."""
    service, work = offline
    raw = work / "direct.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(raw), "16M"], check=True)
    _qemu_io(raw, "raw", "write -P 0x6b 4M 2M")
    target = work / "direct-target"
    target.mkdir()
    with service.client() as api:
        assert api.post("/vms", json={"name": "direct", "memory_mb": 64,
                                      "vhd": str(raw)}).status_code == 201
        started = api.post("/vms/direct/start", params={"wait": 60})
        assert wait_job(api, started.json(), 60)["state"] == "completed"
        try:
            body = {"vm": "direct", "target": str(target)}
            full = _done(api, api.post("/backups", json=body))
            assert (full["kind"], full["consistency"], full["vm_state"]) == \
                ("full", "crash", "Running")
            inc = _done(api, api.post("/backups", json={**body, "incremental": True}))
            assert (inc["kind"], inc["parent"]) == ("incremental", full["id"]), inc
            for point in (full, inc):
                image = Path(point["folder"]) / "disks/ide-0-0.qcow2"
                assert _same(image, "qcow2", raw, "raw")
            _memory_points_of_qemu_opened_disks(api, target, raw)
        finally:
            api.post("/vms/direct/stop", params={"wait": 60})
            api.delete("/vms/direct-saved", params={"delete_files": "true"})


def _memory_points_of_qemu_opened_disks(api: httpx.Client, target: Path, raw: Path) -> None:
    """``with_memory`` on the QEMU-opened raw disk: the VM runs on, the point holds the
    disk and the memory, and restores as a Saved VM; ``all`` with memory includes it for
    the Running VM and names the Off one, backed up without it."""
    point = _done(api, api.post("/backups", json={"vm": "direct", "target": str(target),
                                                  "with_memory": True}))
    assert point["memory"] == "memory.state" and point["timings_s"]["paused_s"] > 0, point
    assert (Path(point["folder"]) / "memory.state").stat().st_size > 0
    assert _same(Path(point["folder"]) / "disks/ide-0-0.qcow2", "qcow2", raw, "raw")
    assert api.get("/vms/direct").json()["state"] == "Running"
    every = _done(api, api.post("/backups", json={"all": True, "target": str(target),
                                                  "with_memory": True}))
    outcomes = {o["vm"]: o for o in every["points"]}
    assert every["failed"] == [] and VM in every["without_memory"], every
    assert "direct" not in every["without_memory"]
    assert "it is Off" in outcomes[VM]["memory_skipped"]
    assert outcomes[VM]["backup"]["memory"] is None
    assert outcomes["direct"]["backup"]["memory"] == "memory.state"
    assert api.get("/vms/direct").json()["state"] == "Running"
    vm = _done(api, api.post(f"/backups/{point['id']}/restore", json={"name": "direct-saved"}))
    assert vm["state"] == "Saved", vm

"""SIGKILL of the service at each fault point of a backup and of a restore (the VM is
Off: these steps are the same for a live point, whose QEMU side is killed in
test_backup_guest.py): nothing partial is listed or left on disk, a point killed after
its folder was published is recorded good at the next start, a killed restore
registers no VM and leaves no package behind."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Service, running_service, wait_job

VM = "crashy"


def _crash(service: Service, point: str, request: Callable[[httpx.Client], httpx.Response]) \
        -> None:
    service.stop()
    service.env["VIRIDIAN_FAULT_POINTS"] = point
    service.start()
    with service.client() as api:
        assert request(api).status_code == 202
    assert service.process is not None
    service.process.wait(timeout=120)
    service.env.pop("VIRIDIAN_FAULT_POINTS", None)
    service.start(timeout=60)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Path]]:
    work = tmp_path_factory.mktemp("backup-crash")
    disk = work / "disk.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", "-o",
                    "subformat=dynamic,force_size=on", str(disk), "8M"], check=True)
    subprocess.run(["qemu-io", "-f", "vpc", "-c", "write -P 0x21 0 2M", str(disk)],
                   check=True, capture_output=True)
    (work / "target").mkdir()
    with running_service() as running, running.client() as api:
        assert api.post("/vms", json={"name": VM, "memory_mb": 64,
                                      "vhd": str(disk)}).status_code == 201
        yield running, work


@pytest.mark.parametrize("point", ["backup.begun", "backup.copied"])
def test_killed_backup_leaves_nothing(service: tuple[Service, Path], point: str) -> None:
    running, work = service
    target = work / "target"
    _crash(running, point, lambda api: api.post("/backups", json={"vm": VM,
                                                                  "target": str(target)}))
    with running.client() as api:
        assert api.get("/backups").json()["backups"] == []
        assert api.get("/jobs").json()["jobs"][0]["state"] == "failed"
    assert not (target / VM).exists() or list((target / VM).iterdir()) == []
    assert not (running.data_dir / "backups/staging").exists()


def test_killed_after_publishing_is_recorded_good(service: tuple[Service, Path]) -> None:
    running, work = service
    target = work / "target"
    _crash(running, "backup.published",
           lambda api: api.post("/backups", json={"vm": VM, "target": str(target)}))
    with running.client() as api:
        backups = api.get("/backups").json()["backups"]
        assert len(backups) == 1 and backups[0]["status"] == "good"
        job = wait_job(api, api.post(f"/backups/{backups[0]['id']}/verify").json(), 60)
        assert job["result"]["ok"], job


def test_killed_restore_registers_nothing(service: tuple[Service, Path]) -> None:
    running, _ = service
    with running.client() as api:
        point = api.get("/backups").json()["backups"][0]["id"]
        before = [vm["name"] for vm in api.get("/vms").json()["vms"]]
    _crash(running, "restore.package",
           lambda api: api.post(f"/backups/{point}/restore", json={"name": "back"}))
    with running.client() as api:
        assert [vm["name"] for vm in api.get("/vms").json()["vms"]] == before
        assert api.get("/vms/back").status_code == 404
    assert not (running.data_dir / "backups/restore").exists()
    assert [p.name for p in (running.data_dir / "vms").iterdir() if p.name.startswith(".")] \
        == []


MIB = 1 << 20


def _fill(path: Path, byte: int) -> None:
    with path.open("r+b") as stream:
        stream.write(bytes([byte]) * MIB)


def _first_mib(path: Path) -> bytes:
    with path.open("rb") as stream:
        return stream.read(MIB)


def test_killed_in_place_restore_is_completed(service: tuple[Service, Path]) -> None:
    """An Off VM with two disks restored in place, killed after the first rename: the
    next start completes it (both disks the point's), no file is left beside. (Undoing a
    restore killed before its renames: tests/backup/test_inplace_journal.py.)"""
    running, work = service
    disks = [work / "one.raw", work / "two.raw"]
    for disk, byte in zip(disks, (0x21, 0x33), strict=True):
        subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(disk), "8M"], check=True)
        _fill(disk, byte)
    with running.client() as api:
        assert api.post("/vms", json={"name": "inplace", "memory_mb": 64,
                                      "vhd": str(disks[0])}).status_code == 201
        assert api.post("/vms/inplace/disks", json={"controller": "ide", "location": "0:1",
                                                    "path": str(disks[1])}).status_code \
            in (200, 201)
        made = wait_job(api, api.post("/backups", json={"vm": "inplace", "target": str(
            work / "target")}).json(), 120)
        assert made["state"] == "completed", made
        point = made["result"]["id"]
    for disk in disks:
        _fill(disk, 0x99)

    def restore(api: httpx.Client) -> httpx.Response:
        return api.post(f"/backups/{point}/restore", json={})
    _crash(running, "restore.renamed", restore)
    assert [_first_mib(d) for d in disks] == [b"\x21" * MIB, b"\x33" * MIB]  # completed
    assert sorted(p.name for p in work.iterdir() if p.name.endswith(".restore")) == []
    with running.client() as api:
        assert api.get("/vms/inplace").json()["state"] == "Off"

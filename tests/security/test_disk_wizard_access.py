"""The disk wizard for a self-service user (docs/architecture.md, "Access"): disks it
makes or grows count against the user's disk quota (refused with the numbers, nothing
made), and a confined user's job opens exactly the files that were checked — a path
swapped for a symlink out of the storage path after the check is not followed, and a
differencing disk whose parent lies outside the storage path is not read through."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, running_service, wait_job
from viridian.disks import new_differencing, new_dynamic
from viridian.errors import Forbidden
from viridian.service.disk_wizard.pinning import Pins

MB = 1024 * 1024


@pytest.fixture(scope="module")
def storage() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="vir-wiz-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def setup(storage: Path) -> Iterator[tuple[Service, httpx.Client, httpx.Client]]:
    """A service; ``dana`` may make VMs and disks inside ``storage``, 100 MB of disk."""
    with running_service() as service, service.client() as admin:
        for call in (admin.post("/access/roles", json={
                         "name": "Disk User",
                         "operations": ["vm.create", "disk.manage", "job.read"]}),
                     admin.post("/access/users", json={"name": "dana",
                                                       "password": "dana-password"}),
                     admin.post("/access/grants", json={"role": "Disk User", "to": "dana"}),
                     admin.post("/access/storage-paths", json={"to": "dana",
                                                               "path": str(storage)})):
            assert call.status_code == 201, call.text
        assert admin.put("/access/quotas/dana", json={"disk_mb": 100}).status_code == 200
        login = httpx.post(service.url + "/api/v1/access/login",
                           json={"user": "dana", "password": "dana-password"})
        assert login.status_code == 200, login.text
        with httpx.Client(base_url=service.url + "/api/v1", timeout=120, headers={
                "Authorization": f"Bearer {login.json()['token']}"}) as dana:
            yield service, admin, dana


def job_of(client: httpx.Client, answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 202, answer.text
    return wait_job(client, answer.json())


def refused(answer: httpx.Response, *phrases: str) -> None:
    assert answer.status_code == 403, answer.text
    for phrase in phrases:
        assert phrase in answer.json()["error"]["message"], answer.text


def test_wizard_disks_count_against_the_disk_quota(
        setup: tuple[Service, httpx.Client, httpx.Client], storage: Path) -> None:
    _, admin, dana = setup
    vm = dana.post("/vms", json={"name": "dana-1", "memory_mb": 64, "new_vhd": {
        "path": str(storage / "vm.vhd"), "size": "40M"}})
    assert vm.status_code == 201, vm.text
    made = job_of(dana, dana.post("/disks/new", json={"path": str(storage / "a.vhd"),
                                                      "size": "50M"}))
    assert made["state"] == "completed", made
    refused(dana.post("/disks/new", json={"path": str(storage / "b.vhd"), "size": "20M"}),
            "disk (MB): 90 used + 20 requested > limit 100", "nothing was changed")
    assert not (storage / "b.vhd").exists()
    refused(dana.post("/disks/expand", json={"path": str(storage / "a.vhd"), "size": "70M"}),
            "disk (MB): 40 used + 70 requested > limit 100")
    refused(dana.post("/disks/convert", json={"src": str(storage / "a.vhd"),
                                              "dst": str(storage / "a-copy.vhdx")}),
            "disk (MB): 90 used + 50 requested > limit 100")
    assert not (storage / "a-copy.vhdx").exists()
    grown = job_of(dana, dana.post("/disks/expand", json={"path": str(storage / "a.vhd"),
                                                          "size": "60M"}))
    assert grown["state"] == "completed" and grown["result"]["path"] == str(storage / "a.vhd")
    # the admin token counts against nobody; dana's figure is unchanged by it
    other = job_of(admin, admin.post("/disks/new", json={"path": str(storage / "adm.vhd"),
                                                         "size": "30M"}))
    assert other["state"] == "completed", other
    refused(dana.post("/disks/new", json={"path": str(storage / "c.vhd"), "size": "1M"}),
            "disk (MB): 100 used + 1 requested > limit 100")


def test_a_parent_outside_the_storage_path_is_not_read_through(
        setup: tuple[Service, httpx.Client, httpx.Client], storage: Path) -> None:
    """A crafted differencing disk inside the storage path whose parent is outside it:
    inspecting it is refused, and merging it into a new disk (which would copy the
    parent's data in) fails without making the output."""
    _, admin, dana = setup
    assert admin.put("/access/quotas/dana", json={"disk_mb": 1000}).status_code == 200
    outside = Path(tempfile.mkdtemp(prefix="vir-outside-", dir="/tmp"))
    try:
        new_dynamic(outside / "secret.vhd", 4 * MB)
        new_differencing(storage / "crafted.vhd", outside / "secret.vhd")
        refused(dana.post("/disks/inspect", json={"path": str(storage / "crafted.vhd")}),
                str(outside / "secret.vhd"), "outside your storage paths")
        merged = job_of(dana, dana.post("/disks/merge", json={
            "child": str(storage / "crafted.vhd"), "output": str(storage / "out.vhd")}))
        assert merged["state"] == "failed", merged
        assert "outside your storage paths" in str(merged["error"]), merged
        assert not (storage / "out.vhd").exists()
    finally:
        shutil.rmtree(outside)


def test_a_pinned_file_stays_the_checked_file_when_the_path_is_swapped(
        storage: Path) -> None:
    """What the job holds is the inode that was checked: the path turned into a symlink
    to a file outside afterwards reads the checked file; a folder already swapped for a
    symlink out of the storage path, and a device, are refused."""
    outside = Path(tempfile.mkdtemp(prefix="vir-outside-", dir="/tmp"))
    try:
        (outside / "secret").write_text("SECRET")
        (storage / "sub").mkdir()
        mine = storage / "sub" / "disk.raw"
        mine.write_text("MINE")
        with Pins("dana", [str(storage)]) as pins:
            held = pins.file(mine)
            mine.unlink()
            mine.symlink_to(outside / "secret")
            assert held.read_text() == "MINE"
            assert pins.shown({"path": str(held)}) == {"path": str(mine)}
            shutil.rmtree(storage / "sub")
            (storage / "sub").symlink_to(outside)
            with pytest.raises(Forbidden, match="outside your storage paths"):
                pins.file(storage / "sub" / "secret")
            with pytest.raises(Forbidden, match="outside your storage paths"):
                pins.new_file(storage / "sub" / "new.vhd")
        os.mknod(storage / "null", 0o600 | 0o020000, os.makedev(1, 3))
        with Pins("dana", [str(storage)]) as pins, \
                pytest.raises(Forbidden, match="host devices are not allowed"):
            pins.file(storage / "null")
    finally:
        shutil.rmtree(outside)
        for name in ("sub", "null"):
            (storage / name).unlink(missing_ok=True)

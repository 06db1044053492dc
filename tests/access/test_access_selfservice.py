"""Self-service against a real service: a user whose role has only vm.create on the host
creates VMs up to its quota and is then refused with the numbers (VMs, memory, disk),
also when growing a VM it owns; it sees and manages only its own VMs; and every file it
names must lie inside its storage path — /etc/shadow, '..', a symlink out of the storage
path and a block device inside it are refused with 403 and leave nothing behind."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Service, running_service


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


@pytest.fixture(scope="module")
def storage() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="vir-store-", dir="/tmp"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def me(service: Service, storage: Path) -> Iterator[httpx.Client]:
    with service.client() as api:
        for call in (api.post("/access/roles", json={"name": "Self Service",
                                                     "operations": ["vm.create", "job.read"]}),
                     api.post("/access/users", json={"name": "sam",
                                                     "password": "sam-password"}),
                     api.post("/access/grants", json={"role": "Self Service", "to": "sam"}),
                     api.post("/access/storage-paths", json={"to": "sam",
                                                             "path": str(storage)}),
                     api.post("/vms", json={"name": "not-sams", "memory_mb": 64})):
            assert call.status_code == 201, call.text
        assert api.put("/access/quotas/sam", json={"vms": 2, "memory_mb": 256,
                                                   "processors": 3, "disk_mb": 100}
                       ).status_code == 200
    login = httpx.post(service.url + "/api/v1/access/login",
                       json={"user": "sam", "password": "sam-password"})
    assert login.status_code == 200, login.text
    with httpx.Client(base_url=service.url + "/api/v1", timeout=120, headers={
            "Authorization": f"Bearer {login.json()['token']}"}) as client:
        yield client


def names(client: httpx.Client) -> list[str]:
    return sorted(v["name"] for v in client.get("/vms").json()["vms"])


def refused(answer: httpx.Response, *phrases: str) -> str:
    assert answer.status_code == 403, answer.text
    message = str(answer.json()["error"]["message"])
    for phrase in phrases:
        assert phrase in message, message
    return message


def test_quota_refuses_with_the_numbers(service: Service, me: httpx.Client,
                                        storage: Path) -> None:
    first = me.post("/vms", json={"name": "sam-1", "memory_mb": 128, "new_vhd": {
        "path": str(storage / "sam-1.vhd"), "size": "64M"}})
    assert first.status_code == 201, first.text
    disk = me.post("/vms", json={"name": "sam-2", "memory_mb": 64, "new_vhd": {
        "path": str(storage / "sam-2.vhd"), "size": "64M"}})
    refused(disk, "disk (MB): 64 used + 64 requested > limit 100", "nothing was changed")
    assert not (storage / "sam-2.vhd").exists()
    memory = me.post("/vms", json={"name": "sam-2", "memory_mb": 192})
    refused(memory, "memory (MB): 128 used + 192 requested > limit 256")
    assert me.post("/vms", json={"name": "sam-2", "memory_mb": 64}).status_code == 201
    third = me.post("/vms", json={"name": "sam-3", "memory_mb": 64})
    refused(third, "VMs: 2 used + 1 requested > limit 2")
    grow = me.patch("/vms/sam-2", json={"memory": {"startup_mb": 192}})
    refused(grow, "memory (MB): 192 used + 128 requested > limit 256")
    cpus = me.patch("/vms/sam-2", json={"processor": {"count": 2}})
    assert cpus.status_code == 200, cpus.text
    more = me.patch("/vms/sam-1", json={"processor": {"count": 2}})
    refused(more, "virtual processors: 3 used + 1 requested > limit 3")
    quota = me.get("/access/whoami").json()["quota"]
    assert quota["used"] == {"vms": 2, "memory_mb": 192, "processors": 3, "disk_mb": 64}
    assert me.get("/access/quotas/sam").status_code == 403  # others' quotas: access.manage
    with service.client() as api:
        assert api.get("/vms/sam-2").json()["memory_mb"] == 64


def test_sees_and_manages_only_its_own_vms(me: httpx.Client) -> None:
    assert names(me) == ["sam-1", "sam-2"]
    assert me.get("/vms/not-sams").status_code == 403
    assert me.patch("/vms/not-sams", json={"notes": "mine now"}).status_code == 403
    assert me.get("/vms/sam-1").status_code == 200


def test_concurrent_creates_cannot_pass_the_quota(service: Service, me: httpx.Client) -> None:
    with service.client() as api:
        for call in (api.post("/access/users", json={"name": "racer", "password": "racer-pw-1"}),
                     api.post("/access/grants", json={"role": "Self Service", "to": "racer"})):
            assert call.status_code == 201, call.text
        assert api.put("/access/quotas/racer", json={"vms": 1}).status_code == 200
    token = httpx.post(service.url + "/api/v1/access/login",
                       json={"user": "racer", "password": "racer-pw-1"}).json()["token"]

    def create(i: int) -> int:
        with httpx.Client(base_url=service.url + "/api/v1", timeout=120,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            return client.post("/vms", json={"name": f"race-{i}", "memory_mb": 64}).status_code

    with ThreadPoolExecutor(4) as pool:
        answers = sorted(pool.map(create, range(4)))
    assert answers == [201, 403, 403, 403]


@pytest.mark.parametrize("where", ["/etc/shadow", "/dev/sda", "dotdot", "symlink", "device"])
def test_paths_outside_the_storage_path_are_refused(service: Service, me: httpx.Client,
                                                    storage: Path, where: str) -> None:
    if where == "dotdot":
        path, phrase = f"{storage}/../../etc/shadow", "'..' is not allowed"
    elif where == "symlink":
        link = storage / "escape"
        if not link.exists():
            link.symlink_to("/etc")
        path, phrase = f"{link}/shadow", "resolves to /etc/shadow"
    elif where == "device":
        node = storage / "sda"
        if not node.exists():
            os.mknod(node, stat.S_IFBLK | 0o600, os.makedev(7, 0))
        path, phrase = str(node), "host devices are not allowed"
    else:
        path, phrase = where, "outside your storage paths"
    with service.client() as api:
        before = api.get("/vms").json()["vms"]
    for answer in (me.patch("/vms/sam-2", json={"ide": [
                       {"controller": 0, "location": 1, "kind": "dvd", "path": path}]}),
                   me.put("/vms/sam-2/dvd", json={"path": path}),
                   me.post("/vms", json={"name": "sneaky", "vhd": path}),
                   me.post("/vms/import", json={"folder": path})):
        refused(answer, f"sam may not use {path!r}", phrase)
    with service.client() as api:
        assert api.get("/vms").json()["vms"] == before
        verdict = api.get("/access/audit/verify").json()
        assert verdict["ok"] is True


def test_a_file_inside_the_storage_path_is_accepted(me: httpx.Client, storage: Path) -> None:
    iso = storage / "media.iso"
    iso.write_bytes(b"\0" * 2048 * 16)
    answer = me.put("/vms/sam-1/dvd", json={"path": str(iso)})
    assert answer.status_code == 200, answer.text

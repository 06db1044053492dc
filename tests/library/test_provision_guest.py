"""Provisioning from a template with real guests (TCG): a template made from a VM whose
data disk holds a marker; ``--count 3`` VMs made as qcow2 overlays with a NoCloud seed
each boot with their own host name and static address from the seed, are reachable from
the host over an internal switch, read the template's marker, report "provisioned:
ready"; the template's disks are never written; removing it while in use is refused."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, running_service, wait_job
from tests.service.test_switches_guest import guest_sh, host_ping, remove_leftovers

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("provision_guest")]
SUBNET = "192.168.214.0/24"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[tuple[Service, httpx.Client, dict[str, Any]]]:
    from viridian.guestkit import build

    work = tmp_path_factory.mktemp("provision")
    boot = work / "boot.img"
    shutil.copyfile(build().raw, boot)
    data = work / "data.img"
    data.write_bytes(b"TEMPLATE-MARKER-42\n".ljust(1 << 20, b"\0"))
    with running_service() as service:
        try:
            with service.client() as api:
                assert api.post("/switches", json={"name": "Lab", "type": "internal",
                                                   "subnet": SUBNET}).status_code == 201
                assert api.post("/vms", json={
                    "name": "src", "memory_mb": 192, "vhd": str(boot), "settings": {
                        "network_adapters": [{"kind": "synthetic"}],
                        "ide": [{"controller": 0, "location": 1, "kind": "hard_disk",
                                 "path": str(data)}]}}
                    ).status_code == 201
                job = wait_job(api, api.post("/templates", json={"name": "base", "vm": "src"}
                                             ).json())
                assert job["state"] == "completed", job
                template = job["result"]
                try:
                    yield service, api, template
                finally:
                    for vm in api.get("/vms").json()["vms"]:
                        if vm["pid"]:
                            api.post(f"/vms/{vm['name']}/stop", params={"wait": 30})
                    for vm in api.get("/vms").json()["vms"]:
                        api.delete(f"/vms/{vm['name']}", params={"delete_files": "true"})
                    api.delete("/switches/Lab")
        finally:
            service.stop()
            remove_leftovers(service.data_dir)


def test_dry_run_rates_this_host(lab: tuple[Service, httpx.Client, dict[str, Any]]) -> None:
    _, api, _ = lab
    plan = api.post("/provision", json={"template": "base", "name": "web", "count": 3,
                                        "switch": "Lab", "dry_run": True}).json()
    assert plan["vms"] == ["web-1", "web-2", "web-3"] and plan["host"] == "localhost"
    (rating,) = plan["ratings"]
    assert 1 <= rating["stars"] <= 5 and "networks: Lab present" in rating["reasons"]
    missing = api.post("/provision", json={"template": "base", "name": "x", "switch": "Nope",
                                           "dry_run": True}).json()
    assert missing["host"] is None
    assert missing["ratings"][0]["reasons"] == ["missing virtual switch: Nope"]


def test_three_vms_from_the_template(lab: tuple[Service, httpx.Client, dict[str, Any]]
                                     ) -> None:
    _, api, template = lab
    answer = api.post("/provision", json={
        "template": "base", "name": "web", "count": 3, "switch": "Lab",
        "ip": "192.168.214.21/24", "gateway": "192.168.214.1", "user": "admin",
        "ssh_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB admin@host"],
        "runcmd": ["echo provisioned-by-viridian"]})
    assert answer.status_code == 202, answer.text
    job = wait_job(api, answer.json(), timeout=300)
    assert job["state"] == "completed", job
    deadline = time.monotonic() + 300
    names = ["web-1", "web-2", "web-3"]
    while time.monotonic() < deadline:
        shown = {n: api.get(f"/vms/{n}").json().get("provisioning") for n in names}
        if all(s == "provisioned: ready" for s in shown.values()):
            break
        time.sleep(1)
    assert all(s == "provisioned: ready" for s in shown.values()), shown
    for index, name in enumerate(names, start=1):
        address = f"192.168.214.{20 + index}"
        assert host_ping(address), name
        # the template's data disk, wherever the guest's probing put it (sda/sdb order
        # is not fixed): the disk whose first bytes are the marker
        code, out = guest_sh(api, name, "hostname; for d in /dev/sd?; do b=$(dd if=$d "
                                         "bs=19 count=1 2>/dev/null); case \"$b\" in "
                                         "TEMPLATE-MARKER*) echo \"$b\";; esac; done; "
                                         "cat /home/admin/.ssh/authorized_keys")
        assert code == 0, out
        assert out.startswith(f"{name}\nTEMPLATE-MARKER-42\n"), out
        assert "admin@host" in out
    for disk in template["disks"]:
        digest = hashlib.sha256(Path(disk["path"]).read_bytes()).hexdigest()
        assert digest == disk["sha256"]  # the template's disks were never written
    refused = api.delete("/templates/base")
    assert refused.status_code == 409
    assert "in use by web-1, web-2, web-3" in refused.json()["error"]["message"]

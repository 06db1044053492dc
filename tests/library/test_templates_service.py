"""Templates through the real service: made from an Off VM (disk copied byte for byte,
settings generalised), versioned, listed with the library's items; removing one that a
VM reads (a qcow2 overlay over its disk) is refused naming the VM; its disk unchanged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Service, running_service, wait_job


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


@pytest.fixture
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def new_template(api: httpx.Client, vm: str) -> dict[str, object]:
    answer = api.post("/templates", json={"name": "base", "vm": vm})
    assert answer.status_code == 202, answer.text
    job = wait_job(api, answer.json())
    assert job["state"] == "completed", job
    return dict(job["result"])


def test_template_from_vm_versions_and_in_use_refusal(api: httpx.Client,
                                                      tmp_path: Path) -> None:
    disk = tmp_path / "src.img"
    disk.write_bytes(b"MARKER-FROM-SOURCE".ljust(1 << 20, b"\0"))
    created = api.post("/vms", json={"name": "src", "vhd": str(disk), "settings": {
        "network_adapters": [{"kind": "synthetic"}]}})
    assert created.status_code == 201, created.text

    first = new_template(api, "src")
    assert first["version"] == 1 and first["source_vm"] == "src"
    (copy,) = first["disks"]  # type: ignore[misc]
    assert copy["sha256"] == sha(disk) and copy["format"] == "raw"
    assert Path(copy["path"]).read_bytes() == disk.read_bytes()
    settings = first["settings"]
    assert settings["name"] == "base"  # type: ignore[index]
    assert settings["network_adapters"][0]["mac"] is None  # type: ignore[index]
    assert settings["ide"][0]["path"] == copy["path"]  # type: ignore[index]
    assert new_template(api, "src")["version"] == 2
    listed = api.get("/templates").json()["templates"]
    assert [(t["name"], t["versions"]) for t in listed] == [("base", [1, 2])]

    overlay = tmp_path / "child.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", copy["path"], "-F", "raw",
                    str(overlay)], check=True)
    assert api.post("/vms", json={"name": "child", "vhd": str(overlay)}).status_code == 201
    refused = api.delete("/templates/base")
    assert refused.status_code == 409
    assert "template 'base' is in use by child" in refused.json()["error"]["message"]
    items = {i["name"]: i for i in api.get("/library/default").json()["items"]}
    uses = items["templates/base/v1/disk-ide-0-0.img"]["uses"]
    assert uses == ["template 'base' v1", "VM 'child'"]
    assert api.delete("/templates/base", params={"version": 2}).status_code == 200
    assert api.get("/templates/base").json()["versions"][0]["version"] == 1
    assert sha(Path(copy["path"])) == copy["sha256"]  # the template's disk is unchanged

    assert api.delete("/vms/child").status_code == 200
    assert api.delete("/templates/base").status_code == 200
    assert api.get("/templates/base").status_code == 404


def test_provisioning_status_survives_a_restart(service: Service, tmp_path: Path) -> None:
    """A VM provisioned but not started stays 'provisioning' across a service restart
    (the status is kept in its folder, not only in memory)."""
    with service.client() as api:
        made = api.post("/templates", json={"name": "kept", "vm": "src"})
        assert wait_job(api, made.json())["state"] == "completed"
        answer = api.post("/provision", json={"template": "kept", "name": "pending",
                                               "start": False})
        assert answer.status_code == 202, answer.text
        assert wait_job(api, answer.json())["state"] == "completed"
        assert api.get("/vms/pending").json()["provisioning"] == "provisioning"
    service.stop()
    service.start(timeout=120)  # a loaded machine probes and starts slowly
    with service.client() as api:
        assert api.get("/vms/pending").json()["provisioning"] == "provisioning"
        assert api.delete("/vms/pending", params={"delete_files": True}).status_code == 200
        assert api.delete("/templates/kept").status_code == 200


def test_template_disk_copy_is_generalised_in_the_guest(api: httpx.Client,
                                                        tmp_path: Path) -> None:
    """A raw disk with an ext4 root: the template's copy has an empty machine id, no SSH
    host keys and host name localhost; the source VM's disk is unchanged."""
    root = tmp_path / "root"
    (root / "etc/ssh").mkdir(parents=True)
    (root / "etc/machine-id").write_text("0123456789abcdef0123456789abcdef\n")
    (root / "etc/hostname").write_text("golden\n")
    (root / "etc/ssh/ssh_host_ed25519_key").write_text("PRIVATE\n")
    disk = tmp_path / "linux.img"
    subprocess.run(["mkfs.ext4", "-q", "-d", str(root), str(disk), "8M"], check=True)
    before = sha(disk)
    assert api.post("/vms", json={"name": "linux", "vhd": str(disk)}).status_code == 201
    made = api.post("/templates", json={"name": "linux-base", "vm": "linux"})
    job = wait_job(api, made.json())
    assert job["state"] == "completed", job
    template = job["result"]
    assert {"guest_machine_id", "guest_ssh_host_keys", "guest_hostname"} <= set(
        template["generalised"])
    copy = template["disks"][0]["path"]

    def cat(path: str) -> str:
        return subprocess.run(["debugfs", "-R", f"cat {path}", copy], capture_output=True,
                              text=True, check=True).stdout
    assert (cat("/etc/machine-id"), cat("/etc/hostname")) == ("", "localhost\n")
    assert cat("/etc/ssh/ssh_host_ed25519_key") == ""
    assert sha(disk) == before and sha(Path(copy)) == template["disks"][0]["sha256"]
    assert api.delete("/templates/linux-base").status_code == 200
    assert api.delete("/vms/linux").status_code == 200


def test_template_refusals(api: httpx.Client) -> None:
    bad = api.post("/templates", json={"name": "no/slash", "vm": "src"})
    assert bad.status_code == 400 and "allowed: 1..128 characters" in bad.text
    missing = api.post("/templates", json={"name": "t", "vm": "ghost"})
    assert missing.status_code == 404
    nolib = api.post("/templates", json={"name": "t", "vm": "src", "library": "nope"})
    assert nolib.status_code == 404 and "no library named 'nope'" in nolib.text


def test_cli_template_new_list_deploy_dry_run_remove(service: Service) -> None:
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "viridian.cli.main", "template", *args],
                              env=env, capture_output=True, text=True, timeout=60)

    made = cli("new", "cli-base", "--from-vm", "src")
    assert made.returncode == 0 and "template cli-base v1 in " in made.stdout, made.stderr
    assert "cli-base" in cli("list").stdout
    plan = cli("deploy", "cli-base", "web", "--count", "2", "--dry-run")
    assert plan.returncode == 0 and plan.stdout.startswith("localhost: *"), plan.stderr
    assert "cpu: " in plan.stdout and "memory: 512 MB needed" in plan.stdout, plan.stdout
    assert "split: localhost — 2 VMs (*" in plan.stdout and \
        plan.stdout.endswith("): web-1, web-2\n"), plan.stdout

    def vm_new(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "viridian.cli.main", "vm", "new", *args],
                              env=env, capture_output=True, text=True, timeout=60)

    same = vm_new("web", "--template", "cli-base", "--count", "2", "--dry-run")
    assert same.returncode == 0, same.stderr  # the same request as template deploy
    assert same.stdout.startswith("localhost: *") and "memory: 512 MB needed" in same.stdout
    stray = vm_new("web", "--count", "2")
    assert stray.returncode == 2 and "--count need --template T" in stray.stderr
    clash = vm_new("web", "--template", "cli-base", "--dvd", "/x.iso")
    assert clash.returncode == 2 and "--dvd cannot be used with --template" in clash.stderr
    with service.client() as api:
        assert api.get("/vms/web").status_code == 404  # nothing was made
    bad = cli("deploy", "cli-base", "web", "--ip", "10.0.0.5", "--dry-run")
    assert bad.returncode == 2 and "IPv4 address with prefix" in bad.stderr
    assert cli("remove", "cli-base").returncode == 0
    gone = cli("remove", "cli-base")
    assert gone.returncode == 3 and "no template named 'cli-base'" in gone.stderr

"""Confined QEMU and storage daemons (host setting ``confine_qemu``; docs/architecture.md,
"Security"), against a real service: each VM's processes run as its own uid with no
groups, no capabilities, no new privileges and seccomp on; its runtime folder is its own
(0700); its disks are opened for it alone, so QEMU's block layer running as another VM's
user is refused them with "Permission denied" — and no disk is world-readable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Service, running_service, temp_folder, wait_job
from viridian.disks import new_dynamic
from viridian.qemu import acl
from viridian.qemu.confinement import GID, UID_BASE, FileGrant, Identity, grant_files

MB = 1024 * 1024
SANDBOX = "-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


@pytest.fixture(scope="module")
def confined() -> Iterator[tuple[Service, httpx.Client, dict[str, Path]]]:
    """Two running VMs on a default host (no host.json: confinement is the default, and
    an inherited ``VIRIDIAN_CONFINE_QEMU`` is neutralised): ``a`` on a raw disk QEMU opens
    itself, ``b`` on a VHD its storage daemon serves; the disks in a root-only (0700)
    folder, as tests' temp folders are."""
    with temp_folder("vir-conf-") as folder:  # removed after the service and its VMs
        disks = {"a": folder / "a.raw", "b": folder / "b.vhd"}
        disks["a"].write_bytes(b"SECRET-OF-A" + bytes(8 * MB - 11))
        os.chmod(disks["a"], 0o600)
        new_dynamic(disks["b"], 8 * MB)
        with running_service(env={"VIRIDIAN_CONFINE_QEMU": ""}) as service, \
                service.client() as api:
            assert not (service.data_dir / "host.json").exists()
            for name, disk in disks.items():
                created = api.post("/vms", json={"name": name, "memory_mb": 64, "vhd": str(disk)})
                assert created.status_code == 201, created.text
                if name == "b":  # for the crafted hot-add below
                    assert api.post("/vms/b/scsi", json={"controller": None}).status_code < 300
                started = wait_job(api, api.post(f"/vms/{name}/start").json(), timeout=600)
                assert started["state"] == "completed", started  # generous: a loaded host
            yield service, api, disks


def status(pid: int) -> dict[str, str]:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}


def uids(service: Service) -> dict[str, int]:
    record = json.loads((service.data_dir / "confinement.json").read_text())["uids"]
    return {str(k): int(v) for k, v in record.items()}


def vm(api: httpx.Client, name: str) -> dict[str, Any]:
    return dict(api.get(f"/vms/{name}").json())


def storage_daemons(data_dir: Path) -> dict[int, str]:
    """pid → command line of the live qemu-storage-daemon processes of this service."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "qemu-storage-daemon" in cmdline.split(" ")[0] and str(data_dir) in cmdline:
            found[int(pid)] = cmdline
    return found


def as_user(uid: int, *argv: str) -> subprocess.CompletedProcess[str]:
    """``argv`` with exactly a confined VM's credentials (no groups, no capabilities)."""
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={GID}", "--clear-groups",
                           "--inh-caps=-all", "--", *argv], capture_output=True, text=True,
                          timeout=60, check=False)


def test_each_vm_runs_as_its_own_user_without_privileges(
        confined: tuple[Service, httpx.Client, dict[str, Path]]) -> None:
    """By default (no host.json), with no capability, group or way to gain privileges."""
    service, api, _ = confined
    assert api.get("/host").json()["confinement"] == {"confine_qemu": True, "reason": None}
    allotted = uids(service)
    for name in ("a", "b"):
        info = vm(api, name)
        uid = allotted[info["id"]]
        assert UID_BASE <= uid < UID_BASE + 1_000_000
        seen = status(int(info["pid"]))
        assert seen["Uid"].split() == [str(uid)] * 4 and seen["Gid"].split() == [str(GID)] * 4
        assert seen["Groups"] == "" and seen["NoNewPrivs"] == "1" and seen["Seccomp"] == "2"
        assert int(seen["CapEff"], 16) == int(seen["CapPrm"], 16) == 0
        assert int(seen["CapBnd"], 16) == 0
        cmdline = Path(f"/proc/{info['pid']}/cmdline").read_bytes().replace(b"\0", b" ")
        assert SANDBOX in cmdline.decode()
        runtime = service.data_dir / "run" / info["id"]
        assert (runtime.stat().st_uid, runtime.stat().st_mode & 0o777) == (uid, 0o700)
    assert uids(service)[vm(api, "a")["id"]] != uids(service)[vm(api, "b")["id"]]
    assert (service.data_dir / "confinement.json").stat().st_mode & 0o777 == 0o600


def test_the_storage_daemon_runs_as_its_vms_user(
        confined: tuple[Service, httpx.Client, dict[str, Path]]) -> None:
    service, api, _ = confined
    daemons = storage_daemons(service.data_dir)
    assert len(daemons) == 1, daemons  # b's VHD only: a's raw disk is QEMU's own
    (pid, cmdline), = daemons.items()
    assert vm(api, "b")["id"] in cmdline
    uid = uids(service)[vm(api, "b")["id"]]
    seen = status(pid)
    assert seen["Uid"].split() == [str(uid)] * 4 and seen["Groups"] == ""
    assert int(seen["CapEff"], 16) == 0 and seen["NoNewPrivs"] == "1"


def test_a_vm_cannot_open_another_vms_disk(
        confined: tuple[Service, httpx.Client, dict[str, Path]]) -> None:
    """QEMU's own block layer (qemu-img), run with exactly one VM's credentials, opens
    that VM's disk and is refused the other's."""
    service, api, disks = confined
    allotted = uids(service)
    uid_a, uid_b = allotted[vm(api, "a")["id"]], allotted[vm(api, "b")["id"]]
    for disk, owner, other in ((disks["a"], uid_a, uid_b), (disks["b"], uid_b, uid_a)):
        assert os.stat(disk).st_mode & 0o007 == 0, f"{disk} is readable by others"
        mine = as_user(owner, "qemu-img", "info", "-U", str(disk))
        assert mine.returncode == 0, mine.stderr
        theirs = as_user(other, "qemu-img", "info", "-U", str(disk))
        assert theirs.returncode != 0
        assert re.search(r"Could not open '.*': Permission denied", theirs.stderr), theirs.stderr
    stolen = as_user(uid_b, "dd", f"if={disks['a']}", "bs=11", "count=1")
    assert "SECRET-OF-A" not in stolen.stdout and "Permission denied" in stolen.stderr


def test_files_and_folders_are_given_back_nothing_more(
        confined: tuple[Service, httpx.Client, dict[str, Path]]) -> None:
    """The disks' folder gains traversal for the confined group only, never a listing."""
    service, api, disks = confined
    folder = disks["a"].parent
    uid_b = uids(service)[vm(api, "b")["id"]]
    listing = as_user(uid_b, "ls", str(folder))
    assert listing.returncode != 0 and "Permission denied" in listing.stderr
    token = as_user(uid_b, "cat", str(service.data_dir / "token"))
    assert token.returncode != 0 and "Permission denied" in token.stderr


def test_a_running_vms_disk_is_refused_to_another_vm(
        confined: tuple[Service, httpx.Client, dict[str, Path]]) -> None:
    """A crafted hot-add into VM b of VM a's disk under another name (a hard link) is
    refused by the service (one VM per disk, by inode), nothing changed; and below it the
    grant step itself never hands a disk of a running VM to another VM's user, so QEMU
    as b's user is still refused it."""
    service, api, disks = confined
    alias = disks["a"].with_name("alias.raw")
    os.link(disks["a"], alias)
    before = vm(api, "b")["settings"]
    added = api.post("/vms/b/disks", json={"controller": "scsi", "location": "0:1",
                                           "path": str(alias)})
    assert added.status_code == 409, added.text
    assert "already attached to VM 'a'" in added.json()["error"]["message"]
    assert vm(api, "b")["settings"] == before
    uid_b = uids(service)[vm(api, "b")["id"]]
    grant_files([FileGrant(str(alias), 6)], Identity(uid_b), None)
    refused = as_user(uid_b, "qemu-img", "info", "-U", str(alias))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stderr


def test_a_detached_disk_is_refused_to_its_former_vm(
        confined: tuple[Service, httpx.Client, dict[str, Path]]) -> None:
    """Hot-add a disk to running VM b: b's user may open it; detach it: the grant is
    taken back and b's user gets "Permission denied" (issue 17, grants taken back)."""
    service, api, disks = confined
    extra = disks["a"].with_name("extra.raw")
    extra.write_bytes(bytes(MB))
    os.chmod(extra, 0o600)
    uid_b = uids(service)[vm(api, "b")["id"]]
    added = api.post("/vms/b/disks", json={"controller": "scsi", "location": "0:3",
                                           "path": str(extra)})
    assert added.status_code < 300, added.text
    opened = as_user(uid_b, "qemu-img", "info", "-U", str(extra))
    assert opened.returncode == 0, opened.stderr
    detached = api.delete("/vms/b/disks/scsi/0:3")
    assert detached.status_code < 300, detached.text
    assert str(extra) not in json.dumps(vm(api, "b")["settings"])
    refused = as_user(uid_b, "qemu-img", "info", "-U", str(extra))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stderr
    assert entry(extra, uid_b) is None


def test_a_template_base_is_read_only_for_each_vm_and_removal_takes_all_back(
        confined: tuple[Service, httpx.Client, dict[str, Path]]) -> None:
    """Two VMs on qcow2 overlays of one base (as provisioned from a template) both run;
    each VM's user may read the base but not write it, and writes its own overlay.
    Removing one VM takes back every grant of its user and releases its uid."""
    service, api, disks = confined
    folder = disks["a"].parent
    base = folder / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "8M"], check=True)
    for name in ("t1", "t2"):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F",
                        "qcow2", str(folder / f"{name}.qcow2")], check=True)
    for image in folder.glob("*.qcow2"):
        os.chmod(image, 0o600)
    for name in ("t1", "t2"):
        created = api.post("/vms", json={"name": name, "memory_mb": 64,
                                         "vhd": str(folder / f"{name}.qcow2")})
        assert created.status_code == 201, created.text
        started = wait_job(api, api.post(f"/vms/{name}/start").json(), timeout=600)
        assert started["state"] == "completed", started
    allotted = uids(service)
    for name in ("t1", "t2"):
        uid = allotted[vm(api, name)["id"]]
        assert vm(api, name)["state"] == "Running"
        overlay = folder / f"{name}.qcow2"
        assert (entry(base, uid), entry(overlay, uid)) == (4, 6)
        assert as_user(uid, "qemu-img", "info", "-U", str(overlay)).returncode == 0
        written = as_user(uid, "dd", "if=/dev/zero", f"of={base}", "bs=1", "count=1",
                          "conv=notrunc")
        assert written.returncode != 0 and "Permission denied" in written.stderr

    uid_t2 = allotted[vm(api, "t2")["id"]]
    stopped = wait_job(api, api.post("/vms/t2/stop").json(), timeout=300)
    assert stopped["state"] == "completed", stopped
    removed = api.delete("/vms/t2")
    assert removed.status_code == 200, removed.text
    assert uid_t2 not in uids(service).values()
    assert entry(folder / "t2.qcow2", uid_t2) is None and entry(base, uid_t2) is None
    refused = as_user(uid_t2, "qemu-img", "info", "-U", str(folder / "t2.qcow2"))
    assert refused.returncode != 0 and "Permission denied" in refused.stderr, refused.stderr
    assert entry(base, allotted[vm(api, "t1")["id"]]) == 4  # t1 keeps reading it


def entry(path: Path, uid: int) -> int | None:
    """``uid``'s ACL permission on ``path`` (None: no entry)."""
    return next((e.perm for e in acl.read(path) if e.tag == acl.USER and e.id == uid), None)

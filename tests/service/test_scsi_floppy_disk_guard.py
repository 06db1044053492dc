"""Issue 13, lane C, against the real service (no guest OS needed): ``vm scsi add|remove``
and the refusals around SCSI controllers, what the floppy drive accepts, and ``disk …``
commands going through the local service for files it knows (#9).

A VM that must be Running here boots nothing (an empty BIOS loop under TCG): what is
checked is what the service refuses and that nothing changed, read back.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.service.harness import Service, act, wait_job
from viridian.disks import inspect, new_dynamic

MB = 1024 * 1024


def cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    """``viridian --data-dir DATA ARGS`` with the service's URL and token."""
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    return subprocess.run(
        [sys.executable, "-m", "viridian.cli.main", "--data-dir", str(service.data_dir), *args],
        env=env, capture_output=True, text=True, timeout=120)


def refused(service: Service, code: int, *args: str) -> str:
    done = cli(service, *args)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return " ".join(done.stderr.split())  # one line, whatever the terminal wrapped


def ok(service: Service, *args: str) -> str:
    done = cli(service, *args)
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def scsi_of(api: httpx.Client, vm: str) -> list[dict[str, Any]]:
    return list(api.get(f"/vms/{vm}").json()["settings"]["scsi"])


def raw(path: Path, size: int) -> str:
    with open(path, "wb") as image:
        image.truncate(size)
    return str(path)


# --- vm scsi add|remove ---------------------------------------------------------------------


def test_scsi_controllers_are_added_and_removed_up_to_the_limit(
        service: Service, api: httpx.Client, tmp_path: Path) -> None:
    assert api.post("/vms", json={"name": "box"}).status_code == 201
    assert scsi_of(api, "box") == []  # a new VM has no SCSI controller

    assert ok(service, "vm", "scsi", "add", "box") == "box: added SCSI controller 0 (Off)\n"
    assert ok(service, "vm", "scsi", "add", "box", "--controller", "3").startswith(
        "box: added SCSI controller 3")
    assert api.post("/vms/box/scsi", json={}).json()["scsi_controller"] == 1
    assert api.post("/vms/box/scsi").json()["scsi_controller"] == 2
    assert [c["controller"] for c in scsi_of(api, "box")] == [0, 1, 2, 3]

    full = refused(service, 4, "vm", "scsi", "add", "box")
    assert "already has 4 SCSI controllers, the most a VM can have (4)" in full
    assert "nothing was changed" in full
    assert len(scsi_of(api, "box")) == 4

    ok(service, "vm", "scsi", "remove", "box", "--controller", "3")
    assert [c["controller"] for c in scsi_of(api, "box")] == [0, 1, 2]
    assert "allowed: 0..3" in refused(service, 2, "vm", "scsi", "add", "box", "--controller", "7")
    assert "no SCSI controller 3; its SCSI controllers: 0, 1, 2" in refused(
        service, 3, "vm", "scsi", "remove", "box", "--controller", "3")
    assert "name one with --controller" in refused(service, 2, "vm", "scsi", "remove", "box")

    # A controller holding disks stays, and the refusal names them.
    disk = raw(tmp_path / "held.raw", MB)
    ok(service, "vm", "disk", "add", "box", "--controller", "scsi", "--location", "1:5",
       "--path", disk)
    held = refused(service, 4, "vm", "scsi", "remove", "box", "--controller", "1")
    assert f"SCSI controller 1 still holds 1 hard disk(s): {disk} at SCSI 1:5" in held
    assert scsi_of(api, "box")[1] == {
        "controller": 1, "disks": [{"location": 5, "path": disk, "format": "raw"}]}
    ok(service, "vm", "disk", "remove", "box", "--controller", "scsi", "--location", "1:5")
    ok(service, "vm", "scsi", "remove", "box", "--controller", "1")
    assert [c["controller"] for c in scsi_of(api, "box")] == [0, 2]


def test_a_running_vm_is_told_it_needs_a_scsi_controller_first(
        service: Service, api: httpx.Client, tmp_path: Path) -> None:
    assert api.post("/vms", json={"name": "run1", "memory_mb": 64}).status_code == 201
    act(api, "run1", "start")
    try:
        disk = raw(tmp_path / "hot.raw", MB)
        reply = api.post("/vms/run1/disks",
                         json={"controller": "scsi", "location": "0:0", "path": disk})
        assert reply.status_code == 409
        message = reply.json()["error"]["message"]
        assert "a SCSI controller is needed first" in message
        assert "VM 'run1' has no SCSI controller 0 (its SCSI controllers: none)" in message
        assert "viridian vm scsi add run1" in message and "only while the VM is Off" in message
        assert "allowed while it runs: adding and removing SCSI hard disks" not in message

        for args in (["add", "run1"], ["remove", "run1", "--controller", "0"]):
            text = refused(service, 4, "vm", "scsi", *args)
            assert "while it is Running: SCSI controllers are added and removed only while " \
                   "the VM is Off" in text
            assert "nothing was changed" in text
        assert scsi_of(api, "run1") == []
    finally:
        act(api, "run1", "stop")


# --- the floppy drive takes virtual floppies only -------------------------------------------------


def test_floppy_insert_takes_only_a_virtual_floppy(
        service: Service, api: httpx.Client, tmp_path: Path) -> None:
    assert api.post("/vms", json={"name": "fl"}).status_code == 201
    vhd = tmp_path / "disk.vhd"
    new_dynamic(vhd, 2 * MB)
    vhd_named_vfd = tmp_path / "sneaky.vfd"
    new_dynamic(vhd_named_vfd, 1_474_560)
    cases = [
        (str(vhd), "it is a VHD disk"),
        (str(vhd_named_vfd), "it is a VHD disk"),
        (raw(tmp_path / "floppy.img", 1_474_560), "it is a file named *.img"),
        (raw(tmp_path / "small.vfd", MB), "it is a file of 1,048,576 bytes"),
    ]
    for path, why in cases:
        text = refused(service, 2, "vm", "floppy", "insert", "fl", path)
        assert why in text, text
        assert "allowed: a virtual floppy: a raw 1.44 MB image (1,474,560 bytes) named *.vfd" \
               in text
    patched = api.patch("/vms/fl", json={"floppy": {"path": str(vhd)}})
    assert patched.status_code == 400 and "it is a VHD disk" in patched.text
    assert api.get("/vms/fl").json()["settings"]["floppy"] == {"path": None}

    good = tmp_path / "good.vfd"
    ok(service, "disk", "new", str(good), "--floppy")
    ok(service, "vm", "floppy", "insert", "fl", str(good))
    assert api.get("/vms/fl").json()["settings"]["floppy"] == {"path": str(good)}


# --- disk commands through the service (#9) ------------------------------------------------------


def test_disk_commands_refuse_a_checkpoint_base_and_a_running_vms_disk(
        service: Service, api: httpx.Client, tmp_path: Path) -> None:
    base = tmp_path / "web1.vhd"
    new_dynamic(base, 20 * MB)
    other = tmp_path / "other.vhd"
    new_dynamic(other, 20 * MB)
    assert api.post("/vms", json={"name": "web1", "memory_mb": 64,
                                  "vhd": str(base)}).status_code == 201
    taken = api.post("/vms/web1/checkpoints", json={"name": "c1"})
    assert wait_job(api, taken.json())["state"] == "completed"

    # The base of a checkpoint: every change is refused, naming the VM and the checkpoint.
    for args in (["expand", str(base), "--size", "40"], ["compact", str(base)],
                 ["check", str(base), "--repair"]):
        text = refused(service, 4, "disk", *args)
        assert f"disk {base} is the base of checkpoint 'c1' of VM 'web1' (IDE 0:0)" in text, text
        assert "viridian checkpoint remove web1 'c1'" in text
        assert text.endswith("nothing was changed")
    assert inspect(base).virtual_size == 20 * MB

    # Its overlay is the service's own file.
    overlay = next(service.data_dir.glob("vms/*/**/*.qcow2"))
    reply = api.post("/disks/expand", json={"path": str(overlay), "size": 40 * MB})
    assert reply.status_code == 409
    assert "of VM 'web1' (IDE 0:0), kept by the service" in reply.json()["error"]["message"]

    # A file the service does not know is changed directly, as without a service.
    ok(service, "disk", "expand", str(other), "--size", "40")
    assert inspect(other).virtual_size == 40 * MB
    assert not [j for j in api.get("/jobs").json()["jobs"] if j["kind"] == "disk_expand"]

    # Without checkpoints, the disk of an Off VM is expanded through the service.
    removed = api.delete("/vms/web1/checkpoints/c1")
    assert wait_job(api, removed.json())["state"] == "completed"
    assert ok(service, "disk", "expand", str(base), "--size", "40").startswith("expanded")
    assert inspect(base).virtual_size == 40 * MB
    jobs = [j for j in api.get("/jobs").json()["jobs"] if j["kind"] == "disk_expand"]
    assert [(j["vm"], j["state"]) for j in jobs] == [("web1", "completed")]

    # While the VM runs, its disk is refused, naming the VM and where the disk is.
    act(api, "web1", "start")
    try:
        text = refused(service, 4, "disk", "expand", str(base), "--size", "60")
        assert f"cannot expand {base}: the disk is attached to VM 'web1' at IDE 0:0, which " \
               "is Running; turn the VM off first" in text
        assert inspect(base).virtual_size == 40 * MB
    finally:
        act(api, "web1", "stop")

    # With no service running, the disk commands work on the files directly, as before.
    # (A registered VHD VM's storage daemon holds its files even while the VM is Off and
    # outlives the service, like QEMU — issue 14; the VM is unregistered first, files kept.)
    assert api.delete("/vms/web1").status_code == 200
    service.stop()
    done = cli(service, "disk", "expand", str(base), "--size", "60")
    assert done.returncode == 0, done.stderr
    assert inspect(base).virtual_size == 60 * MB

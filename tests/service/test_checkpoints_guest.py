"""Checkpoints with a real guest: disk markers written by the guest, its in-memory tick
counter, branches, deleting the middle of a chain while the guest writes, and deleting
everything (the data ends up in the admin's VHD). One booted guest serves the module.

Markers are 512-byte sectors the guest writes to its IDE hard disk (a dynamic VHD) with
``dd`` through the guest agent; reads drop the guest's page cache first, so they come
from the virtual disk.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Console, Service, act, running_service, wait_job
from viridian.disks import new_dynamic, open_disk

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("checkpoints_guest")]

VM = "cp"
MB = 1024 * 1024


def guest_sh(api: httpx.Client, script: str) -> bytes:
    reply = api.post(f"/vms/{VM}/integration/exec",
                     json={"argv": ["/bin/sh", "-c", script], "timeout_s": 60})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["exit_code"] == 0, base64.b64decode(body["stderr_b64"])
    return base64.b64decode(body["stdout_b64"])


def write_marker(api: httpx.Client, sector: int, text: str) -> None:
    guest_sh(api, f"printf '%-16s' '{text}' | dd of=/dev/sda bs=512 seek={sector} "
                  "conv=notrunc,sync 2>/dev/null && sync")


def read_markers(api: httpx.Client, sectors: range) -> dict[int, str]:
    """sector → marker text ('' for a sector never written)."""
    script = "sync; echo 3 > /proc/sys/vm/drop_caches; " + "; ".join(
        f"dd if=/dev/sda bs=512 skip={s} count=1 2>/dev/null | head -c 16; echo" for s in sectors)
    lines = guest_sh(api, script).decode(errors="replace").split("\n")
    return {s: line.strip("\0 ") for s, line in zip(sectors, lines, strict=False)}


def cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    return subprocess.run([sys.executable, "-m", "viridian.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def checkpoint(api: httpx.Client, name: str, vm: str = VM) -> dict[str, Any]:
    reply = api.post(f"/vms/{vm}/checkpoints", json={"name": name})
    assert reply.status_code == 202, reply.text
    job = wait_job(api, reply.json())
    assert job["state"] == "completed", job
    return dict(job["result"])


def apply(api: httpx.Client, name: str, **body: Any) -> dict[str, Any]:
    reply = api.post(f"/vms/{VM}/checkpoints/{name}/apply", json=body or None)
    assert reply.status_code == 202, reply.text
    job = wait_job(api, reply.json(), timeout=180)
    assert job["state"] == "completed", job
    return dict(job["result"])


def remove(api: httpx.Client, name: str, subtree: bool = False) -> dict[str, Any]:
    reply = api.delete(f"/vms/{VM}/checkpoints/{name}", params={"subtree": subtree})
    assert reply.status_code == 202, reply.text
    job = wait_job(api, reply.json(), timeout=300)
    assert job["state"] == "completed", job
    return dict(job["result"])


def tree(api: httpx.Client) -> dict[str, Any]:
    reply = api.get(f"/vms/{VM}/checkpoints")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def wait_agent(api: httpx.Client, timeout: float = 60) -> None:
    """After a restore the guest agent channel reconnects; wait until exec works."""
    deadline = time.monotonic() + timeout
    while True:
        reply = api.post(f"/vms/{VM}/integration/exec",
                         json={"argv": ["/bin/true"], "timeout_s": 10})
        if reply.status_code == 200:
            return
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.5)


@pytest.fixture(scope="module")
def guest(guest_iso: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Service, httpx.Client, Path]]:
    disk = tmp_path_factory.mktemp("cp") / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "24M"], check=True)
    with running_service() as service, service.client() as api:
        created = api.post("/vms", json={"name": VM, "memory_mb": 256, "dvd": str(guest_iso),
                                         "vhd": str(disk)})
        assert created.status_code == 201, created.text
        console = Console(service.data_dir, created.json()["id"])
        act(api, VM, "start")
        console.wait_for(b"VIRIDIAN-GUEST READY")
        wait_agent(api)
        yield service, api, disk


def test_apply_returns_disks_to_each_branch(guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, _ = guest
    write_marker(api, 0, "A-first")
    one = checkpoint(api, "one")
    assert one["state"] == "Running" and one["has_memory"]
    assert api.get(f"/vms/{VM}").json()["state"] == "Running"  # the guest ran on
    write_marker(api, 1, "B-second")
    checkpoint(api, "two")

    result = apply(api, "one")
    assert result["state"] == "Running"
    wait_agent(api)
    assert read_markers(api, range(3)) == {0: "A-first", 1: "", 2: ""}

    write_marker(api, 2, "C-branch")  # a new branch under "one"
    checkpoint(api, "three")
    apply(api, "two")
    wait_agent(api)
    assert read_markers(api, range(3)) == {0: "A-first", 1: "B-second", 2: ""}
    apply(api, "three")
    wait_agent(api)
    assert read_markers(api, range(3)) == {0: "A-first", 1: "", 2: "C-branch"}

    view = tree(api)
    by_name = {cp["name"]: cp for cp in view["checkpoints"]}
    assert by_name["one"]["parent_id"] is None
    assert by_name["two"]["parent_id"] == by_name["three"]["parent_id"] == by_name["one"]["id"]
    assert view["now_parent_id"] == by_name["three"]["id"]
    listed = cli(service, "checkpoint", "list", VM)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == f"{VM}: 3 of 50 checkpoints"
    assert lines[1].startswith("└─ one")
    assert any(line.strip().startswith("├─ two") for line in lines)
    now = next(i for i, line in enumerate(lines) if "▶ Now" in line)
    assert "three" in lines[now - 1] and lines[now].startswith("      └─")


def test_memory_state_comes_back(guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, _ = guest
    vm_id = api.get(f"/vms/{VM}").json()["id"]
    console = Console(service.data_dir, vm_id)
    before = console.wait_ticks(2)[-1][0]
    checkpoint(api, "ticking")
    after = console.wait_ticks(1)[-1][0]
    later = console.wait_ticks(4)[-1][0]
    assert later >= after + 3
    apply(api, "ticking")
    first = Console(service.data_dir, vm_id).wait_ticks(1)[0][0]
    # The counter lives only in guest memory: it resumes from the checkpoint's value.
    assert before <= first <= after + 1, (before, after, first, later)


def test_rename_and_refusals(guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, _ = guest
    renamed = cli(service, "checkpoint", "rename", VM, "ticking", "tick-tock")
    assert renamed.returncode == 0, renamed.stderr
    assert "tick-tock" in {cp["name"] for cp in tree(api)["checkpoints"]}
    missing = cli(service, "checkpoint", "remove", VM, "no-such")
    assert missing.returncode == 3
    assert "has no checkpoint 'no-such'" in missing.stderr and "'one'" in missing.stderr
    duplicate = api.post(f"/vms/{VM}/checkpoints", json={"name": "one"})
    assert duplicate.status_code == 409 and "already exists" in duplicate.json()["error"][
        "message"]
    # A job holds the VM: applying now is refused, not queued.
    taking = api.post(f"/vms/{VM}/checkpoints", json={"name": "busy"})
    assert taking.status_code == 202
    refused = api.post(f"/vms/{VM}/checkpoints/one/apply")
    assert refused.status_code == 409, refused.text
    assert "a job is running" in refused.json()["error"]["message"]
    assert wait_job(api, taking.json())["state"] == "completed"
    remove(api, "busy")


def test_delete_middle_of_chain_while_guest_writes(
        guest: tuple[Service, httpx.Client, Path]) -> None:
    _, api, _ = guest
    write_marker(api, 10, "D1")
    checkpoint(api, "c1")
    write_marker(api, 11, "D2")
    checkpoint(api, "c2")
    write_marker(api, 12, "D3")
    checkpoint(api, "c3")
    write_marker(api, 13, "D4")
    # The guest keeps writing elsewhere while the middle checkpoint merges online.
    guest_sh(api, "(i=0; while [ $i -lt 400 ]; do i=$((i+1)); printf 'W%05d' $i | "
                  "dd of=/dev/sda bs=512 seek=40 conv=notrunc,sync 2>/dev/null; done; "
                  "touch /tmp/writer-done) >/dev/null 2>&1 &")
    result = remove(api, "c2")
    assert result["removed"] == ["c2"]
    for _ in range(120):
        if guest_sh(api, "[ -e /tmp/writer-done ] && echo yes || true").strip() == b"yes":
            break
        time.sleep(0.5)
    assert read_markers(api, range(10, 14)) == {10: "D1", 11: "D2", 12: "D3", 13: "D4"}
    assert read_markers(api, range(40, 41))[40] == "W00400"
    by_name = {cp["name"]: cp for cp in tree(api)["checkpoints"]}
    assert "c2" not in by_name and by_name["c3"]["parent_id"] == by_name["c1"]["id"]
    apply(api, "c3")
    wait_agent(api)
    assert read_markers(api, range(10, 14)) == {10: "D1", 11: "D2", 12: "D3", 13: ""}
    apply(api, "c1")
    wait_agent(api)
    assert read_markers(api, range(10, 14)) == {10: "D1", 11: "", 12: "", 13: ""}


def test_deleting_every_checkpoint_commits_the_data_into_the_disk(
        guest: tuple[Service, httpx.Client, Path]) -> None:
    _, api, disk = guest
    write_marker(api, 20, "LAST")
    expected = read_markers(api, range(0, 21))
    for root in [cp for cp in tree(api)["checkpoints"] if cp["parent_id"] is None]:
        remove(api, root["name"], subtree=True)
    assert tree(api)["count"] == 0
    assert read_markers(api, range(0, 21)) == expected  # Now unchanged, VM still running
    vm = api.get(f"/vms/{VM}").json()
    folder = Path(vm["folder"]) / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == []  # nothing left behind
    act(api, VM, "stop")
    raw = disk.with_suffix(".raw")
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(disk), str(raw)],
                   check=True)
    with open(raw, "rb") as image:
        image.seek(20 * 512)
        assert image.read(16).rstrip(b"\0 ") == b"LAST"


def test_vhd_disks_get_standard_checkpoints_with_memory(
        guest: tuple[Service, httpx.Client, Path], guest_iso: Path, tmp_path: Path) -> None:
    """A VM with a VHD disk is served by its storage daemon by default (host setting
    ``storage_daemon``: ``vhd``), so it offers Save and its standard checkpoint keeps the
    memory: applying it brings the VM back Running with the checkpointed disk. A
    production checkpoint stays available when asked for; deleting the last checkpoint
    merges Now's data into the VHD online."""
    service, api, _ = guest
    vhd = tmp_path / "std.vhd"
    new_dynamic(vhd, 20 * MB)
    created = api.post("/vms", json={"name": "std", "memory_mb": 256, "dvd": str(guest_iso),
                                     "vhd": str(vhd)})
    assert created.status_code == 201, created.text
    console = Console(service.data_dir, created.json()["id"])
    act(api, "std", "start")
    console.wait_for(b"VIRIDIAN-GUEST READY")
    global VM
    saved_vm, VM = VM, "std"
    try:
        wait_agent(api)
        shown = api.get("/vms/std").json()
        assert "save" in shown["allowed"] and shown["unavailable"] == {}
        write_marker(api, 3, "STD-1")
        cp = checkpoint(api, "std-1", vm="std")
        assert cp["state"] == "Running" and cp["has_memory"]
        assert "production" not in cp["notes"]
        write_marker(api, 4, "STD-2")
        asked = api.post("/vms/std/checkpoints", json={"name": "std-prod",
                                                       "type": "production"})
        assert asked.status_code == 202, asked.text
        prod = wait_job(api, asked.json())
        assert prod["state"] == "completed", prod
        assert prod["result"]["state"] == "Off" and not prod["result"]["has_memory"]
        assert apply(api, "std-1")["state"] == "Running"
        wait_agent(api)
        assert api.get("/vms/std").json()["state"] == "Running"
        assert read_markers(api, range(3, 5)) == {3: "STD-1", 4: ""}
        write_marker(api, 5, "STD-3")
        remove(api, "std-prod")
        remove(api, "std-1")  # the last one: Now's data goes into the VHD, online
        act(api, "std", "stop")
    finally:
        VM = saved_vm
    # The storage daemon holds the VHD while the VM is registered (issue 14: bitmaps outlive
    # stops); removing the VM (files kept) ends it, and then anyone may open the file.
    assert api.delete("/vms/std").status_code == 200
    with open_disk(vhd) as image:
        assert image.read(3 * 512, 16).rstrip(b"\0 ") == b"STD-1"
        assert image.read(4 * 512, 16).rstrip(b"\0 ") == b""
        assert image.read(5 * 512, 16).rstrip(b"\0 ") == b"STD-3"


def test_paused_and_saved_checkpoints_come_back_paused_and_saved(
        guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, _ = guest
    vm_id = api.get(f"/vms/{VM}").json()["id"]
    if api.get(f"/vms/{VM}").json()["state"] == "Off":
        act(api, VM, "start")
        wait_agent(api)
    act(api, VM, "pause")
    paused = checkpoint(api, "while-paused")
    assert paused["state"] == "Paused" and paused["has_memory"]
    assert api.get(f"/vms/{VM}").json()["state"] == "Paused"
    act(api, VM, "resume")
    Console(service.data_dir, vm_id).wait_ticks(2)
    act(api, VM, "save")
    saved = checkpoint(api, "while-saved")
    assert saved["state"] == "Saved" and saved["has_memory"]
    act(api, VM, "start")  # restores the VM's own saved state; the checkpoint keeps its copy
    wait_agent(api)
    write_marker(api, 30, "AFTER-SAVE")

    assert apply(api, "while-saved")["state"] == "Saved"
    assert api.get(f"/vms/{VM}").json()["state"] == "Saved"
    act(api, VM, "start")
    wait_agent(api)
    assert read_markers(api, range(30, 31)) == {30: ""}
    assert apply(api, "while-paused")["state"] == "Paused"
    act(api, VM, "resume")
    wait_agent(api)
    remove(api, "while-paused")
    remove(api, "while-saved")

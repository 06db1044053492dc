"""The storage daemon (host setting ``storage_daemon: vhd``; docs/architecture.md, "The
storage path"), with one guest for the module: a VM booting from the guest kit's VHD with
a VHDX data disk

- is saved and started again — the guest continues (its in-memory tick counter goes on)
  and the markers it wrote read back; the daemon outlives QEMU (same process after);
- survives a SIGKILL of its storage daemon during guest writes: the guest's I/O errors
  pause it (``werror=stop``), the service starts the daemon again and resumes the guest;
  what was written before reads back;
- keeps its daemon across a service restart (found again, then supervised);
- gets a VHD hot-added on SCSI through the daemon (saved and restored with it) and
  hot-removed;
- gets a standard checkpoint with memory while Running (overlays made in the daemon);
  applying it returns it Running with exactly the markers and the tick counter of that
  moment; a production checkpoint (disks only) is still an explicit choice; deleting
  them merges online (``block-commit`` in the daemon, export live);
- keeps its daemon while registered: a dirty bitmap added on the daemon survives a stop
  and a start (and two service restarts, each re-adopting the daemon) with exactly the
  guest's writes counted; removing the VM ends the daemon and removes its folder.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
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

MB = 1024 * 1024
DATA_SIZE = 8 * MB
READY = b"VIRIDIAN-GUEST READY"
BOOT_TIMEOUT_S = 300
"""A TCG boot of the guest kit takes ~80 s on a 2-core host at load 15 (root or
confined alike), so 90 s stopped some boots at SYSLINUX."""


@contextlib.contextmanager
def daemon_service() -> Iterator[Service]:
    """A service whose host serves VHD/VHDX disks through storage daemons."""
    with running_service(host_settings={"storage_daemon": "vhd"}) as service:
        yield service


def guest_sh(api: httpx.Client, vm: str, script: str, timeout: float = 90) -> bytes:
    """Run ``script`` in the guest (waiting for its agent to answer); its stdout."""
    deadline = time.monotonic() + timeout
    while True:
        reply = api.post(f"/vms/{vm}/integration/exec",
                         json={"argv": ["/bin/sh", "-c", script], "timeout_s": 60})
        if reply.status_code == 200 and reply.json()["exit_code"] == 0:
            return base64.b64decode(reply.json()["stdout_b64"])
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.5)


def data_disk(sectors: int) -> str:
    """Shell: the guest's data disk device (the one of DATA_SIZE bytes)."""
    return (f"for b in /sys/block/sd*; do [ $(cat $b/size) -eq {sectors} ] && "
            "echo /dev/${b##*/}; done")


def write_markers(api: httpx.Client, vm: str, markers: dict[int, str]) -> None:
    dev = f"$({data_disk(DATA_SIZE // 512)})"
    script = "; ".join(f"printf '%-16s' '{text}' | dd of={dev} bs=512 seek={sector} "
                       "conv=notrunc,sync 2>/dev/null" for sector, text in markers.items())
    guest_sh(api, vm, script + "; sync")


def read_markers(api: httpx.Client, vm: str, sectors: list[int]) -> dict[int, str]:
    dev = f"$({data_disk(DATA_SIZE // 512)})"
    script = "sync; echo 3 > /proc/sys/vm/drop_caches; " + "; ".join(
        f"dd if={dev} bs=512 skip={s} count=1 2>/dev/null | head -c 16; echo" for s in sectors)
    lines = guest_sh(api, vm, script).decode(errors="replace").split("\n")
    return {s: line.strip("\0 ") for s, line in zip(sectors, lines, strict=False)}


def daemons(data_dir: Path) -> list[str]:
    return [p.cmdline for p in qemu_under(data_dir) if "qemu-storage-daemon" in p.cmdline]


VM = "sd"


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, httpx.Client,
                                                                      Path]]:
    """The service and its client, VM ``sd`` Running (VHD boot disk, VHDX data disk at
    SCSI 0:0), and the VHDX's path."""
    from viridian.guestkit import build

    folder = tmp_path_factory.mktemp("sd")
    boot, data = folder / "boot.vhd", folder / "data.vhdx"
    shutil.copyfile(build().vhd, boot)
    subprocess.run(["qemu-img", "create", "-q", "-f", "vhdx", "-o", "subformat=dynamic",
                    str(data), str(DATA_SIZE)], check=True)
    with daemon_service() as service, service.client() as api:
        created = api.post("/vms", json={"name": VM, "memory_mb": 256, "vhd": str(boot)})
        assert created.status_code == 201, created.text
        added = api.post(f"/vms/{VM}/disks", json={"controller": "scsi", "location": "0:0",
                                                    "path": str(data)})
        assert added.status_code in (200, 201), added.text
        assert "save" not in api.get(f"/vms/{VM}").json()["unavailable"]
        act(api, VM, "start")
        Console(service.data_dir, created.json()["id"]).wait_for(READY, BOOT_TIMEOUT_S)
        yield service, api, data


def vm_id(api: httpx.Client) -> str:
    return str(api.get(f"/vms/{VM}").json()["id"])


def test_vhd_vm_with_vhdx_data_disk_saves_and_continues(
        guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, data = guest
    console = Console(service.data_dir, vm_id(api))
    assert len(daemons(service.data_dir)) == 1  # one daemon serves both disks
    assert "save" in api.get(f"/vms/{VM}").json()["allowed"]
    write_markers(api, VM, {1: "BEFORE-SAVE-1", 7: "BEFORE-SAVE-7"})
    before = console.wait_ticks(2)[-1][0]

    serving = daemon_pids(service.data_dir)
    act(api, VM, "save")
    assert api.get(f"/vms/{VM}").json()["state"] == "Saved"
    assert daemon_pids(service.data_dir) == serving  # it outlives QEMU, the VM is registered
    check = subprocess.run(["qemu-img", "check", "-U", "-q", "-f", "vhdx", str(data)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr

    act(api, VM, "start")
    assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    first = Console(service.data_dir, vm_id(api)).wait_ticks(1)[0][0]
    assert first > before  # the guest continued from its saved memory, no reboot
    assert b"VIRIDIAN-GUEST READY" not in Console(service.data_dir, vm_id(api)).path.read_bytes()
    assert read_markers(api, VM, [1, 7, 3]) == {1: "BEFORE-SAVE-1", 7: "BEFORE-SAVE-7", 3: ""}


def daemon_pids(data_dir: Path) -> list[int]:
    return [p.pid for p in qemu_under(data_dir) if "qemu-storage-daemon" in p.cmdline]


def test_storage_daemon_killed_during_writes_is_restarted_and_the_guest_resumed(
        guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, _ = guest
    write_markers(api, VM, {40: "PRE-KILL-40", 41: "PRE-KILL-41"})
    dev = f"$({data_disk(DATA_SIZE // 512)})"
    guest_sh(api, VM, f"(while :; do dd if=/dev/urandom of={dev} bs=64k seek=64 count=16 "
                      "conv=fsync 2>/dev/null; done) </dev/null >/dev/null 2>&1 & "
                      "echo $! > /tmp/writer.pid")
    [killed] = daemon_pids(service.data_dir)
    os.kill(killed, signal.SIGKILL)  # in the middle of the guest's writes

    deadline = time.monotonic() + 60
    while daemon_pids(service.data_dir) in ([], [killed]):
        assert time.monotonic() < deadline, "the storage daemon was not started again"
        time.sleep(0.2)
    log = service.log
    while b"resuming the guest its storage I/O errors paused" not in log.read_bytes():
        assert time.monotonic() < deadline, log.read_text()[-2000:]
        time.sleep(0.2)
    guest_sh(api, VM, "kill $(cat /tmp/writer.pid)")
    write_markers(api, VM, {42: "POST-KILL-42"})
    assert read_markers(api, VM, [40, 41, 42]) == {40: "PRE-KILL-40", 41: "PRE-KILL-41",
                                                    42: "POST-KILL-42"}
    assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    storage = service.data_dir / "run" / f"{vm_id(api)}-storage" / "storage.json"
    assert json.loads(storage.read_text())["pid"] == daemon_pids(service.data_dir)[0]


def test_a_restarted_service_re_adopts_and_supervises_the_daemon(
        guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, _ = guest
    [daemon] = daemon_pids(service.data_dir)
    service.kill()  # SIGKILL: QEMU and its daemon keep running
    service.start(timeout=120)
    assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    assert daemon_pids(service.data_dir) == [daemon]  # found again, not replaced
    os.kill(daemon, signal.SIGKILL)  # the new service watches it like the old one did
    deadline = time.monotonic() + 60
    while daemon_pids(service.data_dir) in ([], [daemon]):
        assert time.monotonic() < deadline, service.log.read_text()[-2000:]
        time.sleep(0.2)
    write_markers(api, VM, {50: "AFTER-RESTART-50"})
    assert read_markers(api, VM, [40, 50]) == {40: "PRE-KILL-40", 50: "AFTER-RESTART-50"}


def open_files(pid: int) -> set[str]:
    """The files process ``pid`` holds open."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            found.add(os.readlink(fd))
    return found


def test_hot_added_vhd_goes_through_the_daemon_and_saves(
        guest: tuple[Service, httpx.Client, Path], tmp_path: Path) -> None:
    service, api, _ = guest
    extra = tmp_path / "hot.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", str(extra), "12M"], check=True)
    info = subprocess.run(["qemu-img", "info", "--output=json", str(extra)],
                          capture_output=True, text=True, check=True).stdout
    sectors = json.loads(info)["virtual-size"] // 512
    added = api.post(f"/vms/{VM}/disks", json={"controller": "scsi", "location": "0:1",
                                                "path": str(extra)})
    assert added.status_code in (200, 201), added.text
    dev = f"$({data_disk(sectors)})"
    guest_sh(api, VM, f"for i in $(seq 1 50); do [ -n \"{dev}\" ] && break; sleep 0.2; "
                      f"done; printf '%-16s' HOT-ADDED | dd of={dev} conv=notrunc,sync "
                      "2>/dev/null; sync")
    [daemon] = daemon_pids(service.data_dir)
    qemu = api.get(f"/vms/{VM}").json()["pid"]
    assert str(extra.resolve()) in open_files(daemon)  # the daemon opened the VHD,
    assert str(extra.resolve()) not in open_files(qemu)  # QEMU did not
    assert "save" in api.get(f"/vms/{VM}").json()["allowed"]
    act(api, VM, "save")  # a vpc node in QEMU would block this
    act(api, VM, "start")
    read = guest_sh(api, VM, f"echo 3 > /proc/sys/vm/drop_caches; dd if={dev} bs=512 "
                             "count=1 iflag=direct 2>/dev/null | head -c 16")
    assert read.decode().strip() == "HOT-ADDED"
    removed = api.delete(f"/vms/{VM}/disks/scsi/0:1")
    assert removed.status_code in (200, 204), removed.text
    assert guest_sh(api, VM, f"echo {dev}").strip() == b""  # the guest lost the disk


def checkpoint_job(api: httpx.Client, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
    reply = api.request(method, f"/vms/{VM}/checkpoints{url}", **kwargs)
    assert reply.status_code == 202, reply.text
    job = wait_job(api, reply.json(), timeout=300)
    assert job["state"] == "completed", job
    return dict(job["result"])


def test_standard_checkpoint_with_memory_applies_running_and_merges_online(
        guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, data = guest
    console = Console(service.data_dir, vm_id(api))
    write_markers(api, VM, {20: "CP-FIRST-20", 21: "CP-FIRST-21"})
    before = console.wait_ticks(2)[-1][0]
    taken = checkpoint_job(api, "POST", "", json={"name": "standard"})
    assert (taken["vm_state"], taken["production"], taken["has_memory"]) == \
        ("Running", False, True), taken
    assert taken["state"] == "Running"
    assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    after = console.wait_ticks(1)[-1][0]
    write_markers(api, VM, {21: "CP-LATER-21", 22: "CP-LATER-22"})
    later = console.wait_ticks(3)[-1][0]
    assert later >= after + 2

    applied = checkpoint_job(api, "POST", "/standard/apply")
    assert applied["state"] == "Running"
    first = Console(service.data_dir, vm_id(api)).wait_ticks(1)[0][0]
    assert before <= first <= after + 1, (before, after, first, later)  # memory came back
    assert read_markers(api, VM, [20, 21, 22]) == {20: "CP-FIRST-20", 21: "CP-FIRST-21",
                                                    22: ""}

    write_markers(api, VM, {23: "AFTER-APPLY-23"})
    overlays = set(api.get(f"/vms/{VM}/checkpoints").json()["now_disks"].values())
    assert len(overlays) == 2 and all(p.endswith(".qcow2") for p in overlays)
    wrong = api.post(f"/vms/{VM}/checkpoints", json={"name": "x", "type": "memoryless"})
    assert wrong.status_code in (400, 422) and "production" in wrong.text, wrong.text
    production = checkpoint_job(api, "POST", "", json={"name": "prod", "type": "production"})
    assert (production["production"], production["has_memory"], production["state"]) == \
        (True, False, "Off"), production  # Hyper-V's checkpoint type: an explicit choice
    checkpoint_job(api, "DELETE", "/standard", params={"subtree": True})
    assert api.get(f"/vms/{VM}").json()["state"] == "Running"  # merged online
    assert not any(Path(p).exists() for p in overlays)
    assert read_markers(api, VM, [20, 21, 22, 23]) == {
        20: "CP-FIRST-20", 21: "CP-FIRST-21", 22: "", 23: "AFTER-APPLY-23"}
    act(api, VM, "stop")
    assert len(daemons(service.data_dir)) == 1  # kept while the VM is registered
    check = subprocess.run(["qemu-img", "check", "-U", "-q", "-f", "vhdx", str(data)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def daemon_qmp(service: Service, api: httpx.Client, commands: list[tuple[str, dict[str, Any]]]
               ) -> list[Any]:
    """Run QMP ``commands`` on the VM's storage daemon with the service killed (the daemon
    takes one QMP client, the service's; SIGKILL leaves daemon and QEMU running), then
    start the service again (it re-adopts the daemon). Their answers."""
    from viridian.qemu.monitor import Monitor

    socket = service.data_dir / "run" / f"{vm_id(api)}-storage" / "qmp.sock"
    service.kill()

    async def run() -> list[Any]:
        monitor = Monitor("test")
        await monitor.connect(socket, timeout=30)
        try:
            return [await monitor.execute(name, args) for name, args in commands]
        finally:
            await monitor.close()

    try:
        return asyncio.run(run())
    finally:
        service.start(timeout=120)


def dirty_count(nodes: list[dict[str, Any]], node: str, bitmap: str) -> int:
    [found] = [b for n in nodes if n["node-name"] == node for b in n.get("dirty-bitmaps", [])
               if b["name"] == bitmap]
    return int(found["count"])


def test_daemon_lives_while_registered_bitmaps_survive_stop_and_start(
        guest: tuple[Service, httpx.Client, Path]) -> None:
    service, api, _ = guest
    if api.get(f"/vms/{VM}").json()["state"] != "Running":
        act(api, VM, "start")
    [daemon] = daemon_pids(service.data_dir)
    node = "scsi0-0-fmt"  # the VHDX data disk at SCSI 0:0 (export named by device id)
    daemon_qmp(service, api, [("block-dirty-bitmap-add",
                               {"node": node, "name": "backup-0", "granularity": 4096})])
    write_markers(api, VM, {0: "DIRTY-0", 64: "DIRTY-64"})  # two 4 KiB granules
    act(api, VM, "stop")
    act(api, VM, "start")
    Console(service.data_dir, vm_id(api)).wait_for(READY, BOOT_TIMEOUT_S)
    assert daemon_pids(service.data_dir) == [daemon]  # the same daemon across stop + start
    assert read_markers(api, VM, [0, 64]) == {0: "DIRTY-0", 64: "DIRTY-64"}
    [nodes] = daemon_qmp(service, api, [("query-named-block-nodes", {})])
    assert dirty_count(nodes, node, "backup-0") == 2 * 4096  # exactly the guest's writes

    act(api, VM, "stop")
    folder = service.data_dir / "run" / f"{vm_id(api)}-storage"
    assert folder.is_dir() and daemon_pids(service.data_dir) == [daemon]
    removed = api.delete(f"/vms/{VM}")
    assert removed.status_code == 200, removed.text
    assert daemon_pids(service.data_dir) == [] and not folder.exists()

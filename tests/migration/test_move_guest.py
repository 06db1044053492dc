"""Moving a running guest between two viridian services on this machine (issue 15, part
4; docs/architecture.md, "Migration"): each service has its own data folder and port; the
VM's disks are in a folder both see (shared storage). One guest for the module, moved
back and forth:

- a live move A→B (API) and a quick move B→A (``viridian vm move --quick``): the guest's
  in-memory tick counter goes on (no reboot), what it wrote to its disk reads back, the
  VM is listed on exactly one host;
- shared-nothing live moves A→B→A (``with_storage``): the disk is copied into each
  target's data folder, the guest goes on with its data;
- its data disk moved to another folder while it runs (``viridian vm move-storage``);
- a live move cancelled mid-way, and one whose target QEMU is killed mid-way: the VM runs
  on at the source, the target lists nothing and runs no QEMU for it; a target service
  killed mid-move ends the incoming QEMU it left behind when it starts again;
- refusals: a bad target token fails the job and changes nothing; bad options are a 4xx
  naming what was wrong.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.cli_harness import invoke
from tests.qemu_processes import qemu_under
from tests.service.harness import Console, Service, act, running_service, wait_job
from tests.service.test_storage_daemon_guest import DATA_SIZE, read_markers, write_markers

pytestmark = pytest.mark.guest

VM = "mover"


@dataclass
class Hosts:
    a: Service
    b: Service
    api_a: httpx.Client
    api_b: httpx.Client
    shared: Path
    vm_id: str

    def api(self, service: Service) -> httpx.Client:
        return self.api_a if service is self.a else self.api_b


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory, guest_iso: Path) -> Iterator[Hosts]:
    """Services A and B; VM ``mover`` Running on A (guest kit ISO, raw data disk in the
    shared folder)."""
    shared = tmp_path_factory.mktemp("shared")
    data = shared / "data.raw"
    subprocess.run(["truncate", "-s", str(DATA_SIZE), str(data)], check=True)
    with running_service() as a, running_service() as b, a.client() as api_a, \
            b.client() as api_b:
        created = api_a.post("/vms", json={"name": VM, "memory_mb": 256,
                                           "dvd": str(guest_iso), "vhd": str(data)})
        assert created.status_code == 201, created.text
        act(api_a, VM, "start")
        Console(a.data_dir, created.json()["id"]).wait_for(b"VIRIDIAN-GUEST READY")
        yield Hosts(a, b, api_a, api_b, shared, created.json()["id"])


def move(source: httpx.Client, target: Service, **options: Any) -> dict[str, Any]:
    reply = source.post(f"/vms/{VM}/move", json={"to": target.url, "token": target.token,
                                                  **options})
    assert reply.status_code == 202, reply.text
    return reply.json()  # type: ignore[no-any-return]


def names(api: httpx.Client) -> list[str]:
    return [vm["name"] for vm in api.get("/vms").json()["vms"]]


def assert_only_on(hosts: Hosts, owner: Service) -> None:
    other = hosts.b if owner is hosts.a else hosts.a
    assert names(hosts.api(owner)) == [VM]
    assert names(hosts.api(other)) == []
    assert hosts.api(owner).get(f"/vms/{VM}").json()["state"] == "Running"
    assert qemu_under(other.data_dir) == [], "a QEMU for the VM is left on the other host"


def continued(source: Service, target: Service, vm_id: str, last_tick: int) -> None:
    """The guest on ``target`` goes on counting from where it was on ``source``."""
    console = Console(target.data_dir, vm_id)
    first = console.wait_ticks(1)[0][0]
    assert first > last_tick, "the tick counter restarted: the guest rebooted"
    assert b"VIRIDIAN-GUEST BOOT" not in console.read()


def test_live_then_quick_move_keeps_the_guest_running(hosts: Hosts) -> None:
    write_markers(hosts.api_a, VM, {3: "ON-HOST-A"})
    last = Console(hosts.a.data_dir, hosts.vm_id).wait_ticks(2)[-1][0]

    job = wait_job(hosts.api_a, move(hosts.api_a, hosts.b, mode="live"))
    assert job["state"] == "completed", job
    assert job["result"]["mode"] == "live" and job["result"]["downtime_ms"] >= 0, job
    assert_only_on(hosts, hosts.b)
    continued(hosts.a, hosts.b, hosts.vm_id, last)
    assert read_markers(hosts.api_b, VM, [3]) == {3: "ON-HOST-A"}
    write_markers(hosts.api_b, VM, {5: "ON-HOST-B"})

    last = Console(hosts.b.data_dir, hosts.vm_id).wait_ticks(1)[-1][0]
    moved = invoke(["--url", hosts.b.url, "--token", hosts.b.token, "vm", "move", VM,
                    "--to", hosts.a.url, "--quick"], env={"VIRIDIAN_TARGET_TOKEN": hosts.a.token})
    assert moved.exit_code == 0, moved.output
    assert f"moved {VM} to {hosts.a.url} (quick): downtime " in moved.output
    assert_only_on(hosts, hosts.a)
    continued(hosts.b, hosts.a, hosts.vm_id, last)
    assert read_markers(hosts.api_a, VM, [3, 5]) == {3: "ON-HOST-A", 5: "ON-HOST-B"}


def test_move_storage_of_the_running_guest(hosts: Hosts) -> None:
    """Its data disk moves to another folder while it runs (mirror + pivot): the guest
    goes on, what it wrote reads back, the old file is gone, the VM names the new one."""
    folder = hosts.shared / "moved"
    folder.mkdir()
    old = hosts.shared / "data.raw"
    last = Console(hosts.a.data_dir, hosts.vm_id).wait_ticks(1)[-1][0]
    moved = invoke(["--url", hosts.a.url, "--token", hosts.a.token, "vm", "move-storage", VM,
                    str(folder)])
    assert moved.exit_code == 0, moved.output
    assert f"moved {old} -> {folder / 'data.raw'}" in moved.output
    assert not old.exists() and (folder / "data.raw").exists()
    paths = [d["path"] for d in hosts.api_a.get(f"/vms/{VM}").json()["settings"]["ide"]]
    assert str(folder / "data.raw") in paths and str(old) not in paths
    assert read_markers(hosts.api_a, VM, [3, 5]) == {3: "ON-HOST-A", 5: "ON-HOST-B"}
    write_markers(hosts.api_a, VM, {9: "AFTER-STORAGE"})
    assert read_markers(hosts.api_a, VM, [9]) == {9: "AFTER-STORAGE"}
    assert Console(hosts.a.data_dir, hosts.vm_id).wait_ticks(1)[-1][0] > last
    again = hosts.api_a.post(f"/vms/{VM}/move-storage", json={"folder": str(folder)})
    assert again.status_code == 409 and "a file of that name is there" in again.text


def test_shared_nothing_live_moves_copy_the_disk(hosts: Hosts) -> None:
    """``with_storage``: the disk is mirrored into the target's own data folder over NBD,
    then the memory moves; there and back, the guest goes on with its data."""
    for source, target in ((hosts.a, hosts.b), (hosts.b, hosts.a)):
        api, there = hosts.api(source), hosts.api(target)
        last = Console(source.data_dir, hosts.vm_id).wait_ticks(1)[-1][0]
        before = next(d["path"] for d in api.get(f"/vms/{VM}").json()["settings"]["ide"]
                      if d["kind"] == "hard_disk")
        job = wait_job(api, move(api, target, mode="live", with_storage=True))
        assert job["state"] == "completed", job["error"]
        assert_only_on(hosts, target)
        continued(source, target, hosts.vm_id, last)
        paths = [d["path"] for d in there.get(f"/vms/{VM}").json()["settings"]["ide"]
                 if d["kind"] == "hard_disk"]
        assert paths == [str(target.data_dir / "vms" / hosts.vm_id / "data.raw")], paths
        assert not Path(before).exists(), "the source's stale copy was kept"
        assert read_markers(there, VM, [3, 9]) == {3: "ON-HOST-A", 9: "AFTER-STORAGE"}
        write_markers(there, VM, {11: f"COPY-{target.port}"})
    assert read_markers(hosts.api_a, VM, [11]) == {11: f"COPY-{hosts.a.port}"}


def wait_incoming(target: httpx.Client, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not target.get("/migrations/incoming").json()["incoming"]:
        assert time.monotonic() < deadline, "the target never prepared the move"
        time.sleep(0.1)


def wait_progress(api: httpx.Client, job: dict[str, Any], timeout: float = 60) -> None:
    """Until the job migrates memory (it has passed the target's preparation)."""
    deadline = time.monotonic() + timeout
    while "migrating memory" not in api.get(f"/jobs/{job['id']}").json()["message"]:
        assert time.monotonic() < deadline, api.get(f"/jobs/{job['id']}").json()
        time.sleep(0.1)


def test_cancelled_live_move_leaves_the_vm_running_on_the_source(hosts: Hosts) -> None:
    last = Console(hosts.a.data_dir, hosts.vm_id).wait_ticks(1)[-1][0]
    job = move(hosts.api_a, hosts.b, mode="live", bandwidth_mib_s=1)  # slow: ~256 s
    wait_progress(hosts.api_a, job)
    cancelled = hosts.api_a.post(f"/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert wait_job(hosts.api_a, job)["state"] == "cancelled"
    wait_gone(hosts.b)
    assert_only_on(hosts, hosts.a)
    assert Console(hosts.a.data_dir, hosts.vm_id).wait_ticks(1)[-1][0] > last


def test_target_qemu_killed_mid_move_leaves_the_vm_running_on_the_source(
        hosts: Hosts) -> None:
    job = move(hosts.api_a, hosts.b, mode="live", bandwidth_mib_s=1)
    wait_progress(hosts.api_a, job)
    target_qemus = qemu_under(hosts.b.data_dir)
    assert len(target_qemus) == 1
    os.kill(target_qemus[0].pid, signal.SIGKILL)
    ended = wait_job(hosts.api_a, job)
    assert ended["state"] == "failed", ended
    wait_gone(hosts.b)
    assert_only_on(hosts, hosts.a)
    last = Console(hosts.a.data_dir, hosts.vm_id).wait_ticks(1)[-1][0]
    assert Console(hosts.a.data_dir, hosts.vm_id).wait_ticks(1)[-1][0] > last


def test_target_service_killed_mid_move_then_restarted_ends_the_leftover_qemu(
        hosts: Hosts) -> None:
    """The target's service dies during a live move: the source's cancel leaves the VM
    running there; the target, started again, ends the incoming QEMU it left behind."""
    job = move(hosts.api_a, hosts.b, mode="live", bandwidth_mib_s=1)
    wait_progress(hosts.api_a, job)
    hosts.b.kill()
    assert len(qemu_under(hosts.b.data_dir)) == 1  # detached: it outlives the service
    assert hosts.api_a.post(f"/jobs/{job['id']}/cancel").status_code == 200
    assert wait_job(hosts.api_a, job)["state"] == "cancelled"
    hosts.b.start(timeout=120)  # a loaded machine starts services slowly
    wait_gone(hosts.b)
    assert_only_on(hosts, hosts.a)


def wait_gone(target: Service, timeout: float = 30) -> None:
    """The target forgot the prepared move and its QEMU ended."""
    deadline = time.monotonic() + timeout
    with target.client() as api:
        while api.get("/migrations/incoming").json()["incoming"] or qemu_under(target.data_dir):
            assert time.monotonic() < deadline, (
                "the target kept the aborted move",
                api.get("/migrations/incoming").json(), qemu_under(target.data_dir),
                (target.data_dir / "serve.log").read_text()[-3000:])
            time.sleep(0.1)


def test_bad_token_and_bad_options_change_nothing(hosts: Hosts) -> None:
    reply = hosts.api_a.post(f"/vms/{VM}/move", json={"to": hosts.b.url, "token": "nope"})
    job = wait_job(hosts.api_a, reply.json())
    assert job["state"] == "failed" and "refused" in job["error"]["message"], job
    bad = hosts.api_a.post(f"/vms/{VM}/move", json={"to": hosts.b.url, "token": "x",
                                                     "mode": "teleport"})
    assert bad.status_code == 400 and "quick" in bad.text, bad.text
    bad = hosts.api_a.post(f"/vms/{VM}/move", json={"to": "ftp://x", "token": "x"})
    assert bad.status_code == 400 and "http://HOST:PORT" in bad.text, bad.text
    bad = hosts.api_a.post(f"/vms/{VM}/move", json={"to": hosts.b.url, "token": "x",
                                                     "mode": "quick", "postcopy": True})
    assert bad.status_code == 400 and "live-move options" in bad.text, bad.text
    assert_only_on(hosts, hosts.a)


def test_a_running_vhd_vm_moves_quick_and_is_refused_live(hosts: Hosts) -> None:
    """A VM whose VHD its storage daemon serves (a blank disk: only the firmware runs)
    moves quick — saved, restored on B through B's own daemon — and a live move is
    refused naming the reason; its files stay where they are."""
    vhd = hosts.shared / "blank.vhd"
    subprocess.run(["qemu-img", "create", "-q", "-f", "vpc", str(vhd), "16M"], check=True)
    created = hosts.api_a.post("/vms", json={"name": "vhdvm", "memory_mb": 64,
                                             "vhd": str(vhd)})
    assert created.status_code == 201, created.text
    act(hosts.api_a, "vhdvm", "start")
    live = hosts.api_a.post("/vms/vhdvm/move", json={"to": hosts.b.url,
                                                     "token": hosts.b.token})
    assert live.status_code == 409 and "storage daemon" in live.text, live.text
    reply = hosts.api_a.post("/vms/vhdvm/move", json={"to": hosts.b.url,
                                                      "token": hosts.b.token, "mode": "quick"})
    job = wait_job(hosts.api_a, reply.json())
    assert job["state"] == "completed", job["error"]
    assert "vhdvm" not in names(hosts.api_a)
    moved = hosts.api_b.get("/vms/vhdvm").json()
    assert moved["state"] == "Running" and moved["id"] == created.json()["id"]
    assert moved["settings"]["ide"][0]["path"] == str(vhd)
    act(hosts.api_b, "vhdvm", "stop")
    assert hosts.api_b.delete("/vms/vhdvm").status_code == 200

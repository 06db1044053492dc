"""Issue 13, lifecycle items (#11, #12, #13, Delete Saved State) against real guests (TCG).

One service for the module, one guest at a time. Counter sampling is slowed to once an
hour so that only what the service does at a disk's removal can meter its I/O.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Console, Service, act, running_service, wait_job

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("stop_actions")]

MB = 2**20


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service(env={"VIRIDIAN_COUNTER_INTERVAL_S": "3600"}) as svc:
        yield svc


@pytest.fixture(scope="module")
def api(service: Service) -> Iterator[httpx.Client]:
    with service.client() as client:
        yield client


@pytest.fixture(scope="module")
def vhd(tmp_path_factory: pytest.TempPathFactory) -> str:
    from viridian.disks import new_dynamic

    path = tmp_path_factory.mktemp("vhd") / "web.vhd"
    new_dynamic(path, 32 * MB)
    return str(path)


def cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    return subprocess.run([sys.executable, "-m", "viridian.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def new_vm(api: httpx.Client, name: str, **spec: Any) -> Console:
    created = api.post("/vms", json={"name": name, "memory_mb": 256, **spec})
    assert created.status_code == 201, created.text
    return Console(Path(created.json()["folder"]).parents[1], created.json()["id"])


def vm(api: httpx.Client, name: str) -> dict[str, Any]:
    shown: dict[str, Any] = api.get(f"/vms/{name}").json()
    return shown


def eventually(api: httpx.Client, name: str, check: Callable[[dict[str, Any]], bool],
               what: str, timeout: float = 150) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while not check(shown := vm(api, name)):
        assert time.monotonic() < deadline, \
            f"{what} not seen: {shown['state']}, heartbeat {shown.get('heartbeat')}"
        time.sleep(0.5)
    return shown


def guest_sh(api: httpx.Client, name: str, script: str) -> tuple[int, str]:
    ran = api.post(f"/vms/{name}/integration/exec",
                   json={"argv": ["/bin/sh", "-c", script], "timeout_s": 120})
    assert ran.status_code == 200, ran.text
    return ran.json()["exit_code"], base64.b64decode(ran.json()["stdout_b64"]).decode()


def test_shutdown_right_after_start_uses_the_agent_once_it_answers(
    api: httpx.Client, guest_iso: Path, vhd: str
) -> None:
    """#12: the ACPI power button pressed while the guest still boots is lost; the agent
    is asked again until it answers, instead of waiting out the whole timeout."""
    new_vm(api, "web", dvd=str(guest_iso), vhd=vhd)
    act(api, "web", "start")
    job = act(api, "web", "shutdown", timeout_s=600)
    assert job["result"] == {"state": "Off", "enabled_state": 3,
                             "method": "guest agent (after the ACPI power button)"}


def test_a_vhd_vm_offers_save_and_host_shutdown_saves_it(
    service: Service, api: httpx.Client, guest_iso: Path, vhd: str
) -> None:
    """#13 with issue 14: a VM with a VHD disk is served by its storage daemon by default,
    so allowed offers Save, nothing is unavailable, and the host-shutdown "save" action
    saves it (a VM without a daemon refuses: tests/service/test_storage_daemon_default.py)."""
    if "web" not in {v["name"] for v in api.get("/vms").json()["vms"]}:
        new_vm(api, "web", dvd=str(guest_iso), vhd=vhd)
    console = Console(service.data_dir, vm(api, "web")["id"])
    act(api, "web", "start")
    console.wait_for(b"VIRIDIAN-GUEST READY", timeout=150)
    eventually(api, "web", lambda v: v["heartbeat"] == "OK", "heartbeat OK")
    shown = vm(api, "web")
    assert shown["allowed"] == ["stop", "shutdown", "save", "pause", "reset"]
    assert shown["unavailable"] == {}
    wrong = api.post("/vms/web/resume")
    assert wrong.status_code == 409
    assert wrong.json()["error"]["details"]["allowed"] == shown["allowed"]

    job = wait_job(api, api.post("/host/shutdown").json(), timeout=300)
    assert job["state"] == "completed", job
    assert job["result"]["web"] == "save: completed"
    assert vm(api, "web")["state"] == "Saved"


def test_metering_keeps_the_io_of_a_hot_removed_disk(
    service: Service, api: httpx.Client, guest_iso: Path, tmp_path: Path
) -> None:
    """#11: 48 MB written to a SCSI disk, then the disk is removed while the VM runs:
    vm measure still counts the 48 MB. Then: a Paused VM's heartbeat reads "Paused";
    Delete Saved State turns a Saved VM Off and removes its file."""
    disk = tmp_path / "data.raw"
    with open(disk, "wb") as f:
        f.truncate(64 * MB)
    console = new_vm(api, "meter", dvd=str(guest_iso), settings={
        "scsi": [{"controller": 0, "disks": [{"location": 0, "path": str(disk)}]}]})
    act(api, "meter", "start")
    console.wait_for(b"VIRIDIAN-GUEST READY", timeout=150)
    eventually(api, "meter", lambda v: v["heartbeat"] == "OK", "heartbeat OK")
    code, out = guest_sh(api, "meter", (
        "for b in /sys/block/sd*; do [ \"$(cat $b/size)\" = 131072 ] && d=/dev/${b##*/}; done;"
        " dd if=/dev/urandom of=$d bs=1M count=48 conv=fsync 2>&1 && sync && echo wrote $d"))
    assert code == 0 and "wrote /dev/sd" in out, out
    removed = cli(service, "vm", "disk", "remove", "meter", "--controller", "scsi",
                  "--location", "0:0")
    assert removed.returncode == 0, removed.stderr
    assert not any(c["disks"] for c in vm(api, "meter")["settings"]["scsi"])
    measured = api.get("/vms/meter/measure").json()
    assert measured["disk_written_bytes"] >= 48 * MB, measured
    shown = cli(service, "vm", "measure", "meter").stdout
    written = next(line for line in shown.splitlines() if line.startswith("DiskDataWritten"))
    assert float(written.split()[-1]) >= 48.0, shown

    # A VHD hot-added to a VM started without a storage daemon is opened by QEMU itself:
    # Save is refused, saying why, until it is removed (or the VM restarted).
    from viridian.disks import new_dynamic

    new_dynamic(tmp_path / "hot.vhd", 8 * MB)
    added = cli(service, "vm", "disk", "add", "meter", "--controller", "scsi", "--location",
                "0:1", "--path", str(tmp_path / "hot.vhd"))
    assert added.returncode == 0, added.stderr
    why = vm(api, "meter")["unavailable"]["save"]
    assert "it has no storage daemon" in why and "hot-added" in why, why
    refused = cli(service, "vm", "save", "meter")
    assert refused.returncode == 4 and "cannot save VM 'meter'" in refused.stderr, refused
    assert vm(api, "meter")["state"] == "Running"
    removed = cli(service, "vm", "disk", "remove", "meter", "--controller", "scsi",
                  "--location", "0:1")
    assert removed.returncode == 0, removed.stderr
    assert vm(api, "meter")["unavailable"] == {}

    # #12: a Paused guest cannot answer; Hyper-V shows "Paused", not a stale "OK".
    act(api, "meter", "pause")
    assert vm(api, "meter")["heartbeat"] == "Paused"
    act(api, "meter", "resume")
    eventually(api, "meter", lambda v: v["heartbeat"] == "OK", "heartbeat OK after resume")

    # Delete Saved State: Saved → Off, the file is gone; refused when not Saved.
    act(api, "meter", "save")
    saved = vm(api, "meter")
    state_file = Path(saved["folder"]) / "saved-state.vmstate"
    assert state_file.exists() and saved["allowed"] == ["start", "delete-saved-state"]
    deleted = cli(service, "vm", "delete-saved-state", "meter")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.strip() == "meter: Off (the saved state was deleted)"
    assert not list(Path(saved["folder"]).glob("saved-state*"))
    again = cli(service, "vm", "delete-saved-state", "meter")
    assert again.returncode == 4
    assert ("cannot delete the saved state of VM 'meter': it is Off; allowed in this state: "
            "start") in again.stderr
    assert vm(api, "meter")["state"] == "Off"


def test_heartbeat_shows_while_shutting_down_turn_off_ends_it_and_after_timeout(
    service: Service, api: httpx.Client, guest_iso: Path, tmp_path: Path
) -> None:
    """#12: a shut down asked right after start, to a guest that ignores the power button
    and whose agent may not shut it down: the heartbeat turns OK as soon as the agent
    answers (not after the shut down); Turn Off ends the waiting shut down at once (as in
    Hyper-V); and --turn-off-after-timeout ends a guest that does not shut down."""
    from viridian.guestkit import make_config_disk

    config = make_config_disk(tmp_path / "deaf.img", "killall acpid; echo acpi-off")
    console = new_vm(api, "deaf", dvd=str(guest_iso), vhd=str(config),
                     settings={"integration_services": {"operating_system_shutdown": False}})
    act(api, "deaf", "start")
    asked = cli(service, "vm", "shutdown", "deaf", "--timeout", "900", "--no-wait")
    assert asked.returncode == 0, asked.stderr
    shutdown_job = asked.stdout.split()[0]
    seen = eventually(api, "deaf", lambda v: v["heartbeat"] == "OK" or v["state"] == "Off",
                      "heartbeat OK while shutting down", timeout=600)
    assert (seen["state"], seen["heartbeat"], seen["allowed"]) == ("ShuttingDown", "OK",
                                                                   ["stop"]), seen
    turned_off = cli(service, "vm", "stop", "deaf")
    assert turned_off.returncode == 0, turned_off.stderr
    job = wait_job(api, api.get(f"/jobs/{shutdown_job}").json(), timeout=120)
    assert (job["state"], job["result"]["method"]) == (
        "completed", "turned off while shutting down (asked: ACPI power button)"), job
    assert (vm(api, "deaf")["state"], vm(api, "deaf")["pid"]) == ("Off", None)

    act(api, "deaf", "start")  # a new com1.log: this run's config script ends, acpid gone
    console.wait_for(b"VIRIDIAN-GUEST CFG-EXIT", timeout=600)
    asked = cli(service, "vm", "shutdown", "deaf", "--timeout", "5",
                "--turn-off-after-timeout", "--no-wait")
    assert asked.returncode == 0, asked.stderr
    job = wait_job(api, api.get(f"/jobs/{asked.stdout.split()[0]}").json(), timeout=300)
    assert job["state"] == "completed", job
    assert job["result"]["method"] == ("turned off after 5 s (the guest did not shut down; "
                                       "asked: ACPI power button)")
    assert (vm(api, "deaf")["state"], vm(api, "deaf")["pid"]) == ("Off", None)

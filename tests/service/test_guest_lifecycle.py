"""A real guest (TCG) through every transition of Hyper-V's lifecycle, via the API."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Console, Service, act, state

pytestmark = pytest.mark.guest


def _process_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except FileNotFoundError:
        return True


def test_real_guest_goes_through_every_transition(
    service: Service, api: httpx.Client, guest_iso: Path
) -> None:
    vm = api.post("/vms", json={"name": "life", "memory_mb": 256, "dvd": str(guest_iso)})
    assert vm.status_code == 201, vm.text
    assert (vm.json()["state"], vm.json()["enabled_state"]) == ("Off", 3)
    console = Console(service.data_dir, vm.json()["id"])

    act(api, "life", "start")
    shown = api.get("/vms/life").json()
    assert (shown["state"], shown["enabled_state"]) == ("Running", 2)
    console.wait_for(b"VIRIDIAN-GUEST READY")
    console.wait_ticks(2)

    # Pause: the guest's clock stands still, nothing runs.
    act(api, "life", "pause")
    assert api.get("/vms/life").json()["enabled_state"] == 9
    paused_ticks = console.ticks()
    time.sleep(3)
    assert console.ticks() == paused_ticks
    act(api, "life", "resume")
    assert state(api, "life") == "Running"
    after = console.wait_ticks(1)[len(paused_ticks)]
    assert after[1] - paused_ticks[-1][1] < 2600, "guest uptime ran on while paused"

    # Save: state on disk, no QEMU process; start restores and the guest continues.
    pid = api.get("/vms/life").json()["pid"]
    last_tick = console.wait_ticks(1)[-1][0]
    act(api, "life", "save")
    shown = api.get("/vms/life").json()
    assert (shown["state"], shown["enabled_state"], shown["pid"]) == ("Saved", 6, None)
    assert _process_gone(pid)
    assert (Path(shown["folder"]) / "saved-state.vmstate").stat().st_size > 1_000_000
    act(api, "life", "start")
    assert state(api, "life") == "Running"
    restored = console.wait_ticks(2)
    assert restored[0][0] > last_tick, "counter restarted: the guest rebooted instead of restoring"
    assert b"VIRIDIAN-GUEST BOOT" not in console.read()
    assert not (Path(shown["folder"]) / "saved-state.vmstate").exists()

    # Graceful shut down through the guest.
    job = act(api, "life", "shutdown", timeout_s=60)
    assert job["result"] == {"state": "Off", "enabled_state": 3, "method": "guest agent"}
    assert api.get("/vms/life").json()["pid"] is None

    # Start fresh, reset (the guest boots again), turn off.
    act(api, "life", "start")
    console.wait_for(b"VIRIDIAN-GUEST READY")
    act(api, "life", "reset")
    assert state(api, "life") == "Running"
    deadline = time.monotonic() + 90
    while console.read().count(b"VIRIDIAN-GUEST BOOT") < 2:
        assert time.monotonic() < deadline, "guest did not boot again after reset"
        time.sleep(0.2)
    act(api, "life", "stop")
    assert (state(api, "life"), api.get("/vms/life").json()["enabled_state"]) == ("Off", 3)


def test_guest_powering_itself_off_is_seen_as_off(
    service: Service, api: httpx.Client, guest_iso: Path
) -> None:
    vm = api.post("/vms", json={"name": "self", "memory_mb": 256, "dvd": str(guest_iso)}).json()
    console = Console(service.data_dir, vm["id"])
    act(api, "self", "start")
    console.wait_for(b"VIRIDIAN-GUEST READY")
    # Through the service's guest-exec (the agent socket takes one client: the service's).
    ran = api.post("/vms/self/integration/exec",
                   json={"argv": ["/bin/sh", "-c", "(sleep 3; poweroff -f) >/dev/null 2>&1 &"]})
    assert ran.status_code == 200 and ran.json()["exit_code"] == 0, ran.text
    deadline = time.monotonic() + 60
    while state(api, "self") != "Off":
        assert time.monotonic() < deadline, "VM did not become Off after the guest powered off"
        time.sleep(0.2)
    shown = api.get("/vms/self").json()
    assert shown["pid"] is None
    assert "guest" in (shown["status"] or ""), shown["status"]


def test_shutdown_falls_back_to_the_acpi_power_button(
    service: Service, api: httpx.Client, guest_iso: Path, tmp_path: Path
) -> None:
    """A guest without a running agent is shut down through the ACPI power button."""
    from viridian.guestkit import make_config_disk

    config = make_config_disk(tmp_path / "no-agent.img", "killall qemu-ga; echo agent-stopped")
    vm = api.post("/vms", json={"name": "acpi", "memory_mb": 256, "dvd": str(guest_iso),
                                "vhd": str(config)})
    assert vm.status_code == 201, vm.text
    console = Console(service.data_dir, vm.json()["id"])
    act(api, "acpi", "start")
    console.wait_for(b"VIRIDIAN-GUEST CFG agent-stopped")
    job = act(api, "acpi", "shutdown", timeout_s=60)
    assert job["result"] == {"state": "Off", "enabled_state": 3, "method": "ACPI power button"}
    assert state(api, "acpi") == "Off"

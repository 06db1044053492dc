"""OpenStack's ``sushy`` drives a real guest through Redfish (issue 19): the guest kit's
ISO inserted as virtual media, boot once from Cd, power on — the guest really boots from
it (the VM has no other medium) — graceful shutdown, power on, Pause and Resume followed
through their task monitors, force off; an event subscription and the SSE stream receive
the VM's power-state events."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sushy

from tests.redfish.listener import Listener
from tests.service.harness import Console, Service, running_service

pytestmark = pytest.mark.guest


@pytest.fixture(scope="module")
def service() -> Iterator[Service]:
    with running_service() as svc:
        yield svc


@pytest.fixture(scope="module")
def guest_iso() -> Path:
    from viridian.guestkit import build

    return build().iso


def _wait(predicate: Any, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def test_sushy_boots_a_guest_from_virtual_media(service: Service, guest_iso: Path) -> None:
    with service.client() as api:
        made = api.post("/vms", json={"name": "rf-guest", "memory_mb": 256})
        assert made.status_code == 201, made.text
        vm_id = made.json()["id"]
    uri = f"/redfish/v1/Systems/{vm_id}"
    listener = Listener()
    try:
        subscribed = httpx.post(f"{service.url}/redfish/v1/EventService/Subscriptions",
                                auth=("admin", service.token),
                                json={"Destination": listener.url, "Context": "rf-test",
                                      "Protocol": "Redfish"})
        assert subscribed.status_code == 201, subscribed.text

        root = sushy.Sushy(f"{service.url}/redfish/v1", username="admin",
                           password=service.token)  # a SessionService session (X-Auth-Token)
        system = root.get_system(uri)
        assert system.power_state == sushy.POWER_STATE_OFF
        cd = system.virtual_media.get_member(f"{uri}/VirtualMedia/Cd")
        assert cd.image is None and not cd.inserted
        cd.insert_media(f"file://{guest_iso}")
        cd.refresh()
        assert cd.inserted and cd.image == f"file://{guest_iso}"

        system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_CD,
                                       enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
        system.refresh()
        assert system.boot.target == sushy.BOOT_SOURCE_TARGET_CD
        assert system.boot.enabled == sushy.BOOT_SOURCE_ENABLED_ONCE

        system.reset_system(sushy.RESET_ON)
        Console(service.data_dir, vm_id).wait_for(b"VIRIDIAN-GUEST READY", timeout=180)
        system.refresh()
        assert system.power_state == sushy.POWER_STATE_ON
        assert system.boot.enabled == sushy.BOOT_SOURCE_ENABLED_DISABLED  # Once was used

        system.reset_system(sushy.RESET_GRACEFUL_SHUTDOWN)
        _wait(lambda: _power(system) == sushy.POWER_STATE_OFF, "graceful shutdown")

        system.reset_system(sushy.RESET_ON)
        _wait(lambda: _power(system) == sushy.POWER_STATE_ON, "power on")
        stream = SseReader(service, uri)
        _reset_through_task_monitor(service, uri, "Pause")
        assert _power(system).value == "Paused"
        # events come from a 0.5 s state watcher: wait for them before the next change
        _wait(lambda: "Paused" in stream.power_states, "the Paused event on SSE", 30)
        _reset_through_task_monitor(service, uri, "Resume")
        assert _power(system).value == "On"
        _wait(lambda: stream.power_states[-1:] == ["On"], "the On event on SSE", 30)
        system.reset_system(sushy.RESET_FORCE_OFF)
        _wait(lambda: _power(system) == sushy.POWER_STATE_OFF, "force off")

        _wait(lambda: listener.power_states(uri)[-1:] == ["Off"], "the last Off event", 30)
        states = listener.power_states(uri)
        assert states.count("On") >= 2 and states.count("Off") >= 2, states
        assert all(ev.get("Context") == "rf-test" for ev in listener.events)
    finally:
        listener.close()


def _power(system: Any) -> Any:
    system.refresh()
    return system.power_state


def _reset_through_task_monitor(service: Service, uri: str, reset_type: str) -> None:
    """Reset with ``reset_type``: 202 and a task monitor that answers 202 until the job
    ended, then the Task Completed."""
    with httpx.Client(base_url=service.url, auth=("admin", service.token)) as client:
        accepted = client.post(f"{uri}/Actions/ComputerSystem.Reset",
                               json={"ResetType": reset_type})
        assert accepted.status_code == 202, accepted.text
        monitor = accepted.headers["Location"]
        deadline = time.monotonic() + 120
        while (answer := client.get(monitor)).status_code == 202:
            assert time.monotonic() < deadline, answer.text
            time.sleep(0.2)
        assert answer.status_code == 200 and answer.json()["TaskState"] == "Completed"


class SseReader:
    """Reads ``/redfish/v1/EventService/SSE`` in a thread; keeps ``uri``'s power states."""

    def __init__(self, service: Service, uri: str) -> None:
        self.power_states: list[str] = []
        self._client = httpx.Client(base_url=service.url, auth=("admin", service.token),
                                    timeout=httpx.Timeout(5, read=None))
        threading.Thread(target=self._read, args=(uri,), daemon=True).start()

    def _read(self, uri: str) -> None:
        with contextlib.suppress(httpx.HTTPError), \
                self._client.stream("GET", "/redfish/v1/EventService/SSE") as answer:
            for line in answer.iter_lines():  # until the service stops at the module's end
                if line.startswith("data: "):
                    self.power_states += [
                        r["MessageArgs"][0] for r in json.loads(line[6:])["Events"]
                        if r["OriginOfCondition"]["@odata.id"] == uri]

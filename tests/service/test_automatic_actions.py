"""Automatic start after a host boot (not after a service restart); stop actions at host
shutdown (not when only the service stops)."""

from __future__ import annotations

import time
from pathlib import Path

from tests.service.harness import act, running_service, state


def _wait_state(api, name: str, wanted: str, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while state(api, name) != wanted:
        assert time.monotonic() < deadline, f"{name} is {state(api, name)}, not {wanted}"
        time.sleep(0.1)


def test_automatic_start_and_stop_actions(tmp_path: Path) -> None:
    boot_id = tmp_path / "boot_id"
    boot_id.write_text("boot-A\n")
    with running_service(env={"VIRIDIAN_BOOT_ID_FILE": str(boot_id)}) as service:
        with service.client() as api:
            def new(name: str, start: str, stop: str) -> None:
                settings = {"automatic_start": {"action": start, "delay_s": 0},
                            "automatic_stop": {"action": stop}}
                assert api.post("/vms", json={"name": name, "memory_mb": 64,
                                              "settings": settings}).status_code == 201

            new("always", "always", "turn_off")
            new("was-running", "if_running", "save")
            new("was-off", "if_running", "save")
            new("never", "nothing", "turn_off")
            act(api, "was-running", "start")
            act(api, "never", "start")

        # A service restart alone changes nothing: no stop actions, no start actions.
        service.stop()
        service.start()
        with service.client() as api:
            assert [state(api, n) for n in ("always", "was-running", "was-off", "never")] == \
                ["Off", "Running", "Off", "Running"]

            # Host shutdown runs each VM's automatic stop action.
            job = api.post("/host/shutdown").json()
            job = api.get(f"/jobs/{job['id']}", params={"wait": 60}).json()
            assert job["state"] == "completed", job
            assert job["result"] == {"was-running": "save: completed", "never": "stop: completed"}
            assert state(api, "was-running") == "Saved" and state(api, "never") == "Off"

        # The host "reboots": a new boot id. Automatic start actions run.
        service.kill()
        boot_id.write_text("boot-B\n")
        service.start()
        with service.client() as api:
            _wait_state(api, "always", "Running")
            _wait_state(api, "was-running", "Running")
            time.sleep(1)
            assert state(api, "was-off") == "Off" and state(api, "never") == "Off"
            act(api, "always", "stop")
            act(api, "was-running", "stop")

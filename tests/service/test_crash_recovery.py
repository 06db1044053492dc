"""The service is SIGKILLed at awkward moments: no VM, disk or state is ever lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Console, Service, act, running_service, state


@pytest.mark.guest
def test_kill_restart_while_running_and_while_saving(guest_iso: Path) -> None:
    with running_service() as service:
        with service.client() as api:
            vm = api.post("/vms", json={"name": "tough", "memory_mb": 256,
                                        "dvd": str(guest_iso)}).json()
            act(api, "tough", "start")
            console = Console(service.data_dir, vm["id"])
            console.wait_for(b"VIRIDIAN-GUEST READY")
            pid = api.get("/vms/tough").json()["pid"]

        # 1. Killed while the VM runs: the VM keeps running and is managed again.
        service.kill()
        before = console.wait_ticks(2)[-1][0]
        service.start()
        with service.client() as api:
            shown = api.get("/vms/tough").json()
            assert (shown["state"], shown["pid"]) == ("Running", pid)
            assert console.wait_ticks(1)[-1][0] > before
            act(api, "tough", "pause")
            act(api, "tough", "resume")

        # 2. Killed while save jobs are in flight, at several moments: Running or Saved.
        for delay in (0.05, 0.3, 0.8):
            with service.client() as api:
                if state(api, "tough") == "Saved":
                    act(api, "tough", "start")
                last = console.wait_ticks(1)[-1][0]
                assert api.post("/vms/tough/save").status_code == 202
                time.sleep(delay)
            service.kill()
            service.start()
            with service.client() as api:
                outcome = state(api, "tough")
                assert outcome in ("Running", "Saved"), (delay, outcome)
                if outcome == "Saved":
                    act(api, "tough", "start")
                assert console.wait_ticks(2)[-1][0] > last, f"guest lost its state ({delay})"
                jobs = api.get("/jobs").json()["jobs"]
                assert any(j["kind"] == "save" and j["state"] in ("failed", "completed")
                           for j in jobs)
        with service.client() as api:
            act(api, "tough", "stop")


def test_a_vm_whose_qemu_died_meanwhile_is_reported_off(service: Service) -> None:
    with service.client() as api:
        api.post("/vms", json={"name": "doomed", "memory_mb": 64})
        act(api, "doomed", "start")
        pid = api.get("/vms/doomed").json()["pid"]
    service.kill()
    import os
    import signal

    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    service.start()
    with service.client() as api:
        shown = api.get("/vms/doomed").json()
        assert shown["state"] == "Off" and shown["pid"] is None
        assert "while the service was not running" in shown["status"]
        act(api, "doomed", "start")
        act(api, "doomed", "stop")


def test_killed_during_creates_leaves_nothing_half_registered() -> None:
    with running_service() as service:
        with service.client() as api:
            stop = threading.Event()

            def create(worker: int) -> None:
                with service.client() as own:
                    for n in range(200):
                        if stop.is_set():
                            return
                        try:
                            own.post("/vms", json={"name": f"vm-{worker}-{n}", "memory_mb": 64})
                        except httpx.TransportError:
                            return

            threads = [threading.Thread(target=create, args=(w,)) for w in range(3)]
            for thread in threads:
                thread.start()
            while len(api.get("/vms").json()["vms"]) < 15:
                time.sleep(0.01)
            service.kill()
            stop.set()
            for thread in threads:
                thread.join()
        service.start()
        with service.client() as api:
            vms = api.get("/vms").json()["vms"]
            folders = {p.name for p in (service.data_dir / "vms").iterdir()}
            assert folders == {vm["id"] for vm in vms}
            for vm in vms:
                assert Path(vm["folder"]).is_dir() and vm["state"] == "Off"
            names = [vm["name"] for vm in vms]
            assert len(names) == len(set(names)) >= 15

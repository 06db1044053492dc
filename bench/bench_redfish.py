"""Redfish beside viridian's own API (issue 19), in one run on one service:

- GET of a VM: ``GET /redfish/v1/Systems/{id}`` against ``GET /api/v1/vms/{name}`` (with
  the admin's Redfish session, and as a viridian user with HTTP Basic: an access login
  reused for 30 s, authorized per request);
- a power cycle through each: Redfish ``Reset`` (On, then ForceOff; 202 + task monitor
  polled to the end) against ``POST /vms/{name}/start|stop`` + ``GET /jobs/{id}?wait``;
- the cost of DMTF's service validator over the whole tree (wall time).

Prints medians and the Redfish/API ratio. ``--quick``: fewer rounds, no validator run.
The VM has no bootable medium (it sits in its BIOS): a cycle measures the service and
QEMU's start, not a guest.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.service.harness import running_service  # noqa: E402

SCHEMAS = REPO.parent / "shared" / "redfish" / "csdl"


def _median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _redfish_cycle(rf: httpx.Client, system: str) -> None:
    for reset in ("On", "ForceOff"):
        answer = rf.post(f"{system}/Actions/ComputerSystem.Reset", json={"ResetType": reset})
        assert answer.status_code == 202, answer.text
        monitor = answer.headers["Location"]
        while rf.get(monitor).status_code == 202:
            time.sleep(0.02)


def _api_cycle(api: httpx.Client, name: str) -> None:
    for action in ("start", "stop"):
        job = api.post(f"/vms/{name}/{action}").json()
        while job["state"] in ("queued", "running"):
            job = api.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
        assert job["state"] == "completed", job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    gets, cycles = (20, 1) if quick else (200, 5)
    with running_service() as svc, svc.client() as api:
        vm = api.post("/vms", json={"name": "bench-rf", "memory_mb": 64}).json()
        system = f"/redfish/v1/Systems/{vm['id']}"
        with httpx.Client(base_url=svc.url, auth=("admin", svc.token), timeout=120) as rf:
            session = rf.post("/redfish/v1/SessionService/Sessions",
                              json={"UserName": "admin", "Password": svc.token})
            rf.auth = None
            rf.headers["X-Auth-Token"] = session.headers["X-Auth-Token"]
            made = rf.post("/redfish/v1/AccountService/Accounts", json={
                "UserName": "bench-op", "Password": "bench-op-Secret1", "RoleId": "Operator"})
            made.raise_for_status()
            user = httpx.Client(base_url=svc.url, auth=("bench-op", "bench-op-Secret1"),
                                timeout=120)
            rows = [
                ("GET a VM", _median_ms(lambda: rf.get(system).raise_for_status(), gets),
                 _median_ms(lambda: api.get("/vms/bench-rf").raise_for_status(), gets)),
                ("GET a VM, user via Basic", _median_ms(
                    lambda: user.get(system).raise_for_status(), gets),
                 _median_ms(lambda: api.get("/vms/bench-rf").raise_for_status(), gets)),
                ("power cycle (on + off)", _median_ms(lambda: _redfish_cycle(rf, system), cycles),
                 _median_ms(lambda: _api_cycle(api, "bench-rf"), cycles)),
            ]
        print(f"{'operation':<26}{'Redfish ms':>12}{'API ms':>10}{'ratio':>8}")
        for name, redfish_ms, api_ms in rows:
            print(f"{name:<26}{redfish_ms:>12.1f}{api_ms:>10.1f}{redfish_ms / api_ms:>7.2f}x")
        if not quick:
            start = time.perf_counter()
            subprocess.run([str(Path(sys.executable).parent / "rf_service_validator"),
                            "--rhost", svc.url, "--user", "admin", f"--password={svc.token}",
                            "--schema_directory", str(SCHEMAS), "--skipschema",
                            "--logdir", str(svc.data_dir / "validator")],
                           capture_output=True, check=True)
            print(f"service validator over the whole tree: "
                  f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()

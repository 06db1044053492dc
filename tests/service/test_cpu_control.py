"""CPU reserve, limit and weight enforced through cgroups, measured on real busy guests.

Two VMs (1 virtual processor each) run a busy loop in the guest. The service runs with
``VIRIDIAN_VM_CPUS=0``: every thread of both QEMUs is pinned to logical processor 0,
so they contend for one processor, and that one processor is the capacity reserves are
admitted against. Each QEMU's CPU time comes from ``/proc/<pid>/stat`` (utime + stime,
all threads) over :data:`WINDOW_S` after a warm-up; the assertions are ratios of
measured CPU time (±15 %, the issue's tolerance), not timings of our code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Console, Service, act, running_service

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("cpu_control")]

WINDOW_S = 10.0
WARM_UP_S = 3.0
TOLERANCE = 0.15
BUSY = ["/bin/sh", "-c", "while :; do :; done >/dev/null 2>&1 &"]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime (proc(5) 14, 15)


def measure(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds per wall second of each QEMU, after a warm-up."""
    time.sleep(WARM_UP_S)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    start = time.monotonic()
    time.sleep(WINDOW_S)
    elapsed = time.monotonic() - start
    return {name: (cpu_seconds(pid) - before[name]) / elapsed for name, pid in pids.items()}


def set_cpu(api: httpx.Client, vm: str, **processor: int) -> dict[str, Any]:
    response = api.patch(f"/vms/{vm}", json={"processor": processor})
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def busy_pair(guest_iso: Path) -> Iterator[tuple[Service, httpx.Client, dict[str, int]]]:
    with running_service({"VIRIDIAN_VM_CPUS": "0"}) as service, service.client() as api:
        pids = {}
        for name in ("one", "three"):
            vm = api.post("/vms", json={"name": name, "memory_mb": 192, "dvd": str(guest_iso)})
            assert vm.status_code == 201, vm.text
            act(api, name, "start")
            Console(service.data_dir, vm.json()["id"]).wait_for(b"VIRIDIAN-GUEST READY")
            busy = api.post(f"/vms/{name}/integration/exec", json={"argv": BUSY})
            assert busy.json()["exit_code"] == 0, busy.text
            pids[name] = api.get(f"/vms/{name}").json()["pid"]
        yield service, api, pids


def test_qemu_runs_in_its_own_cgroups_pinned_to_the_vm_processor_set(
    busy_pair: tuple[Service, httpx.Client, dict[str, int]],
) -> None:
    _, api, pids = busy_pair
    resources = api.get("/vms/one").json()["resources"]
    assert resources["enforced"] is True, resources
    assert resources["processor_set"] == "0"
    assert pids["one"] in resources["pids"]
    for path in resources["cgroups"].values():
        assert str(pids["one"]) in (Path(path) / "cgroup.procs").read_text().split()
    limit = resources["memory_limit_bytes"]
    assert limit == (192 + 256 + 192 // 8 + 1024) * 2**20  # memory + QEMU allowance (TCG)
    for task in Path(f"/proc/{pids['one']}/task").iterdir():
        assert os.sched_getaffinity(int(task.name)) == {0}


def test_the_service_runs_in_a_group_of_its_own_weighing_as_much_as_its_busy_vms(
    busy_pair: tuple[Service, httpx.Client, dict[str, int]],
) -> None:
    """Among busy guests the service still gets CPU when it asks: it left the group it was
    started in for ``viridian-service`` beside ``viridian``, weighing at least as much as
    the two VMs' processors as plain processes (other services' VMs may add to it)."""
    service, api, pids = busy_pair
    assert service.process is not None
    own = {line.split(":")[1]: line.split(":")[2]
           for line in Path(f"/proc/{service.process.pid}/cgroup").read_text().splitlines()}
    cpu = next(path for controllers, path in own.items() if "cpu" in controllers.split(","))
    assert cpu.endswith("/viridian-service"), own
    vm_group = Path(api.get("/vms/one").json()["resources"]["cgroups"]["cpu"])
    leaf = vm_group.parent.parent / "viridian-service"
    assert str(service.process.pid) in (leaf / "cgroup.procs").read_text().split()
    assert int((leaf / "cpu.shares").read_text()) >= 2 * 1024
    assert int((vm_group.parent / "cpu.shares").read_text()) >= 2 * 1024
    assert str(pids["one"]) not in (leaf / "cgroup.procs").read_text().split()


def test_weights_1_to_3_split_a_contended_processor_1_to_3(
    busy_pair: tuple[Service, httpx.Client, dict[str, int]],
) -> None:
    _, api, pids = busy_pair
    set_cpu(api, "one", weight=100, limit_pct=100, reserve_pct=0)
    shown = set_cpu(api, "three", weight=300, limit_pct=100, reserve_pct=0)["resources"]
    assert shown["cpu_fraction_when_all_busy"] == 0.75
    used = measure(pids)
    ratio = used["three"] / used["one"]
    print(f"weights 100:300 -> CPU {used}, ratio {ratio:.2f}")
    assert 3 * (1 - TOLERANCE) <= ratio <= 3 * (1 + TOLERANCE), used


def throttled(resources: dict[str, Any]) -> int:
    """Periods in which the kernel held the group back by its quota (cpu.stat)."""
    stat = (Path(resources["cgroups"]["cpu"]) / "cpu.stat").read_text().split()
    return int(stat[stat.index("nr_throttled") + 1])


def test_a_vm_limited_to_25_percent_stays_under_it(
    busy_pair: tuple[Service, httpx.Client, dict[str, int]],
) -> None:
    """"one" runs alone on its processor ("three" paused), so without the limit it would
    take far more than 25 %; the quota is seen holding it back (cpu.stat)."""
    _, api, pids = busy_pair
    set_cpu(api, "three", weight=100, limit_pct=100, reserve_pct=0)
    shown = set_cpu(api, "one", weight=100, limit_pct=25, reserve_pct=0)["resources"]
    assert (shown["cpu_quota_us"], shown["cpu_period_us"]) == (25_000, 100_000)
    act(api, "three", "pause")
    try:
        before = throttled(shown)
        used = measure({"one": pids["one"]})
        held_back = throttled(shown) - before
    finally:
        act(api, "three", "resume")
    print(f"limit 25 % -> CPU {used}, throttled in {held_back} periods")
    assert used["one"] <= 0.25 * (1 + TOLERANCE), used
    # Without a quota the kernel never throttles (nr_throttled stays 0). How many periods
    # hit it depends on how much CPU the loaded host lets the guest want.
    assert held_back > 0, held_back


def test_a_reserve_is_honoured_under_contention(
    busy_pair: tuple[Service, httpx.Client, dict[str, int]],
) -> None:
    """"one" reserves 50 % of its processor with the lowest weight (1) against weight
    10000: by weight alone it would get 1/10001 of the processor."""
    _, api, pids = busy_pair
    set_cpu(api, "three", weight=10_000, limit_pct=100, reserve_pct=0)
    shown = set_cpu(api, "one", weight=1, limit_pct=100, reserve_pct=50)["resources"]
    assert shown["reserved_processors"] == 0.5 and shown["reserve_guaranteed"] is True
    used = measure(pids)
    share = used["one"] / (used["one"] + used["three"])
    print(f"reserve 50 % at weight 1 vs weight 10000 -> CPU {used}, share {share:.2f}")
    assert share >= 0.5 * (1 - TOLERANCE), used


def test_reserves_beyond_the_processors_are_refused_with_the_numbers(
    busy_pair: tuple[Service, httpx.Client, dict[str, int]], guest_iso: Path,
) -> None:
    _, api, _ = busy_pair
    set_cpu(api, "one", weight=100, limit_pct=100, reserve_pct=50)
    refused = api.patch("/vms/three", json={"processor": {"reserve_pct": 60}})
    assert refused.status_code == 409, refused.text
    message = refused.json()["error"]["message"]
    assert "0.60 logical processors" in message and "0.50 reserved by running VMs" in message
    assert "110 % > 100 %" in message, message
    assert api.get("/vms/three").json()["settings"]["processor"]["reserve_pct"] == 0

    api.post("/vms", json={"name": "greedy", "memory_mb": 64,
                           "settings": {"processor": {"reserve_pct": 80}}})
    job = act(api, "greedy", "start", check=False)
    assert job["state"] == "failed" and job["error"]["code"] == "admission_refused", job
    assert "1.30" in job["error"]["message"] and "130 % > 100 %" in job["error"]["message"]
    assert api.get("/vms/greedy").json()["state"] == "Off"


def test_a_restarted_service_finds_the_groups_again(
    busy_pair: tuple[Service, httpx.Client, dict[str, int]],
) -> None:
    service, api, pids = busy_pair
    set_cpu(api, "three", weight=300, limit_pct=40, reserve_pct=0)
    before = {name: api.get(f"/vms/{name}").json()["resources"] for name in pids}
    service.kill()
    service.start()
    with service.client() as fresh:
        for name, pid in pids.items():
            after = fresh.get(f"/vms/{name}").json()["resources"]
            assert after["cgroups"] == before[name]["cgroups"] and pid in after["pids"]
            for key in ("cpu_quota_us", "cpu_shares", "cpu_weight", "memory_limit_bytes"):
                assert after[key] == before[name][key], (name, key)
        assert fresh.get("/vms/three").json()["resources"]["cpu_limit_processors"] == 0.4

"""Placement over the hosts of a cluster (issue 18): three real services in one cluster
on a real 3-member etcd, with skewed load — h1 keeps almost all of the machine's memory
for itself (``host_reserve_mb`` in its host.json), h2 has no virtual switch ``Lab``, h3
has the switch and its memory free. ``vm new --dry-run`` on h1 (the CLI as a user runs
it) rates all three from the facts each host publishes in its host record, picks h3 and
says why; a real provisioning request on h1 is refused naming h3 (not forwarded: there
is no credential for it yet) and makes nothing. No guest is booted: the template is made
from a VM that never ran."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.etcd_members import etcd_cluster
from tests.service.harness import Service, running_service, wait_job
from tests.service.test_switches_guest import remove_leftovers

pytestmark = pytest.mark.xdist_group("placement_cluster")

FREE_ON_H1_MB = 1500


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no MemTotal in /proc/meminfo")


def _end_guards(services: list[Service]) -> None:
    """Each host's fence guard (it outlives its service by design)."""
    for service in services:
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((service.data_dir / "cluster" / "guard.lock.pid").read_text()),
                    signal.SIGKILL)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Service]]:
    reserve = _memory_mb() - FREE_ON_H1_MB
    services: list[Service] = []
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(etcd_cluster(tmp_path_factory.mktemp("pl-etcd")))
        stack.callback(_end_guards, services)  # after the services stopped
        for settings in ({"host_reserve_mb": reserve}, {}, {}):
            service = stack.enter_context(running_service(host_settings=settings))
            stack.callback(remove_leftovers, service.data_dir)
            services.append(service)
        body = {"etcd": ",".join(etcd.endpoints), "name": "pl"}
        for index, service in enumerate(services, start=1):
            with service.client() as api:
                if index != 2:
                    made = api.post("/switches", json={"name": "Lab", "type": "private"})
                    assert made.status_code == 201, made.text
                route = "/cluster" if index == 1 else "/cluster/join"
                joined = api.post(route, json={**body, "host": f"h{index}"})
                assert joined.status_code in (200, 201), joined.text
        disk = tmp_path_factory.mktemp("pl-disk") / "boot.img"
        disk.write_bytes(b"\0" * (1 << 20))
        with services[0].client() as api:
            assert api.post("/vms", json={"name": "src", "memory_mb": 256, "vhd": str(disk)}
                            ).status_code == 201
            job = wait_job(api, api.post("/templates", json={"name": "base", "vm": "src"}
                                         ).json())
            assert job["state"] == "completed", job
        yield services


def _plan(service: Service) -> dict[str, Any]:
    with service.client() as api:
        answer = api.post("/provision", json={"template": "base", "name": "web", "count": 2,
                                              "switch": "Lab", "dry_run": True})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _storage_free_mb(reasons: list[str]) -> int:
    found = [re.fullmatch(r"storage: \d+ MB needed, (\d+) MB free", r) for r in reasons]
    return next((int(m.group(1)) for m in found if m), 0)


def _published(plan: dict[str, Any]) -> bool:
    """Every host rated, each with the facts it published (storage, switches)."""
    rated = {r["host"]: r for r in plan["ratings"]}
    return set(rated) == {"h1", "h2", "h3"} and \
        rated["h2"]["reasons"] == ["missing virtual switch: Lab"] and \
        all(_storage_free_mb(rated[h]["reasons"]) > 0 for h in ("h1", "h3"))


def test_dry_run_rates_every_cluster_host_and_picks_the_free_one(
        hosts: list[Service]) -> None:
    h1 = hosts[0]
    deadline = time.monotonic() + 120
    plan = _plan(h1)
    while not _published(plan) and time.monotonic() < deadline:
        time.sleep(1)
        plan = _plan(h1)
    assert _published(plan), plan
    rated = {r["host"]: r for r in plan["ratings"]}
    assert plan["host"] == "h3" and plan["this_host"] == "h1", plan
    assert [r["host"] for r in plan["ratings"]] == ["h3", "h1", "h2"], plan
    assert rated["h2"]["stars"] == 0
    assert rated["h3"]["stars"] >= rated["h1"]["stars"] >= 1
    assert rated["h3"]["score"] > rated["h1"]["score"]
    h1_memory = next(r for r in rated["h1"]["reasons"] if r.startswith("memory: "))
    h3_memory = next(r for r in rated["h3"]["reasons"] if r.startswith("memory: "))
    free = {h: int(re.search(r"(\d+) MB free", m).group(1))  # type: ignore[union-attr]
            for h, m in (("h1", h1_memory), ("h3", h3_memory))}
    assert h1_memory.startswith("memory: 512 MB needed") and free["h1"] <= FREE_ON_H1_MB
    assert free["h3"] > free["h1"] + 4096, (h1_memory, h3_memory)
    for host in ("h1", "h3"):
        reasons = rated[host]["reasons"]
        assert any(r.startswith("cpu: ") for r in reasons), reasons
        assert "networks: Lab present" in reasons

    env = {**os.environ, "VIRIDIAN_URL": h1.url, "VIRIDIAN_TOKEN": h1.token}
    shown = subprocess.run(
        [sys.executable, "-m", "viridian.cli.main", "vm", "new", "web", "--template", "base",
         "--count", "2", "--switch", "Lab", "--dry-run"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["h3", "h1", "h2"], shown.stdout
    assert lines[2] == "h2: 0 stars — missing virtual switch: Lab", shown.stdout


def test_provisioning_picked_on_another_host_is_refused_and_makes_nothing(
        hosts: list[Service]) -> None:
    h1 = hosts[0]
    with h1.client() as api:
        before = sorted(vm["name"] for vm in api.get("/vms").json()["vms"])
        refused = api.post("/provision", json={"template": "base", "name": "web",
                                               "count": 2, "switch": "Lab"})
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["message"].startswith("placement picked cluster host 'h3' ("), error
        assert "not forwarded yet" in error["message"]
        assert "nothing was changed" in error["message"]
        assert error["details"]["host"] == "h3"
        assert sorted(vm["name"] for vm in api.get("/vms").json()["vms"]) == before
    assert not list((h1.data_dir / "provisioned").glob("*"))

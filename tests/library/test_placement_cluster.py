"""Placement over the hosts of a cluster (issue 18): three real services in one cluster
on a real 3-member etcd, with skewed load — h1 keeps almost all of the machine's memory
for itself (``host_reserve_mb`` in its host.json), h2 has no virtual switch ``Lab``, h3
has the switch and its memory free. ``vm new --dry-run`` on h1 (the CLI as a user runs
it) rates all three from the facts each host publishes in its host record, picks h3 and
says why. A real provisioning request on h1 (``vm new --template`` as the self-service
user ann, through h1's CLI) is forwarded to h3 over the cluster's peer route: the VM is
made, started and owned by ann on h3 (a guest-kit guest, 128 MiB, that reads its seed:
host name, "provisioned: ready"), nothing on h1; a user h3 does not know is refused 403
with h3's message. The template lives in a library folder both hosts register (shared
storage)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.etcd_members import etcd_cluster
from tests.service.harness import Service, running_service, wait_for, wait_job
from tests.service.test_switches_guest import guest_sh, remove_leftovers

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("placement_cluster")]

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
    from viridian.guestkit import build

    reserve = _memory_mb() - FREE_ON_H1_MB
    shared = tmp_path_factory.mktemp("pl-shared")
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
                library = api.post("/library", json={"name": "shared", "path": str(shared)})
                assert library.status_code == 201, library.text
                route = "/cluster" if index == 1 else "/cluster/join"
                joined = api.post(route, json={**body, "host": f"h{index}"})
                assert joined.status_code in (200, 201), joined.text
        disk = tmp_path_factory.mktemp("pl-disk") / "boot.img"
        shutil.copyfile(build().raw, disk)
        with services[0].client() as api:
            assert api.post("/vms", json={
                "name": "src", "memory_mb": 256, "vhd": str(disk),
                "settings": {"network_adapters": [{"kind": "synthetic"}]}}).status_code == 201
            job = wait_job(api, api.post("/templates", json={
                "name": "base", "vm": "src", "library": "shared"}).json(), timeout=300)
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
    assert h1_memory.startswith("memory: 256 MB needed") and free["h1"] <= FREE_ON_H1_MB
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
    assert [line.split(":")[0] for line in lines[:3]] == ["h3", "h1", "h2"], shown.stdout
    assert lines[2] == "h2: 0 stars — missing virtual switch: Lab", shown.stdout
    split = [line for line in lines[3:] if line.startswith("split: ")]
    assert split and split == lines[3:], shown.stdout  # each VM's host, with its stars
    assert sorted(", ".join(line.split(": ")[2] for line in split).split(", ")) == \
        ["web-1", "web-2"], shown.stdout
    assert lines[3].startswith("split: h3 — "), shown.stdout


def _user(service: Service, name: str, grant: bool) -> None:
    with service.client() as api:
        made = api.post("/access/users", json={"name": name, "password": f"{name}-pw-1"})
        assert made.status_code == 201, made.text
        if grant:
            granted = api.post("/access/grants", json={
                "role": "Self-service user", "to": name, "on": "template:base"})
            assert granted.status_code == 201, granted.text


def _login(service: Service, name: str) -> str:
    login = httpx.post(service.url + "/api/v1/access/login",
                       json={"user": name, "password": f"{name}-pw-1"})
    assert login.status_code == 200, login.text
    return str(login.json()["token"])


def _names(service: Service) -> list[str]:
    with service.client() as api:
        return sorted(vm["name"] for vm in api.get("/vms").json()["vms"])


def _far_plan(h1: Service, token: str) -> dict[str, Any]:
    with httpx.Client(base_url=h1.url + "/api/v1", timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as api:
        answer = api.post("/provision", json={"template": "base", "name": "far",
                                              "memory_mb": 128, "switch": "Lab",
                                              "dry_run": True})
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_provisioning_picked_on_another_host_is_forwarded_and_runs_there_for_the_caller(
        hosts: list[Service]) -> None:
    h1, h3 = hosts[0], hosts[2]
    for service in (h1, h3):
        _user(service, "ann", grant=True)
    _user(h1, "bob", grant=True)  # granted on h1, unknown to h3
    ann, bob = _login(h1, "ann"), _login(h1, "bob")
    deadline = time.monotonic() + 120
    while _far_plan(h1, ann)["host"] != "h3" and time.monotonic() < deadline:
        time.sleep(1)  # until every host published its facts
    assert _far_plan(h1, ann)["host"] == "h3"
    before = _names(h1)

    with httpx.Client(base_url=h1.url + "/api/v1", timeout=60,
                      headers={"Authorization": f"Bearer {bob}"}) as api:
        refused = api.post("/provision", json={"template": "base", "name": "bobs",
                                               "memory_mb": 128, "switch": "Lab"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["message"].startswith(
        "cluster host 'h3': user 'bob' has no account on this host"), refused.text
    assert "bobs" not in _names(h3)

    env = {**os.environ, "VIRIDIAN_URL": h1.url, "VIRIDIAN_TOKEN": ann}
    made = subprocess.run(
        [sys.executable, "-m", "viridian.cli.main", "vm", "new", "far", "--template", "base",
         "--memory", "128", "--switch", "Lab"],
        env=env, capture_output=True, text=True, timeout=900, check=False)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[0].startswith("h3: "), made.stdout
    assert "provisioned: far on host h3" in made.stdout, made.stdout
    assert _names(h1) == before  # nothing made on h1
    assert not list((h1.data_dir / "provisioned").glob("*/seed.iso"))
    with httpx.Client(base_url=h3.url + "/api/v1", timeout=60,
                      headers={"Authorization": f"Bearer {_login(h3, 'ann')}"}) as api:
        mine = api.get("/vms").json()["vms"]  # ann's own list on h3: the VM is hers
        assert [(vm["name"], vm["state"]) for vm in mine] == [("far", "Running")], mine
    with h3.client() as api:
        ready = wait_for("the guest's seed to run", lambda: api.get("/vms/far").json().get(
            "provisioning") == "provisioned: ready", timeout=600)
        assert ready
        code, out = guest_sh(api, "far", "hostname")
        assert (code, out.strip()) == (0, "far")

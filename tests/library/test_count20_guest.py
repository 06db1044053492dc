"""The issue's scale test of provisioning (issue 18): 20 VMs from one template with
``viridian vm new web --template T --count 20``, the CLI as a user runs it. Each guest
boots from a qcow2 overlay with its own NoCloud seed and must show, through the guest
agent, its own host name, the seed's authorized SSH key and its own static address on
eth0; each answers the host's ping on an internal switch (a real Linux bridge); every vm
object ends showing "provisioned: ready". The time from the request to the last "ready"
is printed (``-s``) and written to ``<tmp>/count20-seconds`` — never asserted.

Cheap on purpose: 128 MiB guests (the guest kit's SYSLINUX boot fails at 64 MiB, its
kernel runs out of memory unpacking the initramfs at 96 MiB), one service whose admission
allows 20 running virtual processors on 2 logical processors (``virtual_processor_ratio``
32 in its host.json; the default 8 would refuse the 17th VM), the 20 VMs turned off
together at the end."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.service.harness import Service, running_service, wait_job
from tests.service.test_switches_guest import guest_sh, host_ping, remove_leftovers

pytestmark = [pytest.mark.guest, pytest.mark.xdist_group("count20_guest"),
              pytest.mark.usefixtures("machine_to_itself")]  # 20 guests load both cores

COUNT = 20
MEMORY_MB = 128
SUBNET = "192.168.215.0/24"
FIRST = 101  # web-N has 192.168.215.(100 + N)
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC20 count20@host"
READY = "provisioned: ready"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, httpx.Client]]:
    from viridian.guestkit import build

    work = tmp_path_factory.mktemp("count20")
    boot = work / "boot.img"
    boot.write_bytes(build().raw.read_bytes())
    with running_service(host_settings={"virtual_processor_ratio": 32}) as service:
        try:
            with service.client() as api:
                assert api.post("/switches", json={"name": "Lab20", "type": "internal",
                                                   "subnet": SUBNET}).status_code == 201
                assert api.post("/vms", json={
                    "name": "src", "memory_mb": MEMORY_MB, "vhd": str(boot),
                    "settings": {"network_adapters": [{"kind": "synthetic"}]}}
                    ).status_code == 201
                job = wait_job(api, api.post("/templates", json={"name": "small",
                                                                  "vm": "src"}).json())
                assert job["state"] == "completed", job
                try:
                    yield service, api
                finally:
                    _turn_off_all(api)
                    for vm in api.get("/vms").json()["vms"]:
                        api.delete(f"/vms/{vm['name']}", params={"delete_files": "true"})
                    api.delete("/switches/Lab20")
        finally:
            service.stop()
            remove_leftovers(service.data_dir)


def _turn_off_all(api: httpx.Client) -> None:
    """Turn off every running VM at once (20 turn-off jobs queued, then waited for)."""
    jobs = [api.post(f"/vms/{vm['name']}/stop").json()
            for vm in api.get("/vms").json()["vms"] if vm["pid"]]
    for job in jobs:
        if "id" in job:
            wait_job(api, job, timeout=180)


def test_twenty_vms_from_one_template_with_count_20(
        lab: tuple[Service, httpx.Client], tmp_path_factory: pytest.TempPathFactory) -> None:
    service, api = lab
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    names = [f"web-{i}" for i in range(1, COUNT + 1)]
    start = time.monotonic()
    made = subprocess.run(
        [sys.executable, "-m", "viridian.cli.main", "vm", "new", "web", "--template",
         "small", "--count", str(COUNT), "--switch", "Lab20",
         "--ip", f"192.168.215.{FIRST}/24", "--gateway", "192.168.215.1",
         "--user", "admin", "--ssh-key", KEY],
        env=env, capture_output=True, text=True, timeout=900, check=False)
    assert made.returncode == 0, made.stderr
    assert "provisioned: " + ", ".join(names) in made.stdout, made.stdout
    shown: dict[str, object] = {}
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        vms = {vm["name"]: vm for vm in api.get("/vms").json()["vms"]}
        shown = {n: vms[n].get("provisioning") for n in names}
        if all(s == READY for s in shown.values()):
            break
        time.sleep(1)
    elapsed = time.monotonic() - start
    assert all(s == READY for s in shown.values()), shown
    print(f"\n{COUNT} VMs: request -> last '{READY}' in {elapsed:.1f} s")
    (tmp_path_factory.getbasetemp() / "count20-seconds").write_text(f"{elapsed:.1f}\n")

    addresses = {name: f"192.168.215.{FIRST - 1 + i}" for i, name in enumerate(names, 1)}
    with ThreadPoolExecutor(max_workers=5) as pool:
        answered = dict(zip(names, pool.map(host_ping, addresses.values()), strict=True))
    assert all(answered.values()), answered
    for name in names:
        code, out = guest_sh(api, name, "hostname; ip -4 -o addr show dev eth0; "
                                         "cat /home/admin/.ssh/authorized_keys", 60)
        assert code == 0, out
        lines = out.splitlines()
        assert lines[0] == name, out
        assert f"inet {addresses[name]}/24" in out, out
        assert KEY in lines, out
    assert Path(service.data_dir, "provisioned").is_dir()

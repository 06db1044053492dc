"""``cluster validate``, sites and shared storage for real: two viridian services (own data
folders; host b in a private mount namespace) in a cluster on the real 3-member etcd,
with sites and a shared folder, no guest booted.

All checks pass (etcd quorum, latency and three failure domains, clock skew, the shared
folder written, locked and seen from both hosts, CPU compatibility, memory N+1); then
b's view of the shared folder is replaced by an empty read-only file system (a mount in
its namespace only) → the shared-storage check fails naming b, the CLI exits 1. `cluster
show` lists sites of hosts and etcd members. An HA VM whose folder or disk is outside
the shared folder is refused naming the path; inside, HA and a preferred site are set.
Failback: an HA VM (no disks: QEMU runs without a guest) started on b goes back to its
first preferred host a by itself, never running on both (sampled every 50 ms).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result

from tests.cli.cli_harness import invoke
from tests.cluster.etcd_members import EtcdCluster
from tests.qemu_processes import end_qemu_under, qemu_under
from tests.service.harness import Service, act, state, wait_for

SITES = ("east", "west", "witness")


class MountNamespaceService(Service):
    """A ``viridian serve`` in a private mount namespace of its own: a mount made there
    (``nsenter``) changes only what this host sees of the shared folder."""

    def start(self, timeout: float = 120) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", sys.executable, "-m",
                 "viridian.cli.main", "serve", "--data-dir", str(self.data_dir),
                 "--listen", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=log, env=self.env, start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log.read_text()[-3000:]}")
            try:
                httpx.get(self.url + "/api/v1/host", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"service did not answer: {self.log.read_text()[-3000:]}")


def _end(service: Service) -> None:
    service.stop()
    with contextlib.suppress(OSError, ValueError):
        guard = int((service.data_dir / "cluster" / "guard.lock.pid").read_text())
        os.kill(guard, signal.SIGKILL)
    end_qemu_under(service.data_dir)


def _urls(etcd: EtcdCluster) -> list[str]:
    return list(getattr(etcd, "reachable", etcd.endpoints))


@pytest.fixture(scope="module")
def pair(etcd: EtcdCluster) -> Iterator[tuple[Service, Service, Path]]:
    root = Path(tempfile.mkdtemp(prefix="vir-val-", dir="/tmp"))
    shared = root / "shared"
    shared.mkdir()
    a, b = Service(root / "a"), MountNamespaceService(root / "b")
    urls = _urls(etcd)
    try:
        a.start()
        b.start()
        made = _cli(a, "cluster", "create", "--etcd", ",".join(urls), "--name", "val",
                    "--host", "a", "--site", "east", "--shared", str(shared),
                    *[arg for url, site in zip(urls, SITES, strict=True)
                      for arg in ("--etcd-site", f"{url}={site}")])
        assert made.exit_code == 0, made.output
        # b names neither the shared folder nor the etcd sites: it takes the cluster's
        joined = _cli(b, "cluster", "join", "--etcd", ",".join(urls), "--name", "val",
                      "--host", "b", "--site", "west", "--json")
        assert joined.exit_code == 0, joined.output
        assert f'"shared": [\n    "{shared}"\n  ]' in joined.output
        yield a, b, shared
    finally:
        for service in (a, b):
            _end(service)
        shutil.rmtree(root, ignore_errors=True)


def _cli(service: Service, *args: str) -> Result:
    return invoke(["--url", service.url, "--token", service.token, *args])


_wait = wait_for  # tests/service/harness.py


def _both_up(service: Service) -> bool:
    with service.client() as api:
        hosts = api.get("/cluster").json()["hosts"]
    return {(h["name"], h["state"], h["site"]) for h in hosts} == {("a", "Up", "east"),
                                                                    ("b", "Up", "west")}


def test_show_lists_sites_of_hosts_and_etcd_members(
        pair: tuple[Service, Service, Path], etcd: EtcdCluster) -> None:
    _, b, shared = pair
    _wait("a and b Up with their sites", lambda: _both_up(b))
    shown = _cli(b, "cluster", "show")
    assert shown.exit_code == 0, shown.output
    assert re.search(r"^a\s+Up\s+east\s", shown.output, re.M), shown.output
    assert re.search(r"^b\s+Up\s+west\s", shown.output, re.M), shown.output
    assert f"shared folders: {shared}" in shown.output
    for url, site in zip(_urls(etcd), SITES, strict=True):
        assert re.search(rf"^\s+{re.escape(url)}\s+site {site}\s+healthy", shown.output,
                         re.M), shown.output


def test_validate_passes_then_fails_naming_the_host_that_lost_the_shared_folder(
        pair: tuple[Service, Service, Path]) -> None:
    a, b, shared = pair
    _wait("a and b Up", lambda: _both_up(a))
    good = _cli(a, "cluster", "validate")
    print(f"\n{good.output}")
    assert good.exit_code == 0, good.output
    lines = good.output.splitlines()
    for name in ("etcd quorum", "etcd latency", "etcd failure domains", "clock skew",
                 "shared storage", "cpu compatibility", "memory n+1"):
        assert any(line.startswith(f"PASS  {name}: ") for line in lines), good.output
    assert "etcd quorum: 3/3 members answer" in good.output
    assert "members in 3 sites: east, west, witness" in good.output
    assert lines[-1] == "result: every check passed", good.output
    with b.client() as api:  # the API, from the other host
        report = api.post("/cluster/validate").json()
    assert report["status"] == "pass", report
    checks = {c["name"]: c for c in report["checks"]}
    assert set(checks["clock skew"]["facts"]) == {"a", "b"}
    assert checks["shared storage"]["facts"]["a"][str(shared)] == {
        "written_and_locked": True, "seen_here": True}
    assert not (shared / ".viridian-validate").exists()  # probe files removed

    assert b.process is not None  # b's view of the shared folder: empty and read-only
    subprocess.run(["nsenter", "-t", str(b.process.pid), "-m", "mount", "-t", "tmpfs",
                    "-o", "ro,size=1m", "viridian-broken", str(shared)], check=True)
    try:
        bad = _cli(a, "cluster", "validate")
        print(bad.output)
        assert bad.exit_code == 1, bad.output
        failed = [line for line in bad.output.splitlines() if line.startswith("FAIL")]
        assert len(failed) == 1 and failed[0].startswith("FAIL  shared storage: b: "), \
            bad.output
        assert "Read-only file system" in failed[0] and "a: " not in failed[0], bad.output
        assert bad.output.splitlines()[-1] == "result: FAILED"
    finally:
        subprocess.run(["nsenter", "-t", str(b.process.pid), "-m", "umount", str(shared)],
                       check=True)


def test_ha_needs_the_folder_and_disks_on_shared_storage(
        pair: tuple[Service, Service, Path]) -> None:
    a, _, shared = pair
    with a.client() as api:
        local = api.post("/vms", json={"name": "local", "memory_mb": 64}).json()
        refused = api.patch("/vms/local", json={"high_availability": {"ha": True}})
        assert refused.status_code == 400, refused.text
        message = refused.json()["error"]["message"]
        assert f"its folder {local['folder']} is not on the cluster's shared storage" \
            in message and str(shared) in message
        assert api.get("/vms/local").json()["settings"]["high_availability"]["ha"] is False
        # the folder moved onto the shared storage, one disk still outside it
        vm = api.post("/vms", json={"name": "shared1", "memory_mb": 64}).json()
        assert api.delete("/vms/shared1").status_code == 200
        folder = shared / "shared1"
        shutil.move(vm["folder"], folder)
        assert api.post("/vms/import", json={"folder": str(folder)}).status_code == 201
        outside = Path(local["folder"]) / "outside.qcow2"
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(outside), "16M"],
                       check=True)
        disk = {"scsi": [{"controller": 0, "disks": [{"location": 0,
                                                      "path": str(outside)}]}]}
        added = api.patch("/vms/shared1", json=disk)
        assert added.status_code == 200, added.text
    denied = _cli(a, "vm", "set", "shared1", "--ha", "on")
    assert denied.exit_code == 2 and f"scsi 0:0 disk {outside}" in denied.output, \
        denied.output
    inside = folder / "data.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(inside), "16M"],
                   check=True)
    with a.client() as api:
        moved = api.patch("/vms/shared1", json={"scsi": [{"controller": 0, "disks": [
            {"location": 0, "path": str(inside)}]}]})
        assert moved.status_code == 200, moved.text
    made = _cli(a, "vm", "set", "shared1", "--ha", "on", "--preferred-site", "west")
    assert made.exit_code == 0, made.output
    assert "high_availability.preferred_site=west" in made.output
    windowed = _cli(a, "vm", "set", "shared1", "--failback-window", "22-6")
    assert "high_availability.failback_window=22,6" in windowed.output, windowed.output
    cleared = _cli(a, "vm", "set", "shared1", "--failback-window", "now")
    assert "high_availability.failback_window=None" in cleared.output, cleared.output
    wrong = _cli(a, "vm", "set", "shared1", "--failback-window", "22-24")
    assert wrong.exit_code == 2 and "hours 0-23 that differ" in wrong.output, wrong.output
    with a.client() as api:
        policy = _wait("shared1 in the cluster", lambda: next(
            (v["policy"] for v in api.get("/cluster").json()["vms"]
             if v["name"] == "shared1"), None))
        assert policy["preferred_site"] == "west" and policy["ha"] is True
        assert api.patch("/vms/shared1", json={"high_availability": {"ha": False}}
                         ).status_code == 200


def _copies(service: Service, vm_id: str) -> int:
    return sum(1 for p in qemu_under(service.data_dir / "run" / vm_id)
               if "qemu-system" in p.cmdline.split(" ")[0])


def test_failback_returns_an_ha_vm_to_its_preferred_host_never_two_copies(
        pair: tuple[Service, Service, Path]) -> None:
    a, b, shared = pair
    with a.client() as api:
        vm = api.post("/vms", json={"name": "fb", "memory_mb": 64}).json()
        assert api.delete("/vms/fb").status_code == 200
        folder = shared / "fb"
        shutil.move(vm["folder"], folder)
        assert api.post("/vms/import", json={"folder": str(folder)}).status_code == 201
    made = _cli(a, "vm", "set", "fb", "--ha", "on", "--preferred-hosts", "a",
                "--failback", "on")
    assert made.exit_code == 0, made.output
    most, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            most[0] = max(most[0], _copies(a, vm["id"]) + _copies(b, vm["id"]))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with b.client() as api:
            assert api.post("/vms/import", json={"folder": str(folder)}).status_code == 201
            act(api, "fb", "start")  # b owns it now; a is its preferred host, and Up
        _wait("fb back on a", lambda: _copies(a, vm["id"]) and not _copies(b, vm["id"]))
        with a.client() as api:
            _wait("fb Running on a", lambda: state(api, "fb") == "Running")
            _wait("a owning fb", lambda: api.get("/vms/fb").json()["cluster"]["owner"] == "a")
        with b.client() as api:
            assert state(api, "fb") == "Off"
    finally:
        stop.set()
        sampler.join()
    assert most[0] == 1, "fb ran on a and b at once"
    with a.client() as api:
        act(api, "fb", "stop")
        assert api.patch("/vms/fb", json={"high_availability": {"ha": False}}
                         ).status_code == 200

"""The failover cluster for real: three viridian services on this machine (each its own
data folder, loopback ports — no network namespaces), a shared folder as cluster
storage, a real 3-member etcd and a real guest (guest kit).

A one-copy checker samples every QEMU process on the machine every 50 ms throughout and
fails the test if the HA VM ever has two. Faults: SIGKILL of the owner host (service,
fence guard and QEMUs: the whole host dies) → the VM runs on another host; the dead host
comes back and rejoins without starting its old VM (a start there is refused, naming the
owner). Then SIGSTOP of the new owner's service → its fence guard kills the VM before
another host starts it; SIGCONT → the host rejoins with a new lease, the VM stays where
it went. A partition (the owner's packets to etcd dropped by an nftables socket-group match:
each service runs with its own group id) → the owner fences itself, another host takes
over, the healed host rejoins without it. The etcd leader killed, then a member frozen:
hosts stay Up, one copy. Drain and resume through the CLI; leave; bad input. Every
service, guard and QEMU is ended on every path (and the nftables table removed).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result

from tests.cli.cli_harness import invoke
from tests.cluster.etcd_members import EtcdCluster
from tests.qemu_processes import _qemu_processes, end_qemu_under, kill, qemu_under
from tests.service.harness import Console, Service, act, wait_job

TTL = 6  # seconds: fence margin 2 s, so a frozen owner's VM is off 2 s before takeover


GID_BASE = 46200  # host hN's service runs with real/effective group GID_BASE + N


class GroupService(Service):
    """A ``viridian serve`` whose process (and every process it starts) has its own group
    id: the partition fault drops that group's packets to etcd (nftables ``meta skgid``)."""

    def __init__(self, data_dir: Path, gid: int) -> None:
        super().__init__(data_dir)
        self.gid = gid

    def start(self, timeout: float = 120) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["setpriv", f"--regid={self.gid}", "--keep-groups", sys.executable, "-m",
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


@contextlib.contextmanager
def partitioned(host: Host, etcd: EtcdCluster) -> Iterator[None]:
    """``host`` cannot reach any etcd member until exit: an nftables table of its own drops
    the packets its group id sends to their client ports (removed on every path)."""
    table = f"viridian_partition_{os.getpid()}_{host.name}"
    ports = ", ".join(str(m.client_port) for m in etcd.members)
    subprocess.run(["nft", "add", "table", "inet", table], check=True)
    try:
        subprocess.run(["nft", "add", "chain", "inet", table, "out",
                        "{ type filter hook output priority 0; }"], check=True)
        subprocess.run(["nft", "add", "rule", "inet", table, "out", "meta", "skgid",
                        str(host.gid), "ip", "daddr", "127.0.0.1", "tcp", "dport",
                        f"{{ {ports} }}", "drop"], check=True)
        yield
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)


@dataclass
class Host:
    name: str
    service: GroupService

    @property
    def gid(self) -> int:
        return self.service.gid

    @property
    def data(self) -> Path:
        return self.service.data_dir

    def api(self) -> httpx.Client:
        return self.service.client()

    def copies(self, vm_id: str) -> list[int]:
        """This host's QEMU processes of ``vm_id`` (a VM's runtime folder is on the host)."""
        folder = str(self.data / "run" / vm_id)
        return [p.pid for p, _ in _qemu_processes()
                if p.cmdline.split(" ")[0].rsplit("/", 1)[-1].startswith("qemu-system")
                and folder in p.cmdline]

    def guard_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.data / "cluster" / "guard.lock.pid").read_text())
        return None


@dataclass
class OneCopyChecker:
    """Samples all hosts' QEMU processes of one VM until stopped; remembers the worst."""

    hosts: list[Host]
    vm_id: str
    most: int = 0
    seen: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self._stop.is_set():
            where = tuple(h.name for h in self.hosts for _ in h.copies(self.vm_id))
            if len(where) > self.most:
                self.most = len(where)
            if not self.seen or self.seen[-1][1] != where:
                self.seen.append((time.monotonic(), where))
            time.sleep(0.05)

    def __enter__(self) -> OneCopyChecker:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self) -> None:
        assert self.most <= 1, f"two copies of the VM ran at once: {self.seen}"


def _end_host(host: Host) -> None:
    proc = host.service.process
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGCONT)
    host.service.stop()
    guard = host.guard_pid()
    if guard:
        with contextlib.suppress(OSError):
            os.kill(guard, signal.SIGKILL)
    end_qemu_under(host.data)


@pytest.fixture(scope="module")
def guest_iso() -> Path:
    from viridian.guestkit import build

    return build().iso


@pytest.fixture(scope="module")
def cluster(etcd: EtcdCluster) -> Iterator[tuple[list[Host], Path]]:
    root = Path(tempfile.mkdtemp(prefix="vir-cl-", dir="/tmp"))
    shared = root / "shared"
    shared.mkdir()
    hosts = [Host(f"h{i}", GroupService(root / f"h{i}", GID_BASE + i)) for i in (1, 2, 3)]
    try:
        for host in hosts:
            host.service.start()
        body = {"etcd": ",".join(etcd.endpoints), "name": "test", "lease_ttl": TTL}
        with hosts[0].api() as api:
            made = api.post("/cluster", json={**body, "host": "h1"})
            assert made.status_code == 201, made.text
            again = api.post("/cluster", json={**body, "host": "h1"})
            assert again.status_code == 409 and "already" in again.json()["error"]["message"]
        for host in hosts[1:]:
            with host.api() as api:
                joined = api.post("/cluster/join", json={**body, "host": host.name})
                assert joined.status_code == 200, joined.text
        yield hosts, shared
    finally:
        for host in hosts:
            _end_host(host)
        shutil.rmtree(root, ignore_errors=True)


def _cli(host: Host, *args: str) -> Result:
    return invoke(["--url", host.service.url, "--token", host.service.token, *args])


def _show(host: Host) -> dict[str, Any]:
    with host.api() as api:
        answer = api.get("/cluster")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _wait(what: str, condition: Any, timeout: float = 120.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _states(show: dict[str, Any]) -> dict[str, str]:
    return {h["name"]: h["state"] for h in show["hosts"]}


def _vm_on(hosts: list[Host], vm_id: str) -> Host | None:
    running = [h for h in hosts if h.copies(vm_id)]
    return running[0] if len(running) == 1 else None


def _ha_vm(host: Host, shared: Path, iso: Path) -> dict[str, Any]:
    """An HA VM whose folder is on the shared storage, registered on ``host``."""
    with host.api() as api:
        vm = api.post("/vms", json={"name": "ha1", "memory_mb": 160, "dvd": str(iso)}).json()
        assert api.delete("/vms/ha1").status_code == 200
        folder = shared / "ha1"
        shutil.move(vm["folder"], folder)
        answer = api.post("/vms/import", json={"folder": str(folder)})
        assert answer.status_code == 201, answer.text
    made = _cli(host, "vm", "set", "ha1", "--ha", "on", "--priority", "high")
    assert made.exit_code == 0, made.output
    assert "high_availability.ha=True" in made.output
    with host.api() as api:
        return dict(api.get("/vms/ha1").json())


def test_membership_shows_three_hosts_up_and_etcd_healthy(
        cluster: tuple[list[Host], Path]) -> None:
    hosts, _ = cluster
    show = _wait("three hosts Up", lambda: (s := _show(hosts[1]))
                 and _states(s) == {"h1": "Up", "h2": "Up", "h3": "Up"} and s)
    assert show["etcd"]["healthy"] == 3
    assert all(h["memory_free_mb"] > 0 for h in show["hosts"])
    with hosts[2].api() as api:
        bad = api.post("/cluster/hosts/nosuch/drain")
        assert bad.status_code == 404 and "h1, h2, h3" in bad.json()["error"]["message"]


def test_owner_killed_vm_runs_elsewhere_once_and_the_host_rejoins_without_it(
        cluster: tuple[list[Host], Path], guest_iso: Path) -> None:
    hosts, shared = cluster
    h1 = hosts[0]
    vm = _ha_vm(h1, shared, guest_iso)
    with h1.api() as api:
        act(api, "ha1", "start")
    _wait("h1 owning ha1", lambda: any(v["owner"] == "h1" and v["desired_running"]
                                       for v in _show(hosts[1])["vms"]))
    with OneCopyChecker(hosts, vm["id"]) as checker:
        # the whole of h1 dies: its service, its fence guard and its QEMUs
        guard = h1.guard_pid()
        h1.service.kill()
        if guard:
            os.kill(guard, signal.SIGKILL)
        kill(qemu_under(h1.data))
        died = time.monotonic()
        new = _wait("ha1 running on another host",
                    lambda: _vm_on(hosts, vm["id"]), timeout=TTL + 60)
        failover = time.monotonic() - died
        assert new is not h1
        print(f"\nfailover (TTL {TTL} s): QEMU running on {new.name} after {failover:.1f} s")
        Console(new.data, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY")
        show = _wait("h1 Down", lambda: (s := _show(new)) and _states(s)["h1"] == "Down" and s)
        assert [(v["name"], v["owner"]) for v in show["vms"]] == [("ha1", new.name)]
        with new.api() as api:
            assert api.get("/vms/ha1").json()["cluster"] == {"owner": new.name,
                                                             "desired_running": True}

        h1.service.start()  # h1 is back: it rejoins from its data folder
        _wait("h1 Up again", lambda: _states(_show(new))["h1"] == "Up")
        time.sleep(3 * 1.0)  # three agent ticks on h1: it must not start its old copy
        with h1.api() as api:
            assert api.get("/vms/ha1").json()["state"] == "Off"
            refused = api.post("/vms/ha1/start")
            if refused.status_code == 202:
                refused_job = wait_job(api, refused.json())
                assert refused_job["state"] == "failed", refused_job
                message = refused_job["error"]["message"]
            else:
                assert refused.status_code == 409, refused.text
                message = refused.json()["error"]["message"]
            assert f"host '{new.name}' owns it" in message
        assert not h1.copies(vm["id"])
    checker.check()


def test_frozen_owner_is_fenced_before_another_host_starts_the_vm(
        cluster: tuple[list[Host], Path]) -> None:
    hosts, _ = cluster
    vm_id = next(v["id"] for v in _show(hosts[0])["vms"] if v["name"] == "ha1")
    owner = _wait("ha1 running once", lambda: _vm_on(hosts, vm_id))
    assert owner.service.process is not None
    with OneCopyChecker(hosts, vm_id) as checker:
        os.kill(owner.service.process.pid, signal.SIGSTOP)
        try:
            _wait("the frozen host's guard to kill ha1", lambda: not owner.copies(vm_id),
                  timeout=TTL + 60)
            new = _wait("ha1 on another host", lambda: (h := _vm_on(hosts, vm_id))
                        and h is not owner and h, timeout=TTL + 60)
        finally:
            os.kill(owner.service.process.pid, signal.SIGCONT)
        _wait("the thawed host Up again", lambda: _states(_show(new))[owner.name] == "Up")
        time.sleep(3.0)
        assert not owner.copies(vm_id)
        assert [v["owner"] for v in _show(owner)["vms"]] == [new.name]
    checker.check()


def test_etcd_leader_killed_then_a_member_frozen_never_two_copies(
        cluster: tuple[list[Host], Path], etcd: EtcdCluster) -> None:
    hosts, _ = cluster
    vm_id = next(v["id"] for v in _show(hosts[0])["vms"] if v["name"] == "ha1")
    owner = _wait("ha1 running once", lambda: _vm_on(hosts, vm_id))
    with OneCopyChecker(hosts, vm_id) as checker:
        # HA off and on again while it runs: released, then owned again — never killed
        assert _cli(owner, "vm", "set", "ha1", "--ha", "off").exit_code == 0
        _wait("ha1 no longer clustered", lambda: not _show(owner)["vms"])
        assert _cli(owner, "vm", "set", "ha1", "--ha", "on").exit_code == 0
        _wait("ha1 owned again", lambda: [(v["owner"], v["desired_running"])
                                          for v in _show(owner)["vms"]] == [(owner.name, True)])
        time.sleep(3.0)
        assert _vm_on(hosts, vm_id) is owner
        leader = etcd.leader()
        etcd.kill(leader)
        try:
            time.sleep(TTL + 2)  # past a lease: keepalives must have gone to other members
            show = _wait("2 of 3 etcd members healthy, every host Up",
                         lambda: (s := _show(owner)) and s["etcd"]["healthy"] == 2
                         and set(_states(s).values()) == {"Up"} and s)
            assert [v["name"] for v in show["vms"]] == ["ha1"]
        finally:
            etcd.start(leader, state="existing")
        etcd.wait_healthy()
        follower = next(m for m in etcd.members if m is not etcd.leader())
        etcd.freeze(follower)
        try:
            time.sleep(TTL + 2)
            _wait("every host Up with a member frozen",
                  lambda: set(_states(_show(owner)).values()) == {"Up"})
        finally:
            etcd.thaw(follower)
        after = _wait("ha1 running after the etcd faults", lambda: _vm_on(hosts, vm_id))
    checker.check()
    print(f"\netcd faults: ha1 ran on {owner.name} before, on {after.name} after "
          f"(copies over time: {[w for _, w in checker.seen]})")


def test_partitioned_owner_fences_itself_and_rejoins_after_healing(
        cluster: tuple[list[Host], Path], etcd: EtcdCluster) -> None:
    hosts, _ = cluster
    vm_id = next(v["id"] for v in _show(hosts[0])["vms"] if v["name"] == "ha1")
    owner = _wait("ha1 running once", lambda: _vm_on(hosts, vm_id))
    other = next(h for h in hosts if h is not owner)
    with OneCopyChecker(hosts, vm_id) as checker:
        with partitioned(owner, etcd):
            _wait("the cut-off owner to turn ha1 off", lambda: not owner.copies(vm_id),
                  timeout=TTL + 60)
            new = _wait("ha1 on another host", lambda: (h := _vm_on(hosts, vm_id))
                        and h is not owner and h, timeout=TTL + 60)
            assert _states(_show(other))[owner.name] == "Down"
        _wait("the healed host Up again", lambda: _states(_show(new))[owner.name] == "Up")
        time.sleep(3.0)
        assert not owner.copies(vm_id) and _vm_on(hosts, vm_id) is new
    checker.check()


def test_drain_moves_the_vm_away_by_the_failover_path_and_resume_takes_vms_again(
        cluster: tuple[list[Host], Path]) -> None:
    hosts, _ = cluster
    vm_id = next(v["id"] for v in _show(hosts[0])["vms"] if v["name"] == "ha1")
    owner = _wait("ha1 running once", lambda: _vm_on(hosts, vm_id))
    other = next(h for h in hosts if h is not owner)
    with OneCopyChecker(hosts, vm_id) as checker:
        drained = _cli(other, "host", "drain", owner.name, "--json")
        assert drained.exit_code == 0, drained.output
        assert '"state": "Paused"' in drained.output
        new = _wait("ha1 moved off the drained host", lambda: (h := _vm_on(hosts, vm_id))
                    and h is not owner and h, timeout=120)
        shown = _cli(new, "cluster", "show")
        assert shown.exit_code == 0, shown.output
        assert re.search(rf"^{owner.name}\s+Paused", shown.output, re.M), shown.output
        assert re.search(rf"^ha1\s+{new.name}\s+running", shown.output, re.M), shown.output
        resumed = _cli(new, "host", "resume", owner.name)
        assert resumed.exit_code == 0 and f"{owner.name}: Up" in resumed.output
        _wait("the resumed host Up", lambda: _states(_show(new))[owner.name] == "Up")
        assert not owner.copies(vm_id)
    checker.check()
    with new.api() as api:  # stopped by the admin: released, wanted off, nowhere restarted
        act(api, "ha1", "stop")
    _wait("ha1 released and wanted off", lambda: [(v["owner"], v["desired_running"])
                                                  for v in _show(owner)["vms"]]
          == [(None, False)])
    time.sleep(3.0)
    assert not any(h.copies(vm_id) for h in hosts)
    missing = _cli(new, "host", "drain", "nosuch")
    assert missing.exit_code == 3 and "no host 'nosuch'" in missing.output


def test_leave_then_bad_input_is_refused_and_changes_nothing(
        cluster: tuple[list[Host], Path], etcd: EtcdCluster) -> None:
    hosts, _ = cluster
    h3 = hosts[2]
    with h3.api() as api:
        twice = api.post("/cluster/join", json={"etcd": etcd.endpoints[0], "name": "test",
                                                "host": "h3"})
        assert twice.status_code == 409 and "already host 'h3'" in twice.text
    left = _cli(h3, "cluster", "leave")
    assert left.exit_code == 0 and "host h3 left cluster test" in left.output
    assert not (h3.data / "cluster" / "config.json").exists()
    _wait("h3 gone from the cluster", lambda: "h3" not in _states(_show(hosts[0])))
    with h3.api() as api:
        assert api.get("/cluster").status_code == 404
        for body, setting in (({"etcd": "etcd:2379"}, "etcd"),
                              ({"etcd": etcd.endpoints[0], "lease_ttl": 2}, "lease_ttl"),
                              ({"etcd": etcd.endpoints[0], "host": "no spaces"}, "host")):
            bad = api.post("/cluster/join", json={"name": "test", **body})
            assert bad.status_code == 400, bad.text
            assert bad.json()["error"]["details"]["setting"] == setting
        absent = api.post("/cluster/join", json={"etcd": etcd.endpoints[0], "name": "other"})
        assert absent.status_code == 404 and "no cluster 'other'" in absent.text
    assert not (h3.data / "cluster" / "config.json").exists()
    wrong = _cli(hosts[0], "vm", "set", "ha1", "--priority", "urgent")
    assert wrong.exit_code == 2 and "'high', 'medium', 'low', 'none'" in wrong.output

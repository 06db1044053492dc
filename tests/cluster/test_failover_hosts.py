"""The failover cluster for real: three viridian hosts on this machine, each a service in
a network namespace of its own with its own data folder and etcd member (a real 3-member
etcd spread over the namespaces: ``tests/cluster/netns_hosts.py``), a shared folder as
cluster storage and a real guest (guest kit).

A one-copy checker (``tests/cluster/one_copy.py``) samples every host's QEMU processes of
the HA VM and the guest's own tick counter (each host's COM1 log) every 50 ms throughout
and fails the test if the VM ever has two QEMUs or its guest counts on two hosts at once
(a counter that starts again on the new host is the failover's reboot); each fault ends
only when the guest counts on where it went. The VM has a raw data disk on the shared
folder: the guest writes markers to it before the faults and reads them back after the
first failover; at the end, the VM Off, they are read from the file. Faults: the owner
host dies (SIGKILL of every process in its namespace: service, fence guard, QEMUs, its
etcd member) → the VM runs on another host; the dead host comes back (etcd member, then
service) and rejoins without starting its old VM (a start there is refused, naming the
owner). Then SIGSTOP of the new owner's service → its fence guard kills the VM before
another host starts it; SIGCONT → the host rejoins with a new lease, the VM stays where
it went. A partition (every packet on the owner's eth0 dropped in its namespace: its
service *and* its etcd member are cut off; the other two members keep quorum) → the owner
fences itself, another host takes over, the healed host rejoins without it. The etcd
leader killed, then a member frozen: every host renews its lease through the others, one
copy. Drain and resume through the CLI; leave; bad input. Waits are on conditions (an
agent tick is seen as a new keepalive in the host's fence feed), never fixed sleeps, with
deadlines for a loaded machine (2 cores, the other test worker booting 20 TCG guests: a
guest boot then takes 60-150 s). Where the guest must be up, the wait is for the VM on
exactly one host with its guest counting on there, whichever copy that is: a host that
missed its fence deadline under load (an etcd election stalls keepalives) turns the VM
off and starts it again on its still-valid lease — one copy, rebooted, its counter
starting over. Every process is ended and the namespaces removed on every path.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from tests.cli.cli_harness import invoke
from tests.cluster.agent_ticks import wait_agent_ticks
from tests.cluster.netns_hosts import Host, Lab, viridian_hosts
from tests.cluster.one_copy import CountingOn, OneCopyChecker, Place
from tests.service.harness import Console, act, refused_start, wait_for
from tests.service.test_storage_daemon_guest import DATA_SIZE, read_markers, write_markers

pytestmark = pytest.mark.usefixtures("machine_to_itself")  # leases: never beside 20 guests
TTL = 6  # seconds: fence margin 2 s, so a frozen owner's VM is off 2 s before takeover
WAIT_S = 300.0  # a cluster state (hosts, owners, QEMUs) on a loaded machine
GUEST_S = 600.0  # a guest booted and counting (boots take 60-150 s at load 20-30)
MARKERS = {0: "before-faults", 2048: "still-there"}  # sector → text the guest wrote


def _places(hosts: list[Host], vm_id: str) -> list[Place]:
    """Every host's QEMUs of the VM and the ticks its guest printed there."""
    return [Place(h.name, partial(h.copies, vm_id), partial(h.ticks, vm_id)) for h in hosts]


def _checker(hosts: list[Host], vm_id: str) -> OneCopyChecker:
    return OneCopyChecker(_places(hosts, vm_id))


@pytest.fixture(scope="module")
def guest_iso() -> Path:
    from viridian.guestkit import build

    return build().iso


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """The three hosts in one cluster ("test", its shared folder the lab's): h1 creates
    it, h2 and h3 join."""
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run `make deps` (scripts/install-deps.sh)")
    with viridian_hosts() as made:
        hosts, etcd = made.hosts, made.etcd
        body = {"etcd": ",".join(etcd.endpoints), "name": "test", "lease_ttl": TTL}
        with hosts[0].api() as api:
            created = api.post("/cluster", json={**body, "host": "h1",
                                                 "shared": [str(made.shared)]})
            assert created.status_code == 201, created.text
            again = api.post("/cluster", json={**body, "host": "h1"})
            assert again.status_code == 409 and "already" in again.json()["error"]["message"]
        for host in hosts[1:]:
            with host.api() as api:
                joined = api.post("/cluster/join", json={**body, "host": host.name})
                assert joined.status_code == 200, joined.text
        yield made


def _cli(host: Host, *args: str) -> Result:
    return invoke([*host.service.cli_args(), *args], env=host.service.cli_env())


def _show(host: Host) -> dict[str, Any]:
    with host.api() as api:
        answer = api.get("/cluster")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _wait(what: str, condition: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """``wait_for`` (tests/service/harness.py) with this module's loaded-machine deadline."""
    return wait_for(what, condition, timeout)


def _states(show: dict[str, Any]) -> dict[str, str]:
    return {h["name"]: h["state"] for h in show["hosts"]}


def _vm_on(hosts: list[Host], vm_id: str) -> Host | None:
    running = [h for h in hosts if h.copies(vm_id)]
    return running[0] if len(running) == 1 else None


def _ha_vm(host: Host, shared: Path, iso: Path) -> dict[str, Any]:
    """An HA VM whose folder and raw data disk are on the shared storage, registered on
    ``host``."""
    data = shared / "ha1-data.raw"
    subprocess.run(["truncate", "-s", str(DATA_SIZE), str(data)], check=True)
    with host.api() as api:
        vm = api.post("/vms", json={"name": "ha1", "memory_mb": 160, "dvd": str(iso),
                                    "vhd": str(data)}).json()
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


def _renewed(host: Host) -> float:
    """Send time (``CLOCK_MONOTONIC``) of the host's last keepalive etcd answered."""
    return host.takeover() - TTL


def _wait_ticks(hosts: list[Host], count: int = 3) -> None:
    """Until every host's agent has renewed its lease ``count`` more times (each renewal
    starts a tick: plan, claim, start; so ``count`` - 1 whole ticks have run)."""
    wait_agent_ticks({h.name: h.data for h in hosts}, count, timeout=WAIT_S)


def _guest_counting(hosts: list[Host], vm_id: str) -> Host:
    """Until the VM runs on exactly one host and its guest there printed two more ticks
    (booted and counting: the checker sees this copy count on); that host. A restart of
    the copy (a fence under load, started again on its lease) counts from its new run."""
    name = _wait("the guest counting on one host", CountingOn(_places(hosts, vm_id)),
                 timeout=GUEST_S)
    return next(h for h in hosts if h.name == name)


def _etcd_whole(host: Host) -> None:
    _wait("3 of 3 etcd members healthy", lambda: _show(host)["etcd"]["healthy"] == 3)


def _ha_vm_id(lab: Lab) -> str:
    return str(next(v["id"] for v in _show(lab.hosts[0])["vms"] if v["name"] == "ha1"))


def test_membership_shows_three_hosts_up_and_etcd_healthy(lab: Lab) -> None:
    hosts = lab.hosts
    show = _wait("three hosts Up, 3 of 3 etcd members healthy", lambda: (s := _show(hosts[1]))
                 and _states(s) == {"h1": "Up", "h2": "Up", "h3": "Up"}
                 and s["etcd"]["healthy"] == 3 and s)
    assert show["shared"] == [str(lab.shared)]
    assert sorted(e["endpoint"] for e in show["etcd"]["members"]) == \
        [f"http://10.78.0.{i}:2379" for i in (1, 2, 3)]
    assert all(h["memory_free_mb"] > 0 for h in show["hosts"])
    with hosts[2].api() as api:
        bad = api.post("/cluster/hosts/nosuch/drain")
        assert bad.status_code == 404 and "h1, h2, h3" in bad.json()["error"]["message"]


def test_owner_killed_vm_runs_elsewhere_once_and_the_host_rejoins_without_it(
        lab: Lab, guest_iso: Path) -> None:
    hosts = lab.hosts
    h1 = hosts[0]
    vm = _ha_vm(h1, lab.shared, guest_iso)
    with h1.api() as api:
        act(api, "ha1", "start")
    _wait("h1 owning ha1", lambda: any(v["owner"] == "h1" and v["desired_running"]
                                       for v in _show(hosts[1])["vms"]))
    Console(h1.data, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY", timeout=GUEST_S)
    with h1.api() as api:  # the guest writes to its disk (synced) before the faults
        write_markers(api, "ha1", MARKERS)
        assert read_markers(api, "ha1", list(MARKERS)) == MARKERS
    with _checker(hosts, vm["id"]) as checker:
        h1.die()  # every process in h1's namespace: service, guard, QEMUs, etcd member
        died = time.monotonic()
        new = _wait("ha1 running on another host", lambda: _vm_on(hosts, vm["id"]))
        failover = time.monotonic() - died
        assert new is not h1
        print(f"\nfailover (TTL {TTL} s, h1's etcd member died too): QEMU running on "
              f"{new.name} after {failover:.1f} s")
        show = _wait("h1 Down, its etcd member too", lambda: (s := _show(new))
                     and _states(s)["h1"] == "Down" and s["etcd"]["healthy"] == 2 and s)
        assert [(v["name"], v["owner"]) for v in show["vms"]] == [("ha1", new.name)]
        with new.api() as api:  # the vm object shows the agent's last view: a tick later
            shown = _wait("ha1's vm object naming its owner", lambda: (
                c := api.get("/vms/ha1").json()["cluster"])["owner"] == new.name and c)
            assert shown["desired_running"] is True, shown
            assert str(shown.get("placed")).startswith(f"{new.name}, "), shown  # why there

        lab.etcd.start(h1.member, state="existing")  # h1 is back: its etcd member and
        h1.service.launch()  # its service, which rejoins from its data folder
        Console(new.data, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY", timeout=GUEST_S)
        with new.api() as api:  # the restarted guest reads what it wrote on h1
            assert read_markers(api, "ha1", list(MARKERS)) == MARKERS
        assert _guest_counting(hosts, vm["id"]) is new
        h1.service.wait_ready()
        _wait("h1 Up again", lambda: _states(_show(new))["h1"] == "Up")
        _wait_ticks([h1])  # h1's agent planned with the cluster: it must not start its copy
        with h1.api() as api:
            assert api.get("/vms/ha1").json()["state"] == "Off"
            assert f"host '{new.name}' owns it" in refused_start(api, "ha1")
        assert not h1.copies(vm["id"])
        _etcd_whole(new)
    checker.check()


def test_frozen_owner_is_fenced_before_another_host_starts_the_vm(lab: Lab) -> None:
    hosts = lab.hosts
    vm_id = _ha_vm_id(lab)
    owner: Host = _wait("ha1 running once", lambda: _vm_on(hosts, vm_id))
    assert owner.service.process is not None
    with _checker(hosts, vm_id) as checker:
        os.kill(owner.service.process.pid, signal.SIGSTOP)
        try:
            _wait("the frozen host's guard to kill ha1", lambda: not owner.copies(vm_id))
            new = _wait("ha1 on another host", lambda: (h := _vm_on(hosts, vm_id))
                        and h is not owner and h)
        finally:
            os.kill(owner.service.process.pid, signal.SIGCONT)
        _wait("the thawed host Up again", lambda: _states(_show(new))[owner.name] == "Up")
        _wait_ticks([owner])
        assert not owner.copies(vm_id)
        assert [v["owner"] for v in _show(owner)["vms"]] == [new.name]
        assert _guest_counting(hosts, vm_id) is new
    checker.check()


def test_etcd_leader_killed_then_a_member_frozen_never_two_copies(lab: Lab) -> None:
    hosts, etcd = lab.hosts, lab.etcd
    vm_id = _ha_vm_id(lab)
    owner: Host = _wait("ha1 running once", lambda: _vm_on(hosts, vm_id))
    with _checker(hosts, vm_id) as checker:
        # HA off and on again while it runs: released, then owned again — never killed
        assert _cli(owner, "vm", "set", "ha1", "--ha", "off").exit_code == 0
        _wait("ha1 no longer clustered", lambda: not _show(owner)["vms"])
        assert _cli(owner, "vm", "set", "ha1", "--ha", "on").exit_code == 0
        _wait("ha1 owned again", lambda: [(v["owner"], v["desired_running"])
                                          for v in _show(owner)["vms"]] == [(owner.name, True)])
        _wait_ticks(hosts)
        assert _vm_on(hosts, vm_id) is owner
        leader = etcd.wait_leader()
        etcd.kill(leader)
        killed = time.monotonic()
        try:
            # a keepalive sent past one client time-out (1 s) after the kill was answered
            # on every host: each rotated away from the dead member if it used it
            _wait("every host renewing through the other members",
                  lambda: all(_renewed(h) > killed + 1.5 for h in hosts))
            show = _wait("2 of 3 etcd members healthy, every host Up",
                         lambda: (s := _show(owner)) and s["etcd"]["healthy"] == 2
                         and set(_states(s).values()) == {"Up"} and s)
            assert [v["name"] for v in show["vms"]] == ["ha1"]
        finally:
            etcd.start(leader, state="existing")
        etcd.wait_healthy(timeout=WAIT_S)
        now_leading = etcd.wait_leader()
        follower = next(m for m in etcd.members if m is not now_leading)
        etcd.freeze(follower)
        frozen = time.monotonic()
        try:
            _wait("every host renewing with a member frozen",
                  lambda: all(_renewed(h) > frozen + 1.5 for h in hosts))
            _wait("every host Up with a member frozen",
                  lambda: set(_states(_show(owner)).values()) == {"Up"})
        finally:
            etcd.thaw(follower)
        after = _guest_counting(hosts, vm_id)  # on the owner, unless it was fenced meanwhile
        _etcd_whole(after)
    checker.check()
    print(f"\netcd faults: ha1 ran on {owner.name} before, on {after.name} after "
          f"(copies over time: {[w for _, w in checker.seen]})")


def test_partitioned_owner_fences_itself_and_rejoins_after_healing(lab: Lab) -> None:
    hosts = lab.hosts
    vm_id = _ha_vm_id(lab)
    owner: Host = _wait("ha1 running once", lambda: _vm_on(hosts, vm_id))
    other = next(h for h in hosts if h is not owner)
    with _checker(hosts, vm_id) as checker:
        # the owner and its etcd member are cut off; the other two members keep quorum
        with owner.net.partitioned():
            cut = time.monotonic()
            _wait("the cut-off owner to turn ha1 off", lambda: not owner.copies(vm_id))
            new = _wait("ha1 on another host", lambda: (h := _vm_on(hosts, vm_id))
                        and h is not owner and h)
            print(f"\npartition: ha1 running on {new.name} "
                  f"{time.monotonic() - cut:.1f} s after {owner.name} was cut off")
            # the cut-off host is Down (its lease expired before the takeover) and its
            # member unreachable (a health probe may also time out on a loaded machine)
            _wait(f"{owner.name} Down and 2 of 3 etcd members healthy",
                  lambda: (s := _show(other)) and _states(s)[owner.name] == "Down"
                  and s["etcd"]["healthy"] == 2)
        _wait("the healed host Up again", lambda: _states(_show(new))[owner.name] == "Up")
        _etcd_whole(new)
        _wait_ticks([owner])
        assert not owner.copies(vm_id)
        assert _guest_counting(hosts, vm_id) is new
    checker.check()


def test_drain_moves_the_vm_away_by_the_failover_path_and_resume_takes_vms_again(
        lab: Lab) -> None:
    hosts = lab.hosts
    vm_id = _ha_vm_id(lab)
    owner: Host = _wait("ha1 running once", lambda: _vm_on(hosts, vm_id))
    other = next(h for h in hosts if h is not owner)
    with _checker(hosts, vm_id) as checker:
        drained = _cli(other, "host", "drain", owner.name, "--json")
        assert drained.exit_code == 0, drained.output
        assert '"state": "Paused"' in drained.output
        new = _wait("ha1 moved off the drained host", lambda: (h := _vm_on(hosts, vm_id))
                    and h is not owner and h)
        shown = _cli(new, "cluster", "show")
        assert shown.exit_code == 0, shown.output
        assert re.search(rf"^{owner.name}\s+Paused", shown.output, re.M), shown.output
        assert re.search(rf"^ha1\s+{new.name}\s+running", shown.output, re.M), shown.output
        resumed = _cli(new, "host", "resume", owner.name)
        assert resumed.exit_code == 0 and f"{owner.name}: Up" in resumed.output
        _wait("the resumed host Up", lambda: _states(_show(new))[owner.name] == "Up")
        assert not owner.copies(vm_id)
        assert _guest_counting(hosts, vm_id) is new
    checker.check()
    with new.api() as api:  # stopped by the admin: released, wanted off, nowhere restarted
        act(api, "ha1", "stop")
    _wait("ha1 released and wanted off", lambda: [(v["owner"], v["desired_running"])
                                                  for v in _show(owner)["vms"]]
          == [(None, False)])
    _wait_ticks(hosts)
    assert not any(h.copies(vm_id) for h in hosts)
    with (lab.shared / "ha1-data.raw").open("rb") as disk:  # after every fault, VM Off
        for sector, text in MARKERS.items():
            disk.seek(sector * 512)
            assert disk.read(16).decode().strip("\0 ") == text
    missing = _cli(new, "host", "drain", "nosuch")
    assert missing.exit_code == 3 and "no host 'nosuch'" in missing.output


def test_a_checkpoint_of_the_ha_vm_is_refused(lab: Lab) -> None:
    """Checkpoints live in one host's catalog: a failover would restart the VM elsewhere
    without them (its disks under their overlays, later writes missing), so a checkpoint
    of an HA VM is refused and nothing changes (the other direction, HA on for a VM with
    checkpoints, is tested without a cluster in tests/service/test_checkpoint_limits.py)."""
    with lab.hosts[0].api() as api:
        refused = api.post("/vms/ha1/checkpoints", json={"name": "before-failover"})
        assert refused.status_code == 409, refused.text
        message = refused.json()["error"]["message"]
        assert "cannot have checkpoints" in message and "--ha off" in message
        assert api.get("/vms/ha1/checkpoints").json()["checkpoints"] == []


def test_leave_then_bad_input_is_refused_and_changes_nothing(lab: Lab) -> None:
    hosts, etcd = lab.hosts, lab.etcd
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

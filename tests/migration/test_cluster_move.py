"""Moves of an HA VM inside a failover cluster, for real (issue 15 parts 1 and 4;
docs/architecture.md, "Failover cluster: moves of HA VMs" and "drain"): two viridian
services (own data folders, loopback ports), a shared folder, a real 3-member etcd and one
guest-kit guest, shared by the module.

- ``vm move ha1 --to h2 --live`` names the target by its cluster host name and gives no
  token: the source reaches the URL h2 publishes, with the cluster's peer token; the
  guest's tick counter goes on there (no reboot) and the owner key moved to h2's lease;
- ``host drain h2`` moves it back live as a drain job (Hyper-V's "pause node"): it runs on
  h1, owned by h1, and h2 is Paused; ``host resume`` brings h2 back Up;
- a quick move keeps the VM owned and wanted running through the save (the cluster does
  not release it when its QEMU ends) and it goes on at the target;
- never two copies: a checker samples both hosts' QEMUs of the VM every 50 ms throughout;
- waits are on conditions (jobs, ticks of the guest and of the host agents), with
  deadlines for a loaded machine (2 cores shared with another test worker's guests);
- refusals: an unknown host name is a 400 naming what ``to`` may be; the peer routes
  refuse the admin token and no token (401); the peer token is 0600 in
  ``<data>/cluster/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.cli_harness import invoke
from tests.cluster.agent_ticks import wait_agent_ticks
from tests.cluster.etcd_members import etcd_cluster
from tests.cluster.one_copy import OneCopyChecker, Place
from tests.qemu_processes import qemu_under
from tests.service.harness import (
    Console,
    Service,
    act,
    refused_start,
    running_service,
    wait_for,
    wait_job,
)
from viridian.disks import new_dynamic

pytestmark = pytest.mark.guest

VM = "ha1"
TTL = 6
WAIT_S = 300.0  # a cluster state or a job on a loaded machine
GUEST_S = 600.0  # the guest's boot or a move's restore at load 20-30


@dataclass
class Pair:
    h1: Service
    h2: Service
    vm_id: str

    def service(self, name: str) -> Service:
        return self.h1 if name == "h1" else self.h2


def _copies(service: Service, vm_id: str) -> list[object]:
    return [p for p in qemu_under(service.data_dir) if f"/run/{vm_id}/" in p.cmdline]


def _ticks(service: Service, vm_id: str) -> list[int]:
    return [t for t, _ in Console(service.data_dir, vm_id).ticks()]


def _one_copy(pair: Pair) -> OneCopyChecker:
    """Both hosts' QEMUs of the VM (a live move has two for a while, the target's paused
    until the commit) and the ticks the guest printed on each (``tests/cluster/one_copy.py``):
    one copy is checked where the guest shows it, its counter never counting on two hosts
    at once nor printing a tick number on both (``check(continuous=True)``)."""
    return OneCopyChecker([Place(s.data_dir.name, partial(_copies, s, pair.vm_id),
                                 partial(_ticks, s, pair.vm_id)) for s in (pair.h1, pair.h2)],
                          most_copies=2)


def _wait(what: str, condition: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    """``wait_for`` (tests/service/harness.py) with this module's loaded-machine deadline."""
    return wait_for(what, condition, timeout)


def _show(service: Service) -> dict[str, Any]:
    with service.client() as api:
        answer = api.get("/cluster")
        assert answer.status_code == 200, answer.text
        return dict(answer.json())


def _owner(service: Service) -> tuple[str | None, bool]:
    vm = next(v for v in _show(service)["vms"] if v["name"] == VM)
    return vm["owner"], vm["desired_running"]


def _cli(service: Service, *args: str) -> Any:
    return invoke(["--url", service.url, "--token", service.token, *args])


def _end_guard(service: Service) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int((service.data_dir / "cluster" / "guard.lock.pid").read_text()),
                signal.SIGKILL)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, guest_iso: Path) -> Iterator[Pair]:
    """h1 and h2 in cluster ``mv`` (real etcd); HA VM ``ha1`` (folder on the shared
    storage) Running on h1."""
    shared = tmp_path_factory.mktemp("cl-shared")
    services: list[Service] = []
    with contextlib.ExitStack() as stack:
        etcd = stack.enter_context(etcd_cluster(tmp_path_factory.mktemp("cl-etcd")))
        # LIFO: each fence guard is ended after the services stopped, before etcd
        stack.callback(lambda: [_end_guard(s) for s in services])
        h1 = stack.enter_context(running_service())
        services.append(h1)
        h2 = stack.enter_context(running_service())
        services.append(h2)
        body = {"etcd": ",".join(etcd.endpoints), "name": "mv", "lease_ttl": TTL}
        with h1.client() as api:
            made = api.post("/cluster", json={**body, "host": "h1"})
            assert made.status_code == 201, made.text
            vm = api.post("/vms", json={"name": VM, "memory_mb": 192,
                                        "dvd": str(guest_iso)}).json()
            scsi = api.post(f"/vms/{VM}/scsi", json={"controller": None})  # for data disks
            assert scsi.status_code == 200, scsi.text
            assert api.delete(f"/vms/{VM}").status_code == 200
            shutil.move(vm["folder"], shared / VM)
            imported = api.post("/vms/import", json={"folder": str(shared / VM)})
            assert imported.status_code == 201, imported.text
        ha = _cli(h1, "vm", "set", VM, "--ha", "on", "--priority", "high")
        assert ha.exit_code == 0, ha.output
        with h2.client() as api:
            joined = api.post("/cluster/join", json={**body, "host": "h2"})
            assert joined.status_code == 200, joined.text
        _wait("both hosts Up with their URLs", lambda: {
            (h["name"], h["state"], h["api"]) for h in _show(h1)["hosts"]}
            == {("h1", "Up", h1.url), ("h2", "Up", h2.url)})
        with h1.client() as api:
            act(api, VM, "start")
        Console(h1.data_dir, vm["id"]).wait_for(b"VIRIDIAN-GUEST READY", timeout=GUEST_S)
        yield Pair(h1, h2, vm["id"])


def _continued(pair: Pair, target: Service, last_tick: int) -> None:
    """The guest on ``target`` goes on counting from where it was (no reboot)."""
    console = Console(target.data_dir, pair.vm_id)
    try:
        first = console.wait_ticks(1, timeout=GUEST_S)[0][0]
    except AssertionError as stalled:  # say which: no console file, or a guest not running
        with target.client() as api:
            shown = api.get(f"/vms/{VM}").json()
            # the guest agent talks over virtio-serial, not COM1: an answer means the guest
            # runs and only its serial output is stuck (a UART interrupt lost in the move?)
            agent = api.post(f"/vms/{VM}/integration/exec", timeout=60,
                             json={"argv": ["true"], "timeout_s": 20})
        raise AssertionError(
            f"{stalled}; console file exists: {console.path.exists()}, its end: "
            f"{console.read()[-300:]!r}; the VM there: {shown.get('state')}, pid "
            f"{shown.get('pid')}; QEMU processes: {qemu_under(target.data_dir)}; the guest "
            f"agent answers: {agent.status_code} {agent.text[:300]}") from stalled
    assert first > last_tick, "the tick counter restarted: the guest rebooted"
    assert b"VIRIDIAN-GUEST BOOT" not in console.read()


def _last_tick(pair: Pair, source: Service) -> int:
    return Console(source.data_dir, pair.vm_id).wait_ticks(1, timeout=GUEST_S)[-1][0]


def test_live_move_by_host_name_hands_the_owner_key_over(pair: Pair) -> None:
    assert _owner(pair.h1) == ("h1", True)
    token = pair.h1.data_dir / "cluster" / "peer.token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert token.read_text() == (pair.h2.data_dir / "cluster" / "peer.token").read_text()
    last = _last_tick(pair, pair.h1)
    with _one_copy(pair) as checker:
        moved = _cli(pair.h1, "vm", "move", VM, "--to", "h2", "--live")
        assert moved.exit_code == 0, moved.output
        assert f"moved {VM} to {pair.h2.url} (live)" in moved.output
        _continued(pair, pair.h2, last)
    checker.check(continuous=True)
    assert _owner(pair.h2) == ("h2", True)
    with pair.h1.client() as api:
        assert [v["name"] for v in api.get("/vms").json()["vms"]] == []
    with pair.h2.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"


def test_drain_moves_the_vm_live_and_resume_brings_the_host_back(pair: Pair) -> None:
    last = _last_tick(pair, pair.h2)
    with _one_copy(pair) as checker:
        drained = _cli(pair.h2, "host", "drain", "h2")
        assert drained.exit_code == 0, drained.output
        assert "h2: Paused" in drained.output
        assert f"moved {VM} to h1 (live)" in drained.output
        _continued(pair, pair.h1, last)
    checker.check(continuous=True)
    assert _owner(pair.h1) == ("h1", True)
    assert qemu_under(pair.h2.data_dir) == []
    states = {h["name"]: h["state"] for h in _show(pair.h1)["hosts"]}
    assert states == {"h1": "Up", "h2": "Paused"}
    resumed = _cli(pair.h1, "host", "resume", "h2")
    assert resumed.exit_code == 0 and "h2: Up" in resumed.output
    _wait("h2 Up again", lambda: {h["name"]: h["state"] for h in _show(pair.h1)["hosts"]}
          == {"h1": "Up", "h2": "Up"})


def test_quick_move_keeps_the_vm_owned_and_wanted_through_the_save(pair: Pair) -> None:
    last = _last_tick(pair, pair.h1)
    with _one_copy(pair) as checker, pair.h1.client() as api:
        job = api.post(f"/vms/{VM}/move", json={"to": "h2", "mode": "quick"})
        assert job.status_code == 202, job.text
        done = wait_job(api, job.json(), timeout=GUEST_S)
        assert done["state"] == "completed", done
        _continued(pair, pair.h2, last)
    checker.check(continuous=True)
    assert _owner(pair.h2) == ("h2", True)
    # two whole ticks of both agents after the move: nobody released or restarted it
    wait_agent_ticks({"h1": pair.h1.data_dir, "h2": pair.h2.data_dir}, timeout=WAIT_S)
    assert _owner(pair.h1) == ("h2", True)
    assert qemu_under(pair.h1.data_dir) == []


def test_bad_targets_and_credentials_are_refused(pair: Pair) -> None:
    with pair.h2.client() as api:
        bad = api.post(f"/vms/{VM}/move", json={"to": "nosuch", "mode": "live"})
        assert bad.status_code == 400, bad.text
        assert "name of an Up host of this host's cluster" in bad.json()["error"]["message"]
    peer = f"{pair.h1.url}/api/v1/cluster/peer/migrations/incoming"
    for headers in ({}, {"Authorization": f"Bearer {pair.h1.token}"}):
        refused = httpx.post(peer, json={}, headers=headers)
        assert refused.status_code == 401, refused.text
    with pair.h2.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"


def test_a_move_replaces_the_targets_older_registration_of_the_vm(pair: Pair) -> None:
    """h1 still has the VM registered, Off (as after a failover away from it, or its agent
    registering it for a start h2 won): a move to h1 replaces that copy, and its older
    record never overwrites the owner's vm.json on the shared storage."""
    with pair.h2.client() as api:
        shown = api.get(f"/vms/{VM}").json()
        assert shown["state"] == "Running", shown
        folder = Path(shown["folder"])
        assert api.patch(f"/vms/{VM}", json={"notes": "changed on h2"}).status_code == 200
    with pair.h1.client() as api:
        older = api.post("/vms/import", json={"folder": str(folder)})
        assert older.status_code == 201, older.text
        assert api.get(f"/vms/{VM}").json()["state"] == "Off"
    with pair.h2.client() as api:  # the owner's newer settings, after h1's registration
        assert api.patch(f"/vms/{VM}", json={"notes": "newer on h2"}).status_code == 200
    definition = (folder / "vm.json").read_text()
    assert "newer on h2" in definition
    last = _last_tick(pair, pair.h2)
    with _one_copy(pair) as checker:
        moved = _cli(pair.h2, "vm", "move", VM, "--to", "h1", "--live")
        assert moved.exit_code == 0, moved.output
        _continued(pair, pair.h1, last)
    checker.check(continuous=True)
    assert _owner(pair.h1) == ("h1", True)
    with pair.h1.client() as api:
        vms = api.get("/vms").json()["vms"]
        assert [(v["name"], v["state"]) for v in vms] == [(VM, "Running")]
        assert vms[0]["settings"]["notes"] == "newer on h2"
    with pair.h2.client() as api:
        assert [v["name"] for v in api.get("/vms").json()["vms"]] == []
    assert "newer on h2" in (folder / "vm.json").read_text()


def test_a_refused_move_leaves_the_targets_older_registration_registered(pair: Pair) -> None:
    """h2 has an older Off copy of the VM (which runs on h1); a move that h2 refuses after
    finding that copy (here: admission, as a VM on h2 reserves every processor) changes
    nothing on h2: the copy stays registered, as before the request. A settings change of
    that copy right after the move that put the VM on h1 — h2's last cluster view may still
    name h2 the owner — is refused naming h1."""
    with pair.h1.client() as api:
        shown = api.get(f"/vms/{VM}").json()
        assert shown["state"] == "Running", shown
        folder = Path(shown["folder"])
    with pair.h2.client() as api:
        older = api.post("/vms/import", json={"folder": str(folder)})
        assert older.status_code == 201, older.text
        # a moment after the move h2's agent may still see itself as the owner: the
        # refusal reads etcd, so this copy's settings never overwrite h1's vm.json
        stale = api.patch(f"/vms/{VM}", json={"notes": "stale edit on h2"})
        assert stale.status_code == 409, stale.text
        assert "host 'h1' owns it" in stale.json()["error"]["message"]
        assert "stale edit" not in (folder / "vm.json").read_text()
        hog = api.post("/vms", json={"name": "hog", "memory_mb": 64, "processors": 2,
                                     "settings": {"processor": {"reserve_pct": 100}}})
        assert hog.status_code == 201, hog.text
        try:
            act(api, "hog", "start")
            with pair.h1.client() as source:
                reserve = source.patch(f"/vms/{VM}", json={"processor": {"reserve_pct": 10}})
                assert reserve.status_code == 200, reserve.text
            moved = _cli(pair.h1, "vm", "move", VM, "--to", "h2", "--live")
            assert moved.exit_code != 0, moved.output
            assert "processor reserve" in moved.output, moved.output
            assert "nothing was changed" in moved.output, moved.output
            vms = {v["name"]: v["state"] for v in api.get("/vms").json()["vms"]}
            assert vms == {VM: "Off", "hog": "Running"}
        finally:
            act(api, "hog", "stop")
            assert api.delete("/vms/hog").status_code == 200
            with pair.h1.client() as source:
                source.patch(f"/vms/{VM}", json={"processor": {"reserve_pct": 0}})
    assert _owner(pair.h1) == ("h1", True)
    with pair.h1.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    assert qemu_under(pair.h2.data_dir) == []


def test_a_copy_another_host_owns_is_not_changed_nor_its_files_deleted_here(
    pair: Pair,
) -> None:
    """h2's Off copy of the VM that runs on h1 (left by the test above): a settings change
    there would overwrite the owner's vm.json and cluster record with the copy's older
    settings, and removing it with its files would delete the running VM's folder on the
    shared storage — both refused, naming the owner; its registration alone may go, and
    the folder stays whole."""
    with pair.h1.client() as api:
        folder = Path(api.get(f"/vms/{VM}").json()["folder"])
    before = sorted(p.name for p in folder.iterdir())
    definition = (folder / "vm.json").read_text()
    with pair.h2.client() as api:
        if api.get(f"/vms/{VM}").status_code == 404:  # run alone: make the copy
            assert api.post("/vms/import", json={"folder": str(folder)}).status_code == 201
        changed = api.patch(f"/vms/{VM}", json={"notes": "stale edit on h2"})
        assert changed.status_code == 409, changed.text
        assert "host 'h1' owns it" in changed.json()["error"]["message"]
        assert (folder / "vm.json").read_text() == definition
        refused = api.delete(f"/vms/{VM}", params={"delete_files": "true"})
        assert refused.status_code == 409, refused.text
        message = refused.json()["error"]["message"]
        assert "host 'h1' owns it" in message and "without --delete-files" in message
        assert "nothing was changed" in message
        assert api.get(f"/vms/{VM}").json()["state"] == "Off"
        removed = api.delete(f"/vms/{VM}")
        assert removed.status_code == 200, removed.text
        assert api.get(f"/vms/{VM}").status_code == 404
    assert sorted(p.name for p in folder.iterdir()) == before
    assert _owner(pair.h1) == ("h1", True)
    with pair.h1.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"


def test_the_disks_of_a_copy_another_host_owns_are_not_touched_here(
    pair: Pair, tmp_path: Path,
) -> None:
    """The VM gets data disks on the shared storage and h2 a copy, with a backup point
    taken while the VM was Off everywhere. Once h1 runs the VM again, whatever would open
    or rewrite its disks from h2 — a backup (its storage daemon opens them read-write), a
    disk edit, a storage move, an in-place restore of that point — is refused naming h1,
    and the disks stay as they were."""
    with pair.h1.client() as api:
        folder = Path(api.get(f"/vms/{VM}").json()["folder"])
        vhd, raw = folder / "data.vhd", folder / "data.raw"
        new_dynamic(vhd, 8 * 2**20)
        raw.write_bytes(b"\1" * 2**20)
        for path in (vhd, raw):
            added = api.post(f"/vms/{VM}/disks", json={"controller": "scsi", "location": "0",
                                                      "path": str(path)})
            assert added.status_code == 200, added.text
        act(api, VM, "stop")
    _wait("nobody owning it", lambda: _owner(pair.h2) == (None, False))
    wait_agent_ticks({"h2": pair.h2.data_dir}, count=2, timeout=WAIT_S)  # h2's agent saw it
    with pair.h2.client() as api:  # Off everywhere, nobody owns it: h2 may back it up
        assert api.post("/vms/import", json={"folder": str(folder)}).status_code == 201
        taken = api.post("/backups", json={"vm": VM, "target": str(tmp_path)})
        assert taken.status_code == 202, taken.text
        point = wait_job(api, taken.json(), timeout=WAIT_S)
        assert point["state"] == "completed", point.get("error")
        assert api.delete(f"/vms/{VM}").status_code == 200  # ends its storage daemon
        assert api.post("/vms/import", json={"folder": str(folder)}).status_code == 201
    with pair.h1.client() as api:
        act(api, VM, "start")
    _wait("h1 owning the VM again", lambda: _owner(pair.h1) == ("h1", True))
    wait_agent_ticks({"h2": pair.h2.data_dir}, count=2, timeout=WAIT_S)  # h2's agent saw it
    contents = {path: path.read_bytes() for path in (vhd, raw)}
    with pair.h2.client() as api:
        try:
            refusals = [
                api.post("/backups", json={"vm": VM, "target": str(tmp_path)}),
                api.post("/disks/expand", json={"path": str(vhd), "size": "16M"}),
                api.post(f"/vms/{VM}/move-storage", json={"folder": str(tmp_path)}),
                api.post(f"/backups/{point['result']['id']}/restore", json={}),
            ]
            for refused in refusals:
                assert refused.status_code == 409, refused.text
                message = refused.json()["error"]["message"]
                assert "host 'h1' owns it" in message and "nothing was changed" in message
        finally:
            assert api.delete(f"/vms/{VM}").status_code == 200
    assert {path: path.read_bytes() for path in (vhd, raw)} == contents
    with pair.h1.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"


def _daemons(service: Service, vm_id: str) -> list[object]:
    """The VM's storage daemon on ``service``'s host (its folder: ``run/<id>-storage``)."""
    return [p for p in qemu_under(service.data_dir)
            if f"/run/{vm_id}" in p.cmdline and "qemu-storage-daemon" in p.cmdline]


def test_a_vm_stopped_on_one_host_starts_on_the_other_and_a_stop_stays_a_stop(
    pair: Pair,
) -> None:
    """The VM (its VHD disk served by a storage daemon, from the test above) is stopped on
    h1: h1 keeps its daemon (the dirty bitmaps) while nobody owns the VM, and a start and a
    stop there again end with the VM Off and released — not restarted by the agent as if
    fenced. Then the admin starts it on h2: h1's agent ends its kept daemon, whose image
    locks h2's daemon needs, and h2's start waits for them instead of failing."""
    with pair.h1.client() as api:
        shown = api.get(f"/vms/{VM}").json()
        assert shown["state"] == "Running", shown
        folder = Path(shown["folder"])
        assert _daemons(pair.h1, pair.vm_id), "the VHD disk is not served by a daemon"
        act(api, VM, "stop")
    _wait("nobody owning it", lambda: _owner(pair.h1) == (None, False))
    wait_agent_ticks({"h1": pair.h1.data_dir}, count=3, timeout=WAIT_S)
    assert _daemons(pair.h1, pair.vm_id), "h1 ended the stopped VM's storage daemon"
    with pair.h1.client() as api:
        act(api, VM, "start")
        act(api, VM, "stop")
    wait_agent_ticks({"h1": pair.h1.data_dir}, count=3, timeout=WAIT_S)
    assert _owner(pair.h1) == (None, False)
    with pair.h1.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Off"
    assert _copies(pair.h1, pair.vm_id) == []  # no QEMU of the VM left on h1
    with pair.h2.client() as api:
        assert api.post("/vms/import", json={"folder": str(folder)}).status_code == 201
        act(api, VM, "start")
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    assert _owner(pair.h2) == ("h2", True)
    _wait("h1's kept daemon ended", lambda: _daemons(pair.h1, pair.vm_id) == [])
    with pair.h1.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Off"
    with pair.h2.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"


def test_a_vm_saved_on_one_host_is_not_started_cold_on_the_other(pair: Pair) -> None:
    """The VM runs on h2 (the test above), h1 has an Off copy. h2 saves it: the memory
    state is in the VM's folder on the shared storage and nobody owns the VM. A start on
    h1 would boot it cold over that state, and a restore on h2 later would run stale
    memory over the disks h1's run changed: refused, saying why; nothing changes (h1
    lists it Off and runs no QEMU of it, the state file stays, nobody owns it). A restart
    of h1's service keeps the copy Off and leaves the folder's state files alone (before,
    the copy turned Saved and deleted a partial state another host was writing). h2 then
    restores it and the guest goes on counting."""
    with pair.h2.client() as api:
        last_tick = _last_tick(pair, pair.h2)
        act(api, VM, "save")
        shown = api.get(f"/vms/{VM}").json()
        assert shown["state"] == "Saved", shown
    state_file = Path(shown["folder"]) / "saved-state.vmstate"
    assert state_file.is_file()
    _wait("nobody owning it", lambda: _owner(pair.h2) == (None, False))
    with pair.h1.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Off"
        message = refused_start(api, VM)
        assert "holds a saved memory state (saved-state.vmstate) that another cluster host " \
               "made" in message, message
        assert "Start (restore) it on the host where it is Saved" in message
        assert "nothing was changed" in message
        assert api.get(f"/vms/{VM}").json()["state"] == "Off"
    assert _copies(pair.h1, pair.vm_id) == []
    assert state_file.is_file()
    assert _owner(pair.h1) == (None, False)
    # h1's service restarts while h2 (as far as h1 can tell) writes another save: the
    # copy stays Off, and neither the saved state nor the one being written is touched
    partial = state_file.with_name(state_file.name + ".partial")
    partial.write_bytes(b"h2's save in progress")
    pair.h1.stop()
    pair.h1.start(timeout=120)  # a loaded machine starts services slowly
    with pair.h1.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Off"
    assert state_file.is_file() and partial.read_bytes() == b"h2's save in progress"
    partial.unlink()
    with pair.h2.client() as api:
        assert api.get(f"/vms/{VM}").json()["state"] == "Saved"
        act(api, VM, "start")
        assert api.get(f"/vms/{VM}").json()["state"] == "Running"
    _continued(pair, pair.h2, last_tick)
    assert _owner(pair.h2) == ("h2", True)

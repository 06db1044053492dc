"""The pure parts of moves in a cluster (docs/architecture.md, "Failover cluster: Moves of
HA VMs"): where a drain sends each HA VM, which target a host name resolves to, the URL a
host publishes, the peer token file, and a source that names no cluster member."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord, HostState, Priority
from viridian.cluster.ownership import ClusterView
from viridian.errors import BadRequest
from viridian.service.cluster.agent import service_url
from viridian.service.migration.bodies import MoveRequest
from viridian.service.migration.cluster_move import ClusterOwnership
from viridian.service.migration.cluster_peer import load_peer_token, save_peer_token
from viridian.service.migration.drain import drain_plan
from viridian.service.migration.outgoing import Outgoing

LEASE = 0x77


def _vm(vm_id: str, memory: int, priority: Priority = Priority.MEDIUM, owner: str = "a",
        classes: tuple[str, ...] = ()) -> ClusterVM:
    return ClusterVM(vm_id, vm_id, memory, HAPolicy(True, priority, anti_affinity=classes),
                     True, owner=owner, owner_lease=LEASE if owner == "a" else 9)


def _agent(view: ClusterView) -> Any:
    core = SimpleNamespace(owns=lambda vm: vm.owner == "a" and vm.owner_lease == LEASE,
                           lease=LEASE)
    return SimpleNamespace(view=view, config=SimpleNamespace(host="a"), core=core)


def test_drain_places_by_priority_memory_and_anti_affinity_and_turns_off_the_rest() -> None:
    hosts = [HostRecord("a", HostState.PAUSED, memory_free_mb=9000),
             HostRecord("b", memory_free_mb=1000), HostRecord("c", memory_free_mb=700),
             HostRecord("d", memory_free_mb=5000)]
    vms = [_vm("big", 3000, Priority.LOW), _vm("web1", 600, Priority.HIGH, classes=("web",)),
           _vm("web2", 600, Priority.HIGH, classes=("web",)), _vm("huge", 8000),
           _vm("elsewhere", 100, owner="b", classes=("web",))]
    view = ClusterView(1, vms=vms, hosts=hosts, paused=frozenset({"a", "d"}))
    running = {v.id: object() for v in vms if v.owner == "a"}
    moves, stays = drain_plan(_agent(view), running)  # type: ignore[arg-type]
    # high first; d is paused too; web1 and web2 avoid b (runs a "web" VM) while they can
    assert [(vm.name, to) for vm, to in moves] == [("web1", "c"), ("web2", "b")]
    assert [(vm.name, why) for vm, why in stays] == [
        ("huge", "Pending: insufficient memory on every host"),
        ("big", "Pending: insufficient memory on every host")]


def test_drain_moves_only_what_runs_here_and_this_host_owns() -> None:
    vms = [_vm("mine", 100), _vm("stopped", 100), _vm("theirs", 100, owner="b")]
    view = ClusterView(1, vms=vms, hosts=[HostRecord("b", memory_free_mb=900)])
    moves, stays = drain_plan(_agent(view), {"mine": object(), "theirs": object()})  # type: ignore[arg-type]
    assert [(vm.name, to) for vm, to in moves] == [("mine", "b")] and stays == []
    assert drain_plan(_agent(None), {"mine": object()}) == ([], [])  # type: ignore[arg-type]


def test_a_host_name_resolves_to_the_url_the_member_publishes() -> None:
    hosts = [HostRecord("b", api="http://10.0.0.2:8080"), HostRecord("c")]
    ownership = ClusterOwnership(lambda: _agent(ClusterView(1, hosts=hosts)))
    assert ownership.member_url("b") == "http://10.0.0.2:8080"
    assert ownership.member_url("http://10.0.0.2:8080/") == "http://10.0.0.2:8080"
    assert ownership.member_url("c") is None  # publishes no URL (yet)
    assert ownership.member_url("nosuch") is None
    assert ClusterOwnership(lambda: None).member_url("b") is None


def test_a_target_that_is_no_member_needs_a_url_and_a_token(tmp_path: Path) -> None:
    host = SimpleNamespace(data_dir=tmp_path)
    outgoing = Outgoing(host, ClusterOwnership(lambda: None))  # type: ignore[arg-type]

    def peer(**body: Any) -> Any:
        return outgoing._peer(MoveRequest(**{"mode": "live", **body}))

    with pytest.raises(BadRequest, match="name of an Up host of this host's cluster"):
        peer(to="h2")
    with pytest.raises(BadRequest, match=r"'token'.*is empty"):
        peer(to="http://10.0.0.2:8080")
    assert peer(to="http://10.0.0.2:8080", token="t").url == "http://10.0.0.2:8080"


def test_the_published_url_comes_from_service_json(tmp_path: Path) -> None:
    assert service_url(tmp_path) == ""
    (tmp_path / "service.json").write_text(json.dumps(
        {"host": "127.0.0.1", "port": 8443, "scheme": "https"}))
    assert service_url(tmp_path) == "https://127.0.0.1:8443"
    (tmp_path / "service.json").write_text(json.dumps({"host": "::1", "port": 80}))
    assert service_url(tmp_path) == "http://[::1]:80"


def test_the_peer_token_file_is_private(tmp_path: Path) -> None:
    assert load_peer_token(tmp_path) == ""
    save_peer_token(tmp_path, "secret-1")
    path = tmp_path / "cluster" / "peer.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert load_peer_token(tmp_path) == "secret-1"


def test_a_member_publishing_this_hosts_own_url_is_refused_as_unreachable() -> None:
    hosts = [HostRecord("a", api="http://127.0.0.1:8080"),
             HostRecord("b", api="http://127.0.0.1:8080")]
    ownership = ClusterOwnership(lambda: _agent(ClusterView(1, hosts=hosts)))
    with pytest.raises(BadRequest, match="same as this host's: it is not reachable"):
        ownership.member_url("b")

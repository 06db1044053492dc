"""The cluster's side of a move against a real etcd (one member; no guest): the target's
:class:`ClusterOwnership` takes the owner key from the source's lease, gives it back when
it cannot run the VM, refuses when the source's lease is gone (the source died before
the hand-over: failover takes the VM, never the target's prepared copy), and tells the
source whether it still owns the VM (docs/architecture.md, "Half-done hand-overs")."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.cluster.etcd_members import EtcdCluster, etcd_cluster
from viridian.cluster.errors import ClusterConflict
from viridian.cluster.etcd import Etcd
from viridian.cluster.model import HostRecord
from viridian.cluster.ownership import claim, host_key, owner
from viridian.service.migration.cluster_move import ClusterOwnership
from viridian.service.migration.ownership import Holder

CLUSTER = "mvx"


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    if shutil.which("etcd") is None:
        pytest.fail("etcd is not installed: run `make deps` (scripts/install-deps.sh)")
    with etcd_cluster(tmp_path_factory.mktemp("mvx-etcd"), size=1) as cluster:
        yield cluster


def _member(client: Etcd, name: str, folder: Path) -> Any:
    lease = client.grant(30)
    client.put(host_key(CLUSTER, name), HostRecord(name).to_json(), lease)
    marks: dict[str, str] = {}
    folder_ns = SimpleNamespace(mark=marks.__setitem__,
                                take_mark=lambda vm_id: marks.pop(vm_id, None))
    return SimpleNamespace(etcd=client, config=SimpleNamespace(name=CLUSTER, host=name,
                                                               lease_ttl=2),
                           core=SimpleNamespace(lease=lease), moving=set(), folder=folder_ns,
                           feed_now=lambda: None, view=None, marks=marks)


def test_hand_over_hand_back_and_holds(etcd: EtcdCluster, tmp_path: Path) -> None:
    client = Etcd(etcd.endpoints)
    source, target = _member(client, "a", tmp_path), _member(client, "b", tmp_path)
    assert claim(client, CLUSTER, "vm1", "a", source.core.lease)
    at_source, at_target = ClusterOwnership(lambda: source), ClusterOwnership(lambda: target)
    me = at_source.me()
    assert me == Holder("a", source.core.lease)

    at_target.moving("vm1", True, True)
    assert "vm1" in target.moving and target.marks == {"vm1": "move"}
    asyncio.run(at_target.hand_over("vm1", True, me))
    held = owner(client, CLUSTER, "vm1")
    assert held is not None and (held.value, held.lease) == ("b", target.core.lease)
    assert not asyncio.run(at_source.holds("vm1", True, me))
    assert asyncio.run(at_source.holds("vm1", False, me))  # not HA: the catalogs decide
    # the target could not run it: the source gets it back and may resume
    assert asyncio.run(at_target.hand_back("vm1", True, me))
    assert asyncio.run(at_source.holds("vm1", True, me))
    at_target.moving("vm1", True, False)
    assert target.moving == set() and target.marks == {}


def test_a_source_whose_lease_is_gone_cannot_hand_over(etcd: EtcdCluster,
                                                        tmp_path: Path) -> None:
    client = Etcd(etcd.endpoints)
    source, target = _member(client, "c", tmp_path), _member(client, "d", tmp_path)
    assert claim(client, CLUSTER, "vm2", "c", source.core.lease)
    me = ClusterOwnership(lambda: source).me()
    at_target = ClusterOwnership(lambda: target)
    assert asyncio.run(at_target.holds("vm2", True, me))  # the prepared move's watch
    client.revoke(source.core.lease)  # the source died before the hand-over
    assert not asyncio.run(at_target.holds("vm2", True, me))
    with pytest.raises(ClusterConflict, match="its owner is nobody"):
        asyncio.run(at_target.hand_over("vm2", True, me))
    assert owner(client, CLUSTER, "vm2") is None  # failover claims it, not the move
    # a target that has no lease itself takes nothing
    target.core.lease = 0
    with pytest.raises(ClusterConflict, match="no cluster lease"):
        asyncio.run(at_target.hand_over("vm2", True, me))


def test_a_source_resumes_after_a_lost_commit_only_once_the_target_cannot_take_it(
        etcd: EtcdCluster, tmp_path: Path) -> None:
    """Case 3: the commit's answer was lost. While the target's lease lives it might
    still hand over: not settled (False after TTL + 5 s). Once its lease is gone while
    the source owns the VM: settled (True). A source that lost the VM: False."""
    client = Etcd(etcd.endpoints)
    source, target = _member(client, "e", tmp_path), _member(client, "f", tmp_path)
    assert claim(client, CLUSTER, "vm3", "e", source.core.lease)
    at_source = ClusterOwnership(lambda: source)
    me = at_source.me()
    assert not asyncio.run(at_source.target_gone("vm3", True, me, "f", poll_s=0.2))
    assert not asyncio.run(at_source.target_gone("vm3", True, me, None))
    assert not asyncio.run(at_source.target_gone("vm3", False, me, "f"))
    client.revoke(target.core.lease)  # the target died without handing over
    assert asyncio.run(at_source.target_gone("vm3", True, me, "f"))
    client.revoke(source.core.lease)
    assert not asyncio.run(at_source.target_gone("vm3", True, me, "f"))

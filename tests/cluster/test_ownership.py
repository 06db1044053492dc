"""Ownership keys in a real 3-member etcd: one claimant wins, the key goes with the
owner's lease, a release by another lease changes nothing, and the agent reads the view."""

from __future__ import annotations

from tests.cluster.etcd_members import EtcdCluster
from viridian.cluster.agent import AgentCore
from viridian.cluster.etcd import Etcd
from viridian.cluster.fencing import FenceRule
from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord
from viridian.cluster.ownership import claim, read_view, release


def test_one_claim_wins_and_ownership_goes_with_the_lease(etcd: EtcdCluster) -> None:
    client = Etcd(etcd.endpoints)
    vm = ClusterVM("id1", "web", 512, HAPolicy(ha=True), desired_running=True)
    client.put("/viridian/c1/vms/id1", vm.to_json())
    lease_a, lease_b = client.grant(10), client.grant(10)
    client.put("/viridian/c1/hosts/a", HostRecord("a", memory_free_mb=4096).to_json(), lease_a)
    client.put("/viridian/c1/hosts/b", HostRecord("b", memory_free_mb=4096).to_json(), lease_b)
    assert claim(client, "c1", "id1", "a", lease_a)
    assert not claim(client, "c1", "id1", "b", lease_b)
    assert not release(client, "c1", "id1", lease_b)
    vms, hosts = read_view(client, "c1")
    assert [(v.owner, v.owner_lease) for v in vms] == [("a", lease_a)]
    assert sorted(h.name for h in hosts) == ["a", "b"]
    client.revoke(lease_a)
    vms, hosts = read_view(client, "c1")
    agent = AgentCore("b", FenceRule.for_ttl(10))
    agent.new_lease(lease_b, 0.0)
    assert agent.plan(1.0, vms, hosts, set()).claim == ("id1",)
    assert claim(client, "c1", "id1", "b", lease_b)
    assert release(client, "c1", "id1", lease_b)
    assert read_view(client, "c1")[0][0].owner is None

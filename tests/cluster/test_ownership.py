"""Ownership keys in a real 3-member etcd: one claimant wins, the key goes with the
owner's lease, a release by another lease changes nothing, and the agent reads the view."""

from __future__ import annotations

from tests.cluster.etcd_members import EtcdCluster
from viridian.cluster.agent import AgentCore
from viridian.cluster.etcd import Etcd
from viridian.cluster.fencing import FenceRule
from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord
from viridian.cluster.ownership import claim, hand_over, owner, read_view, release


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


def test_hand_over_moves_ownership_in_one_transaction_only_from_the_owner(
        etcd: EtcdCluster) -> None:
    client = Etcd(etcd.endpoints)
    lease_a, lease_b, lease_c = client.grant(10), client.grant(10), client.grant(10)
    client.put("/viridian/c2/hosts/b", HostRecord("b").to_json(), lease_b)
    assert claim(client, "c2", "vm9", "a", lease_a)
    # not the owner's lease, or a target that is no live member: nothing changes
    assert not hand_over(client, "c2", "vm9", lease_c, "b", lease_b)
    assert not hand_over(client, "c2", "vm9", lease_a, "b", lease_c)
    assert not hand_over(client, "c2", "vm9", lease_a, "z", lease_b)
    held = owner(client, "c2", "vm9")
    assert held is not None and (held.value, held.lease) == ("a", lease_a)
    assert hand_over(client, "c2", "vm9", lease_a, "b", lease_b)
    held = owner(client, "c2", "vm9")
    assert held is not None and (held.value, held.lease) == ("b", lease_b)
    client.revoke(lease_a)  # the source's lease ending no longer touches the VM
    held = owner(client, "c2", "vm9")
    assert held is not None and held.value == "b"
    assert not release(client, "c2", "vm9", lease_a)
    for lease in (lease_b, lease_c):
        client.revoke(lease)
    assert owner(client, "c2", "vm9") is None

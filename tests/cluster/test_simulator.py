"""The HA logic in the deterministic simulator (fake clock, modelled etcd and hosts):
hundreds of generated scenarios keep one copy of every VM and make progress; mutations of
the fencing rule are caught; hand-written scenarios show failover time, priority order,
anti-affinity, Pending-until-capacity-returns, a lost site failing over to the other site
and back by failback, and a cut-off site fencing itself before the other site takes over."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from viridian.cluster.fencing import FenceRule
from viridian.cluster.model import ClusterVM, HAPolicy, Priority
from viridian.cluster.placement import PENDING_NO_MEMORY
from viridian.cluster.simulator import Fault, SimHost, Simulation, Violation, generate

SCENARIOS = 240


@pytest.mark.parametrize("block", range(8))
def test_generated_scenarios_keep_one_copy_and_progress(block: int) -> None:
    for seed in range(block * SCENARIOS // 8, (block + 1) * SCENARIOS // 8):
        sim = generate(seed)
        sim.run(120)
        sim.settle(40)


@dataclass(frozen=True)
class LateFence(FenceRule):
    """A wrong rule: fences only after others may take over."""

    def deadline(self, renew_sent_at: float) -> float:
        return renew_sent_at + self.ttl + 2


def test_a_fence_deadline_after_the_takeover_time_is_caught() -> None:
    caught = []
    for seed in range(60):
        sim = generate(seed)
        sim.rule = LateFence(ttl=10.0, margin=3.0)
        for host in sim.hosts.values():
            assert host.agent is not None
            host.agent.rule = sim.rule
        try:
            sim.run(120)
        except Violation as err:
            caught.append(str(err))
    assert caught and "runs on" in caught[0]


def _vm(name: str, memory: int, priority: Priority = Priority.MEDIUM,
        classes: tuple[str, ...] = (), preferred: tuple[str, ...] = ()) -> ClusterVM:
    return ClusterVM(name, name, memory, HAPolicy(True, priority, preferred, classes),
                     desired_running=True)


def _sim(hosts: dict[str, int], vms: list[ClusterVM], faults: list[Fault]) -> Simulation:
    return Simulation({n: SimHost(n, m) for n, m in hosts.items()}, {v.id: v for v in vms},
                      FenceRule.for_ttl(10), faults)


def _where(sim: Simulation) -> dict[str, str]:
    return {vm: h.name for h in sim.hosts.values() for vm in h.running}


def test_a_crashed_hosts_vms_run_elsewhere_within_ttl_plus_5s() -> None:
    sim = _sim({"a": 4096, "b": 4096, "c": 4096},
               [_vm(f"v{i}", 512, preferred=("a",)) for i in range(4)], [])
    sim.run(10)
    assert set(_where(sim).values()) == {"a"}
    sim.faults = [Fault(10.0, "crash", "a")]
    sim.run(40)
    assert set(_where(sim)) == {"v0", "v1", "v2", "v3"}
    assert "a" not in _where(sim).values()
    assert sim.failovers and max(sim.failovers) <= sim.rule.ttl + 5


def test_priority_order_and_pending_until_capacity_returns() -> None:
    vms = [_vm("low", 3000, Priority.LOW), _vm("high", 3000, Priority.HIGH),
           _vm("none", 512, Priority.NONE)]
    sim = _sim({"a": 4096, "b": 4096}, vms, [])
    sim.run(10)
    assert set(_where(sim)) == {"low", "high"}
    victim = _where(sim)["high"]
    survivor = "b" if victim == "a" else "a"
    sim.faults = [Fault(10.0, "crash", victim)]
    sim.run(40)
    # the survivor already runs one 3000 MB VM; the other waits for memory
    assert set(_where(sim)) <= {"low", "high"} and len(_where(sim)) == 1
    assert sim.settle(5) == {next(iter({"low", "high"} - set(_where(sim)))): PENDING_NO_MEMORY}
    sim.faults = [Fault(sim.now, "boot", victim)]
    sim.run(sim.now + 20)
    assert set(_where(sim)) == {"low", "high"}
    assert _where(sim)[next(iter(set(_where(sim))))] in {victim, survivor}


def test_anti_affinity_spreads_a_class_over_the_hosts() -> None:
    sim = _sim({"a": 8192, "b": 8192, "c": 8192},
               [_vm(f"db{i}", 512, classes=("db",)) for i in range(3)], [])
    sim.run(10)
    assert sorted(_where(sim).values()) == ["a", "b", "c"]


def test_a_frozen_service_is_fenced_by_its_guard_before_takeover() -> None:
    sim = _sim({"a": 4096, "b": 4096}, [_vm("v", 512, preferred=("a",))],
               [Fault(10.0, "freeze", "a", 30.0)])
    sim.run(60)
    assert _where(sim) == {"v": "b"}
    assert any("guard fences" in line for line in sim.log)


def _site_sim(vms: list[ClusterVM], faults: list[Fault]) -> Simulation:
    hosts = {n: SimHost(n, 4096, site=s) for n, s in
             (("e1", "east"), ("e2", "east"), ("w1", "west"), ("w2", "west"))}
    return Simulation(hosts, {v.id: v for v in vms}, FenceRule.for_ttl(10), faults)


def _sited_vm(name: str, site: str, **policy: object) -> ClusterVM:
    return ClusterVM(name, name, 512, HAPolicy.from_dict(
        {"ha": True, "preferred_site": site, **policy}), desired_running=True)


def test_a_lost_site_fails_over_to_the_other_site_and_back_by_failback() -> None:
    vms = [_sited_vm(f"v{i}", "east", preferred_hosts=["e1"] if i == 0 else [],
                     failback=i == 0) for i in range(4)]
    sim = _site_sim(vms, [])
    sim.run(10)
    assert {sim.hosts[h].site for h in _where(sim).values()} == {"east"}
    sim.faults = [Fault(10.0, "crash", "site:east")]
    sim.run(40)
    assert set(_where(sim)) == {"v0", "v1", "v2", "v3"}
    assert {sim.hosts[h].site for h in _where(sim).values()} == {"west"}
    assert max(sim.failovers) <= sim.rule.ttl + 5
    sim.faults = [Fault(sim.now, "boot", "site:east")]
    sim.run(sim.now + 30)
    sim.settle(10)
    # v0 fails back to its preferred host; the others stay where they run
    assert _where(sim)["v0"] == "e1" and [vm for _, vm, _ in sim.failbacks] == ["v0"]
    assert {sim.hosts[_where(sim)[v]].site for v in ("v1", "v2", "v3")} == {"west"}


def test_a_cut_off_site_fences_itself_before_the_other_site_takes_its_vms() -> None:
    vms = [_sited_vm(f"v{i}", "west") for i in range(3)]
    sim = _site_sim(vms, [Fault(10.0, "cut", "site:west", 25.0)])
    sim.run(60)  # one copy is checked after every step
    assert {sim.hosts[h].site for h in _where(sim).values()} == {"east"}
    assert set(_where(sim)) == {"v0", "v1", "v2"}
    sim.settle(30)

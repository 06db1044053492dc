"""The pure cluster core: the HA policy's validation, placement rules and the fencing
timing rule (docs/architecture.md, "Failover cluster")."""

from __future__ import annotations

import pytest

from viridian.cluster.agent import AgentCore
from viridian.cluster.fencing import FenceRule
from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord, HostState, Priority
from viridian.cluster.placement import (
    PENDING_NO_HOST,
    PENDING_NO_MEMORY,
    failback_moves,
    place,
)
from viridian.errors import InvalidSetting


def _vm(name: str, memory: int = 512, owner: str | None = None, **policy: object) -> ClusterVM:
    return ClusterVM(name, name, memory, HAPolicy.from_dict({"ha": True, **policy}),
                     desired_running=True, owner=owner, owner_lease=7 if owner else 0)


def _host(name: str, free: int, state: HostState = HostState.UP) -> HostRecord:
    return HostRecord(name, state, free, free)


def test_policy_parses_cli_shapes_and_refuses_bad_values() -> None:
    policy = HAPolicy.from_dict({"ha": "on", "priority": "high", "preferred_hosts": "a,b",
                                 "anti_affinity": ["db"]})
    assert policy == HAPolicy(True, Priority.HIGH, ("a", "b"), ("db",))
    assert HAPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(InvalidSetting, match="allowed: high, medium, low, none"):
        HAPolicy.from_dict({"priority": "urgent"})
    with pytest.raises(InvalidSetting, match="unknown HA setting"):
        HAPolicy.from_dict({"prio": "high"})
    with pytest.raises(InvalidSetting, match="allowed: true, false, on, off"):
        HAPolicy.from_dict({"ha": "yes"})


def test_placement_priority_memory_and_pending() -> None:
    vms = [_vm("low", 3000, priority="low"), _vm("high", 3000, priority="high"),
           _vm("never", 100, priority="none"), _vm("huge", 9000)]
    result = place(vms, [_host("a", 4000), _host("b", 3500, HostState.PAUSED)])
    assert result.assigned == {"high": "a"}
    assert result.pending == {"low": PENDING_NO_MEMORY, "huge": PENDING_NO_MEMORY}
    assert place(vms, []).pending["high"] == PENDING_NO_HOST


def test_placement_spreads_classes_then_prefers_hosts() -> None:
    hosts = [_host("a", 8000), _host("b", 4000), _host("c", 2000)]
    running = _vm("db0", owner="a", anti_affinity="db")
    result = place([running, _vm("db1", anti_affinity="db", preferred_hosts="a"),
                    _vm("web", preferred_hosts="c,b")], hosts)
    assert result.assigned == {"db1": "b", "web": "c"}


def test_failback_goes_to_the_first_preferred_host_when_up_with_memory() -> None:
    vm = _vm("v", 1000, owner="b", preferred_hosts="a,b", failback=True)
    assert failback_moves([vm], [_host("a", 2000), _host("b", 0)]) == {"v": "a"}
    assert failback_moves([vm], [_host("a", 500)]) == {}


def test_fence_deadline_comes_margin_before_any_takeover() -> None:
    rule = FenceRule.for_ttl(10)
    assert rule.deadline(100.0) < rule.takeover_not_before(100.0) == 110.0
    assert rule.may_start(100.5, 100.0) and not rule.may_start(106.0, 100.0)
    assert rule.may_feed_watchdog(100.0, 100.0, watchdog_timeout=5)
    assert not rule.may_feed_watchdog(105.0, 100.0, watchdog_timeout=5)
    with pytest.raises(InvalidSetting, match="lease ttl"):
        FenceRule(ttl=3.0, margin=2.0)


def test_an_agent_owns_only_through_its_current_lease() -> None:
    agent = AgentCore("a", FenceRule.for_ttl(10))
    agent.new_lease(7, 0.0)
    other_lease = ClusterVM("v", "v", 512, HAPolicy(ha=True), True, owner="a", owner_lease=6)
    plan = agent.plan(1.0, [other_lease], [], {"v"})
    assert plan.kill == ("v",) and plan.start == ()
    assert agent.plan(20.0, [_vm("v", owner="a")], [], {"v"}).kill == ("v",)
    assert agent.fenced

"""The pure cluster core: the HA policy's validation, placement rules and the fencing
timing rule (docs/architecture.md, "Failover cluster")."""

from __future__ import annotations

import pytest

from viridian.cluster.agent import AgentCore
from viridian.cluster.fencing import FenceRule
from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord, HostState, Priority
from viridian.cluster.placement import (
    NO_FACTS,
    PENDING_NO_HOST,
    PENDING_NO_MEMORY,
    failback_moves,
    place,
    rating,
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


GB = 1 << 30


def _rated(name: str, free: int, cpu: float | None = 2.0, storage_free_gb: int = 90,
           disk_busy: float | None = None) -> HostRecord:
    """An Up host that published its placement facts (16 GB of memory, 100 GB of storage)."""
    return HostRecord(name, HostState.UP, 16384, free, cpu_busy_pct=cpu,
                      storage_total_bytes=100 * GB, storage_free_bytes=storage_free_gb * GB,
                      disk_busy_pct=disk_busy)


def test_placement_rates_hosts_by_their_published_facts_and_says_why() -> None:
    # the busy and the nearly full hosts have more free memory: the stars decide first
    hosts = [_rated("busy", 14000, cpu=95.0), _rated("full", 14000, storage_free_gb=2,
                                                     disk_busy=80.0),
             _rated("idle", 12000)]
    result = place([_vm("v", 1024)], hosts)
    assert result.assigned == {"v": "idle"}
    assert result.reasons["v"] == (
        "idle, 5\u2605 (memory: 1024 MB needed, 12000 MB free (67% of 16384 MB left after); "
        "cpu: 2% busy over the last hour (98% headroom); storage: 0 MB needed, 92160 MB free"
        "), 12000 MB free")
    ranked = place([_vm("v", 1024)], hosts[:2])
    assert ranked.assigned == {"v": "full"}  # 4 stars: storage weighs less than the CPU
    assert "storage I/O: 80% busy over the last hour" in ranked.reasons["v"]
    # the earlier rules still come first: a preferred host, however busy
    assert place([_vm("v", 1024, preferred_hosts="busy")], hosts).assigned == {"v": "busy"}


def test_a_vm_restarts_where_its_switches_are_before_any_preference() -> None:
    """A host lacking a switch the VM's adapters connect to comes after every host that
    has them (even a preferred one); the VM still restarts there when it is the only host
    with the memory, and the reason names what is missing."""
    from dataclasses import replace

    vm = replace(_vm("v", 1024, preferred_hosts="bare"), settings={"switches": ["Lab"]})
    bare, wired = _rated("bare", 14000), replace(_rated("wired", 9000), switches=("Lab",))
    assert place([vm], [bare, wired]).assigned == {"v": "wired"}
    assert rating(vm, bare, 14000).stars == 0
    alone = place([vm], [bare, replace(wired, memory_free_mb=512)])
    assert alone.assigned == {"v": "bare"}
    assert "missing virtual switch: Lab" in alone.reasons["v"], alone.reasons
    assert place([_vm("w", 1024, preferred_hosts="bare")], [bare, wired]).assigned == \
        {"w": "bare"}  # a VM without switches: the preference decides as before


def test_equal_ratings_fall_back_to_free_memory_then_the_name() -> None:
    more = _rated("m", 12000, cpu=10.0, storage_free_gb=60)
    less = _rated("l", 11000, cpu=10.0, storage_free_gb=60)
    assert rating(_vm("v"), more, 12000).stars == rating(_vm("v"), less, 11000).stars == 4
    assert place([_vm("v")], [less, more]).assigned == {"v": "m"}
    twins = [_rated("b", 8000), _rated("a", 8000)]
    assert place([_vm("v")], twins).assigned == place([_vm("v")], twins[::-1]).assigned \
        == {"v": "a"}


def test_the_vms_of_one_decision_take_memory_from_each_other() -> None:
    # "small" rates best but has the memory for one VM only: the second goes to "busy"
    hosts = [_rated("small", 1500, cpu=0.0), _rated("busy", 8000, cpu=90.0)]
    result = place([_vm("v1", 1024, priority="high"), _vm("v2", 1024)], hosts)
    assert result.assigned == {"v1": "small", "v2": "busy"}
    # on one host, the second VM is rated with what the first left
    both = place([_vm("v1", 1024, priority="high"), _vm("v2", 1024)], [_rated("h", 4000)])
    assert both.assigned == {"v1": "h", "v2": "h"}
    assert "memory: 1024 MB needed, 2976 MB free" in both.reasons["v2"]
    assert both.reasons["v2"].endswith(", 2976 MB free")


def test_a_host_that_published_no_facts_still_receives_vms() -> None:
    old = HostRecord("old", HostState.UP, 8192, 4000)  # an older host's record
    result = place([_vm("v1", 1024, priority="high"), _vm("v2", 1024)],
                   [old, _rated("new", 900)])
    assert result.assigned == {"v1": "old", "v2": "old"}
    assert NO_FACTS in result.reasons["v1"]
    # against a host with facts it is rated as its record reads (CPU idle, no storage)
    assert place([_vm("v", 1024)], [old, _rated("new", 4000, cpu=90.0)]).assigned == {
        "v": "old"}


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


def _sited(name: str, site: str, free: int = 4000,
           state: HostState = HostState.UP) -> HostRecord:
    return HostRecord(name, state, free, free, site=site)


def test_placement_keeps_a_vm_in_its_preferred_site_and_says_why() -> None:
    hosts = [_sited("a1", "east", 2000), _sited("b1", "west", 8000),
             _sited("a2", "east", 1500)]
    vm = _vm("v", 1000, preferred_site="east", preferred_hosts="b1")
    result = place([vm], hosts)
    # west has more memory and is a preferred host, but the site comes first
    assert result.assigned == {"v": "a1"}
    assert result.reasons["v"] == (
        "a1, in preferred site east, 4\u2605 (memory: 1000 MB needed, 2000 MB free (50% of "
        f"2000 MB left after); {NO_FACTS}), 2000 MB free")
    crowded = place([_vm("db0", owner="a1", anti_affinity="db", preferred_site="east"),
                     _vm("db1", anti_affinity="db", preferred_site="east")], hosts)
    assert crowded.assigned == {"db1": "a2"}
    assert "0 anti-affinity clashes" in crowded.reasons["db1"]


def test_placement_fails_over_across_sites_only_when_the_site_cannot_take_the_vm() -> None:
    vm = _vm("v", 1000, preferred_site="east")
    down = [_sited("a1", "east", 4000, HostState.DOWN), _sited("a2", "east", 4000,
                                                               HostState.DOWN),
            _sited("b1", "west", 3000)]
    result = place([vm], down)
    assert result.assigned == {"v": "b1"}
    assert result.reasons["v"].startswith("b1, failed over from site east to site west (no "
                                          "host of it is Up), 4\u2605 (memory: ")
    assert result.reasons["v"].endswith(", 3000 MB free")
    full = place([vm], [_sited("a1", "east", 500), _sited("b1", "west", 3000)])
    assert full.assigned == {"v": "b1"}
    assert "(no Up host of it has the memory)" in full.reasons["v"]
    assert place([vm], [_sited("a1", "east", 500)]).pending == {"v": PENDING_NO_MEMORY}


def test_preferred_site_is_a_checked_ha_setting() -> None:
    policy = HAPolicy.from_dict({"ha": True, "preferred_site": "east"})
    assert policy.preferred_site == "east"
    assert HAPolicy.from_dict(policy.to_dict()) == policy
    with pytest.raises(InvalidSetting, match="preferred_site"):
        HAPolicy.from_dict({"preferred_site": 3})


def test_failback_only_where_placement_would_put_the_vm() -> None:
    # home is in another site than the VM's preferred site: placement would not choose it,
    # so no failback (it would bounce straight back)
    vm = _vm("v", 1000, owner="b1", preferred_hosts="a1", failback=True,
             preferred_site="west")
    hosts = [_sited("a1", "east", 4000), _sited("b1", "west", 0)]
    assert failback_moves([vm], hosts) == {}
    same_site = _vm("v", 1000, owner="b1", preferred_hosts="a1", failback=True)
    assert failback_moves([same_site], hosts) == {"v": "a1"}
    # a VM of the home host's anti-affinity class already runs there: no failback
    rival = _vm("r", 500, owner="a1", anti_affinity="db")
    classed = _vm("v", 1000, owner="b1", preferred_hosts="a1", failback=True,
                  anti_affinity="db")
    assert failback_moves([rival, classed], hosts) == {}


def test_the_owner_plans_a_failback_of_what_it_runs() -> None:
    agent = AgentCore("b1", FenceRule.for_ttl(10))
    agent.new_lease(7, 0.0)
    vm = _vm("v", 1000, owner="b1", preferred_hosts="a1", failback=True)
    hosts = [_sited("a1", "", 4000), _sited("b1", "", 0)]
    assert agent.plan(1.0, [vm], hosts, {"v"}).failback == ("v",)
    assert agent.plan(1.0, [vm], hosts, set()).failback == ()


def test_failback_waits_for_its_window() -> None:
    hosts = [_sited("a1", "", 4000), _sited("b1", "", 0)]
    night = _vm("v", 1000, owner="b1", preferred_hosts="a1", failback=True,
                failback_window=[22, 6])
    assert failback_moves([night], hosts, hour=23) == {"v": "a1"}
    assert failback_moves([night], hosts, hour=5) == {"v": "a1"}
    assert failback_moves([night], hosts, hour=6) == {}
    assert failback_moves([night], hosts) == {}  # no clock: no windowed failback
    day = HAPolicy.from_dict({"failback_window": [9, 17]})
    assert day.may_fail_back(9) and not day.may_fail_back(17)
    assert HAPolicy.from_dict(day.to_dict()) == day
    with pytest.raises(InvalidSetting, match="failback_window"):
        HAPolicy.from_dict({"failback_window": [3, 3]})

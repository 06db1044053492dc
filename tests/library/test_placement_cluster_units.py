"""Placement over cluster hosts, the mapping without services (issue 18): a member's
published host record becomes its placement facts; this host's latest facts are added to
the record the cluster agent publishes; skewed hosts are rated with the reasons a user
reads (memory, CPU headroom, storage, missing switch, anti-affinity)."""

from __future__ import annotations

from pathlib import Path

from viridian.cluster.model import HostRecord
from viridian.library.placement import HostFacts, VMNeeds, best, rate_all
from viridian.service.library import placement as P

GB = 1 << 30


def record(name: str, **changes: object) -> HostRecord:
    base = {"memory_total_mb": 16384, "memory_free_mb": 12000, "running": (),
            "cpu_busy_pct": 10.0, "storage_total_bytes": 100 * GB,
            "storage_free_bytes": 60 * GB, "switches": ("Lab",)}
    return HostRecord(name, **{**base, **changes})  # type: ignore[arg-type]


def test_a_record_round_trips_its_facts_and_old_records_read_as_unknown() -> None:
    full = record("h1", running=("db-1",))
    assert HostRecord.from_json(full.to_json()) == full
    old = HostRecord.from_json('{"name": "h0", "memory_total_mb": 1024}')
    assert old.cpu_busy_pct is None and old.switches == () and old.storage_free_bytes == 0
    facts = P.record_facts(full)
    assert facts == HostFacts("h1", 16384, 12000, 10.0, 100 * GB, 60 * GB,
                              frozenset({"Lab"}), frozenset({"db-1"}))


def test_the_agent_publishes_this_hosts_latest_facts(tmp_path: Path) -> None:
    plain = HostRecord("h1", memory_total_mb=8192, memory_free_mb=4000, api="http://x")
    assert P.with_facts(plain, tmp_path) == plain  # before the first refresh: unchanged
    P._PUBLISHED[tmp_path] = HostFacts("localhost", 8192, 3000, 42.5, 10 * GB, 4 * GB,
                                       frozenset({"Lab", "Ext"}), frozenset())
    try:
        published = HostRecord.from_json(P.with_facts(plain, tmp_path).to_json())
    finally:
        del P._PUBLISHED[tmp_path]
    assert published.memory_free_mb == 4000 and published.api == "http://x"  # the agent's
    assert published.cpu_busy_pct == 42.5 and published.switches == ("Ext", "Lab")
    assert (published.storage_total_bytes, published.storage_free_bytes) == (10 * GB, 4 * GB)


def test_skewed_hosts_are_rated_with_their_reasons() -> None:
    hosts = [P.record_facts(r) for r in (
        record("busy", cpu_busy_pct=95.0),
        record("full", memory_free_mb=300),
        record("noswitch", switches=()),
        record("peer", running=("web-1",)),
        record("idle", cpu_busy_pct=2.0),
    )]
    needs = VMNeeds(512, 0, frozenset({"Lab"}), frozenset({"web-1", "web-2"}), 2)
    ratings = {r.host: r for r in rate_all(hosts, needs)}
    assert best(rate_all(hosts, needs)).host == "idle"  # type: ignore[union-attr]
    assert ratings["full"].stars == 0
    assert ratings["full"].reasons == ("not enough memory: 1024 MB needed, 300 MB free",)
    assert ratings["noswitch"].reasons == ("missing virtual switch: Lab",)
    assert "cpu: 95% busy over the last hour (5% headroom)" in ratings["busy"].reasons
    assert ratings["busy"].stars < ratings["idle"].stars
    assert "anti-affinity: web-1 already here" in ratings["peer"].reasons
    assert ratings["peer"].stars == ratings["idle"].stars - 1

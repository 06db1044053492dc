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


def test_storage_io_headroom_from_the_data_disks_idle_time() -> None:
    from viridian.counters import paths as CP
    from viridian.counters.history import CounterSample, History

    history = History(10)
    idle = CP.path(CP.DISK, "% Idle Time", "vdz")
    total = CP.path(CP.DISK, "% Idle Time", CP.TOTAL)
    history.append(CounterSample(1000.0, 10.0, {idle: 30.0, total: 90.0}))
    history.append(CounterSample(1010.0, 10.0, {idle: 10.0, total: 90.0}))
    assert P.disk_busy(history, "vdz", 1010.0) == 80.0  # 100 - the average idle (20 %)
    assert P.disk_busy(history, "nosuch", 1010.0) == 10.0  # falls back to _Total
    assert P.disk_busy(History(1), "vdz", 1010.0) is None
    assert P.data_disk(Path("/proc")) == CP.TOTAL  # no block device under /proc

    needs = VMNeeds(512, 0, frozenset())
    quiet = P.record_facts(record("quiet", disk_busy_pct=0.0))
    loaded = P.record_facts(record("loaded", disk_busy_pct=80.0))
    assert HostRecord.from_json(record("x", disk_busy_pct=80.0).to_json()).disk_busy_pct == 80
    rated = {r.host: r for r in rate_all([quiet, loaded], needs)}
    assert "storage I/O: 80% busy over the last hour (20% headroom)" in rated["loaded"].reasons
    assert rated["quiet"].score > rated["loaded"].score
    unknown = P.record_facts(record("unknown"))
    assert not any(r.startswith("storage I/O") for r in rate_all([unknown], needs)[0].reasons)

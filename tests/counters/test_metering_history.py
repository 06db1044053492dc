from __future__ import annotations

import pytest

from viridian.counters.history import CounterSample, History
from viridian.counters.metering import Meter, accumulate, report
from viridian.counters.samples import BlockStat, VMSample

S = 10**9


def _vm(pid: int | None, vcpu: int, rd: int = 0, mem: int = 1024) -> VMSample:
    return VMSample("id", "vm", 2, mem, pid, (vcpu, 0) if pid else (), 0, 0,
                    {"ide0-0": BlockStat(rd, 0, rd // 512, 0, 0, 0)} if pid else {})


def test_metering_accumulates_across_restarts_without_double_counting() -> None:
    m = Meter(reset_at=0.0)
    accumulate(m, None, _vm(10, 50 * S), 10)  # first sight after a service restart: nothing
    assert m.running_s == 0
    accumulate(m, _vm(10, 50 * S), _vm(10, 55 * S, rd=4096), 10)
    accumulate(m, _vm(10, 55 * S, rd=4096), _vm(None, 0), 10)  # turned off
    accumulate(m, _vm(None, 0), _vm(11, 2 * S, rd=1024, mem=2048), 10)  # new process: from 0
    r = report(m, host_mhz=2000.0, now=40.0)
    assert r["cpu_seconds"] == 7.0
    assert r["running_s"] == 20.0
    assert r["avg_cpu_mhz"] == pytest.approx(7 / 20 * 2000)
    assert r["avg_cpu_pct"] == pytest.approx(100 * 7 / 40)  # two VPs
    assert (r["min_memory_mb"], r["max_memory_mb"], r["avg_memory_mb"]) == (1024, 2048, 1536)
    assert r["disk_read_bytes"] == 4096 + 1024
    assert Meter.from_json(m.to_json()) == m


def test_history_keeps_the_last_samples_and_averages_by_time() -> None:
    h = History(3)
    for t, value in ((10, 1.0), (20, 100.0), (30, 50.0), (40, 70.0)):
        interval = 10 if t != 40 else 30
        h.append(CounterSample(t, interval, {r"\PhysicalDisk(vda)\% Idle Time": value}))
    assert [s.time for s in h.since()] == [20, 30, 40]
    assert h.average(r"\PhysicalDisk(vda)\% Idle Time", 100, now=40) == pytest.approx(
        (100 * 10 + 50 * 10 + 70 * 30) / 50)
    assert h.averages(r"\PhysicalDisk(*)\*", 5, now=40) == {
        r"\PhysicalDisk(vda)\% Idle Time": 70.0}

"""Every BPA rule fires on facts built to break it and stays silent on a healthy host."""

from __future__ import annotations

from dataclasses import replace

import pytest

from viridian.bpa import (
    RULES,
    CounterFact,
    DiskFact,
    Facts,
    HostFact,
    ProcessFact,
    VMFact,
    analyze,
)

FIXED = DiskFact("/vms/a.vhd", "vpc", "fixed", "sda")
HEALTHY = Facts(
    HostFact(memory_mb=65536, memory_available_mb=40000, host_reserve_mb=2048,
             logical_processors=8, virtual_processor_ratio=8, accelerator="kvm",
             processes=(ProcessFact(1, "sshd", 0.1, 8),)),
    (VMFact("a", True, 8192, 4, True, (FIXED,), ("user",), disk_iops=50.0),
     VMFact("b", True, 4096, 2, True, (replace(FIXED, path="/vms/b.vhd"),), (), 30.0),
     VMFact("c", False, 4096, 2, True, (replace(FIXED, host_device="sdb"),), (), None)),
    CounterFact(600, 60, {"sda": 40.0, "sdb": 5.0}, {"sda": 1.0, "sdb": 0.1}),
)


def _broken(rule_id: str) -> Facts:
    f, h = HEALTHY, HEALTHY.host
    dynamic = replace(FIXED, disk_type="dynamic")
    overlay = DiskFact("/vms/a.qcow2", "qcow2", "differencing", "sda")
    return {
        "host-memory-reserve": replace(f, host=replace(h, host_reserve_mb=64)),
        "vp-lp-ratio": replace(f, host=replace(h, logical_processors=2, virtual_processor_ratio=4),
                               vms=tuple(replace(vm, processors=9, running=True) for vm in f.vms)),
        "disk-time": replace(f, counters=replace(f.counters, disk_time_pct={"sda": 80.0})),
        "disk-queue-length": replace(f, counters=replace(f.counters, queue_length={"sdb": 2.5})),
        "hardware-virtualization": replace(f, host=replace(h, accelerator="tcg")),
        "heavy-host-processes": replace(f, host=replace(h, processes=(
            ProcessFact(99, "sqlservr", 80.0, 4096),))),
        "checkpoints-on-production": replace(f, vms=(replace(f.vms[0], disks=(overlay,)),)),
        "dynamic-disks-on-production": replace(f, vms=(replace(f.vms[0], disks=(dynamic,)),)),
        "failover-spare-memory": replace(f, host=replace(h, memory_available_mb=9000)),
        "vm-on-management-adapter": replace(
            f, host=replace(h, virtual_switches_supported=True,
                            management_switches=(("Corp", "eth0"),)),
            vms=(replace(f.vms[0], switches=(None, "Corp")), *f.vms[1:])),
        "busy-vms-one-device": replace(f, vms=(*f.vms[:2], replace(f.vms[2], running=True,
                                                                    disk_iops=25.0,
                                                                    disks=(FIXED,)))),
    }[rule_id]


def _status(facts: Facts, rule_id: str) -> str:
    return next(f for f in analyze(facts) if f.id == rule_id).status


def test_a_healthy_host_fires_nothing() -> None:
    findings = analyze(HEALTHY)
    assert [f.status for f in findings if f.status == "fired"] == []
    assert {f.id for f in findings} == {r.id for r in RULES}
    assert all(f.why and f.fix and f.measured for f in findings)


@pytest.mark.parametrize("rule_id", [r.id for r in RULES])
def test_each_rule_fires_on_its_broken_setup(rule_id: str) -> None:
    broken = _broken(rule_id)
    assert _status(broken, rule_id) == "fired"
    others = [f.id for f in analyze(broken) if f.status == "fired" and f.id != rule_id]
    assert others == [] or rule_id in ("vp-lp-ratio", "busy-vms-one-device"), others


def test_test_vms_are_exempt_and_missing_features_are_not_applicable() -> None:
    dynamic = replace(FIXED, disk_type="dynamic")
    lab = replace(HEALTHY, vms=(replace(HEALTHY.vms[0], production=False, disks=(dynamic,)),))
    assert _status(lab, "dynamic-disks-on-production") == "ok"
    assert _status(HEALTHY, "vm-on-management-adapter") == "not_applicable"
    switched = replace(HEALTHY, host=replace(HEALTHY.host, virtual_switches_supported=True,
                                             management_switches=(("Corp", "eth0"),)))
    assert _status(switched, "vm-on-management-adapter") == "ok"  # no VM on it
    fired = next(f for f in analyze(_broken("vm-on-management-adapter"))
                 if f.id == "vm-on-management-adapter")
    assert "on switch 'Corp' (bound to management adapter eth0)" in fired.measured
    no_history = replace(HEALTHY, counters=CounterFact(0, 0))
    assert _status(no_history, "disk-time") == "no_data"
    idle = replace(HEALTHY, vms=tuple(replace(vm, running=False) for vm in HEALTHY.vms))
    assert _status(idle, "failover-spare-memory") == "not_applicable"


def test_a_finding_states_the_measured_value() -> None:
    finding = next(f for f in analyze(_broken("disk-time")) if f.id == "disk-time")
    assert "sda 80.0 %" in finding.measured
    ratio = next(f for f in analyze(_broken("vp-lp-ratio")) if f.id == "vp-lp-ratio")
    assert "27 running VPs on 2 LPs = 13.50:1" in ratio.measured

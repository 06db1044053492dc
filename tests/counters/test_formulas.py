"""Counter formulas on captured raw data (text captured from this kind of host)."""

from __future__ import annotations

import pytest

from viridian.counters import procfs
from viridian.counters.formulas import compute
from viridian.counters.samples import BlockStat, HostSample, NicStat, Snapshot, VMSample

STAT_1 = ("cpu  133498 0 63535 182912 8552 0 494 1286 1 0\n"
          "cpu0 63530 0 32712 95374 2785 0 52 639 1 0\n")
STAT_2 = ("cpu  133698 0 63635 183012 8552 0 494 1286 1 0\n"
          "cpu0 63630 0 32762 95424 2785 0 52 639 1 0\n")
DISKSTATS_1 = (
    "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
    " 254       0 vda 159939 17736 9431290 188512 177472 200739 422014856 4381819 0 159212 "
    "4644123 185424 40 378063952 71969 19085 1821\n"
    " 254       1 vda1 159000 17000 9400000 188000 177000 200000 422000000 4381000 0 159000 "
    "4644000 185000 40 378000000 71000 19000 1800\n"
    " 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n"
)
# 10 s later: +500 ms reading, +30000 ms writing (queues overlap), 4000 ms busy.
DISKSTATS_2 = DISKSTATS_1.replace("188512", "189012").replace("4381819", "4411819").replace(
    "159212", "163212")
MEMINFO = "MemTotal:       24684084 kB\nMemFree:        1000000 kB\nMemAvailable:   23725056 kB\n"


def _host(t: float, stat: str, diskstats: str) -> HostSample:
    mem = procfs.parse_meminfo(MEMINFO)
    return HostSample(t, procfs.parse_cpu(stat), 2, mem["MemTotal"], mem["MemAvailable"],
                      procfs.parse_diskstats(diskstats, {"vda", "zram0"}))


def test_parsers_read_captured_text() -> None:
    cpu = procfs.parse_cpu(STAT_1)
    tick = procfs.CLOCK_TICK_NS
    assert cpu.busy_ns == (133498 + 63535 + 494 + 1286) * tick
    assert cpu.idle_ns == (182912 + 8552) * tick
    disks = procfs.parse_diskstats(DISKSTATS_1, {"vda", "zram0"})
    assert list(disks) == ["vda"]  # partitions are not in the set; zram is never a disk
    assert (disks["vda"].read_ms, disks["vda"].write_ms, disks["vda"].io_ms) == (
        188512, 4381819, 159212)
    assert procfs.parse_schedstat("165220357 558159624 113\n") == 165220357
    assert procfs.vcpu_index("CPU 3/TCG\n") == 3
    assert procfs.vcpu_index("CPU 0/KVM") == 0
    assert procfs.vcpu_index("IO mon_iothread") is None
    assert procfs.parse_process_stat(
        "123 (qemu-system-x86) S 1 2 3 0 -1 4 5 6 7 8 250 50 0 0 20 0 6 0 99 1000 2560 0")[0] \
        == 300 * procfs.CLOCK_TICK_NS


def _vm(pid: int | None, vcpu: tuple[int, ...], disk: BlockStat | None = None,
        nic: NicStat | None = None) -> VMSample:
    return VMSample("id1", "vm1", len(vcpu) or 2, 512, pid, vcpu, sum(vcpu), 1000,
                    {"ide0-0": disk} if disk else {}, {"nic0": nic} if nic else {})


def test_perfmon_formulas_over_a_ten_second_interval() -> None:
    s = 1_000_000_000
    a = Snapshot(0, _host(100.0, STAT_1, DISKSTATS_1), (
        _vm(42, (1 * s, 5 * s), BlockStat(0, 0, 0, 0, 0, 0), NicStat(0, 0, 0, 0)),))
    b = Snapshot(10, _host(110.0, STAT_2, DISKSTATS_2), (
        _vm(42, (1 * s + s // 2, 14 * s), BlockStat(4096, 1 << 20, 2, 256, 1_000_000, 255_000_000),
            NicStat(1500, 3000, 10, 20)),))
    v = compute(a, b)
    assert v[r"\Hyper-V Hypervisor Virtual Processor(vm1:Hv VP 0)\% Total Run Time"] == 5.0
    assert v[r"\Hyper-V Hypervisor Virtual Processor(vm1:Hv VP 1)\% Total Run Time"] == 90.0
    assert v[r"\Hyper-V Hypervisor Virtual Processor(_Total)\% Total Run Time"] == 47.5
    # host busy +300 ticks (3 s at 100 Hz) across 2 LPs over 10 s, minus 9.5 s of vCPU time.
    busy = 300 * procfs.CLOCK_TICK_NS / 1e9
    root = max(0.0, (busy - 9.5) / 20 * 100)
    assert v[r"\Hyper-V Hypervisor Root Virtual Processor(_Total)\% Total Run Time"] == \
        pytest.approx(root)
    assert v[r"\PhysicalDisk(vda)\Avg. Disk Read Queue Length"] == pytest.approx(0.05)
    assert v[r"\PhysicalDisk(vda)\% Disk Read Time"] == pytest.approx(5.0)
    assert v[r"\PhysicalDisk(vda)\Avg. Disk Write Queue Length"] == pytest.approx(3.0)
    assert v[r"\PhysicalDisk(vda)\% Disk Write Time"] == pytest.approx(300.0)  # like Perfmon
    assert v[r"\PhysicalDisk(vda)\% Idle Time"] == pytest.approx(60.0)
    assert v[r"\PhysicalDisk(_Total)\% Idle Time"] == pytest.approx(60.0)
    assert v[r"\Memory\Available MBytes"] == 23725056 // 1024
    assert v[r"\Hyper-V Dynamic Memory VM(vm1)\Physical Memory"] == 512
    dev = r"\Hyper-V Virtual Storage Device(vm1:ide0-0)"
    assert v[dev + r"\Read Bytes/sec"] == pytest.approx(409.6)
    assert v[dev + r"\Write Operations/Sec"] == pytest.approx(25.6)
    assert v[dev + r"\Latency"] == pytest.approx(256 / 258)  # ms per operation
    nic = r"\Hyper-V Virtual Network Adapter(vm1:nic0)"
    assert v[nic + r"\Bytes Received/sec"] == 150.0
    assert v[nic + r"\Packets Sent/sec"] == 2.0


def test_a_restarted_vm_gives_no_rates_until_two_samples_of_one_process() -> None:
    a = Snapshot(0, _host(0.0, STAT_1, DISKSTATS_1), (_vm(41, (9 * 10**9,)),))
    b = Snapshot(1, _host(1.0, STAT_2, DISKSTATS_2), (_vm(42, (10**6,)),))
    v = compute(a, b)
    assert not any("vm1:Hv VP" in k for k in v)
    assert v[r"\Hyper-V Dynamic Memory VM(vm1)\Physical Memory"] == 512
    off = compute(b, Snapshot(2, _host(2.0, STAT_2, DISKSTATS_2), (_vm(None, ()),)))
    # like Perfmon, a VM without a process has no instances at all (not a 0 memory gauge)
    assert not any("vm1" in k for k in off), sorted(off)
    assert off[r"\Hyper-V Hypervisor Virtual Processor(_Total)\% Total Run Time"] == 0.0

"""Counter values from two raw samples: rates, percentages and averages over the interval.

Formulas follow Perfmon's counter types:

- ``% Total Run Time`` (Hyper-V Hypervisor Virtual Processor): time the virtual
  processor ran / elapsed time * 100; one VP can reach 100. ``_Total`` is the average
  over all virtual processors of all running VMs (Perfmon averages percentages).
- Root VP ``_Total``: host CPU time *not* spent in VMs' vCPU threads (management
  service, QEMU device emulation, other processes) / (elapsed * logical processors) * 100.
- ``PhysicalDisk``: ``Avg. Disk Read Queue Length`` = Δ time spent reading / Δ elapsed
  (PERF_COUNTER_100NS_QUEUELEN_TYPE, Little's law); ``% Disk Read Time`` is that * 100
  and, as in Perfmon, exceeds 100 when requests overlap; ``% Idle Time`` = time with no
  request outstanding / elapsed * 100. ``_Total`` sums queue lengths and averages the
  percentages over the disks.
- Per-second counters (Hyper-V Virtual Storage Device / Network Adapter): Δ / elapsed.
  ``Latency`` is the average milliseconds per read or write completed in the interval.
- Gauges (``\\Memory\\Available MBytes``, ``Physical Memory`` of a VM) come from the
  newer sample alone.

A VM has counter instances only while it holds a QEMU process (Running, Paused, Saving...),
as Perfmon shows Hyper-V instances only for running VMs: an Off VM adds no path at all,
so 10,000 defined VMs cost the history nothing (docs/architecture.md, "Scale"). A VM
contributes rates only when both samples saw the same QEMU process (same pid).
"""

from __future__ import annotations

from viridian.counters import paths as P
from viridian.counters.samples import BlockStat, DiskStat, HostSample, NicStat, Snapshot, VMSample

Values = dict[str, float]

DISK_COUNTERS = ("% Disk Read Time", "% Disk Write Time", "% Idle Time",
                 "Avg. Disk Read Queue Length", "Avg. Disk Write Queue Length")
STORAGE_COUNTERS = ("Read Bytes/sec", "Write Bytes/sec", "Read Operations/Sec",
                    "Write Operations/Sec", "Latency")
NETWORK_COUNTERS = ("Bytes Received/sec", "Bytes Sent/sec", "Packets Received/sec",
                    "Packets Sent/sec")
RUN_TIME = "% Total Run Time"
AVAILABLE_MBYTES = "Available MBytes"
PHYSICAL_MEMORY = "Physical Memory"


def compute(prev: Snapshot, cur: Snapshot) -> Values:
    """Every counter's value over the interval from ``prev`` to ``cur`` (path → value)."""
    elapsed_ns = max(1, round((cur.host.time - prev.host.time) * 1e9))
    values: Values = {}
    before = {vm.vm_id: vm for vm in prev.vms}
    vp_values: list[float] = []
    vcpu_total_ns = 0
    for vm in cur.vms:
        if not vm.running:
            continue
        values[P.path(P.VM_MEMORY, PHYSICAL_MEMORY, vm.name)] = float(vm.memory_mb)
        old = before.get(vm.vm_id)
        if old is None or old.pid != vm.pid:
            continue
        runs = vp_run_times(old, vm, elapsed_ns)
        for vp, pct in enumerate(runs):
            values[P.path(P.VP, RUN_TIME, P.vp_instance(vm.name, vp))] = pct
        vp_values += runs
        vcpu_total_ns += sum(vm.vcpu_ns) - sum(old.vcpu_ns[:len(vm.vcpu_ns)])
        values.update(storage_values(vm.name, old.disks, vm.disks, elapsed_ns))
        values.update(network_values(vm.name, old.nics, vm.nics, elapsed_ns))
    values[P.path(P.VP, RUN_TIME, P.TOTAL)] = sum(vp_values) / len(vp_values) if vp_values else 0.0
    values[P.path(P.ROOT_VP, RUN_TIME, P.TOTAL)] = root_run_time(
        prev.host, cur.host, vcpu_total_ns, elapsed_ns)
    values.update(disk_values(prev.host.disks, cur.host.disks, elapsed_ns))
    values[P.path(P.MEMORY, AVAILABLE_MBYTES)] = float(cur.host.memory_available_kb // 1024)
    return values


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def vp_run_times(old: VMSample, cur: VMSample, elapsed_ns: int) -> list[float]:
    """``% Total Run Time`` of each virtual processor (clamped to 0..100)."""
    runs = []
    for vp, now in enumerate(cur.vcpu_ns):
        was = old.vcpu_ns[vp] if vp < len(old.vcpu_ns) else now
        runs.append(min(100.0, max(0.0, _pct(now - was, elapsed_ns))))
    return runs


def root_run_time(prev: HostSample, cur: HostSample, vcpu_ns: int, elapsed_ns: int) -> float:
    """Host CPU outside the VMs' vCPU threads, as % of all logical processors (0..100)."""
    busy = cur.cpu.busy_ns - prev.cpu.busy_ns - vcpu_ns
    return min(100.0, max(0.0, _pct(busy, elapsed_ns * cur.logical_processors)))


def one_disk(old: DiskStat, new: DiskStat, elapsed_ms: float) -> list[float]:
    """The five PhysicalDisk counters, in :data:`DISK_COUNTERS` order."""
    read_q = max(0, new.read_ms - old.read_ms) / elapsed_ms
    write_q = max(0, new.write_ms - old.write_ms) / elapsed_ms
    idle = 100.0 - min(100.0, _pct(max(0, new.io_ms - old.io_ms), elapsed_ms))
    return [100.0 * read_q, 100.0 * write_q, idle, read_q, write_q]


def disk_values(prev: dict[str, DiskStat], cur: dict[str, DiskStat], elapsed_ns: int) -> Values:
    """PhysicalDisk counters of every disk present in both samples, and ``_Total``."""
    elapsed_ms = elapsed_ns / 1e6
    per_disk = {name: one_disk(prev[name], stat, elapsed_ms)
                for name, stat in sorted(cur.items()) if name in prev}
    values: Values = {}
    for name, numbers in per_disk.items():
        for counter, value in zip(DISK_COUNTERS, numbers, strict=True):
            values[P.path(P.DISK, counter, name)] = value
    if per_disk:
        count = len(per_disk)
        columns = list(zip(*per_disk.values(), strict=True))
        totals = [sum(c) / count for c in columns[:3]] + [sum(c) for c in columns[3:]]
        for counter, value in zip(DISK_COUNTERS, totals, strict=True):
            values[P.path(P.DISK, counter, P.TOTAL)] = value
    return values


def storage_values(vm: str, prev: dict[str, BlockStat], cur: dict[str, BlockStat],
                   elapsed_ns: int) -> Values:
    """Hyper-V Virtual Storage Device counters of one VM's disks (instance ``vm:disk``)."""
    seconds = elapsed_ns / 1e9
    values: Values = {}
    for disk, new in sorted(cur.items()):
        old = prev.get(disk)
        if old is None:
            continue
        ops = (new.rd_operations - old.rd_operations) + (new.wr_operations - old.wr_operations)
        busy_ns = (new.rd_total_time_ns - old.rd_total_time_ns) + (
            new.wr_total_time_ns - old.wr_total_time_ns)
        numbers = [
            (new.rd_bytes - old.rd_bytes) / seconds, (new.wr_bytes - old.wr_bytes) / seconds,
            (new.rd_operations - old.rd_operations) / seconds,
            (new.wr_operations - old.wr_operations) / seconds,
            busy_ns / 1e6 / ops if ops > 0 else 0.0,
        ]
        for counter, value in zip(STORAGE_COUNTERS, numbers, strict=True):
            values[P.path(P.STORAGE, counter, f"{vm}:{disk}")] = max(0.0, value)
    return values


def network_values(vm: str, prev: dict[str, NicStat], cur: dict[str, NicStat],
                   elapsed_ns: int) -> Values:
    """Hyper-V Virtual Network Adapter counters of one VM's adapters (``vm:nic0``)."""
    seconds = elapsed_ns / 1e9
    values: Values = {}
    for nic, new in sorted(cur.items()):
        old = prev.get(nic)
        if old is None:
            continue
        numbers = [new.rx_bytes - old.rx_bytes, new.tx_bytes - old.tx_bytes,
                   new.rx_packets - old.rx_packets, new.tx_packets - old.tx_packets]
        for counter, delta in zip(NETWORK_COUNTERS, numbers, strict=True):
            values[P.path(P.NETWORK, counter, f"{vm}:{nic}")] = max(0.0, delta / seconds)
    return values

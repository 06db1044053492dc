"""Resource metering like Hyper-V's ``Measure-VM``: usage accumulated since the last reset.

Fed one pair of consecutive raw samples at a time (:func:`accumulate`). A VM whose process
changed between the samples contributes its new process's values from zero (it started
inside the interval); the first observation after a service restart has no predecessor
and adds nothing, so usage is never negative or counted twice.

Reported (:func:`report`), with Measure-VM's names in parentheses:

- average CPU (AvgCPU): the VM's vCPU time / time it ran, as MHz-equivalent (fraction of
  one logical processor * the host's nominal MHz, as Hyper-V reports) and as percent of
  the VM's own capacity (100 % = every virtual processor busy all the time);
- average/min/max memory (AvgRAM, MinRAM, MaxRAM): assigned MB while running (viridian
  has static memory, so these differ only when the startup memory changed);
- disk I/O (AggregatedDiskDataRead/Written, operations), hot-removed disks included
  (:func:`accumulate_disks` at removal); disk allocation (TotalDisk) is added by the
  service from the disk files at report time;
- network traffic (NetworkInbound/Outbound), in bytes, where adapter counters exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from viridian.counters.samples import BlockStat, VMSample


@dataclass
class Meter:
    """Accumulated usage of one VM since ``reset_at`` (Unix seconds)."""

    reset_at: float
    running_s: float = 0.0
    cpu_ns: int = 0
    vcpu_capacity_ns: int = 0
    memory_mb_s: float = 0.0
    memory_min_mb: int | None = None
    memory_max_mb: int | None = None
    disk_read_bytes: int = 0
    disk_written_bytes: int = 0
    disk_reads: int = 0
    disk_writes: int = 0
    net_in_bytes: int = 0
    net_out_bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Meter:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _grow(old: int, new: int) -> int:
    """Increase of a cumulative value (the caller passes 0 as ``old`` for a new process)."""
    return max(0, new - old)


def accumulate(meter: Meter, prev: VMSample | None, cur: VMSample, seconds: float) -> None:
    """Add the interval ``prev`` → ``cur`` (``seconds`` long) to ``meter``."""
    if prev is None or not cur.running or seconds <= 0:
        return  # no earlier observation (e.g. first sample after a service restart)
    same = prev.pid == cur.pid
    old_vcpu = prev.vcpu_ns if same else ()
    for vp, ns in enumerate(cur.vcpu_ns):
        meter.cpu_ns += _grow(old_vcpu[vp] if vp < len(old_vcpu) else 0, ns)
    meter.running_s += seconds
    meter.vcpu_capacity_ns += round(seconds * 1e9) * max(1, cur.processors)
    meter.memory_mb_s += cur.memory_mb * seconds
    meter.memory_min_mb = min(meter.memory_min_mb or cur.memory_mb, cur.memory_mb)
    meter.memory_max_mb = max(meter.memory_max_mb or 0, cur.memory_mb)
    accumulate_disks(meter, prev.disks if same else {}, cur.disks)
    _accumulate_network(meter, prev, cur, same)


def accumulate_disks(meter: Meter, old: Mapping[str, BlockStat],
                     cur: Mapping[str, BlockStat]) -> None:
    """Add the I/O of each disk in ``cur`` since ``old`` (a disk missing from ``old`` is
    counted from zero: it was attached, or its QEMU process started, in between).

    Also used when a disk is about to be hot removed: QEMU forgets its counters with
    the device, so its I/O since the last sample is added then (the sampler then
    counts a disk re-attached at that slot from zero)."""
    for disk, b in cur.items():
        o = old.get(disk)
        meter.disk_read_bytes += _grow(o.rd_bytes if o else 0, b.rd_bytes)
        meter.disk_written_bytes += _grow(o.wr_bytes if o else 0, b.wr_bytes)
        meter.disk_reads += _grow(o.rd_operations if o else 0, b.rd_operations)
        meter.disk_writes += _grow(o.wr_operations if o else 0, b.wr_operations)


def _accumulate_network(meter: Meter, prev: VMSample, cur: VMSample, same: bool) -> None:
    """Adapter counters come from inside the guest: a missing previous value means the
    agent did not answer then, so the interval is skipped rather than counted from zero."""
    if not same:
        return
    for nic, n in cur.nics.items():
        o = prev.nics.get(nic)
        if o is not None:
            meter.net_in_bytes += _grow(o.rx_bytes, n.rx_bytes)
            meter.net_out_bytes += _grow(o.tx_bytes, n.tx_bytes)


def report(meter: Meter, host_mhz: float, now: float) -> dict[str, Any]:
    """The Measure-VM view of ``meter`` (JSON-ready)."""
    lp_fraction = meter.cpu_ns / (meter.running_s * 1e9) if meter.running_s else 0.0
    return {
        "reset_at": meter.reset_at,
        "metering_duration_s": round(max(0.0, now - meter.reset_at), 1),
        "running_s": round(meter.running_s, 1),
        "avg_cpu_mhz": round(lp_fraction * host_mhz, 1),
        "avg_cpu_pct": round(100.0 * meter.cpu_ns / meter.vcpu_capacity_ns, 2)
        if meter.vcpu_capacity_ns else 0.0,
        "cpu_seconds": round(meter.cpu_ns / 1e9, 3),
        "avg_memory_mb": round(meter.memory_mb_s / meter.running_s, 1) if meter.running_s
        else None,
        "min_memory_mb": meter.memory_min_mb,
        "max_memory_mb": meter.memory_max_mb,
        "disk_read_bytes": meter.disk_read_bytes,
        "disk_written_bytes": meter.disk_written_bytes,
        "disk_read_operations": meter.disk_reads,
        "disk_write_operations": meter.disk_writes,
        "network_inbound_bytes": meter.net_in_bytes,
        "network_outbound_bytes": meter.net_out_bytes,
    }

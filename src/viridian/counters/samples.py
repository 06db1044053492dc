"""Raw samples: cumulative values exactly as the kernel and QEMU report them.

Nothing here is a rate. A counter value is always computed from two samples
(:mod:`viridian.counters.formulas`); gauges (available memory, assigned memory) from one.
All times are nanoseconds unless a field name says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class CpuTimes:
    """The ``cpu`` line of ``/proc/stat``, in nanoseconds summed over all logical processors."""

    busy_ns: int
    """user + nice + system + irq + softirq + steal (guest time is already inside user)."""
    idle_ns: int
    """idle + iowait."""


@dataclass(frozen=True)
class DiskStat:
    """One whole block device from ``/proc/diskstats`` (kernel ``Documentation/admin-guide/
    iostats.rst``: fields 1, 3, 4, 5, 7, 8, 9, 10, 11)."""

    reads: int
    read_sectors: int
    read_ms: int
    writes: int
    write_sectors: int
    write_ms: int
    in_flight: int
    io_ms: int
    """Milliseconds during which at least one request was outstanding."""


@dataclass(frozen=True)
class HostSample:
    """Host-wide raw values at one moment (``time`` is ``time.monotonic()`` seconds)."""

    time: float
    cpu: CpuTimes
    logical_processors: int
    memory_total_kb: int
    memory_available_kb: int
    disks: dict[str, DiskStat] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockStat:
    """One virtual disk from QMP ``query-blockstats`` (``BlockDeviceStats``)."""

    rd_bytes: int
    wr_bytes: int
    rd_operations: int
    wr_operations: int
    rd_total_time_ns: int
    wr_total_time_ns: int


@dataclass(frozen=True)
class NicStat:
    """One network adapter's traffic, seen from the VM (received = into the guest)."""

    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int


@dataclass(frozen=True)
class VMSample:
    """One VM at one moment. ``pid`` identifies the QEMU run: cumulative values of a
    different pid are not comparable (they restarted from zero)."""

    vm_id: str
    name: str
    processors: int
    memory_mb: int
    pid: int | None
    """QEMU's pid while the VM holds a process (Running, Paused, ...), else None."""
    vcpu_ns: tuple[int, ...] = ()
    """CPU time of each vCPU thread, by virtual processor number."""
    process_ns: int = 0
    """CPU time of the whole QEMU process (all threads, live ones)."""
    rss_kb: int = 0
    disks: dict[str, BlockStat] = field(default_factory=dict)
    nics: dict[str, NicStat] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.pid is not None


@dataclass(frozen=True)
class Snapshot:
    """Everything sampled at one moment; ``wall_time`` is Unix seconds (for history)."""

    wall_time: float
    host: HostSample
    vms: tuple[VMSample, ...] = ()

"""Reading the host's raw values from ``/proc`` and ``/sys`` (the I/O layer).

Parsers (``parse_*``) are pure and tested on captured text; readers (``read_*``) do the
I/O. Sources: ``proc(5)`` for ``/proc/stat``, ``/proc/meminfo``, ``/proc/<pid>/task``;
the kernel's ``Documentation/admin-guide/iostats.rst`` for ``/proc/diskstats``;
``Documentation/scheduler/sched-stats.rst`` for ``schedstat`` (first field: time spent
on the CPU, in nanoseconds).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from viridian.counters.samples import CpuTimes, DiskStat, HostSample

PROC = Path("/proc")
SYS_BLOCK = Path("/sys/block")
CLOCK_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
NOT_PHYSICAL = re.compile(r"^(loop|ram|zram|nbd)\d+")
"""Block devices that are not disks (Perfmon's PhysicalDisk lists disks only)."""
VCPU_THREAD = re.compile(r"^CPU (\d+)/(?:TCG|KVM|HVF|WHPX)$")
"""QEMU's vCPU thread names with ``-name ...,debug-threads=on``."""


def parse_cpu(stat_text: str) -> CpuTimes:
    """The aggregate ``cpu`` line of ``/proc/stat``: user nice system idle iowait irq
    softirq steal guest guest_nice (USER_HZ ticks). Guest time is part of user already."""
    for line in stat_text.splitlines():
        if line.startswith("cpu "):
            ticks = [int(v) for v in line.split()[1:]] + [0] * 10
            busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
            return CpuTimes(busy * CLOCK_TICK_NS, (ticks[3] + ticks[4]) * CLOCK_TICK_NS)
    raise ValueError("/proc/stat has no 'cpu' line")


def parse_meminfo(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as field → kB."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            values[name] = int(parts[0])
    return values


def parse_diskstats(text: str, disks: set[str] | None = None) -> dict[str, DiskStat]:
    """Whole disks of ``/proc/diskstats`` (only names in ``disks`` when given; loop, ram,
    zram and nbd devices are never disks)."""
    result: dict[str, DiskStat] = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 14 or NOT_PHYSICAL.match(f[2]) or (disks is not None and f[2] not in disks):
            continue
        v = [int(x) for x in f[3:14]]
        result[f[2]] = DiskStat(reads=v[0], read_sectors=v[2], read_ms=v[3], writes=v[4],
                                write_sectors=v[6], write_ms=v[7], in_flight=v[8], io_ms=v[9])
    return result


def parse_schedstat(text: str) -> int:
    """Nanoseconds on the CPU, the first field of ``/proc/<pid>/task/<tid>/schedstat``."""
    return int(text.split()[0])


def vcpu_index(comm: str) -> int | None:
    """The virtual processor number of a QEMU thread named ``CPU n/TCG`` (or /KVM)."""
    match = VCPU_THREAD.match(comm.strip())
    return int(match.group(1)) if match else None


# --- readers --------------------------------------------------------------------------


def whole_disks() -> set[str]:
    """Names of the host's whole block devices (``/sys/block``; partitions are not there)."""
    try:
        return {entry.name for entry in SYS_BLOCK.iterdir() if not NOT_PHYSICAL.match(entry.name)}
    except OSError:
        return set()


def read_host(disks: set[str] | None = None) -> HostSample:
    """One host sample: CPU, memory, whole disks (``disks`` caches :func:`whole_disks`)."""
    now = time.monotonic()
    cpu = parse_cpu((PROC / "stat").read_text())
    mem = parse_meminfo((PROC / "meminfo").read_text())
    return HostSample(
        time=now, cpu=cpu, logical_processors=os.cpu_count() or 1,
        memory_total_kb=mem.get("MemTotal", 0), memory_available_kb=mem.get("MemAvailable", 0),
        disks=parse_diskstats((PROC / "diskstats").read_text(),
                              disks if disks is not None else whole_disks()),
    )


@dataclass
class ThreadMap:
    """Which threads of one QEMU process run which virtual processor.

    Found once per process from the thread names (``comm``) and kept: vCPU threads live
    as long as the process (no vCPU hot-plug in viridian)."""

    pid: int
    vcpu_tids: dict[int, int] = field(default_factory=dict)

    @classmethod
    def scan(cls, pid: int) -> ThreadMap:
        """Read every thread's name; raises OSError when the process is gone."""
        found = cls(pid)
        for task in (PROC / str(pid) / "task").iterdir():
            try:
                index = vcpu_index((task / "comm").read_text())
            except OSError:
                continue
            if index is not None:
                found.vcpu_tids[index] = int(task.name)
        return found


def read_vcpu_ns(threads: ThreadMap) -> tuple[int, ...]:
    """CPU time of each vCPU thread (by VP number); raises OSError when one is gone."""
    base = PROC / str(threads.pid) / "task"
    if not threads.vcpu_tids:
        return ()
    count = max(threads.vcpu_tids) + 1
    values = [0] * count
    for index, tid in threads.vcpu_tids.items():
        values[index] = parse_schedstat((base / str(tid) / "schedstat").read_text())
    return tuple(values)


def parse_process_stat(text: str) -> tuple[int, int]:
    """(utime+stime in ns, rss in kB) from ``/proc/<pid>/stat`` (fields 14, 15, 24)."""
    fields = text[text.rindex(")") + 2:].split()
    cpu = (int(fields[11]) + int(fields[12])) * CLOCK_TICK_NS
    rss_kb = int(fields[21]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    return cpu, rss_kb


def read_process(pid: int) -> tuple[int, int]:
    """(CPU ns, rss kB) of process ``pid``; raises OSError when it is gone."""
    return parse_process_stat((PROC / str(pid) / "stat").read_text())


def cpu_mhz() -> float:
    """The processors' nominal clock in MHz (``/proc/cpuinfo``), 0 when unknown."""
    try:
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    except (OSError, ValueError):
        pass
    return 0.0

"""The snapshot the analyzer judges: host facts, VM facts and counter averages.

Gathered by the service (I/O); the rules (:mod:`.rules`) are pure functions of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ProcessFact:
    """A host process that is neither viridian nor one of its VMs' QEMU processes."""

    pid: int
    name: str
    cpu_pct: float
    """CPU use over the measuring interval, % of one logical processor."""
    rss_mb: int


@dataclass(frozen=True)
class DiskFact:
    """One hard disk image of a VM."""

    path: str
    format: str
    """QEMU driver: vpc, vhdx, qcow2 or raw."""
    disk_type: str
    """fixed, dynamic, differencing (VHD chain or qcow2 overlay with a backing file), raw,
    or unknown when the file could not be read."""
    host_device: str | None
    """The host block device holding the file (``vda``), when found."""


@dataclass(frozen=True)
class VMFact:
    """One VM. ``disks`` are the images QEMU opens for it — with checkpoints, the
    overlays it runs on, not the disks named in its settings."""

    name: str
    running: bool
    memory_mb: int
    processors: int
    production: bool
    """False when the VM's notes carry the tag ``bpa:test`` (a lab or test VM)."""
    disks: tuple[DiskFact, ...] = ()
    switches: tuple[str | None, ...] = ()
    """Virtual switch of each network adapter (None = not connected)."""
    disk_iops: float | None = None
    """Average disk operations per second over the analysis window (None: no data)."""
    checkpoints: int = 0
    """How many checkpoints the VM has (each keeps its disks behind an overlay chain)."""


@dataclass(frozen=True)
class HostFact:
    memory_mb: int
    memory_available_mb: int
    host_reserve_mb: int
    logical_processors: int
    virtual_processor_ratio: int
    """The configured admission limit of running VPs per logical processor."""
    accelerator: str
    processes: tuple[ProcessFact, ...] = ()
    virtual_switches_supported: bool = False
    management_switches: tuple[tuple[str, str], ...] = ()
    """(switch, adapter) of each external switch bound to the adapter that carries the
    management address (created with ``--allow-management-os``)."""


@dataclass(frozen=True)
class CounterFact:
    """Averages over the analysis window, by host device."""

    window_s: float
    samples: int
    disk_time_pct: dict[str, float] = field(default_factory=dict)
    """% Disk Read Time + % Disk Write Time per device."""
    queue_length: dict[str, float] = field(default_factory=dict)
    """Avg. Disk Read Queue Length + Avg. Disk Write Queue Length per device."""


@dataclass(frozen=True)
class Facts:
    host: HostFact
    vms: tuple[VMFact, ...]
    counters: CounterFact

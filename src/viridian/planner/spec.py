"""What the planner is asked: workloads, candidate host shapes and settings (validated).

Every record here is built by :mod:`viridian.planner.parse` from the YAML input, which
checks each value; the records themselves hold only valid values. Memory is in MB and
disk capacity in GB (binary units, see :mod:`viridian.planner.units`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from viridian.planner.storage import DEFAULT_DRIVE_IOPS, RAID_LEVELS, RaidLevel

__all__ = ["HostShape", "PlanInput", "Settings", "Storage", "Workload"]


@dataclass(frozen=True)
class Workload:
    """``count`` identical VMs. ``cpu_percent`` is the average busy share of each of its
    virtual processors; ``iops`` are the guest's own I/Os per second (before RAID), of
    which ``read_percent`` are reads; ``growth_percent`` grows the disk size and IOPS each
    year over the planning horizon."""

    name: str
    memory_mb: float
    processors: int
    cpu_percent: float
    iops: float
    read_percent: float
    disk_gb: float
    growth_percent: float = 0.0
    count: int = 1


@dataclass(frozen=True)
class Storage:
    """A host's local drive array. ``installed`` fixes the drive count (None: as many as the
    load needs, up to ``bays``); ``drive_iops`` overrides the drive type's default."""

    drive: str
    drive_size_gb: float
    raid_level: int
    bays: int
    drive_cost: float = 0.0
    installed: int | None = None
    drive_iops: float | None = None

    @property
    def raid(self) -> RaidLevel:
        return RAID_LEVELS[self.raid_level]

    @property
    def drive_limit(self) -> int:
        """The most drives one host can have: the installed count when fixed, else the bays."""
        return self.installed if self.installed is not None else self.bays


@dataclass(frozen=True)
class HostShape:
    """One candidate host: CPU, memory, storage and price (without drives)."""

    name: str
    sockets: int
    cores_per_socket: int
    memory_mb: float
    storage: Storage
    cost: float
    threads_per_core: int = 1
    ghz: float | None = None

    @property
    def logical_processors(self) -> int:
        return self.sockets * self.cores_per_socket * self.threads_per_core


@dataclass(frozen=True)
class Settings:
    """Planning rules. Defaults follow the seed: 512 MB host reserve, 8:1 VP:LP, N+1.

    Per-VM memory overhead is Hyper-V's documented figure: 32 MB for the first GB of the
    VM's memory plus 8 MB for each further GB (rounded up).
    """

    host_reserve_mb: float = 512.0
    vm_overhead_first_gb_mb: float = 32.0
    vm_overhead_per_gb_mb: float = 8.0
    max_vp_per_lp: float = 8.0
    max_cpu_percent: float = 80.0
    failover_spares: int = 1
    horizon_years: float = 3.0
    max_hosts: int = 64
    reference_ghz: float | None = None
    currency: str = ""
    drive_iops: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_DRIVE_IOPS))


@dataclass(frozen=True)
class PlanInput:
    workloads: tuple[Workload, ...]
    hosts: tuple[HostShape, ...]
    settings: Settings = field(default_factory=Settings)

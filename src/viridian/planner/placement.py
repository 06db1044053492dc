"""Placing VMs on identical hosts: per-VM demand, one host's limits, and bin packing.

Pure functions. A VM is never split across hosts. :func:`fewest_hosts` tries host
counts from a lower bound upwards; for each count it places the VMs largest first, each
on the least loaded host it fits (worst fit, which balances the hosts), falling back to
first fit. Packing is a heuristic: the count found is achievable, and at most rarely one
more than the theoretical optimum.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from viridian.planner.spec import HostShape, Settings, Workload
from viridian.planner.storage import DriveNeed, drives_needed, functional_iops
from viridian.planner.units import round_up

__all__ = ["Demand", "HostLimits", "Load", "demands", "fewest_hosts", "pack", "vm_overhead_mb"]


@dataclass(frozen=True)
class Demand:
    """What one VM asks of its host (disk and IOPS already grown over the horizon)."""

    name: str
    workload: str
    memory_mb: float
    overhead_mb: float
    processors: int
    cpu_lp: float  # logical processors' worth of CPU time
    guest_iops: float
    functional_iops: float  # after the host's RAID write penalty
    disk_gb: float


def vm_overhead_mb(memory_mb: float, settings: Settings) -> float:
    """Hyper-V's per-VM overhead: first GB + each further (started) GB."""
    further_gb = round_up(max(memory_mb / 1024 - 1, 0))
    return settings.vm_overhead_first_gb_mb + further_gb * settings.vm_overhead_per_gb_mb


def growth_factor(workload: Workload, settings: Settings) -> float:
    return float((1 + workload.growth_percent / 100) ** settings.horizon_years)


def demands(workloads: Sequence[Workload], host: HostShape, settings: Settings) -> list[Demand]:
    """One :class:`Demand` per VM (``count`` per workload), as seen from ``host``."""
    return [
        replace(_demand(workload, host, settings), name=_instance_name(workload, index))
        for workload in workloads
        for index in range(workload.count)
    ]


def _instance_name(workload: Workload, index: int) -> str:
    return workload.name if workload.count == 1 else f"{workload.name} #{index + 1}"


def _demand(workload: Workload, host: HostShape, settings: Settings) -> Demand:
    grow = growth_factor(workload, settings)
    speed = (settings.reference_ghz / host.ghz) if settings.reference_ghz and host.ghz else 1.0
    iops = workload.iops * grow
    return Demand(
        name=workload.name,
        workload=workload.name,
        memory_mb=workload.memory_mb,
        overhead_mb=vm_overhead_mb(workload.memory_mb, settings),
        processors=workload.processors,
        cpu_lp=workload.processors * workload.cpu_percent / 100 * speed,
        guest_iops=iops,
        functional_iops=functional_iops(iops, workload.read_percent, host.storage.raid),
        disk_gb=workload.disk_gb * grow,
    )


@dataclass(frozen=True)
class Load:
    """What a set of VMs asks of one host, summed."""

    vms: tuple[Demand, ...] = ()
    memory_mb: float = 0.0
    overhead_mb: float = 0.0
    processors: int = 0
    cpu_lp: float = 0.0
    guest_iops: float = 0.0
    functional_iops: float = 0.0
    disk_gb: float = 0.0

    def add(self, vm: Demand) -> Load:
        return Load(
            vms=(*self.vms, vm),
            memory_mb=self.memory_mb + vm.memory_mb,
            overhead_mb=self.overhead_mb + vm.overhead_mb,
            processors=self.processors + vm.processors,
            cpu_lp=self.cpu_lp + vm.cpu_lp,
            guest_iops=self.guest_iops + vm.guest_iops,
            functional_iops=self.functional_iops + vm.functional_iops,
            disk_gb=self.disk_gb + vm.disk_gb,
        )


@dataclass(frozen=True)
class HostLimits:
    """What one host of ``shape`` can carry under ``settings``; ``drive_limit`` None = any
    number of drives (used to find what CPU and memory alone would need)."""

    shape: HostShape
    settings: Settings
    drive_limit: int | None

    @property
    def drive_iops(self) -> float:
        storage = self.shape.storage
        return storage.drive_iops or self.settings.drive_iops[storage.drive]

    @property
    def memory_mb(self) -> float:
        """Memory for VMs: the host's memory less the host reserve."""
        return self.shape.memory_mb - self.settings.host_reserve_mb

    @property
    def processors(self) -> float:
        return self.settings.max_vp_per_lp * self.shape.logical_processors

    @property
    def cpu_lp(self) -> float:
        return self.shape.logical_processors * self.settings.max_cpu_percent / 100

    def drives(self, load: Load) -> DriveNeed:
        storage = self.shape.storage
        return drives_needed(
            load.functional_iops, load.disk_gb, self.drive_iops, storage.drive_size_gb, storage.raid
        )

    def shares(self, load: Load) -> dict[str, float]:
        """Each limited resource's used fraction (1.0 = full) under ``load``."""
        drives = self.drive_limit or self.shape.storage.bays
        return {
            "memory": (load.memory_mb + load.overhead_mb) / self.memory_mb,
            "VP:LP ratio": load.processors / self.processors,
            "CPU": load.cpu_lp / self.cpu_lp,
            "drives": self.drives(load).total / drives if load.vms else 0.0,
        }

    def fits(self, load: Load) -> bool:
        too_many_vps = any(vm.processors > self.shape.logical_processors for vm in load.vms)
        shares = self.shares(load)
        if self.drive_limit is None:
            del shares["drives"]
        return not too_many_vps and max(shares.values()) <= 1 + 1e-9


def pack(vms: Sequence[Demand], hosts: int, limits: HostLimits) -> list[Load] | None:
    """Place every VM on one of ``hosts`` hosts within ``limits``; None when it cannot."""
    ordered = sorted(vms, key=lambda vm: max(limits.shares(Load().add(vm)).values()), reverse=True)
    return _place(ordered, hosts, limits, balance=True) or _place(
        ordered, hosts, limits, balance=False
    )


def _place(
    vms: Sequence[Demand], hosts: int, limits: HostLimits, balance: bool
) -> list[Load] | None:
    loads = [Load() for _ in range(hosts)]
    for vm in vms:
        options = [i for i, load in enumerate(loads) if limits.fits(load.add(vm))]
        if not options:
            return None
        pick = min(options, key=lambda i: _fullness(limits, loads[i])) if balance else options[0]
        loads[pick] = loads[pick].add(vm)
    return loads


def _fullness(limits: HostLimits, load: Load) -> float:
    return max(limits.shares(load).values()) if load.vms else 0.0


def fewest_hosts(vms: Sequence[Demand], limits: HostLimits, most: int) -> list[Load] | None:
    """The placement on the fewest hosts (at most ``most``) that carries every VM."""
    total = Load()
    for vm in vms:
        total = total.add(vm)
    shares = limits.shares(total)
    shares.pop("drives")
    start = max(1, *(math.ceil(share - 1e-9) for share in shares.values()))
    for hosts in range(start, most + 1):
        loads = pack(vms, hosts, limits)
        if loads is not None:
            return loads
    return None

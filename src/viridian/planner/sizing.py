"""The plan: for each candidate host shape, hosts needed (N+1), per-host usage, drives,
cost, and what does not fit (with numbers); then the recommendation.

Sizing model (pure, documented so the numbers can be checked by hand):

* Failover: with ``failover_spares`` hosts down (1 = N+1), the remaining hosts must still
  run every VM. Hosts needed = the fewest hosts that carry every VM + the spares. Each
  host is sized for the load it carries in that failover state (its worst case); the
  "normal" state spreads the same VMs over all the hosts.
* Memory per host = host reserve + the VMs' memory + each VM's overhead ≤ host memory.
* VP:LP: the VMs' virtual processors ≤ ``max_vp_per_lp`` x the host's logical processors
  (sockets x cores x threads), and no VM has more VPs than the host has LPs.
* CPU: Σ VPs x average CPU % (x reference GHz / host GHz when both are given) ≤
  ``max_cpu_percent`` of the host's LPs.
* Drives: every host gets the same array, sized for its most loaded host: enough drives
  for the functional IOPS (reads + writes x RAID write penalty) and for the disk capacity
  (usable after RAID), within the host's bays (or the fixed ``drives`` count).
* Cost = hosts x (host cost + drives per host x drive cost).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import astuple, dataclass

from viridian.planner.placement import Demand, HostLimits, Load, demands, fewest_hosts, pack
from viridian.planner.spec import HostShape, PlanInput, Settings
from viridian.planner.storage import DriveNeed
from viridian.planner.units import format_gb, format_mb

__all__ = ["CandidatePlan", "Cost", "HostUsage", "PlanResult", "plan"]


@dataclass(frozen=True)
class HostUsage:
    """One host's share of the VMs and what it uses of the host."""

    vms: tuple[str, ...]
    memory_total_mb: float
    reserve_mb: float
    vm_memory_mb: float
    overhead_mb: float
    virtual_processors: int
    logical_processors: int
    cpu_percent: float
    guest_iops: float
    functional_iops: float
    capacity_gb: float
    drive_need: DriveNeed
    drives: int
    iops_capacity: float  # what the host's drives deliver
    usable_gb: float  # what the host's array holds after RAID

    @property
    def memory_used_mb(self) -> float:
        return self.reserve_mb + self.vm_memory_mb + self.overhead_mb

    @property
    def memory_percent(self) -> float:
        return 100 * self.memory_used_mb / self.memory_total_mb

    @property
    def vp_ratio(self) -> float:
        return self.virtual_processors / self.logical_processors

    @property
    def iops_percent(self) -> float:
        return 100 * self.functional_iops / self.iops_capacity if self.iops_capacity else 0.0

    @property
    def capacity_percent(self) -> float:
        return 100 * self.capacity_gb / self.usable_gb if self.usable_gb else 0.0


@dataclass(frozen=True)
class Cost:
    hosts: float
    drives: float

    @property
    def total(self) -> float:
        return self.hosts + self.drives


@dataclass(frozen=True)
class CandidatePlan:
    """The answer for one host shape. ``hosts`` is 0 when no placement exists at all."""

    shape: HostShape
    fits: bool
    hosts: int
    spares: int
    drives_per_host: int
    drive_iops: float
    drive_need: DriveNeed  # of the most loaded host
    failover: tuple[HostUsage, ...]
    normal: tuple[HostUsage, ...]
    cost: Cost
    limited_by: str
    problems: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class PlanResult:
    request: PlanInput
    candidates: tuple[CandidatePlan, ...]
    recommended: str | None  # the cheapest candidate that fits

    @property
    def vms(self) -> int:
        return sum(workload.count for workload in self.request.workloads)


def plan(request: PlanInput) -> PlanResult:
    """Size every candidate and recommend the cheapest that fits (ties: fewer hosts)."""
    candidates = tuple(plan_candidate(shape, request) for shape in request.hosts)
    fitting = [c for c in candidates if c.fits]
    best = min(fitting, key=lambda c: (c.cost.total, c.hosts), default=None)
    return PlanResult(request, candidates, best.shape.name if best else None)


def plan_candidate(shape: HostShape, request: PlanInput) -> CandidatePlan:
    """Size one host shape for every workload (see the module docstring)."""
    settings = request.settings
    vms = demands(request.workloads, shape, settings)
    free = HostLimits(shape, settings, drive_limit=None)
    problems = _single_vm_problems(vms, free)
    most = settings.max_hosts - settings.failover_spares
    if problems:
        return _impossible(shape, settings, free, problems)
    unlimited = fewest_hosts(vms, free, most)
    if unlimited is None:
        return _impossible(shape, settings, free, [_too_many_hosts(settings)])
    limited = fewest_hosts(vms, HostLimits(shape, settings, shape.storage.drive_limit), most)
    if limited is None:
        return _over_drive_limit(shape, request, vms, unlimited)
    return _sized(
        shape,
        settings,
        vms,
        limited,
        problems=[],
        notes=_storage_bound_notes(shape, settings, free, limited, unlimited),
    )


def _single_vm_problems(vms: Sequence[Demand], limits: HostLimits) -> list[str]:
    seen: dict[str, list[str]] = {}
    for vm in vms:
        if vm.workload not in seen:
            seen[vm.workload] = _vm_misfits(vm, limits)
    return [problem for problems in seen.values() for problem in problems]


def _vm_misfits(vm: Demand, limits: HostLimits) -> list[str]:
    shape, settings = limits.shape, limits.settings
    lps = shape.logical_processors
    problems = []
    if vm.memory_mb + vm.overhead_mb > limits.memory_mb:
        problems.append(
            f"workload {vm.workload!r} needs {format_mb(vm.memory_mb + vm.overhead_mb)} "
            f"({format_mb(vm.memory_mb)} + {vm.overhead_mb:.0f} MB overhead) but a host offers "
            f"{format_mb(limits.memory_mb)} after the {settings.host_reserve_mb:.0f} MB reserve"
        )
    if vm.processors > lps:
        problems.append(
            f"workload {vm.workload!r} has {vm.processors} virtual processors; a VM cannot have "
            f"more than the host's {lps} logical processors"
        )
    if vm.cpu_lp > limits.cpu_lp + 1e-9:
        problems.append(
            f"workload {vm.workload!r} needs {vm.cpu_lp:.2f} LPs of CPU time but a host offers "
            f"{limits.cpu_lp:.2f} ({lps} LPs at the {settings.max_cpu_percent:g} % ceiling)"
        )
    return problems


def _too_many_hosts(settings: Settings) -> str:
    return (
        f"the workloads need more than {settings.max_hosts} hosts (max_hosts, including "
        f"{settings.failover_spares} failover spare(s))"
    )


def _impossible(
    shape: HostShape, settings: Settings, limits: HostLimits, problems: list[str]
) -> CandidatePlan:
    nothing = DriveNeed(0, 0, 0)
    return CandidatePlan(
        shape,
        False,
        0,
        settings.failover_spares,
        0,
        limits.drive_iops,
        nothing,
        (),
        (),
        Cost(0.0, 0.0),
        "-",
        tuple(problems),
        (),
    )


def _over_drive_limit(
    shape: HostShape, request: PlanInput, vms: Sequence[Demand], unlimited: list[Load]
) -> CandidatePlan:
    """No host count works within the drive limit: size as if drives were unlimited and
    say how many more drives (or bays) each host would need."""
    settings = request.settings
    free = HostLimits(shape, settings, None)
    worst = _worst_need(free, unlimited)
    problem = _drive_shortfall(shape, free, unlimited, worst)
    return _sized(
        shape,
        settings,
        vms,
        unlimited,
        problems=[problem],
        notes=[],
        drives=worst.total,
        installed=shape.storage.drive_limit,
    )


def _worst_need(limits: HostLimits, loads: Sequence[Load]) -> DriveNeed:
    """The drives the most demanding host needs: each figure is the largest of any host."""
    needs = [limits.drives(load) for load in loads if load.vms] or [DriveNeed(0, 0, 0)]
    return DriveNeed(*(max(figures) for figures in zip(*map(astuple, needs), strict=True)))


def _drive_shortfall(
    shape: HostShape, limits: HostLimits, loads: Sequence[Load], need: DriveNeed
) -> str:
    storage = shape.storage
    have = storage.drive_limit
    what = "drives installed" if storage.installed is not None else "drive bays"
    text = (
        f"each host needs {need.total} drives ({storage.drive}, RAID {storage.raid_level}: "
        f"{need.for_iops} for {max(ld.functional_iops for ld in loads):,.0f} functional IOPS "
        f"at {limits.drive_iops:g} IOPS per drive, {need.for_capacity} for "
        f"{format_gb(max(ld.disk_gb for ld in loads))}) but has {have} {what}: "
        f"{need.total - have} more "
        f"{'drives' if storage.installed is not None else 'bays'} needed"
    )
    if storage.installed is not None and need.total > storage.bays:
        text += f"; it has only {storage.bays} bays: {need.total - storage.bays} more bays needed"
    return text + _single_vm_cause(limits, loads, have)


def _single_vm_cause(limits: HostLimits, loads: Sequence[Load], have: int) -> str:
    for load in loads:
        for vm in load.vms:
            alone = limits.drives(Load().add(vm)).total
            if alone > have:
                return f" (workload {vm.workload!r} alone needs {alone}, so more hosts cannot help)"
    return ""


def _storage_bound_notes(
    shape: HostShape,
    settings: Settings,
    free: HostLimits,
    limited: list[Load],
    unlimited: list[Load],
) -> list[str]:
    if len(limited) <= len(unlimited):
        return []
    spares = settings.failover_spares
    need = _worst_need(free, unlimited).total
    fits = "within" if need <= shape.storage.bays else "more than"
    return [
        f"drives set the host count: with at most {shape.storage.drive_limit} drives per host "
        f"it takes {len(limited) + spares} hosts; CPU and memory alone need "
        f"{len(unlimited) + spares} hosts with {need} drives each ({fits} the "
        f"{shape.storage.bays} bays)"
    ]


def _sized(
    shape: HostShape,
    settings: Settings,
    vms: Sequence[Demand],
    carrying: list[Load],
    problems: list[str],
    notes: list[str],
    drives: int | None = None,
    installed: int | None = None,
) -> CandidatePlan:
    """The plan for the placement ``carrying``; ``drives`` overrides the drives per host
    (the need when it exceeds the host) and ``installed`` the drives the per-host usage is
    measured against (what the host really holds, when that is too few)."""
    free = HostLimits(shape, settings, None)
    spares = settings.failover_spares
    total_hosts = len(carrying) + spares
    normal = _normal_state(vms, total_hosts, free, carrying)
    worst = _worst_need(free, [*carrying, *normal])
    per_host = drives if drives is not None else (shape.storage.installed or worst.total)
    real = installed if installed is not None else per_host
    usage = [_usage(free, load, real) for load in carrying]
    return CandidatePlan(
        shape=shape,
        fits=not problems,
        hosts=total_hosts,
        spares=spares,
        drives_per_host=per_host,
        drive_iops=free.drive_iops,
        drive_need=worst,
        failover=tuple(usage),
        normal=tuple(_usage(free, load, real) for load in normal),
        cost=Cost(total_hosts * shape.cost, total_hosts * per_host * shape.storage.drive_cost),
        limited_by=_limited_by(free, carrying),
        problems=tuple(problems),
        notes=tuple(notes),
    )


def _normal_state(
    vms: Sequence[Demand], hosts: int, limits: HostLimits, carrying: list[Load]
) -> list[Load]:
    """All hosts up: the VMs spread over every host (the failover placement plus idle
    spares if spreading fails, which cannot make any host busier)."""
    spread = pack(vms, hosts, limits)
    return (
        spread
        if spread is not None
        else [*carrying, *(Load() for _ in range(hosts - len(carrying)))]
    )


def _usage(limits: HostLimits, load: Load, drives: int) -> HostUsage:
    shape, settings = limits.shape, limits.settings
    storage = shape.storage
    return HostUsage(
        vms=tuple(vm.name for vm in load.vms),
        memory_total_mb=shape.memory_mb,
        reserve_mb=settings.host_reserve_mb,
        vm_memory_mb=load.memory_mb,
        overhead_mb=load.overhead_mb,
        virtual_processors=load.processors,
        logical_processors=shape.logical_processors,
        cpu_percent=100 * load.cpu_lp / shape.logical_processors,
        guest_iops=load.guest_iops,
        functional_iops=load.functional_iops,
        capacity_gb=load.disk_gb,
        drive_need=limits.drives(load) if load.vms else DriveNeed(0, 0, 0),
        drives=drives,
        iops_capacity=drives * limits.drive_iops,
        usable_gb=storage.raid.usable_drives(drives) * storage.drive_size_gb,
    )


def _limited_by(limits: HostLimits, loads: Sequence[Load]) -> str:
    """The resource closest to its limit on the busiest host (what sets the host count)."""
    sized = HostLimits(limits.shape, limits.settings, limits.shape.storage.drive_limit)
    peaks: dict[str, float] = {}
    for load in loads:
        for resource, share in sized.shares(load).items():
            peaks[resource] = max(peaks.get(resource, 0.0), share)
    return max(peaks, key=lambda resource: peaks[resource]) if peaks else "-"

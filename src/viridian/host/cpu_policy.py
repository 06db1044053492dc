"""Processor reserve, limit and weight of running VMs → cgroup values (pure).

Hyper-V's three knobs, per VM (Hyper-V Manager, "Processor" page):

* **limit %** caps the VM at that share of its own virtual processors' capacity:
  limit 25 % on a 2-VP VM = 0.5 logical processor. A cgroup CPU quota per period
  (v1 ``cpu.cfs_quota_us``/``cpu.cfs_period_us``, v2 ``cpu.max``) does exactly that:
  ``quota = limit/100 x VPs x period``. 100 % means no cap (a VM cannot use more than
  its VPs anyway). The quota covers the whole QEMU process (vCPU threads and QEMU's own
  I/O threads alike). The kernel's smallest quota is 1 ms, so limit 0 % behaves as 1 %
  of one VP per 100 ms period.
* **weight** (1..10000, default 100) splits contended CPU between VMs proportionally.
* **reserve %** guarantees a VM that share of its own VPs' capacity: reserve 50 % on a
  2-VP VM = 1 logical processor. Admission keeps the reserves of running VMs within
  the capacity of the logical processors VMs run on
  (:func:`viridian.host.admission.check_admission`); under contention the guarantee
  comes from the cgroup weights, derived as follows.

The weight formula. With ``C`` = logical processors VMs run on, each running VM *i*
has a reserved fraction of that capacity ``r_i = reserve_i/100 x VPs_i / C`` (so
``R = sum(r) <= 1``) and a weight ``w_i`` (``W = sum(w)``). When every VM is busy, Hyper-V
first gives each VM its reserve and splits the rest by weight, i.e. VM *i* gets::

    f_i = r_i + (1 - R) x w_i / W

of the capacity. CFS (and cgroup v2's ``cpu.weight``) gives sibling groups CPU in
proportion to their shares, so the shares are set proportional to ``f_i``. When only
some VMs are busy, each busy VM's part is ``f_i / sum(f of the busy ones) >= f_i >= r_i``:
the reserve holds for any set of competing VMs. Without reserves ``f_i`` is proportional
to ``w_i``, so the shares are simply proportional to the weights.

Scale: v1 ``cpu.shares = f_i x W x 1024/100`` — Hyper-V's default weight 100 maps to
the kernel's default 1024 when no VM has a reserve — scaled down, if needed, so that the
largest value fits 262144 (the kernel's maximum), never below 2; v2
``cpu.weight = f_i x W`` (weight 100 → 100, the kernel's default), scaled into 1..10000.

The guarantee holds among VMs: the ``viridian`` cgroup that holds them competes with the
host's other processes as one group of default weight.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "CPU_PERIOD_US",
    "CpuControl",
    "VMCpuDemand",
    "contention_fractions",
    "cpu_controls",
    "demand_from_settings",
    "quota_us",
    "reserved_processors",
]

CPU_PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel refuses smaller quotas
V1_SHARES_MIN, V1_SHARES_MAX, V1_SHARES_DEFAULT = 2, 262_144, 1024
V2_WEIGHT_MIN, V2_WEIGHT_MAX = 1, 10_000
HYPERV_WEIGHT_DEFAULT = 100


@dataclass(frozen=True)
class VMCpuDemand:
    """One running VM's processor settings."""

    vm_id: str
    processors: int
    reserve_pct: int
    limit_pct: int
    weight: int


@dataclass(frozen=True)
class CpuControl:
    """What to write into one VM's cgroup.

    ``fraction`` is ``f_i`` (the VM's part of the VMs' capacity when every VM is busy);
    ``quota_us`` None means no cap.
    """

    fraction: float
    quota_us: int | None
    period_us: int
    shares_v1: int
    weight_v2: int
    reserved_processors: float


def reserved_processors(processors: int, reserve_pct: int) -> float:
    """Logical processors a reserve guarantees: reserve 50 % of 2 VPs = 1.0."""
    return reserve_pct * processors / 100


def quota_us(processors: int, limit_pct: int, period_us: int = CPU_PERIOD_US) -> int | None:
    """CPU time per period the limit allows the VM, or None (no cap) at 100 %."""
    if limit_pct >= 100:
        return None
    return max(MIN_QUOTA_US, round(limit_pct * processors * period_us / 100))


def contention_fractions(demands: Iterable[VMCpuDemand], capacity: int) -> dict[str, float]:
    """``f_i`` of every VM (see the module docs); they sum to 1 (for a non-empty input).

    ``capacity`` is the number of logical processors the VMs run on (at least 1).
    Reserves beyond the capacity (admission prevents that) are scaled down to fit.
    """
    demands = list(demands)
    if not demands:
        return {}
    reserves = {d.vm_id: reserved_processors(d.processors, d.reserve_pct) / max(capacity, 1)
                for d in demands}
    total_reserve = sum(reserves.values())
    if total_reserve > 1:
        reserves = {vm: r / total_reserve for vm, r in reserves.items()}
        total_reserve = 1.0
    total_weight = sum(d.weight for d in demands)
    return {d.vm_id: reserves[d.vm_id] + (1 - total_reserve) * d.weight / total_weight
            for d in demands}


def cpu_controls(demands: Iterable[VMCpuDemand], capacity: int) -> dict[str, CpuControl]:
    """The cgroup values of every running VM, computed together (weights are relative)."""
    demands = list(demands)
    fractions = contention_fractions(demands, capacity)
    if not fractions:
        return {}
    total_weight = sum(d.weight for d in demands)
    top = max(fractions.values())
    v1_scale = min(total_weight * V1_SHARES_DEFAULT / HYPERV_WEIGHT_DEFAULT, V1_SHARES_MAX / top)
    v2_scale = min(float(total_weight), V2_WEIGHT_MAX / top)
    return {
        d.vm_id: CpuControl(
            fraction=fractions[d.vm_id],
            quota_us=quota_us(d.processors, d.limit_pct),
            period_us=CPU_PERIOD_US,
            shares_v1=_clamp(round(fractions[d.vm_id] * v1_scale), V1_SHARES_MIN, V1_SHARES_MAX),
            weight_v2=_clamp(round(fractions[d.vm_id] * v2_scale), V2_WEIGHT_MIN, V2_WEIGHT_MAX),
            reserved_processors=reserved_processors(d.processors, d.reserve_pct),
        )
        for d in demands
    }


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def demand_from_settings(vm_id: str, settings: Mapping[str, object]) -> VMCpuDemand:
    """A :class:`VMCpuDemand` from a settings dict (docs/api.md shape)."""
    cpu = settings["processor"]
    assert isinstance(cpu, Mapping)
    return VMCpuDemand(vm_id, int(cpu["count"]), int(cpu["reserve_pct"]),
                       int(cpu["limit_pct"]), int(cpu["weight"]))

"""Admission control, Hyper-V style (pure).

A VM may start only if:

* memory is never overcommitted: memory assigned to running VMs + the new VM's memory +
  the host reserve (default 512 MB) must fit in host memory with at least
  ``MIN_FREE_MB`` (32 MB) still free;
* its virtual processors do not exceed the host's logical processors;
* the virtual processors of all running VMs stay within ``ratio`` (default 8) x logical
  processors — the supported 8:1 ratio of Hyper-V 2008;
* processor reserves are never overcommitted: the logical processors reserved by running
  VMs plus the new VM's reserve (reserve % x its virtual processors) must fit in the
  logical processors VMs run on (100 % of that capacity). How the reserve is then
  guaranteed under contention: :mod:`viridian.host.cpu_policy`.

Every refusal states the numbers it compared.
"""

from __future__ import annotations

from dataclasses import dataclass

from viridian.errors import AdmissionRefused

DEFAULT_HOST_RESERVE_MB = 512
MIN_FREE_MB = 32
DEFAULT_VP_RATIO = 8


@dataclass(frozen=True)
class AdmissionPolicy:
    host_reserve_mb: int = DEFAULT_HOST_RESERVE_MB
    virtual_processor_ratio: int = DEFAULT_VP_RATIO


@dataclass(frozen=True)
class HostLoad:
    """What the host has and what running VMs already use."""

    memory_mb: int
    logical_processors: int
    assigned_memory_mb: int
    running_virtual_processors: int
    reserved_processors: float = 0.0
    """Logical processors reserved by running VMs (sum of reserve % x VPs)."""
    vm_processor_capacity: int = 0
    """Logical processors VMs run on (0: all of ``logical_processors``)."""


def check_admission(
    vm_name: str, memory_mb: int, processors: int, load: HostLoad, policy: AdmissionPolicy,
    reserve_pct: int = 0,
) -> None:
    """Raise ``AdmissionRefused`` naming the numbers if ``vm_name`` may not start now."""
    _check_memory(vm_name, memory_mb, load, policy)
    _check_processors(vm_name, processors, load, policy)
    check_reserve(vm_name, processors, reserve_pct, load)


def check_reserve(vm: str, processors: int, reserve_pct: int, load: HostLoad,
                  action: str = "start") -> None:
    """Raise ``AdmissionRefused`` unless the VM's processor reserve still fits.

    ``load`` must not count the VM itself (for a running VM whose reserve changes).
    """
    if reserve_pct == 0:
        return
    capacity = load.vm_processor_capacity or load.logical_processors
    wanted = reserve_pct * processors / 100
    total = load.reserved_processors + wanted
    if total > capacity + 1e-9:
        raise AdmissionRefused(
            f"cannot {action} VM '{vm}': its processor reserve of {reserve_pct} % of "
            f"{processors} virtual processor(s) is {wanted:.2f} logical processors; with the "
            f"{load.reserved_processors:.2f} reserved by running VMs that makes {total:.2f}, "
            f"more than the {capacity} logical processor(s) VMs run on "
            f"({100 * total / capacity:.0f} % > 100 %); nothing was changed",
            vm=vm, reserve_pct=reserve_pct, processors=processors,
            reserved_processors=round(load.reserved_processors, 4),
            capacity=capacity,
        )


def _check_memory(vm: str, memory_mb: int, load: HostLoad, policy: AdmissionPolicy) -> None:
    needed = load.assigned_memory_mb + memory_mb + policy.host_reserve_mb + MIN_FREE_MB
    if needed > load.memory_mb:
        free = load.memory_mb - load.assigned_memory_mb - policy.host_reserve_mb
        raise AdmissionRefused(
            f"cannot start VM '{vm}': it needs {memory_mb} MB of memory but only "
            f"{max(free - MIN_FREE_MB, 0)} MB can be assigned (host {load.memory_mb} MB - "
            f"running VMs {load.assigned_memory_mb} MB - host reserve "
            f"{policy.host_reserve_mb} MB - {MIN_FREE_MB} MB that must stay free); "
            "nothing was changed",
            vm=vm,
            requested_mb=memory_mb,
            host_memory_mb=load.memory_mb,
            assigned_memory_mb=load.assigned_memory_mb,
            host_reserve_mb=policy.host_reserve_mb,
            min_free_mb=MIN_FREE_MB,
        )


def _check_processors(vm: str, processors: int, load: HostLoad, policy: AdmissionPolicy) -> None:
    if processors > load.logical_processors:
        raise AdmissionRefused(
            f"cannot start VM '{vm}': it has {processors} virtual processors but the host has "
            f"only {load.logical_processors} logical processors; nothing was changed",
            vm=vm,
            processors=processors,
            logical_processors=load.logical_processors,
        )
    limit = policy.virtual_processor_ratio * load.logical_processors
    total = load.running_virtual_processors + processors
    if total > limit:
        raise AdmissionRefused(
            f"cannot start VM '{vm}': running VMs would have {total} virtual processors, "
            f"more than {policy.virtual_processor_ratio} per logical processor "
            f"({limit} on this host with {load.logical_processors}); nothing was changed",
            vm=vm,
            running_virtual_processors=load.running_virtual_processors,
            processors=processors,
            limit=limit,
        )

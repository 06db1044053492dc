"""Processor reserve/limit/weight and the memory bound of running VMs, enforced in cgroups.

A capability (:mod:`viridian.service.capability`): when a VM's QEMU is adopted
(started, restored, or found again after a service restart) its process goes into
``viridian/<vm-id>`` (:mod:`viridian.host.cgroups`) and the CPU values of *every* running
VM are recomputed (weights are relative, :mod:`viridian.host.cpu_policy`); when QEMU
ends the group is removed and the others recomputed. Changing a running VM's
reserve/limit/weight applies at once (:meth:`ResourceControl.refresh`).

The processors VMs run on: all logical processors the service may use, or the list in
``$VIRIDIAN_VM_CPUS`` (``"0"``, ``"0-3,6"``): every thread of each QEMU is then pinned
there with ``sched_setaffinity`` (threads QEMU starts later inherit it). Their number is
the capacity that reserves are admitted against.

A cgroup the kernel refuses does not stop a VM: ``vm show`` then says
``"enforced": false`` with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viridian.errors import BadRequest, ViridianError
from viridian.host.admission import HostLoad, check_reserve
from viridian.host.cgroups import CgroupHost, memory_limit_bytes, probe_cgroups
from viridian.host.cpu_policy import CpuControl, VMCpuDemand, cpu_controls
from viridian.model import VMSettings
from viridian.service.capability import Capability, SettingsChange
from viridian.service.context import ServiceContext

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

VM_CPUS_ENV = "VIRIDIAN_VM_CPUS"
REMOVE_RETRY_S = 0.2
REMOVE_ATTEMPTS = 50


def parse_cpu_list(text: str) -> frozenset[int]:
    """``"0-3,6"`` → {0, 1, 2, 3, 6} (the kernel's cpu list format). Raises BadRequest."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        cpus.clear()
    if not cpus:
        raise BadRequest(f"invalid {VM_CPUS_ENV}={text!r}; allowed: a CPU list like 0 or 0-3,6")
    return frozenset(cpus)


def format_cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


class ResourceControl(Capability):
    """The cgroups of running VMs. One per service."""

    name = "resource_control"

    def __init__(self, context: ServiceContext, cgroups: CgroupHost | None = None,
                 vm_cpus: frozenset[int] | None = None) -> None:
        self.context = context
        self.cgroups = cgroups or probe_cgroups()
        usable = frozenset(os.sched_getaffinity(0))
        explicit = os.environ.get(VM_CPUS_ENV)
        self.vm_cpus = vm_cpus or (parse_cpu_list(explicit) & usable if explicit else usable)
        self.pinned = self.vm_cpus != usable
        self._placed: dict[str, LiveVM] = {}
        self._controls: dict[str, CpuControl] = {}
        self._errors: dict[str, str] = {}
        self._place_errors: set[str] = set()

    @property
    def capacity(self) -> int:
        return max(1, len(self.vm_cpus))

    def start(self) -> None:
        """Run the service in its own cpu group, weighing as much as all its VMs
        (:meth:`viridian.host.cgroups.CgroupHost.shelter_service`); refused: it stays
        where it was started, and says so."""
        try:
            self.cgroups.shelter_service(os.getpid())
        except (ViridianError, OSError) as err:
            log.warning("the service keeps the CPU share of one plain process: %s", err)
        self._weigh_groups([_demand(i, lv.record.settings) for i, lv in self._placed.items()])

    # --- VM events (viridian.service.capability) ------------------------------------------

    def adopted(self, live: LiveVM) -> None:
        """QEMU of ``live`` runs (new or found again): put it in its group, recompute all."""
        worker = live.worker
        if worker is None:
            return
        vm_id = live.record.id
        self._placed[vm_id] = live
        self._errors.pop(vm_id, None)
        self._place_errors.discard(vm_id)
        try:
            if self.pinned:
                _pin_threads(worker.pid, self.vm_cpus)
            self.cgroups.place(vm_id, worker.pid)
        except (ViridianError, OSError) as err:
            self._errors[vm_id] = str(err)
            self._place_errors.add(vm_id)
            log.warning("resource control of VM %s not enforced: %s", live.record.name, err)
        self.refresh()

    def exited(self, live: LiveVM) -> None:
        """QEMU of ``live`` ended (or was found gone): drop its group, recompute the rest."""
        vm_id = live.record.id
        self._placed.pop(vm_id, None)
        self._controls.pop(vm_id, None)
        self._errors.pop(vm_id, None)
        self._place_errors.discard(vm_id)
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(self._remove(vm_id))
        self.refresh()

    def describe(self, live: LiveVM) -> dict[str, Any]:
        return {"resources": self._resources(live)}

    # --- admission and changes ---------------------------------------------------------

    def reserved_processors(self, exclude: str | None = None) -> float:
        return sum(lv.processors * lv.record.settings.processor.reserve_pct / 100
                   for vm_id, lv in self._placed.items() if vm_id != exclude)

    def check_settings(self, change: SettingsChange) -> None:
        """Refuse a new reserve for a running VM that would not fit (Hyper-V does too)."""
        live = change.vm
        if live is None or live.record.id not in self._placed:
            return
        cpu = change.new.processor
        load = self.context.host_load()
        others = HostLoad(load.memory_mb, load.logical_processors, load.assigned_memory_mb,
                          load.running_virtual_processors,
                          self.reserved_processors(exclude=live.record.id), self.capacity)
        check_reserve(live.record.name, cpu.count, cpu.reserve_pct, others,
                      action="change the reserve of")

    def settings_changed(self, live: LiveVM) -> None:
        """A committed change may have moved a reserve, limit or weight: write them all."""
        self.refresh()

    def refresh(self) -> None:
        """Recompute and write the values of every placed VM (weights are relative)."""
        demands = [_demand(vm_id, lv.record.settings) for vm_id, lv in self._placed.items()]
        self._controls = cpu_controls(demands, self.capacity)
        self._weigh_groups(demands)
        for vm_id, control in self._controls.items():
            if vm_id in self._place_errors:
                continue
            live = self._placed[vm_id]
            memory = memory_limit_bytes(live.memory_mb, live.capabilities.accelerator)
            try:
                self.cgroups.apply(vm_id, control, memory)
                self._errors.pop(vm_id, None)
            except ViridianError as err:
                self._errors[vm_id] = str(err)

    # --- internals ---------------------------------------------------------------------

    def _weigh_groups(self, demands: list[VMCpuDemand]) -> None:
        """The weights of the ``viridian`` group and the service's own (best effort)."""
        with contextlib.suppress(ViridianError, OSError):
            self.cgroups.weigh_parent(set(self._placed), sum(d.processors for d in demands))

    async def _remove(self, vm_id: str) -> None:
        for _ in range(REMOVE_ATTEMPTS):
            if vm_id in self._placed:
                return  # started again meanwhile
            try:
                if self.cgroups.remove(vm_id):
                    return
            except ViridianError as err:
                log.warning("%s", err)
                return
            await asyncio.sleep(REMOVE_RETRY_S)

    def _resources(self, live: LiveVM) -> dict[str, Any] | None:
        vm_id = live.record.id
        if vm_id not in self._placed:
            return None
        control = self._controls.get(vm_id)
        state = self.cgroups.read(vm_id)
        error = self._errors.get(vm_id)
        if state is None and error is None:
            error = f"no cgroup for this VM ({self.cgroups.describe()})"
        quota = state.quota_us if state else None
        period = state.period_us if state else None
        return {
            "enforced": error is None and not self.cgroups.missing,
            "error": error,
            "cgroups": state.paths if state else {},
            "cgroup_versions": {c: m.version for c, m in self.cgroups.mounts.items()},
            "processor_set": format_cpu_list(self.vm_cpus),
            "cpu_quota_us": quota,
            "cpu_period_us": period,
            "cpu_limit_processors": round(quota / period, 4) if quota and period else None,
            "cpu_shares": state.shares_v1 if state else None,
            "cpu_weight": state.weight_v2 if state else None,
            "cpu_fraction_when_all_busy": round(control.fraction, 4) if control else None,
            "reserved_processors": control.reserved_processors if control else 0.0,
            "reserve_guaranteed": bool(control and control.reserved_processors
                                       and error is None),
            "memory_limit_bytes": state.memory_limit_bytes if state else None,
            "pids": state.pids if state else [],
        }


def _demand(vm_id: str, settings: VMSettings) -> VMCpuDemand:
    cpu = settings.processor
    return VMCpuDemand(vm_id, cpu.count, cpu.reserve_pct, cpu.limit_pct, cpu.weight)


def _pin_threads(pid: int, cpus: frozenset[int]) -> None:
    """Set the affinity of every thread of ``pid`` (``taskset -a -p``)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)

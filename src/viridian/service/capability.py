"""The capability interface: how a part of the service (checkpoints, switches, counters…)
plugs into the core (docs/architecture.md, "How to add a capability").

A capability is built by :class:`viridian.service.core.ServiceCore` with the narrow
:class:`~viridian.service.context.ServiceContext` (never the core itself) and whatever
other capability it needs, passed explicitly. The core calls every capability, in the
order of :data:`viridian.service.core.ServiceCore.capabilities`, at these moments:

=====================  ==============================================================
``attach(vm)``         a VM joins the service (created, or found in the catalog at start)
``recover(vm)``        at service start, after the VM's state was reconciled with QEMU
``start()``            once, after every VM was recovered
``check_settings(c)``  before a settings change (or a new VM) is committed; raise to refuse
``before_live_change``  a checked change is about to reach the running QEMU (hot plug)
``settings_changed``   after a settings change was committed
``check_removal``      before a VM is removed; raise to refuse
``removed``            after the VM's record (and with ``delete_files`` its folder) is gone
``prepare_start(vm)``  before a start or restore launches QEMU (after the state check)
``launching(vm)``      just before QEMU is launched (after admission)
``adopted(vm)``        a QEMU process of the VM runs (started, restored or found again)
``exited(vm)``         the VM's QEMU process ended (or was found gone)
``resumed(vm, r)``     the guest runs on after a resume (``r`` False) or a restore (True)
``describe(vm)``       extra keys of the API's vm object
``install_routes``     add the capability's HTTP routes (before the generic VM routes)
``close()``            the service stops (running VMs keep running)
=====================  ==============================================================

Every method has a do-nothing default: a capability overrides what it reacts to.
A refusal is a :class:`viridian.errors.ViridianError` naming what was wrong and that
nothing was changed; the first refusal wins and later capabilities are not asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from viridian.model import VMSettings

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM


@dataclass(frozen=True)
class SettingsChange:
    """A proposed change of one VM's settings. ``vm`` is None and ``old`` is None for a VM
    being created (its id is already chosen)."""

    vm_id: str
    vm_name: str
    vm: LiveVM | None
    old: VMSettings | None
    new: VMSettings


class Capability:
    """Base of every capability; see the module docstring for when each method runs."""

    name = "capability"

    def attach(self, vm: LiveVM) -> None:
        """A VM joins the service."""

    async def recover(self, vm: LiveVM) -> None:
        """Finish or undo what a killed service left half done for ``vm``."""

    def start(self) -> None:
        """Start background work (after every VM was recovered)."""

    def check_settings(self, change: SettingsChange) -> None:
        """Refuse ``change`` by raising; return to allow it."""

    async def before_live_change(self, change: SettingsChange) -> None:
        """``change`` passed every check and is about to be applied to the VM's QEMU (a
        hot-removed disk still has its counters now); never refuses."""

    def settings_changed(self, vm: LiveVM) -> None:
        """``vm``'s new settings are committed."""

    def check_removal(self, vm: LiveVM, delete_files: bool) -> None:
        """Refuse removing ``vm`` by raising."""

    def check_disk_work(self, vm: LiveVM, action: str) -> None:
        """Refuse, by raising, work on ``vm``'s disk files while QEMU does not run here
        (``action`` in words: "back up the disks", "restore backup B into the disks",
        "move the storage", "expand /path/disk.vhd"): each opens or rewrites them."""

    def removed(self, vm: LiveVM, delete_files: bool) -> None:
        """``vm`` is gone from the catalog (its folder too with ``delete_files``)."""

    async def prepare_start(self, vm: LiveVM) -> None:
        """Make what QEMU will open ready (raise to refuse the start)."""

    def launching(self, vm: LiveVM) -> None:
        """QEMU is about to be launched for ``vm`` (raise to refuse the start)."""

    def adopted(self, vm: LiveVM) -> None:
        """A QEMU process of ``vm`` runs."""

    def exited(self, vm: LiveVM) -> None:
        """``vm``'s QEMU process ended."""

    def resumed(self, vm: LiveVM, restored: bool) -> None:
        """The guest of ``vm`` runs on after a resume or a restore."""

    def describe(self, vm: LiveVM) -> dict[str, Any]:
        """Extra keys of the API's vm object."""
        return {}

    def install_routes(self, app: FastAPI) -> None:
        """Add this capability's HTTP routes to ``app``."""

    async def close(self) -> None:
        """The service stops."""

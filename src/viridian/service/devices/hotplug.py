"""Devices of a VM, Hyper-V's way: what may change while it runs, and hot plug.

The rule (Hyper-V generation 1): adding or removing hardware needs the VM Off, except
SCSI hard disks (added and removed while the VM runs) and the media of DVD and floppy
drives. Every device command goes through the service's one settings path
(:meth:`viridian.service.core.ServiceCore.apply_settings`): validation,
:func:`check_live_storage_changes`, then :func:`live_changes` applies the hot-pluggable
difference to the running QEMU *before* the catalog is committed, and undoes it when the
commit fails — QEMU and the catalog change together or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from viridian.errors import Conflict
from viridian.model import VMSettings
from viridian.model.slots import drive_slots
from viridian.model.states import VMState
from viridian.qemu.hotplug import (
    AttachScsiDisk,
    DetachScsiDisk,
    apply_live_changes,
    plan_live_changes,
    undo_live_changes,
)
from viridian.qemu.served_hotplug import ServedDisks

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

HOT_PLUGGABLE = frozenset({"ide", "scsi", "floppy"})
"""Top-level settings whose changes are checked by :func:`check_live_storage_changes`
instead of being refused outright while the VM is not Off."""
LIVE = (VMState.RUNNING, VMState.PAUSED)
ALLOWED_LIVE = "adding and removing SCSI hard disks, inserting and ejecting DVD and floppy media"


def check_live_storage_changes(
    vm: str, current: VMSettings, new: VMSettings, state: VMState
) -> None:
    """Refuse the storage changes Hyper-V does not allow in ``state`` (nothing when Off).

    :raises Conflict: naming each refused change, why, and what is allowed now.
    """
    if state is VMState.OFF:
        return
    plan = plan_live_changes(current, new)
    _refuse_missing_controllers(vm, current, new, state)
    if plan.refused:
        raise Conflict(
            f"cannot change the hardware of VM '{vm}' while it is {state.value}: "
            f"{'; '.join(plan.refused)} needs the VM Off (adding or removing devices needs "
            f"the VM Off, as in Hyper-V); allowed while it runs: {ALLOWED_LIVE}; "
            "nothing was changed",
            vm=vm,
            state=state.value,
            refused=list(plan.refused),
        )
    scsi = [c for c in plan.changes if isinstance(c, AttachScsiDisk | DetachScsiDisk)]
    if scsi and state not in LIVE:
        raise Conflict(
            f"cannot {scsi[0].describe()} of VM '{vm}' while it is {state.value}: its "
            "saved state must keep the devices it was saved with; SCSI hard disks can be "
            "added and removed while the VM is Off, Running or Paused; nothing was changed",
            vm=vm,
            state=state.value,
        )


def _refuse_missing_controllers(
    vm: str, current: VMSettings, new: VMSettings, state: VMState
) -> None:
    """Refuse SCSI hard disks put on a controller the VM does not have, saying that a
    controller is needed first and how to add one (only while the VM is Off)."""
    have = {c.controller for c in current.scsi}
    wanted = [slot for slot in drive_slots(new)
              if slot.bus == "scsi" and slot.controller not in have]
    if not wanted:
        return
    disk, number = wanted[0], wanted[0].controller
    existing = ", ".join(str(n) for n in sorted(have)) or "none"
    raise Conflict(
        f"cannot add the hard disk {disk.path} at {disk.label} of VM "
        f"'{vm}' while it is {state.value}: a SCSI controller is needed first, and VM '{vm}' "
        f"has no SCSI controller {number} (its SCSI controllers: {existing}); a SCSI "
        f"controller can be added only while the VM is Off (adding SCSI controller {number} "
        f"needs the VM Off): turn it off, run 'viridian vm scsi add {vm}', start it, then add "
        "and remove SCSI hard disks while it runs; "
        "nothing was changed",
        vm=vm,
        state=state.value,
        controller=number,
    )


@contextlib.asynccontextmanager
async def live_changes(
    live: LiveVM, current: VMSettings, new: VMSettings
) -> AsyncIterator[None]:
    """Apply the hot-pluggable difference to the VM's running QEMU, then run the block
    (the commit); if the block fails, undo the QEMU side and re-raise. A VM whose storage
    daemon serves its disks gets hot-added SCSI disks through the daemon too
    (:mod:`viridian.qemu.served_hotplug`)."""
    worker = live.worker
    if live.state not in LIVE or worker is None:
        yield
        return
    plan = plan_live_changes(current, new)
    if worker.storage is not None:  # the storage daemon serves the VM's hard disks
        served = ServedDisks(worker.monitor, await worker.block_monitor(),
                             str(worker.paths.nbd_socket))
        await served.apply(plan.changes)
        try:
            yield
        except BaseException:
            await served.undo(plan.changes)
            raise
        return
    await apply_live_changes(worker.monitor, plan.changes)
    try:
        yield
    except BaseException:
        await undo_live_changes(worker.monitor, plan.changes)
        raise

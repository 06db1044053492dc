"""Devices of a VM, Hyper-V's way: what may change while it runs, hot plug, and the
device operations behind ``vm disk|dvd|floppy|nic|com|screenshot|console``.

The rule (Hyper-V generation 1): adding or removing hardware needs the VM Off, except
SCSI hard disks (added and removed while the VM runs) and the media of DVD and floppy
drives. Every device command goes through the service's one settings path
(:meth:`ServiceCore.apply_settings`): validation, :func:`check_live_storage_changes`, then
:func:`live_changes` applies the hot-pluggable difference to the running QEMU *before* the
catalog is committed, and undoes it when the commit fails — QEMU and the catalog change
together or not at all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from viridian.errors import Conflict
from viridian.model import settings_from_dict
from viridian.model.states import VMState
from viridian.qemu.hotplug import (
    AttachScsiDisk,
    DetachScsiDisk,
    apply_live_changes,
    plan_live_changes,
    undo_live_changes,
)
from viridian.qemu.screen import screenshot_png
from viridian.service.devices import edits as device_edits

HOT_PLUGGABLE = frozenset({"ide", "scsi", "floppy"})
"""Top-level settings whose changes are checked by :func:`check_live_storage_changes`
instead of being refused outright while the VM is not Off."""
LIVE = (VMState.RUNNING, VMState.PAUSED)
ALLOWED_LIVE = "adding and removing SCSI hard disks, inserting and ejecting DVD and floppy media"


def check_live_storage_changes(
    vm: str, current: dict[str, Any], new: dict[str, Any], state: VMState
) -> None:
    """Refuse the storage changes Hyper-V does not allow in ``state`` (nothing when Off).

    :raises Conflict: naming each refused change, why, and what is allowed now.
    """
    if state is VMState.OFF:
        return
    plan = plan_live_changes(settings_from_dict(current), settings_from_dict(new))
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


@contextlib.asynccontextmanager
async def live_changes(
    live: Any, current: dict[str, Any], new: dict[str, Any]
) -> AsyncIterator[None]:
    """Apply the hot-pluggable difference to the VM's running QEMU, then run the block
    (the commit); if the block fails, undo the QEMU side and re-raise."""
    worker = live.worker
    if live.state not in LIVE or worker is None:
        yield
        return
    plan = plan_live_changes(settings_from_dict(current), settings_from_dict(new))
    await apply_live_changes(worker.monitor, plan.changes)
    try:
        yield
    except BaseException:
        await undo_live_changes(worker.monitor, plan.changes)
        raise


class DeviceOps:
    """The device operations of the API, on a :class:`ServiceCore`."""

    def __init__(self, manager: Any) -> None:
        self.manager = manager

    async def edit(self, ref: str, make_patch: Any) -> dict[str, Any]:
        """Compute a patch from the VM's current settings and apply it, under the VM's
        queue (so two device requests never build on the same stale settings)."""
        live = self.manager.find_live(ref)
        async with self.manager.jobs.queue_for(live.record.id):
            patch = make_patch(live.record.settings)
            await self.manager.apply_settings(live, patch)
        return dict(live.to_dict())

    async def add_disk(
        self, ref: str, bus: str, location: str, path: str | None, dvd: bool
    ) -> dict[str, Any]:
        return await self.edit(ref, lambda s: device_edits.add_disk(s, bus, location, path, dvd))

    async def remove_disk(self, ref: str, bus: str, location: str) -> dict[str, Any]:
        return await self.edit(ref, lambda s: device_edits.remove_disk(s, bus, location))

    async def set_dvd(self, ref: str, path: str | None, location: str | None) -> dict[str, Any]:
        return await self.edit(ref, lambda s: device_edits.set_dvd_media(s, path, location))

    async def set_floppy(self, ref: str, path: str | None) -> dict[str, Any]:
        return await self.edit(ref, lambda s: device_edits.set_floppy_media(path))

    async def add_nic(
        self,
        ref: str,
        legacy: bool,
        switch: str | None,
        mac: str | None,
        vlan: str | None,
        trunk: str | None = None,
        native: str | None = None,
    ) -> dict[str, Any]:
        return await self.edit(
            ref, lambda s: device_edits.add_adapter(s, legacy, switch, mac, vlan, trunk, native)
        )

    async def set_nic(
        self,
        ref: str,
        index: int | None,
        legacy: bool | None,
        switch: str | None,
        mac: str | None,
        vlan: str | None,
        trunk: str | None = None,
        native: str | None = None,
    ) -> dict[str, Any]:
        return await self.edit(
            ref,
            lambda s: device_edits.set_adapter(s, index, legacy, switch, mac, vlan, trunk, native),
        )

    async def remove_nic(self, ref: str, index: int | None) -> dict[str, Any]:
        return await self.edit(ref, lambda s: device_edits.remove_adapter(s, index))

    async def set_com(
        self, ref: str, port: int, pipe: str | None, remote: str | None, none: bool
    ) -> dict[str, Any]:
        return await self.edit(ref, lambda s: device_edits.set_com(port, pipe, remote, none))

    # --- the screen and the serial consoles --------------------------------------------

    def _running(self, ref: str, what: str) -> Any:
        live = self.manager.find_live(ref)
        if live.state not in LIVE or live.worker is None:
            raise Conflict(
                f"VM '{live.record.name}' is {live.state.value}: {what} exists only while it "
                "runs (Running or Paused); start it with 'viridian vm start'",
                vm=live.record.name,
                state=live.state.value,
            )
        return live

    async def screenshot(self, ref: str) -> bytes:
        """The VM's screen as PNG bytes (Running or Paused VMs only)."""
        live = self._running(ref, "its screen")
        return await screenshot_png(live.worker.monitor, live.paths)

    def console_socket(self, ref: str, port: int) -> Path:
        """The UNIX socket of COM``port``'s named pipe, for the console bridge.

        :raises Conflict: the VM does not run, or the port is not a local named pipe.
        """
        live = self._running(ref, f"COM{port}")
        com = live.record.settings[f"com{port}"]
        if com["kind"] != "pipe":
            where = (
                f"connects to {com['address']}" if com["kind"] == "remote" else "is not connected"
            )
            raise Conflict(
                f"COM{port} of VM '{live.record.name}' {where}; a console needs a named pipe "
                f"on this host: 'viridian vm com set {live.record.name} {port} --pipe PATH' "
                "(with the VM Off)",
                vm=live.record.name,
                kind=com["kind"],
            )
        return Path(com["path"] or live.paths.com_socket(port))

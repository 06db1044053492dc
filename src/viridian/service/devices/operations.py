"""The device operations behind ``vm disk|dvd|floppy|nic|com|screenshot|console``: each
edits the VM's settings (:mod:`.edits`) and sends the patch through the core's one
settings path (validation, the rules of :mod:`.hotplug`, hot plug, commit)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from viridian.errors import Conflict
from viridian.model import VMSettings
from viridian.qemu.screen import screenshot_png
from viridian.qemu.worker import Worker
from viridian.service.capability import Capability, SettingsChange
from viridian.service.context import ServiceContext
from viridian.service.devices import edits as device_edits
from viridian.service.devices import scsi_controllers
from viridian.service.devices.floppy import check_floppy_image
from viridian.service.devices.hotplug import LIVE
from viridian.service.devices.routes import install_device_routes
from viridian.service.devices.screen_routes import install_vnc_routes
from viridian.service.vms.live import LiveVM

Patch = dict[str, Any]


class DevicesCapability(Capability):
    """The device routes (disks, media, adapters, COM ports, screen, consoles)."""

    name = "devices"

    def __init__(self, context: ServiceContext) -> None:
        self.ops = DeviceOps(context)

    def install_routes(self, app: FastAPI) -> None:
        install_device_routes(app, self.ops)
        install_vnc_routes(app, self.ops.context)

    def check_settings(self, change: SettingsChange) -> None:
        """Refuse a floppy drive medium that is not a virtual floppy (:mod:`.floppy`)."""
        path = change.new.floppy.path
        if path is not None and (change.old is None or change.old.floppy.path != path):
            check_floppy_image(path)


class DeviceOps:
    """The device operations of the API."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    async def edit(self, ref: str,
                   make_patch: Callable[[VMSettings], Patch]) -> dict[str, Any]:
        """Compute a patch from the VM's current settings and apply it, under the VM's
        queue (so two device requests never build on the same stale settings)."""
        live = self.context.find_vm(ref)
        async with self.context.jobs.queue_for(live.record.id):
            patch = make_patch(live.record.settings)
            await self.context.apply_settings(live, patch)
        return live.to_dict()

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

    async def add_scsi_controller(self, ref: str, number: int | None) -> dict[str, Any]:
        """Add SCSI controller ``number`` (the lowest free one when None); VM Off only."""
        return await self._edit_scsi(ref, "add", scsi_controllers.add_controller, number)

    async def remove_scsi_controller(self, ref: str, number: int | None) -> dict[str, Any]:
        """Remove SCSI controller ``number`` (the only one when None); it must hold no
        hard disk, and the VM must be Off."""
        return await self._edit_scsi(ref, "remove", scsi_controllers.remove_controller, number)

    async def _edit_scsi(
        self,
        ref: str,
        verb: str,
        make: Callable[[VMSettings, int | None], tuple[Patch, int]],
        number: int | None,
    ) -> dict[str, Any]:
        live = self.context.find_vm(ref)
        async with self.context.jobs.queue_for(live.record.id):
            scsi_controllers.require_off(live.record.name, live.state, verb)
            patch, number = make(live.record.settings, number)
            await self.context.apply_settings(live, patch)
        return {**live.to_dict(), "scsi_controller": number}

    # --- the screen and the serial consoles --------------------------------------------

    def running(self, ref: str, what: str) -> tuple[LiveVM, Worker]:
        """The VM ``ref`` and its QEMU, or :class:`Conflict` when it is not Running or
        Paused (``what`` names what exists only while it runs)."""
        live = self.context.find_vm(ref)
        if live.state not in LIVE or live.worker is None:
            raise Conflict(
                f"VM '{live.record.name}' is {live.state.value}: {what} exists only while it "
                "runs (Running or Paused); start it with 'viridian vm start'",
                vm=live.record.name,
                state=live.state.value,
            )
        return live, live.worker

    async def screenshot(self, ref: str) -> bytes:
        """The VM's screen as PNG bytes (Running or Paused VMs only)."""
        live, worker = self.running(ref, "its screen")
        return await screenshot_png(worker.monitor, live.paths)

    def console_socket(self, ref: str, port: int) -> Path:
        """The UNIX socket of COM``port``'s named pipe, for the console bridge.

        :raises Conflict: the VM does not run, or the port is not a local named pipe.
        """
        live, _ = self.running(ref, f"COM{port}")
        settings = live.record.settings
        com = settings.com1 if port == 1 else settings.com2
        if com.kind != "pipe":
            where = f"connects to {com.address}" if com.kind == "remote" else "is not connected"

            raise Conflict(
                f"COM{port} of VM '{live.record.name}' {where}; a console needs a named pipe "
                f"on this host: 'viridian vm com set {live.record.name} {port} --pipe PATH' "
                "(with the VM Off)",
                vm=live.record.name,
                kind=str(com.kind),
            )
        return Path(com.path or live.paths.com_socket(port))

"""Hot plug of SCSI hard disks whose VM's disks its storage daemon serves.

Same changes as :mod:`viridian.qemu.hotplug`, but the image is opened in the daemon and
QEMU gets an NBD node on the daemon's socket (docs/architecture.md, "The storage path"),
so a hot-added VHD/VHDX puts no ``vpc``/``vhdx`` node into QEMU (no migration blocker):

- attach: in the daemon ``blockdev-add`` (format node over its file node, the renderer's
  names) and ``block-export-add`` (export named by the device id); in QEMU ``blockdev-add``
  of ``raw`` over ``nbd`` and ``device_add`` of ``scsi-hd``;
- detach: QEMU unplugs and closes its NBD node (:func:`hotplug.detach_scsi_disk`), then the
  daemon deletes the export (``mode: hard``), waits for ``BLOCK_EXPORT_DELETED`` and closes
  the image;
- media changes (DVD, floppy) stay QEMU's (:func:`hotplug.change_media`).

A failure undoes the changes already made (in reverse), as :func:`hotplug.apply_live_changes`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from viridian.model import DiskFormat

from . import hotplug
from .errors import MonitorError
from .hotplug import AttachScsiDisk, ChangeMedia, DetachScsiDisk, LiveChange
from .monitor import Monitor, QmpEvent
from .render.blockdev import protocol_driver
from .render.naming import file_node, format_node, scsi_controller_id, scsi_disk_id

__all__ = ["ServedDisks"]

EXPORT_DELETED_TIMEOUT_S = 30.0


class ServedDisks:
    """Live device changes of a VM whose hard disks the storage daemon serves."""

    def __init__(self, qemu: Monitor, storage: Monitor, nbd_socket: str) -> None:
        self.qemu, self.storage, self.nbd_socket = qemu, storage, nbd_socket

    async def apply(self, changes: Sequence[LiveChange]) -> None:
        """Perform ``changes`` in order; on a failure undo the ones done and re-raise.

        :raises MonitorError: QEMU or the daemon refused an operation (named).
        """
        done: list[LiveChange] = []
        for change in changes:
            try:
                await self._apply(change)
            except BaseException as err:
                await self.undo(done)
                if isinstance(err, MonitorError):
                    raise MonitorError(f"could not {change.describe()}: {err}",
                                       command=err.command, arguments=err.arguments,
                                       received=err.received) from err
                raise
            done.append(change)

    async def undo(self, done: Sequence[LiveChange]) -> None:
        """Best effort: reverse ``done`` in reverse order; never raises a QEMU error."""
        for change in reversed(done):
            with contextlib.suppress(MonitorError):
                await self._apply(_inverse(change))

    async def _apply(self, change: LiveChange) -> None:
        if isinstance(change, AttachScsiDisk):
            await self.attach(change)
        elif isinstance(change, DetachScsiDisk):
            await self.detach(change.controller, change.location)
        else:
            await hotplug.change_media(self.qemu, change.device_id, change.path,
                                       change.read_only)

    async def attach(self, disk: AttachScsiDisk) -> None:
        device_id = scsi_disk_id(disk.controller, disk.location)
        await self._export(device_id, disk.path, disk.format)
        try:
            await self.qemu.execute("blockdev-add", {
                "driver": "raw", "node-name": format_node(device_id),
                "file": {"driver": "nbd", "node-name": file_node(device_id),
                         "server": {"type": "unix", "path": self.nbd_socket},
                         "export": device_id}})
            try:
                await self.qemu.execute("device_add", {
                    "driver": "scsi-hd", "bus": f"{scsi_controller_id(disk.controller)}.0",
                    "channel": 0, "scsi-id": disk.location, "lun": 0,
                    "drive": format_node(device_id), "id": device_id})
            except BaseException:
                with contextlib.suppress(MonitorError):
                    await self.qemu.execute("blockdev-del",
                                            {"node-name": format_node(device_id)})
                raise
        except BaseException:
            await self._unexport(device_id)
            raise

    async def detach(self, controller: int, location: int) -> None:
        await hotplug.detach_scsi_disk(self.qemu, controller, location)
        await self._unexport(scsi_disk_id(controller, location))

    async def _export(self, device_id: str, path: str, image_format: DiskFormat) -> None:
        await self.storage.execute("blockdev-add", {
            "driver": image_format.value, "node-name": format_node(device_id),
            "file": {"driver": protocol_driver(path), "filename": path,
                     "node-name": file_node(device_id)}})
        try:
            await self.storage.execute("block-export-add", {
                "type": "nbd", "id": device_id, "node-name": format_node(device_id),
                "name": device_id, "writable": True})
        except BaseException:
            await self._close_image(device_id)
            raise

    async def _unexport(self, device_id: str) -> None:
        """Delete the export (if any) and close its image in the daemon."""
        exports = await self.storage.execute("query-block-exports")
        if isinstance(exports, list) and any(e.get("id") == device_id for e in exports):
            def is_ours(event: QmpEvent) -> bool:
                return event.data.get("id") == device_id

            with self.storage.event_waiter("BLOCK_EXPORT_DELETED", predicate=is_ours) as gone:
                await self.storage.execute("block-export-del", {"id": device_id,
                                                                "mode": "hard"})
                await gone.wait(EXPORT_DELETED_TIMEOUT_S)
        await self._close_image(device_id)

    async def _close_image(self, device_id: str) -> None:
        """Delete the device's nodes in the daemon: the format node first (one added
        here owns its file node; ones from ``--blockdev`` are deleted one by one)."""
        for node in (format_node(device_id), file_node(device_id)):
            with contextlib.suppress(MonitorError):
                await self.storage.execute("blockdev-del", {"node-name": node})


def _inverse(change: LiveChange) -> LiveChange:
    if isinstance(change, AttachScsiDisk):
        return DetachScsiDisk(change.controller, change.location, change.path, change.format)
    if isinstance(change, DetachScsiDisk):
        return AttachScsiDisk(change.controller, change.location, change.path, change.format)
    return ChangeMedia(change.device_id, change.where, change.old, change.path,
                       change.read_only)

"""Changing a running VM's devices: SCSI hard disks in and out, DVD and floppy media.

Hyper-V generation 1 lets an admin change these while a VM runs, and nothing else of
its hardware: SCSI hard disks (synthetic storage), and the media of DVD and floppy
drives. :func:`plan_live_changes` (pure) compares the old and new settings and returns
the device operations to perform, plus a description of every difference that cannot
be made live; :func:`apply_live_changes` performs the operations on QEMU and, when one
fails, undoes the ones already done, so QEMU ends as it was.

QMP flows (QEMU 7.2 ``qapi/block-core.json``, ``qapi/qdev.json``):

- SCSI attach: ``blockdev-add`` (format node with its ``file`` child inline, named
  ``<id>-fmt``/``<id>-file`` like the renderer's), then ``device_add scsi-hd``.
- SCSI detach: ``device_del``; the disk is gone when ``DEVICE_DELETED`` names it (the
  guest is told through virtio-scsi's hot-unplug event); then ``blockdev-del``.
- Media: ``blockdev-open-tray`` (forced: the guest may have locked the tray),
  ``blockdev-remove-medium``, ``blockdev-del`` of the old nodes, ``blockdev-add`` +
  ``blockdev-insert-medium`` of the new image (format ``raw``, explicitly), and
  ``blockdev-close-tray``, after which the guest sees a media change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from viridian.model import DiskFormat, DriveKind, IdeDrive, ScsiDisk, VMSettings

from .errors import MonitorError
from .monitor import Monitor, QmpEvent
from .render.blockdev import protocol_driver
from .render.naming import (
    FLOPPY_ID,
    file_node,
    format_node,
    ide_id,
    scsi_controller_id,
    scsi_disk_id,
)

__all__ = [
    "AttachScsiDisk",
    "ChangeMedia",
    "DetachScsiDisk",
    "LiveChange",
    "LivePlan",
    "apply_live_changes",
    "plan_live_changes",
]

DEVICE_DELETED_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class AttachScsiDisk:
    controller: int
    location: int
    path: str
    format: DiskFormat

    def describe(self) -> str:
        return f"attach {self.path} at SCSI {self.controller}:{self.location}"


@dataclass(frozen=True)
class DetachScsiDisk:
    controller: int
    location: int
    path: str
    format: DiskFormat

    def describe(self) -> str:
        return f"detach {self.path} from SCSI {self.controller}:{self.location}"


@dataclass(frozen=True)
class ChangeMedia:
    """Put ``path`` (None = eject) into the drive ``device_id``; ``old`` was in it."""

    device_id: str
    where: str
    path: str | None
    old: str | None
    read_only: bool

    def describe(self) -> str:
        return f"insert {self.path} in {self.where}" if self.path else f"eject {self.where}"


LiveChange = AttachScsiDisk | DetachScsiDisk | ChangeMedia


@dataclass(frozen=True)
class LivePlan:
    """What to do on the running QEMU, and what cannot be done while it runs."""

    changes: tuple[LiveChange, ...]
    refused: tuple[str, ...]


def plan_live_changes(old: VMSettings, new: VMSettings) -> LivePlan:
    """Pure: the device operations that turn ``old``'s devices into ``new``'s.

    ``refused`` lists, in words, each difference Hyper-V allows only while the VM is
    Off (IDE drives added, removed or changed; SCSI controllers added or removed).
    Changes outside storage (memory, adapters, ...) are not looked at here. Detaches come
    first, then media changes, then attaches, so a disk can move between locations.
    """
    refused: list[str] = []
    media = _ide_media(old.ide, new.ide, refused)
    detach, attach = _scsi_changes(old, new, refused)
    if old.floppy.path != new.floppy.path:
        media.append(
            ChangeMedia(FLOPPY_ID, "the floppy drive", new.floppy.path, old.floppy.path, False)
        )
    return LivePlan((*detach, *media, *attach), tuple(refused))


def _ide_media(
    old: Sequence[IdeDrive], new: Sequence[IdeDrive], refused: list[str]
) -> list[LiveChange]:
    before = {(d.controller, d.location): d for d in old}
    after = {(d.controller, d.location): d for d in new}
    changes: list[LiveChange] = []
    for slot in sorted(before.keys() | after.keys()):
        where = f"IDE {slot[0]}:{slot[1]}"
        was, now = before.get(slot), after.get(slot)
        if was is None and now is not None:
            refused.append(f"adding the {_kind_text(now.kind)} at {where}")
        elif was is not None and now is None:
            refused.append(f"removing the {_kind_text(was.kind)} at {where}")
        elif was is not None and now is not None and was != now:
            if was.kind != now.kind or now.kind == DriveKind.HARD_DISK:
                refused.append(f"changing the {_kind_text(was.kind)} at {where}")
            elif was.path != now.path:
                where = f"the DVD drive at {where}"
                changes.append(ChangeMedia(ide_id(*slot), where, now.path, was.path, True))
    return changes


def _kind_text(kind: DriveKind) -> str:
    return "hard disk" if kind == DriveKind.HARD_DISK else "DVD drive"


def _scsi_changes(
    old: VMSettings, new: VMSettings, refused: list[str]
) -> tuple[list[LiveChange], list[LiveChange]]:
    before = {c.controller: c for c in old.scsi}
    after = {c.controller: c for c in new.scsi}
    for number in sorted(after.keys() - before.keys()):
        refused.append(f"adding SCSI controller {number}")
    for number in sorted(before.keys() - after.keys()):
        refused.append(f"removing SCSI controller {number}")
    detach: list[LiveChange] = []
    attach: list[LiveChange] = []
    for number in sorted(before.keys() & after.keys()):
        was = {d.location: d for d in before[number].disks}
        now = {d.location: d for d in after[number].disks}
        for location in sorted(was.keys() | now.keys()):
            old_disk, new_disk = was.get(location), now.get(location)
            if old_disk == new_disk:
                continue
            if old_disk is not None:
                detach.append(_scsi_op(DetachScsiDisk, number, old_disk))
            if new_disk is not None:
                attach.append(_scsi_op(AttachScsiDisk, number, new_disk))
    return detach, attach


def _scsi_op(
    cls: type[AttachScsiDisk] | type[DetachScsiDisk], controller: int, disk: ScsiDisk
) -> AttachScsiDisk | DetachScsiDisk:
    return cls(controller, disk.location, disk.path, disk.format or DiskFormat.RAW)


# --- applying ------------------------------------------------------------------------


async def apply_live_changes(monitor: Monitor, changes: Sequence[LiveChange]) -> None:
    """Perform ``changes`` in order. When one fails, the ones done are undone (in reverse)
    and the error is raised: QEMU's devices end as they were.

    :raises MonitorError: QEMU refused an operation (the message names which).
    :raises QemuTimeout: the guest did not release a SCSI disk in time.
    """
    done: list[LiveChange] = []
    for change in changes:
        try:
            await _apply(monitor, change)
        except MonitorError as err:
            await undo_live_changes(monitor, done)
            raise MonitorError(
                f"could not {change.describe()}: {err}",
                command=err.command,
                arguments=err.arguments,
                received=err.received,
            ) from err
        except BaseException:
            await undo_live_changes(monitor, done)
            raise
        done.append(change)


async def undo_live_changes(monitor: Monitor, done: Sequence[LiveChange]) -> None:
    """Best effort: reverse ``done`` (already applied) in reverse order; never raises
    a QEMU error (there is nothing better to do with one)."""
    for change in reversed(done):
        with contextlib.suppress(MonitorError):
            await _apply(monitor, _inverse(change))


def _inverse(change: LiveChange) -> LiveChange:
    if isinstance(change, AttachScsiDisk):
        return DetachScsiDisk(change.controller, change.location, change.path, change.format)
    if isinstance(change, DetachScsiDisk):
        return AttachScsiDisk(change.controller, change.location, change.path, change.format)
    return ChangeMedia(change.device_id, change.where, change.old, change.path, change.read_only)


async def _apply(monitor: Monitor, change: LiveChange) -> None:
    if isinstance(change, AttachScsiDisk):
        await attach_scsi_disk(monitor, change)
    elif isinstance(change, DetachScsiDisk):
        await detach_scsi_disk(monitor, change.controller, change.location)
    else:
        await change_media(monitor, change.device_id, change.path, change.read_only)


async def attach_scsi_disk(monitor: Monitor, disk: AttachScsiDisk) -> None:
    """Open the image and plug ``scsi-hd`` at ``controller``:``location`` (LUN 0)."""
    device_id = scsi_disk_id(disk.controller, disk.location)
    await _add_image(monitor, device_id, disk.path, disk.format, read_only=False)
    try:
        await monitor.execute(
            "device_add",
            {
                "driver": "scsi-hd",
                "bus": f"{scsi_controller_id(disk.controller)}.0",
                "channel": 0,
                "scsi-id": disk.location,
                "lun": 0,
                "drive": format_node(device_id),
                "id": device_id,
            },
        )
    except BaseException:
        await _delete_nodes(monitor, device_id)
        raise


async def detach_scsi_disk(monitor: Monitor, controller: int, location: int) -> None:
    """Unplug the disk, wait until QEMU deleted the device, then close the image."""
    device_id = scsi_disk_id(controller, location)

    def is_ours(event: QmpEvent) -> bool:
        return event.data.get("device") == device_id

    with monitor.event_waiter("DEVICE_DELETED", predicate=is_ours) as waiter:
        await monitor.execute("device_del", {"id": device_id})
        await waiter.wait(DEVICE_DELETED_TIMEOUT_S)
    await _delete_nodes(monitor, device_id)


async def change_media(monitor: Monitor, device_id: str, path: str | None, read_only: bool) -> None:
    """Replace the medium in a removable drive (``path`` None leaves it empty)."""
    await monitor.execute("blockdev-open-tray", {"id": device_id, "force": True})
    await monitor.execute("blockdev-remove-medium", {"id": device_id})
    await _delete_nodes(monitor, device_id)
    if path is not None:
        await _add_image(monitor, device_id, path, DiskFormat.RAW, read_only=read_only)
        try:
            await monitor.execute(
                "blockdev-insert-medium", {"id": device_id, "node-name": format_node(device_id)}
            )
        except BaseException:
            await _delete_nodes(monitor, device_id)
            raise
    await monitor.execute("blockdev-close-tray", {"id": device_id})


async def _add_image(
    monitor: Monitor, device_id: str, path: str, image_format: DiskFormat, *, read_only: bool
) -> None:
    """The image as the renderer would open it: format node over a file node, same names."""
    await monitor.execute(
        "blockdev-add",
        {
            "driver": image_format.value,
            "node-name": format_node(device_id),
            "read-only": read_only,
            "file": {
                "driver": protocol_driver(path),
                "filename": path,
                "node-name": file_node(device_id),
                "read-only": read_only,
            },
        },
    )


async def _delete_nodes(monitor: Monitor, device_id: str) -> None:
    """Close the device's named nodes if they exist. A format node added here owns its
    file node (deleting it deletes both); nodes from ``-blockdev`` are deleted one by one."""
    existing = await _node_names(monitor)
    for node in (format_node(device_id), file_node(device_id)):
        if node in existing:
            await monitor.execute("blockdev-del", {"node-name": node})
            existing = await _node_names(monitor)


async def _node_names(monitor: Monitor) -> set[str]:
    nodes = await monitor.execute("query-named-block-nodes", {"flat": True})
    if not isinstance(nodes, list):
        raise MonitorError("query-named-block-nodes did not return a list", received=nodes)
    return {str(node.get("node-name")) for node in nodes if isinstance(node, dict)}

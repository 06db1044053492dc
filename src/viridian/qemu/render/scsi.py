"""SCSI controllers (synthetic: ``virtio-scsi-pci``) and their hard disks (``scsi-hd``).

Controller N is device ``scsiN`` with bus ``scsiN.0``; a disk at location L is
``scsi-id=L`` on channel 0, LUN 0. SCSI disks carry no bootindex: a generation-1 VM
boots from IDE only.
"""

from __future__ import annotations

from viridian.model import ScsiController, ScsiDisk, VMSettings
from viridian.qemu.render.blockdev import render_blockdev, require_format
from viridian.qemu.render.naming import format_node, scsi_controller_id, scsi_disk_id
from viridian.qemu.render.options import opts


def render_scsi(settings: VMSettings, nbd_socket: str | None = None) -> list[str]:
    """Every controller with its disks, in controller then location order; with
    ``nbd_socket`` the disks are the storage daemon's exports.

    Raises :class:`InvalidSetting` for a disk whose format is unresolved.
    """
    args: list[str] = []
    for index, controller in sorted(enumerate(settings.scsi), key=lambda x: x[1].controller):
        args += _render_controller(f"scsi[{index}]", controller, nbd_socket)
    return args


def _render_controller(
    setting: str, controller: ScsiController, nbd_socket: str | None
) -> list[str]:
    args = ["-device", opts("virtio-scsi-pci", id=scsi_controller_id(controller.controller))]
    for index, disk in sorted(enumerate(controller.disks), key=lambda x: x[1].location):
        args += _render_disk(f"{setting}.disks[{index}]", controller.controller, disk, nbd_socket)
    return args


def _render_disk(
    setting: str, controller: int, disk: ScsiDisk, nbd_socket: str | None
) -> list[str]:
    device_id = scsi_disk_id(controller, disk.location)
    image_format = require_format(f"{setting}.format", disk.format)
    device = opts(
        "scsi-hd",
        bus=f"{scsi_controller_id(controller)}.0",
        channel=0,
        scsi_id=disk.location,
        lun=0,
        drive=format_node(device_id),
        id=device_id,
        werror="stop" if nbd_socket else None,  # a daemon crash pauses the guest
        rerror="stop" if nbd_socket else None,
    )
    blockdev = render_blockdev(device_id, disk.path, image_format, nbd_socket=nbd_socket)
    return [*blockdev, "-device", device]

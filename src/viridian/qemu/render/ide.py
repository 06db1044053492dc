"""IDE drives on the PIIX3 controller built into the i440fx machine.

Controller 0/1 is QEMU bus ``ide.0``/``ide.1``, location 0/1 is ``unit`` 0 (master) and
1 (slave). Hard disks are ``ide-hd``; DVD drives are ``ide-cd``, read-only, and an empty
DVD drive is an ``ide-cd`` without a drive (media can be inserted later over QMP).
"""

from __future__ import annotations

from collections.abc import Mapping

from viridian.model import DriveKind, IdeDrive, VMSettings
from viridian.qemu.render.blockdev import render_blockdev, require_format
from viridian.qemu.render.naming import format_node, ide_id
from viridian.qemu.render.options import opts


def render_ide(
    settings: VMSettings, boot: Mapping[str, int], nbd_socket: str | None = None
) -> list[str]:
    """Block nodes and devices of every IDE drive, in slot order; with ``nbd_socket``
    the hard disks are the storage daemon's exports (DVD media stays direct).

    Raises :class:`InvalidSetting` for a drive with media whose format is unresolved.
    """
    indexed = sorted(enumerate(settings.ide), key=lambda x: (x[1].controller, x[1].location))
    args: list[str] = []
    for index, drive in indexed:
        args += _render_drive(f"ide[{index}]", drive, boot, nbd_socket)
    return args


def _render_drive(
    setting: str, drive: IdeDrive, boot: Mapping[str, int], nbd_socket: str | None
) -> list[str]:
    device_id = ide_id(drive.controller, drive.location)
    is_dvd = drive.kind == DriveKind.DVD
    args: list[str] = []
    node = None
    served = nbd_socket is not None and not is_dvd and drive.path is not None
    if drive.path is not None:
        image_format = require_format(f"{setting}.format", drive.format)
        args += render_blockdev(device_id, drive.path, image_format, read_only=is_dvd,
                                nbd_socket=None if is_dvd else nbd_socket)
        node = format_node(device_id)
    device = opts(
        "ide-cd" if is_dvd else "ide-hd",
        bus=f"ide.{drive.controller}",
        unit=drive.location,
        drive=node,
        id=device_id,
        bootindex=boot.get(device_id),
        werror="stop" if served else None,  # a daemon crash pauses the guest
        rerror="stop" if served else None,
    )
    return [*args, "-device", device]

"""The per-VM storage daemon's command line, and which VMs get one (pure).

A VM with VHD/VHDX hard disks has its hard disks served by a ``qemu-storage-daemon``
(docs/architecture.md, "The storage path"): the daemon opens each image with its format
driver and exports it over NBD on ``nbd.sock`` in the VM's runtime folder, the export
named by the drive's device id (stable across checkpoint overlays and daemon restarts);
QEMU opens ``driver=nbd`` under a ``raw`` node
(:func:`viridian.qemu.render.blockdev.render_blockdev` with ``nbd_socket``). QEMU then
holds no ``vpc``/``vhdx`` node, whose migration blocker forbids saving memory.

No ``iothread`` on the exports: QEMU 7.2's NBD server aborts when a client of an
iothread export disconnects (``nbd_blockdev_client_closed`` asserts the main thread),
i.e. whenever QEMU ends.

Option order matters: ``qemu-storage-daemon`` handles its options in order, so the
exports exist before its QMP socket listens — a connection to it means "ready".
"""

from __future__ import annotations

from viridian.model import DiskFormat, VMSettings
from viridian.model.slots import DriveSlot, hard_disks
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.render.blockdev import protocol_driver, require_format
from viridian.qemu.render.naming import file_node, format_node, ide_id, scsi_disk_id
from viridian.qemu.render.options import escape, opts
from viridian.qemu.runtime_paths import RuntimePaths

__all__ = ["DAEMON_FORMATS", "device_id_of", "needs_storage_daemon", "render_storage_daemon"]

DAEMON_FORMATS = frozenset({DiskFormat.VPC, DiskFormat.VHDX})
"""Formats whose QEMU driver blocks migration: a VM with one gets a storage daemon."""


def needs_storage_daemon(settings: VMSettings, host: HostCapabilities) -> bool:
    """True when the host has a storage daemon and ``settings`` (the VM's own disks, not
    checkpoint overlays) include a VHD/VHDX hard disk."""
    if host.storage_daemon is None:
        return False
    return any(slot.format in DAEMON_FORMATS for slot in hard_disks(settings))


def device_id_of(slot: DriveSlot) -> str:
    """The QEMU device id of a drive slot (``ide0-0``, ``scsi1-3``)."""
    if slot.bus == "ide":
        return ide_id(slot.controller, slot.location)
    return scsi_disk_id(slot.controller, slot.location)


def render_storage_daemon(binary: str, settings: VMSettings, paths: RuntimePaths) -> list[str]:
    """The daemon's argv serving every hard disk of ``settings`` (as QEMU must see them:
    checkpoint overlays included; a qcow2 overlay's backing chain is opened by the daemon).

    Raises :class:`InvalidSetting` for a disk whose format is unresolved.
    """
    args = [binary]
    exports: list[str] = []
    for slot in hard_disks(settings):
        assert slot.path is not None
        device_id = device_id_of(slot)
        image_format = require_format(slot.setting.replace(".path", ".format"), slot.format)
        args += _blockdevs(device_id, slot.path, image_format)
        exports += ["--export", opts("type=nbd", id=device_id, node_name=format_node(device_id),
                                     name=device_id, writable="on")]
    return [
        *args,
        "--nbd-server", f"addr.type=unix,addr.path={escape(str(paths.nbd_socket))}",
        *exports,
        "--chardev", opts("socket", id="qmp", path=str(paths.storage_qmp_socket),
                          server="on", wait="off"),
        "--monitor", "chardev=qmp",
        "--pidfile", str(paths.storage_pid_file),
    ]


def _blockdevs(device_id: str, path: str, image_format: DiskFormat) -> list[str]:
    return [
        "--blockdev", opts(f"driver={protocol_driver(path)}", filename=path,
                           node_name=file_node(device_id)),
        "--blockdev", opts(f"driver={image_format.value}", file=file_node(device_id),
                           node_name=format_node(device_id)),
    ]

"""Pure rendering of a VM's settings into the QEMU command line.

:func:`render_argv` is a pure function of its arguments — no I/O, no clock, no
environment — so the same settings always give the same argv (golden tests pin it).
Each device kind has its own small renderer returning a list of arguments:

=================  ==========================================================
``machine``        name, UUID, machine + accelerator, CPU (``cpu``), memory, SMP, RTC
``bios``           startup order → bootindex, ``-boot strict=on``, the Num Lock ROM
``ide``            PIIX IDE hard disks and DVD drives
``scsi``           virtio-scsi controllers and disks
``storage``        the per-VM storage daemon's argv (NBD exports of the hard disks)
``floppy``         the ISA floppy drive
``network``        virtio-net / tulip adapters and their backends
``netboot``        tulip boot ROM + iPXE (legacy adapter in startup order)
``serial``         COM1 and COM2
``display``        VGA + VNC on a UNIX socket
``management``     QMP and the guest agent channel
``process``        sandbox, messages, pid file, incoming migration
=================  ==========================================================

Errors: :class:`~viridian.errors.InvalidSetting` for settings the service should have
resolved before a start (an unresolved disk format, an unassigned dynamic MAC, a vm_id
that is not a UUID), :class:`~viridian.errors.NotFound` for an unknown virtual switch.
"""

from __future__ import annotations

from viridian.model import VMSettings
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.render.bios import boot_indexes, render_boot, render_numlock
from viridian.qemu.render.display import render_display
from viridian.qemu.render.floppy import render_floppy
from viridian.qemu.render.ide import render_ide
from viridian.qemu.render.machine import render_machine
from viridian.qemu.render.management import render_management
from viridian.qemu.render.netboot import render_netboot
from viridian.qemu.render.network import render_network
from viridian.qemu.render.process import render_incoming, render_process
from viridian.qemu.render.scsi import render_scsi
from viridian.qemu.render.serial import render_serial
from viridian.qemu.runtime_paths import RuntimePaths

__all__ = ["render_argv"]


def render_argv(
    vm_id: str,
    settings: VMSettings,
    host: HostCapabilities,
    paths: RuntimePaths,
    *,
    incoming: bool = False,
    storage_daemon: bool = False,
) -> list[str]:
    """The full QEMU argv (``argv[0]`` is ``host.qemu_binary``) for one VM.

    ``settings`` must be valid (see :func:`viridian.model.validate`) with every disk
    format and dynamic MAC resolved. ``incoming`` adds ``-incoming defer`` (restore).
    ``storage_daemon``: the hard disks are NBD exports of the VM's storage daemon
    (:mod:`viridian.qemu.render.storage`), not images QEMU opens.
    """
    boot = boot_indexes(settings)
    nbd = str(paths.nbd_socket) if storage_daemon else None
    return [
        host.qemu_binary,
        *render_machine(vm_id, settings, host),
        *render_boot(),
        *render_numlock(settings, paths),
        *render_process(paths),
        *render_ide(settings, boot, nbd),
        *render_scsi(settings, nbd),
        *render_floppy(settings, boot),
        *render_network(settings, boot, vm_id),
        *render_netboot(settings, boot, paths),
        *render_serial(settings, paths),
        *render_display(paths),
        *render_management(paths),
        *render_incoming(incoming),
    ]

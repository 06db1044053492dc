"""The virtual motherboard: identity, machine type, memory, processors and clock.

Hyper-V generation 1 is a BIOS PC with a PIIX chipset; QEMU's ``pc`` (i440fx + PIIX3)
is the same family: it brings the PIIX IDE controller (``ide.0``/``ide.1``), the ISA
floppy controller, PS/2 keyboard and mouse and the RTC. ``-nodefaults`` drops every
other default device, so each device a VM has is named in the argv.

The processor reserve, limit and weight are not QEMU options: the host enforces them
with cgroups around the QEMU process.
"""

from __future__ import annotations

import uuid

from viridian.errors import InvalidSetting
from viridian.model import VMSettings
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.render.cpu import render_cpu
from viridian.qemu.render.options import escape, opts


def render_machine(vm_id: str, settings: VMSettings, host: HostCapabilities) -> list[str]:
    """Identity, machine and accelerator, CPU model, memory, processor count, RTC.

    Raises :class:`InvalidSetting` when ``vm_id`` is not a UUID (QEMU's ``-uuid``).
    """
    return [
        "-name",
        f"guest={escape(settings.name)},debug-threads=on",
        "-uuid",
        _uuid(vm_id),
        "-nodefaults",
        "-no-user-config",
        "-machine",
        opts(host.machine, accel=host.accelerator),
        *render_cpu(settings.processor, host),
        "-m",
        str(settings.memory.startup_mb),
        "-smp",
        str(settings.processor.count),
        "-rtc",
        "base=utc",
    ]


def _uuid(vm_id: str) -> str:
    try:
        return str(uuid.UUID(vm_id))
    except ValueError as err:
        raise InvalidSetting("vm_id", vm_id, "a UUID") from err

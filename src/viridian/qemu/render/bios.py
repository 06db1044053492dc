"""BIOS settings: the startup order, mapped to QEMU ``bootindex`` values.

Hyper-V's startup order names device classes; SeaBIOS orders boot devices by
``bootindex`` (docs/bootindex.txt in QEMU), and with ``-boot strict=on`` it tries only
devices that have one. Each class expands to its devices in slot order:

- ``cd`` — IDE DVD drives (controller, then location; an empty drive still gets one)
- ``ide`` — IDE hard disks (SCSI disks never boot, as in Hyper-V generation 1)
- ``net`` — legacy network adapters, in list order (synthetic ones never boot)
- ``floppy`` — the floppy drive

Num Lock: neither QEMU nor SeaBIOS has a switch for the keyboard's Num Lock state at
boot, so ``bios.num_lock`` is not rendered here; it is stored and shown, and is made to
work by a later change. Nothing pretends otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping

from viridian.model import AdapterKind, BootDevice, DriveKind, VMSettings
from viridian.qemu.render.naming import FLOPPY_ID, ide_id, nic_id


def boot_indexes(settings: VMSettings) -> Mapping[str, int]:
    """Device id → bootindex, following ``settings.bios.startup_order``."""
    order: list[str] = []
    for device_class in settings.bios.startup_order:
        order.extend(_devices_of(settings, device_class))
    return {device: index for index, device in enumerate(order)}


def _devices_of(settings: VMSettings, device_class: BootDevice) -> list[str]:
    drives = sorted(settings.ide, key=lambda d: (d.controller, d.location))
    if device_class == BootDevice.CD:
        return [ide_id(d.controller, d.location) for d in drives if d.kind == DriveKind.DVD]
    if device_class == BootDevice.IDE:
        return [ide_id(d.controller, d.location) for d in drives if d.kind == DriveKind.HARD_DISK]
    if device_class == BootDevice.NET:
        return [
            nic_id(i)
            for i, a in enumerate(settings.network_adapters)
            if a.kind == AdapterKind.LEGACY
        ]
    return [FLOPPY_ID]


def render_boot() -> list[str]:
    """Boot only from devices in the startup order (``strict=on``)."""
    return ["-boot", "strict=on"]

"""BIOS settings: the startup order, mapped to QEMU ``bootindex`` values.

Hyper-V's startup order names device classes; SeaBIOS orders boot devices by
``bootindex`` (docs/bootindex.txt in QEMU), and with ``-boot strict=on`` it tries only
devices that have one. Each class expands to its devices in slot order:

- ``cd`` — IDE DVD drives (controller, then location; an empty drive still gets one)
- ``ide`` — IDE hard disks (SCSI disks never boot, as in Hyper-V generation 1)
- ``net`` — legacy network adapters, in list order (synthetic ones never boot)
- ``floppy`` — the floppy drive

Num Lock: neither QEMU nor SeaBIOS has a switch for the keyboard's Num Lock state at
boot; with ``bios.num_lock`` on, a tiny option ROM sets the BIOS data area's Num Lock flag
during POST (see :mod:`viridian.qemu.firmware`; the service writes the ROM file).
"""

from __future__ import annotations

from collections.abc import Mapping

from viridian.model import AdapterKind, BootDevice, DriveKind, VMSettings
from viridian.qemu.firmware import numlock_rom_path
from viridian.qemu.render.naming import FLOPPY_ID, ide_id, nic_id
from viridian.qemu.runtime_paths import RuntimePaths


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


def render_numlock(settings: VMSettings, paths: RuntimePaths) -> list[str]:
    """The Num Lock option ROM when ``bios.num_lock`` is on."""
    if not settings.bios.num_lock:
        return []
    return ["-option-rom", str(numlock_rom_path(paths))]

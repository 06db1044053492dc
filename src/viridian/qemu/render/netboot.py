"""Network boot through legacy adapters: the tulip boot ROM and the iPXE it starts.

A VM with a legacy adapter (which always has its place in the startup order, through
"net") gets viridian's boot ROM on every ``tulip`` (``-global tulip.romfile=``; the service
writes the file, see :mod:`viridian.qemu.netboot`), and QEMU hands iPXE to the firmware
as a fw_cfg file. SeaBIOS calls the ROM only when the startup order reaches the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping

from viridian.model import AdapterKind, VMSettings
from viridian.qemu.netboot import FW_CFG_KERNEL, IPXE_KERNEL, netboot_rom_path
from viridian.qemu.render.naming import nic_id
from viridian.qemu.render.options import escape
from viridian.qemu.runtime_paths import RuntimePaths


def needs_netboot(settings: VMSettings, boot: Mapping[str, int]) -> bool:
    """Whether some legacy adapter has a place in the startup order (a ``bootindex``)."""
    return any(a.kind == AdapterKind.LEGACY and nic_id(i) in boot
               for i, a in enumerate(settings.network_adapters))


def render_netboot(settings: VMSettings, boot: Mapping[str, int],
                   paths: RuntimePaths) -> list[str]:
    """The boot ROM for the tulips and iPXE in fw_cfg, when a legacy adapter can boot."""
    if not needs_netboot(settings, boot):
        return []
    # -global takes its value verbatim (no comma escaping); -fw_cfg is a QemuOpts list.
    return ["-global", f"tulip.romfile={netboot_rom_path(paths)}",
            "-fw_cfg", f"name={FW_CFG_KERNEL},file={escape(str(IPXE_KERNEL))}"]

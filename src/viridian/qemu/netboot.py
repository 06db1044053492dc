"""Network boot through a legacy network adapter (emulated DEC 21143, QEMU's ``tulip``).

Hyper-V's legacy adapter boots from the network (PXE) when the BIOS startup order puts
"network" before the disks. QEMU 7.2 and Debian ship no PXE option ROM for the tulip
(PCI 1011:0019), and the iPXE sources that would build one are not reachable from this
project's machines. viridian therefore pairs two pieces:

- iPXE itself: Debian's package ``ipxe`` (GPL-2) ships ``/usr/lib/ipxe/ipxe.lkrn``, iPXE
  with every network driver (tulip included) packed as a Linux kernel image. QEMU hands
  it to the guest firmware as the fw_cfg file :data:`FW_CFG_KERNEL`
  (``-fw_cfg name=...,file=...``; QEMU docs/specs/fw_cfg.rst).
- a 1 KiB PCI option ROM of our own for the tulip (``romfile=``), whose only job is to
  start that iPXE when SeaBIOS reaches the adapter in the startup order. Its source is
  ``netboot_rom.S`` beside this module; :data:`_CODE` holds its assembled bytes (GNU as:
  ``as --32 netboot_rom.S && objcopy -O binary -j .text``; a test checks they match).

The ROM (PCI Firmware Specification 3.0 §5.1 header and PCI data structure; BIOS Boot
Specification 1.01 §3 PnP expansion header) carries a *bootstrap entry vector* (BEV):
SeaBIOS registers it as the adapter's boot entry, ordered by the adapter's ``bootindex``.
When called, the BEV finds :data:`FW_CFG_KERNEL` in the fw_cfg file directory, loads
its real-mode part to 1000:0000 through the fw_cfg I/O port and its protected-mode part
to 1 MiB through fw_cfg DMA, fills the boot protocol fields (Linux
Documentation/x86/boot.rst: type_of_loader, CAN_USE_HEAP, heap_end_ptr, cmd_line_ptr) and
jumps to it. An optional fw_cfg file :data:`FW_CFG_CMDLINE` becomes the kernel command
line, which iPXE runs as a script (tests use it); without it iPXE runs its default
``autoboot``: DHCP on each adapter, then the boot file the DHCP server names. When
nothing boots, iPXE ends with INT 18h and SeaBIOS goes on with the next device in the
startup order, as a PXE ROM does. If the kernel is missing or the host lacks fw_cfg DMA,
the BEV returns at once (SeaBIOS: next device).
"""

from __future__ import annotations

from pathlib import Path

from viridian.errors import HostError

from .firmware import write_rom_file
from .runtime_paths import RuntimePaths

__all__ = [
    "FW_CFG_CMDLINE",
    "FW_CFG_KERNEL",
    "IPXE_KERNEL",
    "NETBOOT_ROM_NAME",
    "TULIP_PCI_ID",
    "netboot_rom",
    "netboot_rom_path",
    "write_netboot_rom",
]

NETBOOT_ROM_NAME = "netboot-tulip.rom"
IPXE_KERNEL = Path("/usr/lib/ipxe/ipxe.lkrn")
"""iPXE with all drivers as a Linux kernel image (Debian package ``ipxe``)."""
FW_CFG_KERNEL = "opt/org.viridian/ipxe.lkrn"
FW_CFG_CMDLINE = "opt/org.viridian/ipxe.cmdline"
TULIP_PCI_ID = (0x1011, 0x0019)
"""DEC 21143 "Tulip" (vendor, device): what QEMU's ``tulip`` presents."""
_ROM_SIZE = 1024
_CODE = bytes.fromhex(
    "55aa00e9f1000000000000000000000000000000000000001c00400050434952000000000000180000000002"
    "000001000080000000000000000000000000000024506e500102000000000000000060006900020000140000"
    "0000f80000000000766972696469616e004c6567616379204e6574776f726b20416461707465722028695058"
    "4529006f70742f6f72672e766972696469616e2f697078652e6c6b726e000000000000000000000000000000"
    "0000000000000000000000000000006f70742f6f72672e766972696469616e2f697078652e636d646c696e65"
    "000000000000000000000000000000000000000000000000000000cbfc0e1fb80100e80001eca8020f84f800"
    "be8700e804010f82ee006689c689d8e8e700b800108ec031ffb90002f36c26660fb60ef10185c97503b90400"
    "c1e1096629ce6681ee000200000f86bb00f36c2666813e0202486472530f85ab002666c70600f00000000266"
    "89f0660fc82666a304f02666c70608f0000000002666c7060cf0001000006631c0ba140566ef66b800f00100"
    "660fc8ba180566ef2666a100f066a900000001755f6685c075ee26c6061002ff26800e11028026c706240200"
    "de2666c706280200000000bebf00e849007222663dff070000771a89c189d8e82700bf00e0f36c26c6050026"
    "66c706280200e00100fa8cc08ed88ee08ee88ed0bc00e0ea00002010cbba1005ef42c3b9040066c1e008ece2"
    "f9c3b81900e8e9ffe8ecff6689c56685ed742a664de8dfff6689c7ec88c7ec88c3ecec56b9380030e4ec3a04"
    "7402b40146e2f65e84e475d66689f8f8c3f9c3"
)


def netboot_rom(vendor: int = TULIP_PCI_ID[0], device: int = TULIP_PCI_ID[1]) -> bytes:
    """The option ROM image for PCI ``vendor:device``: 1 KiB, sizes filled in, PnP header
    and whole-image checksums 0 (SeaBIOS only runs a ROM whose IDs match its device)."""
    rom = bytearray(_CODE.ljust(_ROM_SIZE, b"\0"))
    rom[2] = _ROM_SIZE // 512
    pcir = int.from_bytes(rom[0x18:0x1A], "little")
    pnp = int.from_bytes(rom[0x1A:0x1C], "little")
    rom[pcir + 4 : pcir + 8] = vendor.to_bytes(2, "little") + device.to_bytes(2, "little")
    rom[pcir + 0x10 : pcir + 0x12] = (_ROM_SIZE // 512).to_bytes(2, "little")
    rom[pnp + 9] = -sum(rom[pnp : pnp + 32]) & 0xFF
    rom[-1] = -sum(rom) & 0xFF
    return bytes(rom)


def netboot_rom_path(paths: RuntimePaths) -> Path:
    """Where the ROM lives: next to the VMs' runtime folders (shared by every VM)."""
    return paths.folder.parent / NETBOOT_ROM_NAME


def write_netboot_rom(paths: RuntimePaths, kernel: Path = IPXE_KERNEL) -> Path:
    """Make sure the ROM file exists with the right bytes (atomic replace); returns it.

    :raises HostError: iPXE (``kernel``) is not installed: QEMU could not start.
    """
    if not kernel.is_file():
        raise HostError(f"network boot through a legacy network adapter needs iPXE at "
                        f"{kernel}; install the Debian package ipxe, or take 'net' out "
                        f"of the VM's startup order")
    return write_rom_file(netboot_rom_path(paths), netboot_rom())

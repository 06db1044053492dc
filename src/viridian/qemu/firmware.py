"""Firmware pieces viridian adds to SeaBIOS: the Num Lock option ROM.

Hyper-V's BIOS setting "Num Lock" decides whether Num Lock is on when the guest starts.
SeaBIOS (QEMU 7.2) has no switch for it: POST leaves the keyboard flag byte of the BIOS
data area (BDA 0040:0017, bit 5 = Num Lock active; IBM PC/AT Technical Reference, BIOS
data area) at 0. viridian therefore hands SeaBIOS a 512-byte option ROM (``-option-rom``,
loaded from fw_cfg ``genroms/``) whose init routine sets that bit. SeaBIOS runs file
option ROMs after its keyboard set-up, so the bit survives into the boot loader and the
operating system: DOS and Windows read it through INT 16h/AH=02h, and Linux stores the
same INT 16h answer in ``boot_params.kbd_status`` (offset 0x1EB, exported in
``/sys/kernel/boot_params/data``), which is how the tests read it from inside a guest.
The keyboard LED follows at the first key the BIOS handles.

Option ROM format (BIOS Boot Specification 1.01, section 3.1): bytes 55 AA, the length
in 512-byte blocks, a far-callable init entry at offset 3, all bytes summing to 0 mod 256.
"""

from __future__ import annotations

import os
from pathlib import Path

from .runtime_paths import RuntimePaths

__all__ = ["NUMLOCK_ROM_NAME", "numlock_rom", "numlock_rom_path", "write_numlock_rom"]

NUMLOCK_ROM_NAME = "bios-numlock.rom"
_ROM_SIZE = 512
# The init routine, 16-bit real mode:
#   push ds; push ax; mov ax, 0x0040; mov ds, ax; or byte [0x0017], 0x20; pop ax; pop ds; retf
_INIT_CODE = bytes.fromhex("1e50b840008ed8800e17002058 1fcb".replace(" ", ""))


def numlock_rom() -> bytes:
    """The option ROM image (512 bytes, checksum 0)."""
    rom = bytearray(_ROM_SIZE)
    rom[0:3] = bytes([0x55, 0xAA, _ROM_SIZE // 512])
    rom[3 : 3 + len(_INIT_CODE)] = _INIT_CODE
    rom[-1] = -sum(rom) & 0xFF
    return bytes(rom)


def numlock_rom_path(paths: RuntimePaths) -> Path:
    """Where the ROM lives: next to the VMs' runtime folders (shared by every VM).

    Not inside the runtime folder: a launch clears that folder before QEMU starts.
    """
    return paths.folder.parent / NUMLOCK_ROM_NAME


def write_numlock_rom(paths: RuntimePaths) -> Path:
    """Make sure the ROM file exists with the right bytes (atomic replace); returns it."""
    return write_rom_file(numlock_rom_path(paths), numlock_rom())


def write_rom_file(path: Path, data: bytes) -> Path:
    """``path`` holds exactly ``data`` afterwards (replaced atomically, shared by VMs that
    may start at the same time); returns ``path``."""
    try:
        if path.read_bytes() == data:
            return path
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path

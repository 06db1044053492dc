"""The bootable ISO: ISOLINUX El Torito image made with xorriso (no loop mounts).

Layout: ``/isolinux/{isolinux.bin,ldlinux.c32,isolinux.cfg}``, ``/boot/{vmlinuz,
initrd.img}``. The image is also isohybrid (``isohdpfx.bin`` MBR), so it boots when
attached as a hard disk too.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from viridian.errors import HostError
from viridian.guestkit.bootconfig import render_isolinux_cfg
from viridian.guestkit.commands import run

__all__ = ["ISOLINUX_BIN", "build_iso"]

ISOLINUX_BIN = Path("/usr/lib/ISOLINUX/isolinux.bin")
ISOHYBRID_MBR = Path("/usr/lib/ISOLINUX/isohdpfx.bin")
LDLINUX_C32 = Path("/usr/lib/syslinux/modules/bios/ldlinux.c32")
VOLUME_ID = "VIRIDIAN_GUEST"


def build_iso(kernel: Path, initrd: Path, scratch: Path, target: Path) -> None:
    """Write the ISO to ``target`` using ``scratch`` (an empty folder) for its tree.

    Raises HostError when isolinux/syslinux-common/xorriso are missing or xorriso fails.
    """
    for needed in (ISOLINUX_BIN, ISOHYBRID_MBR, LDLINUX_C32):
        if not needed.is_file():
            raise HostError(f"guest kit: {needed} missing; install isolinux and syslinux-common")
    (scratch / "isolinux").mkdir(parents=True)
    (scratch / "boot").mkdir()
    shutil.copyfile(ISOLINUX_BIN, scratch / "isolinux" / "isolinux.bin")
    shutil.copyfile(LDLINUX_C32, scratch / "isolinux" / "ldlinux.c32")
    (scratch / "isolinux" / "isolinux.cfg").write_text(render_isolinux_cfg())
    shutil.copyfile(kernel, scratch / "boot" / "vmlinuz")
    shutil.copyfile(initrd, scratch / "boot" / "initrd.img")
    run(
        [
            "xorriso", "-as", "mkisofs", "-quiet",
            "-o", target,
            "-V", VOLUME_ID,
            "-J", "-R",
            "-isohybrid-mbr", ISOHYBRID_MBR,
            "-b", "isolinux/isolinux.bin",
            "-c", "isolinux/boot.cat",
            "-no-emul-boot", "-boot-load-size", "4", "-boot-info-table",
            scratch,
        ]
    )  # fmt: skip

"""The bootable hard disk: MBR + one FAT16 partition booted by SYSLINUX, raw and VHD.

Built without loop mounts: ``sfdisk`` writes the partition table into the image file,
``mkfs.vfat --offset`` formats the partition in place, ``mcopy -i IMAGE@@OFFSET`` fills
it, ``syslinux --install --offset`` installs the boot sector and ``ldlinux.sys`` on the
unmounted image, and syslinux's ``mbr.bin`` becomes the first 440 bytes (the boot code
area of the MBR, before the disk signature and partition table).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from viridian.errors import HostError
from viridian.guestkit.bootconfig import render_syslinux_cfg
from viridian.guestkit.cachekey import digest_files
from viridian.guestkit.commands import run

__all__ = [
    "DISK_SIZE",
    "PARTITION_START_SECTOR",
    "build_raw_disk",
    "converter_id",
    "render_partition_table",
]

DISK_SIZE = 64 * 1024 * 1024
SECTOR = 512
PARTITION_START_SECTOR = 2048  # 1 MiB, the usual alignment
DISK_SIGNATURE = 0x56495244  # "VIRD"
FAT_VOLUME_ID = "56495247"
MBR_BIN = Path("/usr/lib/syslinux/mbr/mbr.bin")
MBR_BOOT_CODE = 440  # bytes of boot code before the disk signature


def render_partition_table(disk_size: int = DISK_SIZE) -> str:
    """sfdisk script: DOS label, one active FAT16-LBA (0x0e) partition from 1 MiB to the end."""
    sectors = disk_size // SECTOR - PARTITION_START_SECTOR
    return (
        "label: dos\n"
        f"label-id: 0x{DISK_SIGNATURE:08x}\n"
        "unit: sectors\n"
        f"start={PARTITION_START_SECTOR}, size={sectors}, type=e, bootable\n"
    )


def build_raw_disk(kernel: Path, initrd: Path, scratch: Path, target: Path) -> None:
    """Write the bootable raw disk image (DISK_SIZE bytes, sparse) to ``target``.

    Raises HostError when fdisk, dosfstools, mtools or syslinux are missing or fail.
    """
    if not MBR_BIN.is_file():
        raise HostError(f"guest kit: {MBR_BIN} missing; install syslinux-common")
    offset = PARTITION_START_SECTOR * SECTOR
    with open(target, "wb") as image:
        image.truncate(DISK_SIZE)
    run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", target],
        stdin=render_partition_table().encode(),
    )
    run(
        [
            "mkfs.vfat", "-F", "16", "-n", "VIRIDIAN", "-i", FAT_VOLUME_ID,
            "--offset", str(PARTITION_START_SECTOR), "-h", str(PARTITION_START_SECTOR),
            target, str((DISK_SIZE - offset) // 1024),
        ]
    )  # fmt: skip
    config = scratch / "syslinux.cfg"
    config.write_text(render_syslinux_cfg())
    fat = f"{target}@@{offset}"
    for source, name in ((kernel, "vmlinuz"), (initrd, "initrd.img"), (config, "syslinux.cfg")):
        run(["mcopy", "-i", fat, source, f"::/{name}"])
    run(["syslinux", "--install", "--offset", str(offset), target])
    boot_code = MBR_BIN.read_bytes()[:MBR_BOOT_CODE]
    with open(target, "r+b") as image:
        image.write(boot_code)


def _disks_convert() -> Callable[..., None] | None:
    """viridian.disks.convert, or None when that package cannot be imported."""
    try:
        from viridian.disks import convert
    except ImportError:
        return None
    return convert


def converter_id() -> str:
    """Names the raw → VHD converter in use (with a digest of its code), for the cache key."""
    if _disks_convert() is None:
        return "qemu-img convert -O vpc -o subformat=dynamic,force_size=on"
    import viridian.disks

    base = Path(viridian.disks.__file__).parent
    return "viridian.disks.convert:" + digest_files(base.glob("*.py"), base)


def _raw_to_dynamic_vhd(raw: Path, vhd: Path) -> None:
    """Convert ``raw`` into a new dynamic VHD at ``vhd`` of exactly the same virtual size.

    Uses viridian.disks.convert; ``qemu-img convert`` only when viridian.disks cannot be
    imported. Raises HostError when the conversion fails.
    """
    convert = _disks_convert()
    if convert is None:
        run(
            [
                "qemu-img", "convert", "-f", "raw", "-O", "vpc",
                "-o", "subformat=dynamic,force_size=on", raw, vhd,
            ]
        )  # fmt: skip
        return
    from viridian.disks import DiskError

    try:
        convert(raw, vhd, "dynamic")
    except DiskError as err:
        raise HostError(f"guest kit: converting {raw} to a dynamic VHD failed: {err}") from err

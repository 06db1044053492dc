"""Storage the admin hands in that QEMU must not get as it is.

- **Pass-through disks**: a host block device (``/dev/...``) is attached raw, but only
  while nothing on the host uses it: not mounted (the device or any of its partitions),
  not active swap, not held by another kernel user (device-mapper, RAID, LVM). Two
  writers on one block device destroy its file system.
- **Differencing VHDs**: QEMU reads a differencing VHD as if it were standalone (wrong
  data, no error; docs/architecture.md, "The storage path"). A differencing disk handed
  in is converted, with the VHD library, into a standalone dynamic VHD holding the whole
  chain's data, in ``<data>/disks``; the VM uses the converted disk and the admin's
  chain stays untouched.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from viridian.disks import convert, detect_format, inspect
from viridian.errors import Conflict, ViridianError
from viridian.model import VMSettings, settings_from_dict, to_dict
from viridian.model.slots import hard_disks, map_drives

CONVERTED_FOLDER = "disks"
NO_MEMORY_SAVE_FORMATS = frozenset({"vpc", "vhdx"})


MAX_CHAIN = 16
"""Backing files followed below one disk (a longer chain is not looked at further)."""
QCOW2_MAGIC = b"QFI\xfb"


def memory_save_blocker(settings: VMSettings, served: bool = False) -> str | None:
    """Why QEMU cannot save this VM's memory (Save, checkpoints with memory), or None.

    QEMU 7.2's vpc and vhdx drivers register a migration blocker ("does not support live
    migration"), and saving memory is a migration to a file: a VHD/VHDX hard disk blocks
    it (:func:`vhd_disks_blocker`), and so does one anywhere in a qcow2 disk's backing
    chain (:func:`backing_chain_blocker`). ``served``: the VM's storage daemon opens the
    images, chains included, and QEMU holds only NBD nodes, which do not block
    (docs/architecture.md, "The storage path").
    """
    if served:
        return None
    return vhd_disks_blocker(settings) or backing_chain_blocker(settings)


def vhd_disks_blocker(settings: VMSettings) -> str | None:
    """The reason when one of the VM's own hard disks is VHD/VHDX (a storage daemon, when
    the host runs one, would serve them and lift it)."""
    formats = {slot.format for slot in hard_disks(settings)}
    blocked = sorted(f.value for f in formats if f is not None and f in NO_MEMORY_SAVE_FORMATS)
    if not blocked:
        return None
    return ("QEMU cannot save the memory of a VM with VHD/VHDX disks "
            f"({', '.join(blocked)} driver); convert them to qcow2 or raw for that")


def backing_chain_blocker(settings: VMSettings) -> str | None:
    """The reason when a qcow2 hard disk sits on a VHD/VHDX backing file (e.g. a VM
    provisioned from a template made before templates stored VHD/VHDX disks as qcow2):
    QEMU opens the chain itself — a storage daemon serves only VMs with VHD/VHDX disks of
    their own — so the vpc/vhdx driver in the chain blocks the save. Each named with its
    base and what to do."""
    found = [f"{slot.path} is a qcow2 overlay over {base} ({driver} driver)"
             for slot in hard_disks(settings)
             if slot.path and (slot.format is None or slot.format.value == "qcow2")
             for base, driver in vhd_bases(Path(slot.path))]
    if not found:
        return None
    return ("QEMU cannot save the memory of a VM whose disks sit on VHD/VHDX backing files "
            f"(the driver in the backing chain blocks it): {'; '.join(found)}; convert the "
            "base to qcow2 ('qemu-img convert -O qcow2 BASE NEW' then 'qemu-img rebase -u "
            "-F qcow2 -b NEW OVERLAY' while the VM is Off), or provision the VM again from "
            "a template made now (templates keep VHD/VHDX disks as qcow2)")


def vhd_bases(path: Path) -> list[tuple[str, str]]:
    """(backing file, QEMU driver) of each VHD/VHDX file in the backing chain below the
    qcow2 image ``path`` (read from the qcow2 headers, QEMU docs/interop/qcow2.txt:
    u64 backing_file_offset at byte 8, u32 backing_file_size at byte 16; a relative name
    is relative to the overlay's folder, as QEMU resolves it). Empty for other images, an
    unreadable file or a chain of protocol names (``json:``, ``nbd:``)."""
    found: list[tuple[str, str]] = []
    current: Path | None = path
    for _ in range(MAX_CHAIN):
        backing = _qcow2_backing(current) if current is not None else None
        if backing is None:
            break
        driver = _driver(backing)
        if driver in NO_MEMORY_SAVE_FORMATS:
            found.append((str(backing), driver))
        current = backing if driver == "qcow2" else None
    return found


def _qcow2_backing(path: Path) -> Path | None:
    try:
        with open(path, "rb") as image:
            head = image.read(20)
            if len(head) < 20 or not head.startswith(QCOW2_MAGIC):
                return None
            offset, size = int.from_bytes(head[8:16], "big"), int.from_bytes(head[16:20], "big")
            if not offset or not 0 < size <= 1023:
                return None
            image.seek(offset)
            name = image.read(size).decode(errors="replace")
    except OSError:
        return None
    if ":" in name.split("/", 1)[0]:  # a protocol (json:, nbd:...), not a file
        return None
    return path.parent / name


def _driver(path: Path) -> str | None:
    try:
        return detect_format(path) if path.is_file() else None
    except Exception:  # unreadable or corrupt: QEMU would refuse to start anyway
        return None


def is_block_device(path: str) -> bool:
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except OSError:
        return False


def block_device_users(path: str) -> list[str]:
    """What on the host uses the block device ``path`` (empty: free to pass through)."""
    rdev = os.stat(path).st_rdev
    devices = {(os.major(rdev), os.minor(rdev))} | set(_partitions(rdev))
    users = [f"mounted at {mount}" for mount in _mounts_of(devices)]
    users += [f"active swap ({name})" for name in _swaps_of(devices)]
    users += [f"held by {holder}" for holder in _holders(rdev)]
    return users


def check_pass_through(setting: str, path: str) -> None:
    """Raise :class:`Conflict` naming the users when the host still uses ``path``."""
    users = block_device_users(path)
    if users:
        raise Conflict(
            f"{setting}: host block device {path} is in use on the host ({'; '.join(users)}); "
            "unmount it (or stop what uses it) before passing it through to a VM; "
            "nothing was changed", setting=setting, path=path, users=users)


def _sysfs_dir(rdev: int) -> Path:
    return Path(f"/sys/dev/block/{os.major(rdev)}:{os.minor(rdev)}")


def _partitions(rdev: int) -> Iterator[tuple[int, int]]:
    base = _sysfs_dir(rdev)
    if not base.exists():
        return
    for child in base.resolve().iterdir():
        dev = child / "dev"
        if (child / "partition").exists() and dev.exists():
            major, minor = dev.read_text().strip().split(":")
            yield int(major), int(minor)


def _mounts_of(devices: set[tuple[int, int]]) -> list[str]:
    mounts = []
    with open("/proc/self/mountinfo") as info:
        for line in info:
            fields = line.split()
            major, minor = fields[2].split(":")
            if (int(major), int(minor)) in devices:
                mounts.append(fields[4])
    return mounts


def _swaps_of(devices: set[tuple[int, int]]) -> list[str]:
    found = []
    with open("/proc/swaps") as swaps:
        for line in list(swaps)[1:]:
            name = line.split()[0]
            if is_block_device(name):
                rdev = os.stat(name).st_rdev
                if (os.major(rdev), os.minor(rdev)) in devices:
                    found.append(name)
    return found


def _holders(rdev: int) -> list[str]:
    holders = _sysfs_dir(rdev) / "holders"
    return sorted(p.name for p in holders.iterdir()) if holders.exists() else []


# --- differencing VHDs ----------------------------------------------------------------


def _is_differencing(path: str) -> bool:
    try:
        return Path(path).is_file() and detect_format(path) in ("vpc", "vhdx") and \
            inspect(path).disk_type == "differencing"
    except Exception:  # unreadable or corrupt: the settings check reports it
        return False


async def convert_differencing(patch: dict[str, Any], data_dir: Path) -> list[str]:
    """Replace every differencing VHD among the hard disks of ``patch`` (API dict shape,
    changed in place) by a standalone copy of its chain (converted in a thread); returns
    the copies' paths. A chain converted before (same file, size and time) is reused.
    The drives are read through the model (:func:`viridian.model.slots.hard_disks`);
    drives that are not valid settings are left for the settings check to refuse."""
    drives: dict[str, Any] = {key: patch[key] for key in ("ide", "scsi") if key in patch}
    try:
        settings = settings_from_dict({"name": "vm", **drives})
    except ViridianError:
        return []
    copies: dict[str, str] = {}
    for slot in hard_disks(settings):
        path = slot.path
        if path and path not in copies and os.path.isabs(path) and _is_differencing(path):
            copies[path] = str(await _standalone_copy(Path(path), data_dir / CONVERTED_FOLDER))
    if copies:
        standalone = map_drives(settings, lambda slot: replace(
            slot, path=copies[slot.path], format=None) if slot.path in copies else slot)
        encoded = to_dict(standalone)
        patch.update({key: encoded[key] for key in drives})
    return list(copies.values())


async def _standalone_copy(source: Path, folder: Path) -> Path:
    info = source.stat()
    key = hashlib.sha256(f"{source.resolve()}:{info.st_size}:{info.st_mtime_ns}".encode())
    target = folder / f"{source.stem}-standalone-{key.hexdigest()[:10]}.vhd"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    await asyncio.to_thread(convert, source, partial, "dynamic")
    os.replace(partial, target)
    return target

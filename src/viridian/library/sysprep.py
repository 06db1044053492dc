"""Guest-side generalisation of a template's disk copy, offline (docs/architecture.md,
"Library and provisioning"): what makes a Linux guest one machine — its machine id, SSH
host keys, host name, persistent NIC rules tied to old MACs — is reset on each ext2/3/4
file system found on a raw disk (whole disk, MBR or GPT partitions), so each VM made from
the template gets new ones at its first boot (systemd makes a new machine id for an
empty ``/etc/machine-id``; sshd's keygen makes host keys; the seed sets the host name).

A qcow2 copy is converted to a temporary sparse raw image, edited the same way, and
converted back into qcow2; a VHD (``vpc``) or VHDX disk is converted to the temporary raw
image, edited, and kept as qcow2 (:func:`template_format`): QEMU opens a provisioned VM's
overlay's backing file itself, and its vpc/vhdx drivers forbid saving memory and live
migration — a qcow2 template disk does not.

Pure: reading partition tables and superblocks from bytes, parsing ``debugfs ls -p``
output, planning the ``debugfs`` commands and the ``qemu-img convert`` options; the shell
(:mod:`viridian.service.library.sysprep`) runs them on the copy, never on the source.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["STORED_AS", "GuestPlan", "ext_superblock", "gpt_partitions", "ls_names",
           "mbr_partitions", "plan", "template_format"]

SECTOR = 512
EXT_MAGIC = 0xEF53
_LINUX_MBR = {0x83}
_GPT_PROTECTIVE = 0xEE
_GPT_SIGNATURE = b"EFI PART"

HOSTNAME = "localhost"
SSH_DIR = "/etc/ssh"
RULES_DIR = "/etc/udev/rules.d"
NET_RULES = "70-persistent-net.rules"

STORED_AS = {"vpc": "qcow2", "vhdx": "qcow2"}
"""Source formats a template stores in another format (docs/architecture.md, "Library
and provisioning": why not VHD/VHDX)."""


def mbr_partitions(sector0: bytes) -> tuple[list[int], bool]:
    """Byte offsets of the Linux (type 0x83) primary partitions of an MBR, and whether
    the MBR is GPT's protective one. No MBR signature: ``([], False)``."""
    if len(sector0) < SECTOR or sector0[510:512] != b"\x55\xaa":
        return [], False
    offsets, protective = [], False
    for index in range(4):
        entry = sector0[446 + 16 * index: 462 + 16 * index]
        kind = entry[4]
        start = struct.unpack_from("<I", entry, 8)[0]
        protective |= kind == _GPT_PROTECTIVE
        if kind in _LINUX_MBR and start:
            offsets.append(start * SECTOR)
    return offsets, protective


def gpt_partitions(header: bytes, entries: bytes) -> list[int]:
    """Byte offsets of every used GPT partition (``header`` = LBA 1, ``entries`` = the
    partition entry array it names)."""
    if header[:8] != _GPT_SIGNATURE:
        return []
    count, size = struct.unpack_from("<II", header, 80)
    offsets = []
    for index in range(min(count, len(entries) // max(size, 1))):
        entry = entries[index * size:(index + 1) * size]
        if entry[:16] != bytes(16):  # an unused entry has a zero type GUID
            offsets.append(struct.unpack_from("<Q", entry, 32)[0] * SECTOR)
    return offsets


def gpt_entries_at(header: bytes) -> tuple[int, int]:
    """(byte offset, byte length) of the partition entry array a GPT header names."""
    lba, count, size = struct.unpack_from("<QII", header, 72)
    return lba * SECTOR, count * size


def ext_superblock(block: bytes) -> bool:
    """Whether the 2 KiB at a candidate offset hold an ext2/3/4 superblock."""
    return len(block) >= 1082 and struct.unpack_from("<H", block, 1024 + 56)[0] == EXT_MAGIC


def ls_names(listing: str) -> set[str]:
    """The entry names of ``debugfs -R 'ls -p DIR'`` (``/ino/mode/uid/gid/name/size/``)."""
    names = set()
    for line in listing.splitlines():
        parts = line.strip().split("/")
        if len(parts) >= 7 and parts[5] not in (".", ".."):
            names.add(parts[5])
    return names


@dataclass(frozen=True)
class GuestPlan:
    """``debugfs`` commands for one file system, and what they reset."""

    commands: tuple[str, ...]
    resets: tuple[str, ...]


def plan(etc: set[str], ssh: set[str], rules: set[str], dbus: set[str], empty_file: str,
         hostname_file: str) -> GuestPlan:
    """What to run on a file system whose ``/etc``, ``/etc/ssh``, ``/etc/udev/rules.d``
    and ``/var/lib/dbus`` hold the given names; ``empty_file`` and ``hostname_file`` are
    host files to write in (an empty one, one holding :data:`HOSTNAME`)."""
    commands: list[str] = []
    resets: list[str] = []
    if "machine-id" in etc:
        commands += ["rm /etc/machine-id", f"write {empty_file} /etc/machine-id"]
        if "machine-id" in dbus:
            commands.append("rm /var/lib/dbus/machine-id")
        resets.append("guest_machine_id")
    keys = sorted(n for n in ssh if n.startswith("ssh_host_"))
    if keys:
        commands += [f"rm {SSH_DIR}/{name}" for name in keys]
        resets.append("guest_ssh_host_keys")
    if "hostname" in etc:
        commands += ["rm /etc/hostname", f"write {hostname_file} /etc/hostname"]
        resets.append("guest_hostname")
    if NET_RULES in rules:
        commands.append(f"rm {RULES_DIR}/{NET_RULES}")
        resets.append("guest_persistent_net_rules")
    return GuestPlan(tuple(commands), tuple(resets))


def template_format(fmt: str) -> str:
    """The format a template keeps a disk of format ``fmt`` in: VHD and VHDX become qcow2
    (:data:`STORED_AS`), the others stay as they are."""
    return STORED_AS.get(fmt, fmt)

"""Confined QEMU and storage daemons: host setting ``confine_qemu`` (docs/architecture.md,
"Security").

When the service installs a :class:`Confinement` (:func:`install`), every process
:meth:`viridian.qemu.process.QemuProcess.spawn` starts from a VM's runtime folder
(``<data>/run/<vm-id>/`` for QEMU, ``<data>/run/<vm-id>-storage/`` for its storage
daemon) runs as that VM's own user:

* **Identity**: one uid per VM from a reserved range (:data:`UID_BASE` …), derived from
  the VM's id (:func:`preferred_uid`; the next free one on a clash) and recorded in
  ``<data>/confinement.json`` (allocated on first start, kept while the VM exists), and
  one shared gid (:data:`GID`) that is only ever granted *traversal* (``x``) of folders.
  Per-VM uids rather than one dedicated user: a dedicated user would let one VM's QEMU
  open every other VM's disks; per-VM files then need no per-VM group.
* **Spawn**: QEMU's own ``-pidfile`` is dropped (:func:`without_own_pidfile`), then
  ``setpriv --reuid UID --regid GID --clear-groups --inh-caps=-all
  --bounding-set=-all --no-new-privs -- <argv>`` (util-linux; same pid, so the process
  stays the service's child), no capabilities at all. QEMU's own argv already holds
  ``-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny``.
* **Files**: the runtime folder is chowned to the VM's uid (mode 0700); every file the
  argv names (disks, ISOs read-only, firmware, ROMs, sockets) and the backing chain of
  each qcow2 image gets a POSIX ACL entry for the VM's uid only (:mod:`.acl`; read-only
  media ``r``, disks ``rw``), folders above them ``x`` for :data:`GID` where "other"
  has no ``x``. Writable files lose their "other" bits: disks are never world-readable.
  Files named later by QMP (hot-plugged disks, media changes, checkpoint overlays) get
  the same grants just before the command is sent (:func:`grant_for_command`, called
  by the monitor for a confined peer). A writable file granted to another VM whose
  processes run now is not granted (:func:`in_use_by_another`): QEMU is refused it with
  "Permission denied" — one running VM per disk.
* **Taps**: each ``-netdev tap,ifname=`` is handed to the VM's uid (``TUNSETOWNER``), as
  the kernel lets only the owner or CAP_NET_ADMIN attach; ``/dev/net/tun`` (and
  ``/dev/kvm`` with KVM) get ``rw`` for the shared group when "other" lacks it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import acl
from .errors import QemuStartError

__all__ = ["GID", "UID_BASE", "Confinement", "FileGrant", "Identity", "active",
           "argv_grants", "command_grants", "confined_argv", "grant_for_command", "install"]

GID = 2_100_000_000
"""The confined processes' one group: only ever granted ``x`` on folders."""
UID_BASE = 2_100_000_001
UID_COUNT = 1_000_000
RECORD_NAME = "confinement.json"
STORAGE_SUFFIX = "-storage"
READ, READ_WRITE, TRAVERSE = 4, 6, 1
PATH_KEYS = ("filename", "file", "path", "logfile", "romfile", "snapshot-file", "target")
CREATED_KEYS = ("path", "logfile")
PATH_FLAGS = ("-pidfile", "--pidfile", "-kernel", "-initrd", "-bios")
FILE_COMMANDS = frozenset({"blockdev-add", "transaction", "blockdev-snapshot-sync",
                           "drive-mirror", "drive-backup", "blockdev-change-medium",
                           "chardev-add", "screendump"})
TUNSETIFF, TUNSETOWNER, TUNSETGROUP = 0x400454CA, 0x400454CC, 0x400454CE
IFF_TAP, IFF_NO_PI, IFF_VNET_HDR = 0x0002, 0x1000, 0x4000
TUN_DEVICE, KVM_DEVICE = Path("/dev/net/tun"), Path("/dev/kvm")


@dataclass(frozen=True)
class Identity:
    """The user a VM's processes run as."""

    uid: int
    gid: int = GID


@dataclass(frozen=True, order=True)
class FileGrant:
    """``path`` must be usable by the VM with ``perm`` (4 read, 6 read-write);
    ``creates``: the process may create it (a socket, pid or log file)."""

    path: str
    perm: int
    creates: bool = False


# -- pure: what an argv or a QMP command names ------------------------------------------

def argv_grants(argv: Sequence[str]) -> list[FileGrant]:
    """Every absolute path ``argv`` names, read-only when its option says so."""
    found: list[FileGrant] = []
    for flag, value in zip(["", *argv], argv, strict=False):
        if flag in PATH_FLAGS and value.startswith("/"):
            found.append(FileGrant(value, READ_WRITE, creates=True))
        elif value.startswith("unix:/"):
            found.append(FileGrant(value.removeprefix("unix:").split(",")[0], READ_WRITE, True))
        elif value.startswith("{"):
            with contextlib.suppress(ValueError):
                found += command_grants("blockdev-add", json.loads(value))
        else:
            found += _option_grants(value)
    return sorted(set(found))


def _option_grants(value: str) -> list[FileGrant]:
    pairs = [part.split("=", 1) for part in re.split(r"(?<!,),(?!,)", value) if "=" in part]
    options = {key: val.replace(",,", ",") for key, val in pairs}
    perm = READ if options.get("read-only") == "on" or options.get("readonly") == "on" \
        else READ_WRITE
    return [FileGrant(val, perm, key.rsplit(".", 1)[-1] in CREATED_KEYS)
            for key, val in options.items()
            if key.rsplit(".", 1)[-1] in PATH_KEYS and val.startswith("/")]


def command_grants(command: str, arguments: Mapping[str, object] | None) -> list[FileGrant]:
    """The files a QMP command makes the process open (hot-plug, media, overlays)."""
    if command not in FILE_COMMANDS or not arguments:
        return []
    return sorted(set(_walk(arguments, READ_WRITE)))


def _walk(node: object, perm: int) -> Iterator[FileGrant]:
    if isinstance(node, Mapping):
        if node.get("read-only") is True:
            perm = READ
        for key, value in node.items():
            if key in PATH_KEYS and isinstance(value, str) and value.startswith("/"):
                yield FileGrant(value, perm, key in CREATED_KEYS)
            else:
                yield from _walk(value, perm)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, perm)


def tap_names(argv: Sequence[str]) -> list[str]:
    return [m.group(1) for value in argv for m in [re.search(r"(?:^|,)ifname=([^,]+)", value)]
            if m and value.startswith("tap,")]


def devices_needed(argv: Sequence[str]) -> list[Path]:
    """Host devices the process opens itself: the tun clone device for taps, KVM."""
    needed = [TUN_DEVICE] if tap_names(argv) else []
    if any(re.search(r"(?:^|,)accel=kvm", value) for value in argv):
        needed.append(KVM_DEVICE)
    return needed


def confined_argv(argv: Sequence[str], identity: Identity) -> list[str]:
    """``argv`` run as ``identity`` with no groups, no capabilities, no new privileges."""
    return ["setpriv", f"--reuid={identity.uid}", f"--regid={identity.gid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *argv]


# -- the policy the service installs ---------------------------------------------------

@dataclass(frozen=True)
class Confinement:
    """Confine processes started from runtime folders under ``<data_dir>/run``."""

    data_dir: Path

    def identity_for(self, folder: Path) -> Identity | None:
        """The VM identity for a runtime folder, allocated on first use; None when the
        folder is not a VM's runtime folder under this data folder."""
        if folder.parent != self.data_dir / "run":
            return None
        return Identity(self.allocate(folder.name.removesuffix(STORAGE_SUFFIX)))

    def allocate(self, vm_id: str) -> int:
        """The VM's uid, recorded in ``<data>/confinement.json`` (0600) under a lock."""
        path = self.data_dir / RECORD_NAME
        with open(self.data_dir / f".{RECORD_NAME}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            uids = _read_uids(path)
            if vm_id not in uids:
                used = set(uids.values())
                first = preferred_uid(vm_id) - UID_BASE
                uids[vm_id] = next(UID_BASE + (first + n) % UID_COUNT for n in range(UID_COUNT)
                                   if UID_BASE + (first + n) % UID_COUNT not in used)
                _write_private(path, {"uids": uids})
            return uids[vm_id]

    def prepare(self, argv: Sequence[str], folder: Path) -> list[str]:
        """Hand the VM's files to its identity; the argv to spawn instead of ``argv``.

        :raises QemuStartError: setpriv is missing, or a file cannot be granted.
        """
        identity = self.identity_for(folder)
        if identity is None:
            return list(argv)
        if shutil.which("setpriv") is None:
            raise QemuStartError("host setting confine_qemu is on but setpriv (Debian "
                                 "package util-linux) is not installed")
        try:
            _own_folder(folder, identity)
            grant_files(argv_grants(argv), identity, folder)
            for device in devices_needed(argv):
                open_device(device, identity)
            for tap in tap_names(argv):
                hand_tap(tap, identity)
        except OSError as err:
            raise QemuStartError(f"cannot give VM {folder.name}'s files to its user "
                                 f"{identity.uid} (confine_qemu): {err}") from err
        return confined_argv(without_own_pidfile(argv, folder), identity)


def without_own_pidfile(argv: Sequence[str], folder: Path) -> list[str]:
    """``argv`` less QEMU's ``-pidfile`` in ``folder``: the service writes that file
    itself, atomically and as root, right after the spawn (runtime_record.write_pid_file),
    and a confined QEMU may not open the root-owned file it would race with."""
    kept: list[str] = []
    skip = False
    for flag, value in zip(argv, [*argv[1:], ""], strict=True):
        if skip:
            skip = False
            continue
        if flag == "-pidfile" and Path(value).parent == folder:
            skip = True
            continue
        kept.append(flag)
    return kept


_ACTIVE: list[Confinement] = []


def preferred_uid(vm_id: str) -> int:
    """The uid a VM gets unless this host already gave it to another VM: derived from
    the VM's id, so two services sharing its storage (a move between hosts) agree."""
    digest = hashlib.sha256(vm_id.encode()).digest()
    return UID_BASE + int.from_bytes(digest[:8], "big") % UID_COUNT


def install(confinement: Confinement | None) -> None:
    """Confine every process spawned from now on (None: stop confining)."""
    _ACTIVE[:] = [] if confinement is None else [confinement]


def active() -> Confinement | None:
    return _ACTIVE[0] if _ACTIVE else None


def grant_for_command(uid: int, command: str, arguments: Mapping[str, object] | None) -> None:
    """Before QMP ``command`` reaches a process running as ``uid``: grant it the files the
    command names. Nothing happens for root peers or unconfined services.

    :raises OSError: a named file cannot be granted (QEMU would be refused anyway).
    """
    if uid == 0 or active() is None:
        return
    grants = command_grants(command, arguments)
    if grants:
        grant_files(grants, Identity(uid), None)


# -- I/O: ownership and ACLs -------------------------------------------------------------

def grant_files(grants: Iterable[FileGrant], identity: Identity, own: Path | None) -> None:
    """ACL entries for ``identity`` on each file (and its qcow2 backing chain), ``x`` for
    the shared group on folders above them. Paths inside ``own`` (the process's own
    folder) need nothing; a missing file the process creates gets its folder writable,
    any other missing file nothing (the process reports it)."""
    for grant in grants:
        path = Path(grant.path)
        if own is not None and own in path.parents:
            continue
        if not path.exists():
            if grant.creates:
                _grant_folder_write(path.parent, identity)
            continue
        if grant.perm == READ_WRITE and in_use_by_another(path, identity):
            continue  # the process is refused it: "Permission denied", in its own words
        for member in [path, *backing_chain(path)]:
            _grant_file(member, identity, grant.perm if member == path else READ_WRITE)


def in_use_by_another(path: Path, identity: Identity) -> bool:
    """Whether a writable file is granted to another VM's user that is running now: a
    disk belongs to one running VM at a time, so it is not granted to a second one."""
    others = {e.id for e in acl.read(path) if e.tag == acl.USER and e.id != identity.uid
              and UID_BASE <= e.id < UID_BASE + UID_COUNT and e.perm & 2}
    return bool(others & running_uids()) if others else False


def running_uids() -> set[int]:
    """The real uids of the live processes (``/proc/<pid>/status``)."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Uid:"):
                    found.add(int(line.split()[1]))
                    break
    return found


def _grant_file(path: Path, identity: Identity, perm: int) -> None:
    """A writable file (a disk) loses every "other" permission — never world-readable —
    and gets ``identity``'s entry; a read-only one (media) only when others lack it."""
    info = path.stat()
    if perm == READ_WRITE and info.st_mode & 0o007 and stat.S_ISREG(info.st_mode):
        os.chmod(path, stat.S_IMODE(info.st_mode) & ~0o007)
    if info.st_uid != identity.uid and not _others_allow(path, perm):
        acl.grant(path, acl.USER, identity.uid, perm)
    traverse(path.parent, identity)


def _grant_folder_write(folder: Path, identity: Identity) -> None:
    if folder.exists():
        acl.grant(folder, acl.USER, identity.uid, 7)
        traverse(folder.parent, identity)


def traverse(folder: Path, identity: Identity) -> None:
    """``x`` for the shared group on ``folder`` and each folder above it lacking other-x."""
    for member in [folder, *folder.parents]:
        if not _others_allow(member, TRAVERSE):
            acl.grant(member, acl.GROUP, identity.gid, TRAVERSE)


def _others_allow(path: Path, perm: int) -> bool:
    return os.stat(path).st_mode & perm == perm


def _own_folder(folder: Path, identity: Identity) -> None:
    os.chown(folder, identity.uid, identity.gid)
    os.chmod(folder, 0o700)
    traverse(folder.parent, identity)


def backing_chain(path: Path) -> list[Path]:
    """The backing files of a qcow2 image (empty for other formats and for anything but
    a regular file: sockets, devices), read by qemu-img."""
    if not path.is_file():
        return []
    with open(path, "rb") as image:
        if image.read(4) != b"QFI\xfb":
            return []
    out = subprocess.run(["qemu-img", "info", "-U", "--backing-chain", "--output=json",
                          str(path)], capture_output=True, text=True, timeout=60, check=False)
    try:
        chain = json.loads(out.stdout)
    except ValueError:
        return []
    return [Path(str(item["filename"])) for item in chain[1:] if "filename" in item]


def open_device(device: Path, identity: Identity) -> None:
    """``rw`` for the confined group on a device "other" may not open. Safe to share:
    /dev/net/tun attaches only to taps the caller owns (:func:`hand_tap`) and creates
    none without CAP_NET_ADMIN; /dev/kvm only makes VMs."""
    if not _others_allow(device, READ_WRITE):
        acl.grant(device, acl.GROUP, identity.gid, READ_WRITE)


def hand_tap(name: str, identity: Identity) -> None:
    """Make ``identity`` the owner of the existing tap ``name`` (TUNSETOWNER/GROUP)."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    try:
        request = struct.pack("16sH22x", name.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
        fcntl.ioctl(fd, TUNSETIFF, request)
        fcntl.ioctl(fd, TUNSETOWNER, identity.uid)
        fcntl.ioctl(fd, TUNSETGROUP, identity.gid)
    finally:
        os.close(fd)


def _read_uids(path: Path) -> dict[str, int]:
    try:
        found = json.loads(path.read_text()).get("uids", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): int(v) for k, v in found.items()} if isinstance(found, dict) else {}


def _write_private(path: Path, content: object) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(content, file)
    os.replace(tmp, path)

"""Confined QEMU and storage daemons: host setting ``confine_qemu`` (docs/architecture.md,
"Security").

When the service installs a :class:`Confinement` (:func:`install`), every process
:meth:`viridian.qemu.process.QemuProcess.spawn` starts from a VM's runtime folder
(``<data>/run/<vm-id>/`` for QEMU, ``<data>/run/<vm-id>-storage/`` for its storage
daemon) runs as that VM's own user:

* **Identity**: one uid per VM from a reserved range (:data:`UID_BASE` …), derived from
  the VM's id (:func:`preferred_uid`; the next free one on a clash) and recorded in
  ``<data>/confinement.json`` (:mod:`.confinement_record`; allocated on first start,
  released with the VM), and
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
  media ``r``, disks ``rw``; a backing file ``rw`` only when it is the VM's own — in its
  folders or one of its disks, :meth:`Confinement.own` — else ``r``, as template bases
  shared by several VMs), folders above them ``x`` for :data:`GID` where "other"
  has no ``x``. Writable files lose their "other" bits: disks are never world-readable.
  Every file given to a uid is recorded; :meth:`Confinement.revoke` takes entries back
  (a disk or ISO detached or replaced, a move), :meth:`Confinement.release` all of a
  removed VM's and its uid, :meth:`Confinement.sweep` those of VMs removed while the
  service was not running.
  Files named later by QMP (hot-plugged disks, media changes, checkpoint overlays) get
  the same grants just before the command is sent (:func:`grant_for_command`, called
  by the monitor for a confined peer). A writable file granted to another VM whose
  processes run now is not granted (:func:`in_use_by_another`): QEMU is refused it with
  "Permission denied" — one running VM per disk.
* **Kept usable** (:meth:`Confinement.repair`): folder traversal and file entries are
  ACL entries of the group class, which the ACL mask bounds — and any ``chmod`` of a
  file or folder rewrites that mask (acl(5); pytest does ``chmod 700`` on its base
  folder at each session start). So right before the process could open a file by
  path — its spawn, and every QMP command that opens or reopens images
  (:data:`OPENING_COMMANDS`: hot plug, overlays, ``block-commit``/``block-stream``,
  which reopen a backing file read-write, …) — every recorded grant of the VM is
  checked and what a mask took away is given back (logged). Files already open are
  not affected by a later ``chmod``.
* **Taps**: each ``-netdev tap,ifname=`` is handed to the VM's uid (``TUNSETOWNER``), as
  the kernel lets only the owner or CAP_NET_ADMIN attach; ``/dev/net/tun`` (and
  ``/dev/kvm`` with KVM) get ``rw`` for the shared group when "other" lacks it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import stat
import struct
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import acl
from .confinement_record import UID_BASE, UID_COUNT, locked, preferred_uid
from .errors import QemuStartError

__all__ = ["GID", "OPENING_COMMANDS", "UID_BASE", "UID_COUNT", "Confinement", "FileGrant",
           "Identity", "Status", "active", "argv_grants", "command_grants", "confined_argv",
           "grant_for_command", "install", "preferred_uid", "status"]

log = logging.getLogger(__name__)

GID = 2_100_000_000
"""The confined processes' one group: only ever granted ``x`` on folders."""
STORAGE_SUFFIX = "-storage"
READ, READ_WRITE, TRAVERSE = 4, 6, 1
PATH_KEYS = ("filename", "file", "path", "logfile", "romfile", "snapshot-file", "target")
CREATED_KEYS = ("path", "logfile")
PATH_FLAGS = ("-pidfile", "--pidfile")  # written (created) by the process
READ_FLAGS = ("-kernel", "-initrd", "-bios")  # only read: firmware, kernels
READ_KEYS = ("romfile",)  # option ROMs are only read
READ_OPTION_FLAGS = ("-fw_cfg",)  # fw_cfg items are only read (iPXE's kernel: netboot)
FILE_COMMANDS = frozenset({"blockdev-add", "transaction", "blockdev-snapshot-sync",
                           "drive-mirror", "drive-backup", "blockdev-change-medium",
                           "chardev-add", "screendump"})
REOPEN_COMMANDS = frozenset({"block-commit", "block-stream", "blockdev-reopen",
                             "x-blockdev-reopen", "job-complete", "block-job-complete",
                             "job-finalize", "blockdev-mirror", "blockdev-backup",
                             "blockdev-snapshot", "block-export-add", "migrate-incoming",
                             "cont"})
"""QMP commands naming only nodes that may still make the process open an image again by
its path (a reopen read-write for a merge, a pivot, activation after migration)."""
OPENING_COMMANDS = FILE_COMMANDS | REOPEN_COMMANDS
"""Before these reach a confined process its grants are checked (:meth:`Confinement.repair`)."""
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
        elif flag in READ_FLAGS and value.startswith("/"):
            found.append(FileGrant(value, READ))
        elif value.startswith("unix:/"):
            found.append(FileGrant(value.removeprefix("unix:").split(",")[0], READ_WRITE, True))
        elif value.startswith("{"):
            with contextlib.suppress(ValueError):
                found += command_grants("blockdev-add", json.loads(value))
        else:
            found += _option_grants(value, read_only=flag in READ_OPTION_FLAGS)
    return sorted(set(found))


def _option_grants(value: str, read_only: bool = False) -> list[FileGrant]:
    """Read-write unless the option says read-only, its flag only reads (``read_only``)
    or the key names a file QEMU only reads (:data:`READ_KEYS`): a read-write grant of a
    regular file also takes its "other" permissions (:func:`_grant_file`), which must never
    happen to a host's own files such as /boot/ipxe.lkrn."""
    pairs = [part.split("=", 1) for part in re.split(r"(?<!,),(?!,)", value) if "=" in part]
    options = {key: val.replace(",,", ",") for key, val in pairs}
    read_only = read_only or options.get("read-only") == "on" or options.get("readonly") == "on"
    grants = []
    for key, val in options.items():
        name = key.rsplit(".", 1)[-1]
        if name in PATH_KEYS and val.startswith("/"):
            perm = READ if read_only or name in READ_KEYS else READ_WRITE
            grants.append(FileGrant(val, perm, name in CREATED_KEYS))
    return grants


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
    owned: dict[str, tuple[Path, ...]] = field(default_factory=dict, compare=False,
                                               hash=False)
    """Per VM id: the folders and disk files the VM itself writes (:meth:`own`)."""

    def identity_for(self, folder: Path) -> Identity | None:
        """The VM identity for a runtime folder, allocated on first use; None when the
        folder is not a VM's runtime folder under this data folder."""
        if folder.parent != self.data_dir / "run":
            return None
        return Identity(self.allocate(vm_of_folder(folder)))

    def allocate(self, vm_id: str) -> int:
        """The VM's uid, recorded in ``<data>/confinement.json`` (0600) under a lock."""
        with locked(self.data_dir) as record:
            return record.allocate(vm_id)

    def own(self, vm_id: str, roots: Iterable[Path]) -> None:
        """The folders and disk files VM ``vm_id`` writes: a backing file among them (a
        checkpoint's parent, which deleting a checkpoint merges into) is granted ``rw``;
        any other backing file (a template's base, another VM's disk) only ``r``."""
        self.owned[vm_id] = tuple(Path(os.path.realpath(root)) for root in roots)

    def writes(self, vm_id: str) -> Callable[[Path], bool]:
        """Whether VM ``vm_id`` writes a file (see :meth:`own`)."""
        roots = self.owned.get(vm_id, ())

        def check(path: Path) -> bool:
            real = Path(os.path.realpath(path))
            return any(real == root or root in real.parents for root in roots)
        return check

    def record_grants(self, vm_id: str, paths: Iterable[str]) -> None:
        """Note that ``paths`` (real paths) were given to the VM's uid."""
        new = set(paths)
        if new:
            with locked(self.data_dir) as record:
                record.granted.setdefault(vm_id, set()).update(new)

    def revoke(self, vm_id: str, paths: Iterable[str], keep: Iterable[str] = ()) -> list[str]:
        """Take the VM's uid entries off ``paths`` (a detached or replaced disk or ISO, a
        moved disk's old place) and off their backing files the VM was given, except
        ``keep`` (files the VM still uses) and their backing files; returns the real
        paths whose entry went. Files missing now are only forgotten."""
        wanted = {os.path.realpath(p) for p in paths}
        chains = {os.path.realpath(m) for p in wanted for m in backing_chain(Path(p))}
        kept = {os.path.realpath(m) for p in keep for m in [Path(p), *backing_chain(Path(p))]}
        with locked(self.data_dir) as record:
            uid = record.uids.get(vm_id)
            granted = record.granted.get(vm_id, set())
            gone = sorted(((wanted | chains) & granted) - kept)
            if uid is not None:
                _take_back(gone, uid)
            granted.difference_update(gone)
        return gone

    def release(self, vm_id: str) -> list[str]:
        """The VM left this host (removed, or moved away): every entry its uid was given
        is taken back and the uid is free again. Entries stay while a process runs as
        that uid (the same VM, moved to another service on this machine, uses them)."""
        with locked(self.data_dir) as record:
            uid = record.uids.pop(vm_id, None)
            granted = sorted(record.granted.pop(vm_id, set()))
            if uid is not None and uid not in running_uids():
                _take_back(granted, uid)
        self.owned.pop(vm_id, None)
        return granted

    def sweep(self, known: Iterable[str]) -> list[str]:
        """Release every recorded VM that is not in ``known`` (removed while the service
        was down, or its removal interrupted); returns their ids."""
        with locked(self.data_dir) as record:
            stale = sorted(set(record.uids) - set(known))
        for vm_id in stale:
            self.release(vm_id)
        return stale

    def repair(self, vm_id: str) -> list[str]:
        """Give VM ``vm_id`` back what a ``chmod`` took from its recorded grants: the mask
        of a file's ACL narrowed below the uid's entry, or a folder above it that lost
        traversal for :data:`GID`. Returns the real paths that needed it (logged);
        missing paths are skipped.

        :raises OSError: an ACL cannot be read or written."""
        with locked(self.data_dir) as record:
            uid = record.uids.get(vm_id)
            paths = sorted(record.granted.get(vm_id, set()))
        if uid is None:
            return []
        fixed = [path for path in paths if _reassert(Path(path), Identity(uid))]
        if fixed:
            log.warning("confine_qemu: VM %s had lost access to %s (an ACL mask narrowed, "
                        "e.g. by chmod); given back", vm_id, ", ".join(fixed))
        return fixed

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
        vm_id = vm_of_folder(folder)
        try:
            _own_folder(folder, identity)
            self.repair(vm_id)  # e.g. the kept storage daemon's images: reopened later
            self.record_grants(vm_id, grant_files(argv_grants(argv), identity, folder,
                                                  self.writes(vm_id)))
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


def vm_of_folder(folder: Path) -> str:
    """The VM id of a runtime folder (QEMU's ``<id>``, its daemon's ``<id>-storage``)."""
    return folder.name.removesuffix(STORAGE_SUFFIX)


@dataclass(frozen=True)
class Status:
    """Whether this service confines its VMs' processes (``GET /host``, ``confinement``)
    and, when it does not although the host default asks for it, why."""

    confined: bool
    reason: str | None = None

    def view(self) -> dict[str, object]:
        return {"confine_qemu": self.confined, "reason": self.reason}


_ACTIVE: list[Confinement] = []
_STATUS: list[Status] = [Status(False)]


def install(confinement: Confinement | None, reason: str | None = None) -> None:
    """Confine every process spawned from now on (None: stop confining; ``reason``: why
    not, shown by :func:`status`)."""
    _ACTIVE[:] = [] if confinement is None else [confinement]
    _STATUS[:] = [Status(confinement is not None, reason)]


def active() -> Confinement | None:
    return _ACTIVE[0] if _ACTIVE else None


def status() -> Status:
    return _STATUS[0]


def grant_for_command(uid: int, command: str, arguments: Mapping[str, object] | None) -> None:
    """Before QMP ``command`` reaches a process running as ``uid``: when it may open files
    (:data:`OPENING_COMMANDS`), repair the VM's grants and grant it the files the command
    names. Nothing happens for other commands, root peers or unconfined services.

    :raises OSError: a named file cannot be granted (QEMU would be refused anyway).
    """
    confinement = active()
    if uid == 0 or confinement is None or command not in OPENING_COMMANDS:
        return
    with locked(confinement.data_dir) as record:
        vm_id = record.vm_of(uid)
    if vm_id:
        confinement.repair(vm_id)
    grants = command_grants(command, arguments)
    if not grants:
        return
    writes = confinement.writes(vm_id) if vm_id else (lambda _path: False)
    granted = grant_files(grants, Identity(uid), None, writes)
    if vm_id:
        confinement.record_grants(vm_id, granted)


# -- I/O: ownership and ACLs -------------------------------------------------------------

def grant_files(grants: Iterable[FileGrant], identity: Identity, own: Path | None,
                writes: Callable[[Path], bool] = lambda _path: False) -> list[str]:
    """ACL entries for ``identity`` on each file (and its qcow2 backing chain: ``rw``
    for the members ``writes`` says the VM writes, else ``r``), ``x`` for the shared
    group on folders above them. Paths inside ``own`` (the process's own folder) need
    nothing; a missing file the process creates gets its folder writable, any other
    missing file nothing (the process reports it). Returns the real paths given."""
    given: list[str] = []
    for grant in grants:
        path = Path(grant.path)
        if own is not None and own in path.parents:
            continue
        if not path.exists():
            if grant.creates and path.parent.exists():
                _grant_folder_write(path.parent, identity)
                given.append(os.path.realpath(path.parent))
            continue
        if grant.perm == READ_WRITE and in_use_by_another(path, identity):
            continue  # the process is refused it: "Permission denied", in its own words
        for member in [path, *backing_chain(path)]:
            perm = grant.perm if member == path else \
                READ_WRITE if grant.perm == READ_WRITE and writes(member) else READ
            _grant_file(member, identity, perm)
            given.append(os.path.realpath(member))
    return given


def _take_back(paths: Iterable[str], uid: int) -> None:
    """Remove ``uid``'s entry from each existing path (missing ones need nothing)."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            acl.revoke(Path(path), acl.USER, uid)


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
    acl.grant(folder, acl.USER, identity.uid, 7)
    traverse(folder.parent, identity)


def traverse(folder: Path, identity: Identity) -> bool:
    """``x`` for the shared group on ``folder`` and each folder above it lacking other-x
    (the mask widened where a chmod narrowed it); whether any ACL had to change."""
    changed = False
    for member in [folder, *folder.parents]:
        if not _others_allow(member, TRAVERSE):
            changed = acl.grant(member, acl.GROUP, identity.gid, TRAVERSE) or changed
    return changed


def _reassert(path: Path, identity: Identity) -> bool:
    """``identity``'s entry on ``path`` (if it has one) let through the mask again, and
    the folders above traversable; whether anything had to change."""
    try:
        mine = acl.entry_of(path, acl.USER, identity.uid)
    except (FileNotFoundError, NotADirectoryError):  # gone since: nothing to keep usable
        return False
    changed = mine is not None and acl.grant(path, acl.USER, identity.uid, mine.perm)
    return traverse(path.parent, identity) or changed


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

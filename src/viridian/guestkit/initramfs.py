"""The guests' initramfs: busybox, qemu-ga with its libraries, kernel modules, our init.

The tree is assembled in a staging folder, then packed as a gzip-compressed ``newc``
cpio archive (Linux ``Documentation/driver-api/early-userspace/buffer-format.rst``) by
:func:`pack_newc`, a pure function: entries sorted, owner root, mtime 0, so the same tree
gives the same bytes. Device nodes the kernel needs before devtmpfs is mounted
(``/dev/console``, ``/dev/null``) are added as archive entries, so no root privileges
or mknod are needed.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from viridian.errors import HostError
from viridian.guestkit.commands import run

__all__ = [
    "CpioEntry",
    "assemble_tree",
    "entries_from_tree",
    "pack_newc",
    "parse_ldd",
    "write_initramfs",
]

BUSYBOX = Path("/bin/busybox")
QEMU_GA = Path("/usr/sbin/qemu-ga")

# (archive path, resource file in viridian/guestkit/files, mode)
_OUR_FILES = (
    ("init", "init", 0o755),
    ("sbin/shutdown", "shutdown", 0o755),
    ("etc/viridian/lib.sh", "lib.sh", 0o644),
    ("etc/viridian/seed.sh", "seed.sh", 0o644),
    ("etc/acpi/PWRF/00000080", "acpi-power-button", 0o755),
    ("usr/share/udhcpc/default.script", "udhcpc.script", 0o755),
    ("etc/udhcpc/default.script", "udhcpc.script", 0o755),  # where busybox looks by default
)

_ETC_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "etc/hostname": "viridian-guest\n",
    "etc/os-release": (
        'NAME="viridian guest kit"\nID=viridian-guestkit\n'
        'PRETTY_NAME="viridian guest kit (Debian kernel, busybox, qemu-ga)"\n'
    ),
    "etc/profile": "export PATH=/sbin:/bin:/usr/sbin:/usr/bin\nexport PS1='guest# '\n",
}

_DIRS = ("dev", "proc", "sys", "run", "tmp", "root", "mnt", "var", "etc/qemu")


@dataclass(frozen=True)
class CpioEntry:
    """One archive member: a directory, regular file, symlink or character device."""

    path: str  # relative, no leading slash
    mode: int  # full st_mode (type and permission bits)
    data: bytes = b""  # file content, or the symlink target
    rdev: tuple[int, int] = (0, 0)


def _align4(n: int) -> int:
    return (4 - n % 4) % 4


def _newc_member(ino: int, entry: CpioEntry) -> bytes:
    name = entry.path.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, *entry.rdev, len(name), 0)
    header = b"070701" + b"".join(b"%08X" % f for f in fields)
    head = header + name
    return head + b"\0" * _align4(len(head)) + entry.data + b"\0" * _align4(len(entry.data))


def pack_newc(entries: Iterable[CpioEntry]) -> bytes:
    """A ``newc`` cpio archive of ``entries`` (sorted by path) with its TRAILER!!! member."""
    members = sorted(entries, key=lambda e: e.path)
    out = [_newc_member(ino, e) for ino, e in enumerate(members, start=1)]
    out.append(_newc_member(0, CpioEntry("TRAILER!!!", 0)))
    return b"".join(out)


def entries_from_tree(root: Path) -> Iterator[CpioEntry]:
    """Archive entries for everything below ``root`` (symlinks kept as links)."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            st = path.lstat()
            rel = path.relative_to(root).as_posix()
            if stat.S_ISLNK(st.st_mode):
                yield CpioEntry(rel, st.st_mode, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                yield CpioEntry(rel, stat.S_IFDIR | 0o755)
            else:
                yield CpioEntry(rel, stat.S_IFREG | (st.st_mode & 0o777), path.read_bytes())


def parse_ldd(text: str) -> list[Path]:
    """Absolute library paths (including the dynamic loader) from ``ldd`` output."""
    found: list[Path] = []
    for line in text.splitlines():
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match and Path(match.group(1)) not in found:
            found.append(Path(match.group(1)))
    return found


def _install(src: Path, root: Path, dest: str, mode: int) -> None:
    target = root / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    target.chmod(mode)


def _install_busybox(root: Path) -> None:
    if _libraries(BUSYBOX):
        raise HostError(f"guest kit: {BUSYBOX} is not static; install busybox-static")
    _install(BUSYBOX, root, "bin/busybox", 0o755)
    for applet in run([BUSYBOX, "--list-full"]).split():
        link = root / applet
        if applet == "bin/busybox" or link.exists() or link.is_symlink():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath("/bin/busybox", "/" + str(Path(applet).parent)))


def _libraries(binary: Path) -> list[Path]:
    """Shared libraries ``binary`` loads, per ldd; [] for a static binary (ldd exits 1)."""
    return parse_ldd(run(["ldd", binary], ok_status=(0, 1)))


def _install_qemu_ga(root: Path) -> None:
    if not QEMU_GA.is_file():
        raise HostError(f"guest kit: {QEMU_GA} missing; install qemu-guest-agent")
    _install(QEMU_GA, root, str(QEMU_GA), 0o755)
    libraries = _libraries(QEMU_GA)
    if not libraries:
        raise HostError(f"guest kit: ldd found no libraries for {QEMU_GA}")
    for lib in libraries:
        _install(lib.resolve(), root, str(lib), 0o755)


def _install_our_files(root: Path, module_paths: Iterable[str]) -> None:
    files = resources.files("viridian.guestkit") / "files"
    for dest, name, mode in _OUR_FILES:
        target = root / dest
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # /sbin/shutdown must not be a busybox link
        target.write_bytes((files / name).read_bytes())
        target.chmod(mode)
    for dest, text in _ETC_FILES.items():
        (root / dest).write_text(text)
    (root / "etc/viridian/modules").write_text("".join(f"{p}\n" for p in module_paths))


def assemble_tree(root: Path, module_paths: Iterable[str]) -> None:
    """Fill ``root`` with the guest's userland; kernel modules must already be there.

    ``module_paths`` are the guest-side module paths in load order. Raises HostError
    when busybox-static or qemu-guest-agent is missing on the host.
    """
    for name in _DIRS:
        (root / name).mkdir(parents=True, exist_ok=True)
    (root / "var" / "run").symlink_to("../run")
    _install_busybox(root)
    _install_qemu_ga(root)
    _install_our_files(root, module_paths)


_DEVICE_NODES = (
    CpioEntry("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1)),
    CpioEntry("dev/null", stat.S_IFCHR | 0o666, rdev=(1, 3)),
)


def write_initramfs(root: Path, target: Path) -> None:
    """Pack ``root`` plus the early device nodes into a gzip newc archive at ``target``."""
    archive = pack_newc([*entries_from_tree(root), *_DEVICE_NODES])
    target.write_bytes(gzip.compress(archive, compresslevel=9, mtime=0))

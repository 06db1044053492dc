"""Runs the offline guest generalisation of :mod:`viridian.library.sysprep` on a template's
disk copy with e2fsprogs' ``debugfs`` (no mount, no loop device): each ext file system of a
raw disk (``image?offset=N``) gets its machine id emptied, SSH host keys removed, host
name set to ``localhost`` and persistent NIC rules removed. Other formats are left as
they are (the settings are generalised all the same)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from viridian.errors import ViridianError
from viridian.library import sysprep

DEBUGFS = "debugfs"


def _read(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(offset)
        return handle.read(length)


def ext_offsets(path: Path) -> list[int]:
    """Byte offsets of the ext file systems on raw disk ``path``."""
    candidates, protective = sysprep.mbr_partitions(_read(path, 0, sysprep.SECTOR))
    if protective:
        header = _read(path, sysprep.SECTOR, sysprep.SECTOR)
        if header[:8] == b"EFI PART":
            where, length = sysprep.gpt_entries_at(header)
            candidates = sysprep.gpt_partitions(header, _read(path, where, length))
    return [offset for offset in [0, *candidates]
            if sysprep.ext_superblock(_read(path, offset, 2048))]


def _debugfs(image: str, *args: str) -> str:
    run = subprocess.run([DEBUGFS, *args, image], capture_output=True, text=True,
                         timeout=120)
    if run.returncode != 0:
        raise ViridianError(f"debugfs failed on {image}: {run.stderr.strip()[-300:]}")
    return run.stdout


def _names(image: str, folder: str) -> set[str]:
    return sysprep.ls_names(_debugfs(image, "-R", f"ls -p {folder}"))


def generalise_disk(path: Path, fmt: str) -> tuple[str, ...]:
    """Reset the guest identity on every ext file system of ``path`` (a raw copy only);
    returns what was reset (``guest_machine_id``, ``guest_ssh_host_keys``, …)."""
    if fmt != "raw":
        return ()
    resets: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="viridian-sysprep-") as tmp:
        empty, hostname = Path(tmp, "empty"), Path(tmp, "hostname")
        empty.write_bytes(b"")
        hostname.write_text(sysprep.HOSTNAME + "\n")
        for mode in (empty, hostname):
            mode.chmod(0o644)
        for offset in ext_offsets(path):
            image = f"{path}?offset={offset}" if offset else str(path)
            plan = sysprep.plan(_names(image, "/etc"), _names(image, sysprep.SSH_DIR),
                                _names(image, sysprep.RULES_DIR),
                                _names(image, "/var/lib/dbus"), str(empty), str(hostname))
            if not plan.commands:
                continue
            script = Path(tmp, "script")
            script.write_text("\n".join(plan.commands) + "\n")
            _debugfs(image, "-w", "-f", str(script))
            resets.update(plan.resets)
    return tuple(sorted(resets))

"""Runs the offline guest generalisation of :mod:`viridian.library.sysprep` on a template's
disk copy with e2fsprogs' ``debugfs`` (no mount, no loop device): each ext file system of a
raw disk (``image?offset=N``) gets its machine id emptied, SSH host keys removed, host
name set to ``localhost`` and persistent NIC rules removed.

A qcow2, VHD or VHDX copy is converted (``qemu-img convert``, sparse) to a temporary raw
image beside it in the template's staging folder, edited, and converted back into its own
format, which then replaces the copy (docs/architecture.md, "Library and provisioning").
Both temporary files are removed on every path. Left as they are (the settings are
generalised all the same): a qcow2 copy with a backing file and a differencing VHD (their
bytes are not the whole disk), and a copy without ext file systems (not rewritten)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from viridian.errors import ViridianError
from viridian.library import sysprep
from viridian.service.library import images

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
    returns what was reset (``guest_machine_id``, ``guest_ssh_host_keys``, …).

    :raises ViridianError: debugfs or qemu-img failed (the temporary files are gone)."""
    if fmt == "raw":
        return _generalise_raw(path)
    if fmt not in sysprep.CONVERTED:
        return ()
    fixed = _fixed(path, fmt)
    if fixed is None:
        return ()
    raw = path.with_name(f".{path.name}.sysprep.raw")
    back = path.with_name(f".{path.name}.sysprep.new")
    try:
        _qemu_img("convert", "-f", fmt, "-O", "raw", str(path), str(raw))
        resets = _generalise_raw(raw)
        if resets:
            _qemu_img("convert", "-f", "raw", *sysprep.convert_back_options(fmt, fixed),
                      str(raw), str(back))
            os.replace(back, path)
        return resets
    finally:
        raw.unlink(missing_ok=True)
        back.unlink(missing_ok=True)


def _fixed(path: Path, fmt: str) -> bool | None:
    """Whether copy ``path`` is a fixed-size image (a VHDX whose file holds at least its
    virtual size); None for a copy that is not edited (see the module's contract)."""
    if fmt == "qcow2":
        return None if images.backing_of(path) else False
    if fmt == "vpc":
        size = path.stat().st_size
        kind = sysprep.vhd_disk_type(_read(path, max(0, size - sysprep.SECTOR),
                                           sysprep.SECTOR))
        if kind is None:  # a dynamic VHD keeps a copy of its footer at offset 0
            kind = sysprep.vhd_disk_type(_read(path, 0, sysprep.SECTOR))
        if kind not in (sysprep.VHD_FIXED, sysprep.VHD_DYNAMIC):
            return None
        return kind == sysprep.VHD_FIXED
    return path.stat().st_size >= _virtual_size(path, fmt)


def _qemu_img(*args: str) -> str:
    try:
        run = subprocess.run(["qemu-img", *args], capture_output=True, text=True,
                             timeout=600)
    except FileNotFoundError as err:
        raise ViridianError("qemu-img is not installed") from err
    if run.returncode != 0:
        raise ViridianError(f"qemu-img {args[0]} failed: {run.stderr.strip()[-300:]}")
    return run.stdout


def _virtual_size(path: Path, fmt: str) -> int:
    info = json.loads(_qemu_img("info", "-f", fmt, "--output=json", str(path)))
    return int(info["virtual-size"])


def _generalise_raw(path: Path) -> tuple[str, ...]:
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

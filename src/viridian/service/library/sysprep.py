"""Runs the offline guest generalisation of :mod:`viridian.library.sysprep` on a template's
disk with e2fsprogs' ``debugfs`` (no mount, no loop device): each ext file system of a
raw disk (``image?offset=N``) gets its machine id emptied, SSH host keys removed, host
name set to ``localhost`` and persistent NIC rules removed.

:func:`make_template_disk` makes a template's disk from a VM's: a raw or qcow2 disk is
copied byte for byte and the copy generalised (a qcow2 copy through a temporary raw image,
converted back); a VHD or VHDX disk is converted (``qemu-img convert``, sparse, reading
the source only) to a temporary raw image, generalised, and stored as qcow2
(docs/architecture.md, "Library and provisioning"). Temporary images live beside the
result in the template's staging folder and are removed on every path. Left as copied
(the settings are generalised all the same): a qcow2 copy with a backing file (its bytes
are not the whole disk) and a copy without ext file systems (not rewritten)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable
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


def _qemu_img(*args: str) -> None:
    try:
        run = subprocess.run(["qemu-img", *args], capture_output=True, text=True,
                             timeout=600)
    except FileNotFoundError as err:
        raise ViridianError("qemu-img is not installed") from err
    if run.returncode != 0:
        raise ViridianError(f"qemu-img {args[0]} failed: {run.stderr.strip()[-300:]}")


def _convert(source: Path, fmt: str, target: Path, target_fmt: str) -> None:
    _qemu_img("convert", "-f", fmt, "-O", target_fmt, str(source), str(target))


def make_template_disk(source: Path, fmt: str,
                       target_for: Callable[[str], Path]) -> tuple[Path, str, tuple[str, ...]]:
    """Make the template's disk from VM disk ``source`` (format ``fmt``; never written) at
    ``target_for(stored format)``; returns (that path, its format, what was reset).

    :raises ViridianError: cp, qemu-img or debugfs failed (temporary images are gone)."""
    stored = sysprep.template_format(fmt)
    target = target_for(stored)
    if stored == fmt:
        images.copy_sparse(source, target)
        return target, fmt, generalise_disk(target, fmt)
    raw = target.with_name(f".{target.name}.sysprep.raw")
    try:
        _convert(source, fmt, raw, "raw")
        resets = _generalise_raw(raw)
        _convert(raw, "raw", target, stored)
        return target, stored, resets
    finally:
        raw.unlink(missing_ok=True)


def generalise_disk(path: Path, fmt: str) -> tuple[str, ...]:
    """Reset the guest identity on every ext file system of ``path`` (a raw copy, or a
    qcow2 one without backing file; others, or a file without the format's signature,
    are left alone); returns what was reset (``guest_machine_id``,
    ``guest_ssh_host_keys``, …).

    :raises ViridianError: debugfs or qemu-img failed (temporary images are gone)."""
    if fmt == "raw":
        return _generalise_raw(path)
    if fmt != "qcow2" or images.format_of(path) != fmt or images.backing_of(path):
        return ()
    raw = path.with_name(f".{path.name}.sysprep.raw")
    back = path.with_name(f".{path.name}.sysprep.new")
    try:
        _convert(path, fmt, raw, "raw")
        resets = _generalise_raw(raw)
        if resets:
            _convert(raw, "raw", back, fmt)
            os.replace(back, path)
        return resets
    finally:
        raw.unlink(missing_ok=True)
        back.unlink(missing_ok=True)


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

"""The library's file work (the shell around :mod:`viridian.library`): checksums, format
signatures, copies, qcow2 overlays and NoCloud seed ISOs. Every function here blocks;
the service runs them in a thread."""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from viridian.errors import HostError
from viridian.library.items import ISO_SIGNATURE_OFFSET, format_from_signature

CHUNK = 1024 * 1024


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def format_of(path: Path) -> str:
    """QEMU's format name for ``path`` from its signatures (:func:`format_from_signature`)."""
    with open(path, "rb") as handle:
        head = handle.read(512)
        size = os.fstat(handle.fileno()).st_size
        handle.seek(max(0, size - 512))
        footer = handle.read(512)
        handle.seek(ISO_SIGNATURE_OFFSET)
        iso = handle.read(5)
    return format_from_signature(head, footer, iso)


def backing_of(path: Path) -> Path | None:
    """The backing file named in a qcow2 header (QEMU docs/interop/qcow2.txt: offset 8,
    u64 backing_file_offset; offset 16, u32 backing_file_size), resolved against the
    overlay's folder; None for other files or no backing file."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(20)
            if len(head) < 20 or not head.startswith(b"QFI\xfb"):
                return None
            offset = int.from_bytes(head[8:16], "big")
            size = int.from_bytes(head[16:20], "big")
            if not offset or not 0 < size <= 1023:
                return None
            handle.seek(offset)
            name = handle.read(size).decode(errors="replace")
    except OSError:
        return None
    return (path.parent / name).resolve()


def _run(argv: list[str], what: str) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=600)
    except FileNotFoundError as err:
        raise HostError(f"{what}: {argv[0]} is not installed") from err
    except subprocess.CalledProcessError as err:
        raise HostError(f"{what} failed: {err.stderr.decode(errors='replace').strip()}") from err


def copy_sparse(source: Path, target: Path) -> None:
    """A byte-for-byte copy of ``source`` at ``target`` that keeps holes (``cp``)."""
    _run(["cp", "--sparse=always", "--", str(source), str(target)], f"copying {source}")


def make_overlay(base: Path, base_format: str, target: Path) -> None:
    """A qcow2 overlay at ``target`` over ``base`` (``qemu-img create -b -F``): QEMU opens
    ``base`` read-only as its backing file and writes only the overlay."""
    _run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", base_format,
          str(target)], f"making the overlay {target}")


def make_seed_iso(files: Mapping[str, str], scratch: Path, target: Path) -> None:
    """An ISO 9660 volume labelled ``cidata`` (Rock Ridge + Joliet names) holding
    ``files`` (name → text) at ``target`` — a cloud-init NoCloud seed, made by xorriso."""
    scratch.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (scratch / name).write_text(text)
    _run(["xorriso", "-as", "mkisofs", "-quiet", "-volid", "cidata", "-joliet", "-rock",
          "-output", str(target), *(str(scratch / name) for name in files)],
         f"making the seed {target}")

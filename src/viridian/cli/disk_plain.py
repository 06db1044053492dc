"""The ``disk`` commands' parts that need no click: file-name rules, the progress bar, and
the start-up fast path of ``viridian disk convert`` (:func:`fast_convert`).

Start-up matters for the disk commands (docs/architecture.md, "The disk library"): a
256 MiB ``qemu-img convert`` takes ~0.2 s, and Python plus click's import ~0.1 s of ours.
The console script (:mod:`viridian.cli.entry`) therefore runs the common shape
``disk convert SRC DST [--type fixed|dynamic|raw]`` here, without importing click, when
nothing else is asked: no option before ``disk``, no other option, no local service that
might own the files (``<data>/service.json`` of a live process). Everything else goes to
the click command unchanged — help, usage errors and exit codes are click's — and so does
a conversion that fails here: the library leaves nothing behind on failure, so the click
command runs it again and reports the same refusal with the same exit code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from viridian.disks.errors import DiskError, InvalidDiskArgument

__all__ = ["FLOPPY_SUFFIX", "NOT_RAW", "SECTOR", "TARGETS", "VHDX_DEFAULT_BLOCK", "VHD_SUFFIX",
           "ProgressFn", "fast_convert", "is_vhdx", "progress_bar", "require_dst_suffix",
           "require_suffix"]

ProgressFn = Callable[[int, int], None]

SECTOR = 512
VHD_SUFFIX = ".vhd"
VHDX_SUFFIXES = (".vhdx", ".avhdx")
VHDX_DEFAULT_BLOCK = 32 * 1024 * 1024
FLOPPY_SUFFIX = ".vfd"
NOT_RAW = (".vhd", ".vhdx", ".avhd", ".avhdx", ".qcow2", ".vmdk", ".vdi")
TARGETS = ("fixed", "dynamic", "raw")
"""``disk convert --type`` choices (the click command names the same)."""


def is_vhdx(path: Path) -> bool:
    """True when ``path`` is named like a VHDX (*.vhdx, or *.avhdx for a differencing one)."""
    return path.suffix.lower() in VHDX_SUFFIXES


def require_suffix(path: Path, suffix: str, what: str) -> None:
    """Refuse a ``path`` whose extension would misname the ``what`` written there.

    A VHD may also be named *.vhdx/*.avhdx: the library then writes a VHDX.
    """
    ok = path.suffix.lower() == suffix or (suffix == VHD_SUFFIX and is_vhdx(path))
    if not ok:
        raise InvalidDiskArgument(
            f"{path}: {what} must be named *{suffix}; disk new writes VHD disks (*.vhd), "
            "VHDX disks (*.vhdx, *.avhdx) and, with --floppy, raw virtual floppies (*.vfd); "
            "nothing was created"
        )


def require_dst_suffix(dst: Path, target: str) -> None:
    """A VHD target needs *.vhd (or *.vhdx for VHDX), a qcow2 target *.qcow2; a raw
    target must not wear a VHD/VHDX/qcow2… name."""
    if target == "qcow2":
        if dst.suffix.lower() != ".qcow2":
            raise InvalidDiskArgument(f"{dst}: a qcow2 image must be named *.qcow2; nothing "
                                      "was created")
    elif target != "raw":
        require_suffix(dst, VHD_SUFFIX, f"a {target} VHD")
    elif dst.suffix.lower() in NOT_RAW:
        raise InvalidDiskArgument(
            f"{dst}: a raw image must not be named *{dst.suffix}; use e.g. *.raw or *.img "
            "(or --type fixed/dynamic for a VHD); nothing was created"
        )


@contextmanager
def progress_bar(label: str) -> Iterator[ProgressFn]:
    """A one-line stderr bar fed by the library's ``progress(done, total)`` callback.

    Drawn only when stderr is a terminal, redrawn only when the percentage changes.
    """
    stream = sys.stderr
    shown = {"pct": -1}

    def update(done: int, total: int) -> None:
        pct = 100 * done // max(total, 1)
        if pct != shown["pct"] and stream.isatty():
            shown["pct"] = pct
            bar = "#" * (pct * 30 // 100)
            stream.write(f"\r{label} [{bar:<30}] {pct:3d}%")
            stream.flush()

    try:
        yield update
    finally:
        if shown["pct"] >= 0:
            stream.write("\n")


def fast_convert(args: list[str]) -> bool:
    """Run ``disk convert`` with ``args`` (what follows ``convert``) when they have the
    plain shape (module docs); True when it ran and succeeded (its line printed), False
    when the click command must handle them (nothing was changed then)."""
    parsed = _plain_convert_args(args)
    if parsed is None or _local_service_may_own_files():
        return False
    src, dst, target = parsed
    from viridian.disks import convert

    try:
        require_dst_suffix(dst, target)
        with progress_bar("converting") as progress:
            convert(src, dst, target, progress=progress)
    except (DiskError, OSError):
        return False  # the click command reports it, exactly as without this path
    sys.stdout.write(f"converted {src} to {target} {dst}\n")
    sys.stdout.flush()
    return True


def _plain_convert_args(args: list[str]) -> tuple[Path, Path, str] | None:
    """``SRC DST`` with at most one ``--type T`` (or ``--type=T``) of :data:`TARGETS`;
    None for anything else (help, other options, ``--``, a missing or extra argument)."""
    positional: list[str] = []
    target: str | None = None
    rest = iter(args)
    for arg in rest:
        if arg.startswith("--type=") and target is None:
            target = arg.partition("=")[2]
        elif arg == "--type" and target is None:
            target = next(rest, None)
            if target is None:
                return None
        elif arg.startswith("-") or not arg:
            return None
        else:
            positional.append(arg)
    if len(positional) != 2 or (target is not None and target not in TARGETS):
        return None
    return Path(positional[0]), Path(positional[1]), target or "dynamic"


def _local_service_may_own_files() -> bool:
    """A local service runs (it may own SRC or DST: the click command asks it)."""
    from viridian import config

    data_dir = config.default_data_dir()
    if not (data_dir / config.SERVICE_RECORD_NAME).exists():
        return False  # no service ever recorded itself: no JSON reader needed (start-up)
    from viridian.cli.credentials import read_service_record, recorder_alive

    record = read_service_record(data_dir)
    return record is not None and recorder_alive(record)

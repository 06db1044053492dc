"""Merging a differencing VHD into its parent, or flattening it into a new disk."""

from __future__ import annotations

from pathlib import Path

from .convert import check_target_type, write_image
from .detect import sniff
from .errors import DiskExists, InvalidDiskArgument, ParentLinkError
from .image import DiskImage
from .progress import Progress, no_progress
from .vhd import SparseVhd, open_disk

MERGE_BATCH = 128 * 1024 * 1024  # bytes per write_many: one barrier per batch


def merge(
    child: Path | str,
    *,
    into_parent: bool = False,
    output: Path | str | None = None,
    target_type: str = "dynamic",
    progress: Progress = no_progress,
) -> Path:
    """Merge the differencing disk ``child`` and return the path holding the result.

    ``into_parent=True`` writes the child's sectors into its parent (which stays a valid
    disk throughout: each block reads old or new content) and then deletes the child,
    as Hyper-V does. ``output=DST`` writes the flattened chain to a new standalone disk
    of ``target_type`` instead and leaves the chain untouched. Exactly one is required.
    """
    if into_parent == (output is not None):
        raise InvalidDiskArgument("merge needs exactly one of: into the parent, or an output path")
    if sniff(Path(child)) == "vhdx":  # AVHDX chains: vhdx_ops
        from .vhdx_ops import merge_vhdx

        out = None if output is None else Path(output)
        return merge_vhdx(Path(child), into_parent, out, target_type, progress)
    if output is not None:
        return merge_to_output(Path(child), Path(output), target_type, progress)
    return merge_into_parent(Path(child), progress)


def merge_to_output(child: Path, output: Path, target_type: str, progress: Progress) -> Path:
    """Flatten the chain of ``child`` into the new file ``output``."""
    check_target_type(target_type)
    if output.exists():
        raise DiskExists(f"{output}: already exists; choose a new destination")
    with open_disk(child) as disk:
        vhd = _differencing(disk)
        write_image(vhd, output, target_type, vhd.block_size, progress)
    return output


def _differencing(disk: DiskImage) -> SparseVhd:
    if not isinstance(disk, SparseVhd) or disk.disk_type != "differencing":
        raise InvalidDiskArgument(f"{disk.path}: merge needs a differencing VHD")
    return disk


def merge_into_parent(child: Path, progress: Progress) -> Path:
    """Write the child's own sectors into its parent, then delete the child."""
    with open_disk(child, writable=True) as disk:
        vhd = _differencing(disk)
        assert vhd.parent is not None
        parent_path, parent_id = vhd.parent.path, getattr(vhd.parent, "footer", None)
        vhd.parent.close()
        with open_disk(parent_path, writable=True) as parent:
            if getattr(parent, "footer", None) != parent_id:
                raise ParentLinkError(f"{parent_path}: changed while opening; merge refused")
            vhd.parent = parent
            copy_own_sectors(vhd, parent, progress)
            parent.file.sync()
            vhd.parent = None
    child.unlink()
    return parent_path


def copy_own_sectors(vhd: SparseVhd, target: DiskImage, progress: Progress) -> None:
    """Write every sector stored in ``vhd`` itself to the same offset of ``target``.

    Runs are gathered into batches of about MERGE_BATCH bytes, so that the target
    allocates the new blocks of a whole batch with one metadata update; one buffer
    is reused for every batch.
    """
    pending: list[tuple[int, int]] = []
    total, buf = 0, bytearray()
    for b in range(vhd.block_count):
        for start, stop in vhd.own_runs(b):
            pending.append((start, stop))
            total += stop - start
        if total >= MERGE_BATCH:
            buf = _flush(vhd, target, pending, total, buf)
            pending, total = [], 0
        progress(min((b + 1) * vhd.block_size, vhd.size), vhd.size)
    _flush(vhd, target, pending, total, buf)


def _flush(
    vhd: SparseVhd, target: DiskImage, runs: list[tuple[int, int]], total: int, buf: bytearray
) -> bytearray:
    """Read ``runs`` from ``vhd`` into ``buf`` (grown if needed), write them to ``target``."""
    if len(buf) < total:
        buf = bytearray(total)
    view = memoryview(buf)
    items, pos = [], 0
    for start, stop in runs:
        piece = view[pos : pos + stop - start]
        vhd.read_own(start, piece)
        items.append((start, piece))
        pos += stop - start
    if items:
        target.write_many(items)
    return buf

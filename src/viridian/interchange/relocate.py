"""Which files an export copies, and every path of a VM moved to where its files went
(pure). Used by export (host paths → the package) and by import (a package's paths →
where it now is, or → a copy in the data folder).

A *move* is a function from an absolute path to its new absolute path that returns the
path unchanged when it does not move (DVD and floppy media stay where they are).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from viridian.checkpoints import Checkpoint, Image, NowDisk, Tree
from viridian.errors import InvalidSetting
from viridian.interchange.native import CHECKPOINTS_FOLDER, DISKS_FOLDER
from viridian.model import VMSettings, to_dict
from viridian.model.slots import DriveSlot, hard_disks, map_drives

Move = Callable[[str], str]


@dataclass(frozen=True)
class ExportFiles:
    """``targets``: each file to copy (absolute source) → its place in the package
    (relative: ``Virtual Hard Disks/x.vhd``, ``checkpoints/y.qcow2``)."""

    targets: dict[str, str]

    def move(self, root: str) -> Move:
        """The move of a VM's paths into the package written at ``root``."""
        return lambda path: posixpath.join(root, self.targets[path]) if path in \
            self.targets else path


def export_files(settings: VMSettings, tree: Tree) -> ExportFiles:
    """Every file an export of a VM with ``settings`` and checkpoint ``tree`` copies:
    its hard disks and those its checkpoints captured (into ``Virtual Hard Disks``),
    and the checkpoints' own overlays and memory states (into ``checkpoints``). Names
    are kept; a second file of the same name gets ``-2``, ``-3``… before its suffix."""
    plain = [*(slot.path for slot in hard_disks(settings) if slot.path),
             *(image.backing for image in tree_images(tree) if image.backing),
             *(image.path for image in tree_images(tree) if not image.owned),
             *(now.base for now in tree.now_disks.values()),
             *(path for cp in tree.checkpoints for path in _captured_disks(cp))]
    owned = [*(image.path for image in tree_images(tree) if image.owned),
             *(cp.memory_file for cp in tree.checkpoints if cp.memory_file)]
    targets: dict[str, str] = {}
    taken: set[str] = set()
    for folder, paths in ((CHECKPOINTS_FOLDER, owned), (DISKS_FOLDER, plain)):
        for path in _unique(paths):
            if path not in targets:
                targets[path] = _free_name(folder, posixpath.basename(path), taken)
    return ExportFiles(targets)


def tree_images(tree: Tree) -> list[Image]:
    """Every image the tree names: each checkpoint's layers and Now's overlays."""
    return [*(image for cp in tree.checkpoints for image in cp.disks.values()),
            *(now.image for now in tree.now_disks.values())]


def overlays(tree: Tree) -> list[Image]:
    """The tree's own images that name a backing file in their header (qcow2 overlays):
    after a move, each header must name its backing's new path."""
    seen: dict[str, Image] = {}
    for image in tree_images(tree):
        if image.owned and image.backing:
            seen.setdefault(image.path, image)
    return list(seen.values())


def relocate_settings(settings: VMSettings, move: Move) -> VMSettings:
    """``settings`` with every drive's file moved (media included: the move decides)."""
    moved = map_drives(settings, lambda slot: _moved_slot(slot, move))
    if settings.checkpoint_folder:
        moved = replace(moved, checkpoint_folder=None)  # the package's own folder
    return moved


def relocate_tree(tree: Tree, move: Move) -> Tree:
    """``tree`` with every file it names moved: layers, backings, memory states, the
    bases Now's overlays stand for, and the disks in each checkpoint's settings."""
    checkpoints = tuple(replace(
        cp, disks={slot: relocate_image(image, move) for slot, image in cp.disks.items()},
        memory_file=move(cp.memory_file) if cp.memory_file else None,
        settings=_moved_captured(cp, move)) for cp in tree.checkpoints)
    now = {slot: NowDisk(move(n.base), relocate_image(n.image, move))
           for slot, n in tree.now_disks.items()}
    return Tree(checkpoints, tree.now_parent, now)


def renumbered(tree: Tree, new_id: Callable[[], str]) -> Tree:
    """``tree`` with a fresh id for every checkpoint (``new_id()``), parents and Now's
    parent following: a copy imported with a new VM id gets checkpoints of its own."""
    ids = {cp.id: new_id() for cp in tree.checkpoints}
    checkpoints = tuple(replace(cp, id=ids[cp.id], parent_id=ids.get(cp.parent_id or ""))
                        for cp in tree.checkpoints)
    return Tree(checkpoints, ids.get(tree.now_parent or ""), dict(tree.now_disks))


def relocate_image(image: Image, move: Move) -> Image:
    return replace(image, path=move(image.path),
                   backing=move(image.backing) if image.backing else None)


def tree_files(tree: Tree) -> list[str]:
    """The files of the tree's own (owned) images and memory states."""
    return _unique([*(image.path for image in tree_images(tree) if image.owned),
                    *(cp.memory_file for cp in tree.checkpoints if cp.memory_file)])


def _moved_slot(slot: DriveSlot, move: Move) -> DriveSlot:
    return replace(slot, path=move(slot.path)) if slot.path else slot


def _captured_disks(cp: Checkpoint) -> list[str]:
    try:
        settings = cp.vm_settings()
    except InvalidSetting:
        return []
    return [slot.path for slot in hard_disks(settings) if slot.path]


def _moved_captured(cp: Checkpoint, move: Move) -> dict[str, object]:
    try:
        settings = cp.vm_settings()
    except InvalidSetting:
        return dict(cp.settings)
    return to_dict(relocate_settings(settings, move))


def _unique(paths: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(path for path in paths if path))


def _free_name(folder: str, name: str, taken: set[str]) -> str:
    stem, dot, suffix = name.partition(".")
    candidate, n = f"{folder}/{name}", 2
    while candidate in taken:
        candidate, n = f"{folder}/{stem}-{n}{dot}{suffix}", n + 1
    taken.add(candidate)
    return candidate

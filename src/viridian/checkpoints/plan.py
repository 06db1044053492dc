"""Plans for taking, applying and deleting checkpoints (pure; the service executes them).

A plan names every file it will create, merge or delete before anything happens, so the
service can journal it and, after a crash, finish or undo exactly that (see
:mod:`viridian.service.checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from viridian.checkpoints.tree import Checkpoint, Image, NowDisk, Tree
from viridian.model import VMSettings
from viridian.model.slots import hard_disks

OverlayNamer = Callable[[str, Image], str]  # (slot, image below) → path of a new overlay


@dataclass(frozen=True)
class Merge:
    """Merge ``layer`` (being deleted) into ``target``: afterwards ``target`` holds every
    cluster it read through ``layer`` and its backing is ``new_backing`` (QEMU
    ``block-stream`` online, ``qemu-img rebase`` offline). Reads of ``target`` are the
    same before, during and after."""

    target: str
    layer: str
    new_backing: str
    new_backing_format: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "merge", "target": self.target, "layer": self.layer,
                "new_backing": self.new_backing, "new_backing_format": self.new_backing_format}


@dataclass(frozen=True)
class Commit:
    """Write Now's overlay ``top`` of ``slot`` into the admin's disk ``base`` and let Now
    use ``base`` directly (QEMU active ``block-commit`` online, ``qemu-img commit``
    offline); planned when the last checkpoint goes."""

    slot: str
    top: str
    base: str
    base_format: str

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "commit", "slot": self.slot, "top": self.top, "base": self.base,
                "base_format": self.base_format}


Step = Merge | Commit


def step_from_dict(d: Mapping[str, Any]) -> Step:
    if d["kind"] == "merge":
        return Merge(d["target"], d["layer"], d["new_backing"], d["new_backing_format"])
    return Commit(d["slot"], d["top"], d["base"], d["base_format"])


@dataclass(frozen=True)
class DeletePlan:
    removed: tuple[Checkpoint, ...]
    steps: tuple[Step, ...]
    files: tuple[str, ...]  # deleted after the steps and the catalog update
    tree: Tree  # the tree afterwards


# --- Now's disks -----------------------------------------------------------------------


def disk_images(settings: VMSettings) -> dict[str, Image]:
    """``slot → the admin's image`` for every hard disk with a file
    (:func:`viridian.model.slots.hard_disks`; DVDs and floppies are media, not
    checkpointed). An unresolved format counts as raw (the service resolves formats
    when it attaches a disk)."""
    return {slot.id: Image(str(slot.path), str(slot.format or "raw"))
            for slot in hard_disks(settings)}


def active_images(tree: Tree, settings: VMSettings) -> dict[str, Image]:
    """``slot → image Now writes into``: Now's overlay while the slot still holds the disk
    it was made for, else the admin's disk itself."""
    active: dict[str, Image] = {}
    for slot, disk in disk_images(settings).items():
        now = tree.now_disks.get(slot)
        active[slot] = now.image if now is not None and now.base == disk.path else disk
    return active


def referenced_by_checkpoints(tree: Tree) -> set[str]:
    """Every image path a checkpoint reads (its layers and what they stand on)."""
    paths: set[str] = set()
    for cp in tree.checkpoints:
        for image in cp.disks.values():
            paths.add(image.path)
            if image.backing:
                paths.add(image.backing)
    return paths


def slots_needing_overlays(tree: Tree, settings: VMSettings) -> list[str]:
    """Slots where Now would write straight into an image a checkpoint reads (e.g. a disk
    re-attached after applying an older checkpoint): they must get an overlay first."""
    referenced = referenced_by_checkpoints(tree)
    return sorted(slot for slot, image in active_images(tree, settings).items()
                  if not image.owned and image.path in referenced)


def new_overlays(bases: Mapping[str, tuple[str, Image]],
                 namer: OverlayNamer) -> dict[str, NowDisk]:
    """Fresh Now overlays: ``bases`` maps slot → (settings path, image below)."""
    return {slot: NowDisk(path, Image(namer(slot, below), "qcow2", below.path, below.format,
                                      owned=True))
            for slot, (path, below) in bases.items()}


def plan_take(tree: Tree, settings: VMSettings,
              namer: OverlayNamer) -> tuple[dict[str, Image], dict[str, NowDisk]]:
    """(the new checkpoint's layers, Now's new overlays): every slot's active image is
    frozen as the layer and Now continues in a new overlay on top of it."""
    layers = active_images(tree, settings)
    disks = disk_images(settings)
    return layers, new_overlays({slot: (disks[slot].path, layer)
                                 for slot, layer in layers.items()}, namer)


def plan_apply(checkpoint: Checkpoint, namer: OverlayNamer) -> dict[str, NowDisk]:
    """Now's new overlays when applying ``checkpoint``: one on top of each of its layers."""
    disks = disk_images(checkpoint.vm_settings())
    return new_overlays({slot: (disks[slot].path, layer)
                         for slot, layer in checkpoint.disks.items() if slot in disks}, namer)


# --- deletion --------------------------------------------------------------------------


def plan_delete(tree: Tree, checkpoint_id: str, *, subtree: bool) -> DeletePlan:
    """Delete one checkpoint (its children move up to its parent) or its whole subtree.

    Checkpoints go deepest first; each owned layer is merged into every image standing
    on it and then deleted. When no checkpoint remains, Now's overlays are committed into
    the admin's disks.
    """
    victims = tree.subtree(checkpoint_id) if subtree else [tree.get(checkpoint_id)]
    steps: list[Step] = []
    files: list[str] = []
    for victim in sorted(victims, key=lambda cp: cp.seq, reverse=True):
        tree, merges, gone = _delete_one(tree, victim.id)
        steps += merges
        files += gone
    if not tree.checkpoints:
        commits = _commits(tree)
        steps += commits
        files += [c.top for c in commits]
        tree = replace(tree, now_disks={slot: now for slot, now in tree.now_disks.items()
                                        if slot not in {c.slot for c in commits}})
    return DeletePlan(tuple(victims), tuple(steps), tuple(files), tree)


def _delete_one(tree: Tree, checkpoint_id: str) -> tuple[Tree, list[Merge], list[str]]:
    victim = tree.get(checkpoint_id)
    merges: list[Merge] = []
    files: list[str] = []
    for layer in victim.disks.values():
        if not layer.owned:
            continue  # the admin's own disk: it stays, and whatever stands on it too
        assert layer.backing is not None and layer.backing_format is not None
        for target in _standing_on(tree, layer.path, exclude=victim.id):
            merges.append(Merge(target.path, layer.path, layer.backing, layer.backing_format))
            tree = _rebacked(tree, target.path, layer.backing, layer.backing_format)
        files.append(layer.path)
    if victim.memory_file:
        files.append(victim.memory_file)
    checkpoints = tuple(
        replace(cp, parent_id=victim.parent_id) if cp.parent_id == victim.id else cp
        for cp in tree.checkpoints if cp.id != victim.id)
    now_parent = victim.parent_id if tree.now_parent == victim.id else tree.now_parent
    return replace(tree, checkpoints=checkpoints, now_parent=now_parent), merges, files


def _all_images(tree: Tree, exclude: str | None = None) -> Iterable[Image]:
    for cp in tree.checkpoints:
        if cp.id != exclude:
            yield from cp.disks.values()
    for now in tree.now_disks.values():
        yield now.image


def _standing_on(tree: Tree, path: str, exclude: str) -> list[Image]:
    seen: dict[str, Image] = {}
    for image in _all_images(tree, exclude):
        if image.backing == path:
            seen.setdefault(image.path, image)
    return list(seen.values())


def _rebacked(tree: Tree, path: str, backing: str, backing_format: str) -> Tree:
    def fix(image: Image) -> Image:
        return replace(image, backing=backing, backing_format=backing_format) \
            if image.path == path else image
    return replace(
        tree,
        checkpoints=tuple(replace(cp, disks={s: fix(i) for s, i in cp.disks.items()})
                          for cp in tree.checkpoints),
        now_disks={s: replace(n, image=fix(n.image)) for s, n in tree.now_disks.items()})


def _commits(tree: Tree) -> list[Commit]:
    return [Commit(slot, now.image.path, now.image.backing, now.image.backing_format)
            for slot, now in sorted(tree.now_disks.items())
            if now.image.backing == now.base and now.image.backing_format is not None]


# --- files -----------------------------------------------------------------------------


def referenced_files(tree: Tree) -> set[str]:
    """Every file of the tree: layers, what they stand on, Now's overlays, memory states."""
    paths = referenced_by_checkpoints(tree)
    paths |= {cp.memory_file for cp in tree.checkpoints if cp.memory_file}
    for now in tree.now_disks.values():
        paths.add(now.image.path)
        if now.image.backing:
            paths.add(now.image.backing)
    return paths


def orphan_files(files_in_folder: Iterable[str], tree: Tree,
                 keep: Iterable[str] = ()) -> list[str]:
    """Files of a checkpoint folder that nothing refers to (left by a crash)."""
    needed = referenced_files(tree) | set(keep)
    return sorted(f for f in files_in_folder if f not in needed)

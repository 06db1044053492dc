"""Which VM uses a file, and how: the service's knowledge that disk operations consult
before they change a file (docs/api.md, "Disks": ``POST /disks/uses``).

A file is *known* when it is one of a VM's drives (hard disk, DVD or floppy medium), the
base disk of a checkpoint, a checkpoint overlay (a layer of the checkpoint chain or the
overlay the VM runs on now), a checkpoint's memory state, or the VM's saved state.
Files are compared by device and inode when they exist (a hard link or another spelling
of the same file is the same file), else by absolute path.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from viridian.checkpoints import Tree
from viridian.model import VMSettings
from viridian.model.slots import drive_slots, slot_label
from viridian.service.checkpoints.store import CheckpointStore
from viridian.service.context import ServiceContext
from viridian.service.vms.live import LiveVM


class Role(enum.StrEnum):
    """How a VM uses a file."""

    DRIVE = "drive"  # attached in its settings (hard disk, DVD or floppy medium)
    CHECKPOINT_BASE = "checkpoint_base"  # the disk a checkpoint's overlays are based on
    OVERLAY = "overlay"  # a checkpoint layer, or the overlay the VM runs on now
    CHECKPOINT_MEMORY = "checkpoint_memory"
    SAVED_STATE = "saved_state"


@dataclass(frozen=True)
class FileUse:
    """``path`` is used by VM ``vm`` (in ``state``) as ``role``; ``where`` says where
    (``IDE 0:0``, ``SCSI 1:3``, ``floppy``) and ``checkpoints`` which checkpoints."""

    path: str
    vm: str
    vm_id: str
    state: str
    role: Role
    where: str = ""
    checkpoints: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "vm": self.vm, "vm_id": self.vm_id, "state": self.state,
                "role": self.role.value, "where": self.where,
                "checkpoints": list(self.checkpoints)}


FileKey = tuple[Any, ...]


def file_key(path: str | Path) -> FileKey:
    """The identity of ``path``: (device, inode) when it exists, else its absolute path."""
    try:
        st = os.stat(path)
    except OSError:
        return ("path", os.path.abspath(path))
    return ("inode", st.st_dev, st.st_ino)


def file_uses(context: ServiceContext, store: CheckpointStore,
              paths: Iterable[str | Path]) -> list[FileUse]:
    """Every use of any of ``paths`` by any VM the service manages (empty: unknown files).

    Pure reading: nothing is changed or locked; the caller rechecks under the VM's queue.
    """
    wanted = {file_key(p): str(p) for p in paths}
    found: list[FileUse] = []
    for live in context.vms().values():
        tree = store.tree(live.record.id)
        for path, role, where, names in _known_files(live, tree):
            key = file_key(path)
            if key in wanted:
                found.append(FileUse(wanted[key], live.record.name, live.record.id,
                                     live.state.value, role, where, names))
    return found


Known = tuple[str, Role, str, tuple[str, ...]]


def _known_files(live: LiveVM, tree: Tree) -> Iterator[Known]:
    yield from _drives(live.record.settings)
    yield from _checkpoint_files(tree)
    yield str(live.saved_state), Role.SAVED_STATE, "", ()


def _drives(settings: VMSettings) -> Iterator[Known]:
    for slot in drive_slots(settings):
        if slot.path:
            yield slot.path, Role.DRIVE, slot.label, ()
    if settings.floppy.path:
        yield settings.floppy.path, Role.DRIVE, "floppy", ()


def _checkpoint_files(tree: Tree) -> Iterator[Known]:
    bases: dict[tuple[str, str], list[str]] = {}
    for cp in tree.checkpoints:
        for slot, image in cp.disks.items():
            if image.owned:
                yield image.path, Role.OVERLAY, slot_label(slot), (cp.name,)
            else:
                bases.setdefault((image.path, slot), []).append(cp.name)
        if cp.memory_file:
            yield cp.memory_file, Role.CHECKPOINT_MEMORY, "", (cp.name,)
    for (path, slot), names in bases.items():
        yield path, Role.CHECKPOINT_BASE, slot_label(slot), tuple(names)
    for slot, now in tree.now_disks.items():
        yield now.image.path, Role.OVERLAY, slot_label(slot), ()

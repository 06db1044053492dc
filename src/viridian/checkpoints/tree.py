"""The checkpoint tree of one VM: records, names, lookups (pure)."""

from __future__ import annotations

import enum
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from viridian.errors import Conflict, InvalidSetting, NotFound
from viridian.model import VMSettings, settings_from_dict

# Hyper-V (2008 and later): at most 50 snapshots per VM.
MAX_CHECKPOINTS = 50
NAME_MAX_CHARS = 100
ALLOWED_NAME = f"1..{NAME_MAX_CHARS} characters without control characters"


class CapturedState(enum.StrEnum):
    """The VM state a checkpoint captured; applying it returns the VM to this state."""

    OFF = "Off"
    RUNNING = "Running"
    PAUSED = "Paused"
    SAVED = "Saved"

    @property
    def has_memory(self) -> bool:
        return self is not CapturedState.OFF


@dataclass(frozen=True)
class Image:
    """One disk image in a chain. ``backing`` is the image below (None: a standalone
    disk). ``owned``: created by viridian in a checkpoint folder, so viridian may merge
    and delete it; an image the admin attached is never owned."""

    path: str
    format: str
    backing: str | None = None
    backing_format: str | None = None
    owned: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "backing": self.backing,
                "backing_format": self.backing_format, "owned": self.owned}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Image:
        return cls(str(d["path"]), str(d["format"]), d.get("backing"), d.get("backing_format"),
                   bool(d.get("owned", False)))


@dataclass(frozen=True)
class NowDisk:
    """Now's overlay for one slot, valid while the slot still holds ``base`` (the path in
    the VM's settings when the overlay was made)."""

    base: str
    image: Image

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "image": self.image.to_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NowDisk:
        return cls(str(d["base"]), Image.from_dict(d["image"]))


@dataclass(frozen=True)
class Checkpoint:
    """``disks`` maps a slot (``ide:C:L`` / ``scsi:C:L``, :func:`viridian.model.slots.slot_id`)
    to the layer frozen for it; ``settings`` is the VM's configuration when taken, as
    stored (the settings dict shape; :meth:`vm_settings` parses it); ``memory_file`` the
    memory and device state (Running, Paused and Saved checkpoints)."""

    id: str
    name: str
    parent_id: str | None
    created_at: str
    state: CapturedState
    settings: Mapping[str, Any]
    disks: Mapping[str, Image]
    memory_file: str | None = None
    notes: str = ""
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "parent_id": self.parent_id,
                "created_at": self.created_at, "state": self.state.value,
                "settings": dict(self.settings),
                "disks": {slot: img.to_dict() for slot, img in self.disks.items()},
                "memory_file": self.memory_file, "notes": self.notes, "seq": self.seq}

    def vm_settings(self, name: str | None = None) -> VMSettings:
        """The captured settings, typed (named ``name`` when given: a VM renamed since
        keeps its new name). Raises :class:`InvalidSetting` for settings this version no
        longer accepts."""
        return settings_from_dict({**self.settings, "name": name or self.settings["name"]})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Checkpoint:
        return cls(str(d["id"]), str(d["name"]), d.get("parent_id"), str(d["created_at"]),
                   CapturedState(d["state"]), dict(d["settings"]),
                   {slot: Image.from_dict(img) for slot, img in d["disks"].items()},
                   d.get("memory_file"), str(d.get("notes", "")), int(d.get("seq", 0)))


@dataclass(frozen=True)
class Tree:
    """A VM's checkpoints in creation order, where Now hangs, and Now's overlays."""

    checkpoints: tuple[Checkpoint, ...] = ()
    now_parent: str | None = None
    now_disks: Mapping[str, NowDisk] = field(default_factory=dict)

    def get(self, checkpoint_id: str) -> Checkpoint:
        for cp in self.checkpoints:
            if cp.id == checkpoint_id:
                return cp
        raise NotFound(f"no checkpoint with id {checkpoint_id}", checkpoint=checkpoint_id)

    def children(self, checkpoint_id: str | None) -> list[Checkpoint]:
        return [cp for cp in self.checkpoints if cp.parent_id == checkpoint_id]

    def subtree(self, checkpoint_id: str) -> list[Checkpoint]:
        """``checkpoint_id`` and all its descendants, in creation order."""
        ids = {checkpoint_id}
        for cp in self.checkpoints:  # creation order: a parent comes before its children
            if cp.parent_id in ids:
                ids.add(cp.id)
        return [cp for cp in self.checkpoints if cp.id in ids]

    def ancestors(self, checkpoint_id: str | None) -> list[str]:
        """Ids from ``checkpoint_id`` up to its root (inclusive)."""
        chain: list[str] = []
        while checkpoint_id is not None:
            chain.append(checkpoint_id)
            checkpoint_id = self.get(checkpoint_id).parent_id
        return chain


def check_name(name: str) -> str:
    """``name`` stripped, or :class:`InvalidSetting` (Hyper-V: up to 100 characters)."""
    stripped = name.strip()
    if not 1 <= len(stripped) <= NAME_MAX_CHARS or any(
            unicodedata.category(ch) == "Cc" for ch in stripped):
        raise InvalidSetting("name", name, ALLOWED_NAME)
    return stripped


def default_name(vm_name: str, when: datetime) -> str:
    """Hyper-V's automatic name: ``VM - (YYYY-MM-DD - HH:MM:SS)`` (local time)."""
    return f"{vm_name} - ({when:%Y-%m-%d - %H:%M:%S})"


def unique_name(tree: Tree, wanted: str, *, exclude: str | None = None) -> None:
    """Raise :class:`Conflict` when another checkpoint is called ``wanted`` (names
    identify checkpoints in the CLI, so they are unique per VM)."""
    for cp in tree.checkpoints:
        if cp.name == wanted and cp.id != exclude:
            raise Conflict(f"a checkpoint named '{wanted}' already exists; choose another "
                           "name; nothing was changed", checkpoint=wanted)


def find_checkpoint(tree: Tree, vm_name: str, ref: str) -> Checkpoint:
    """The checkpoint named ``ref`` (or with id ``ref``); :class:`NotFound` naming the
    VM's checkpoints otherwise."""
    for cp in tree.checkpoints:
        if cp.name == ref or cp.id == ref:
            return cp
    names = ", ".join(f"'{cp.name}'" for cp in tree.checkpoints) or "none"
    raise NotFound(f"VM '{vm_name}' has no checkpoint '{ref}' (its checkpoints: {names})",
                   vm=vm_name, checkpoint=ref)

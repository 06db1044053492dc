"""The native export package: Hyper-V's export folder, viridian's way (docs/api.md,
"Export and import").

An exported VM is one folder that is itself a valid VM folder::

    <DIR>/<name>/
      vm.json               the VM configuration file (format_version 1), paths inside
      export.json           this package's manifest (below)
      Virtual Hard Disks/   every hard disk the VM or one of its checkpoints reads
      checkpoints/          checkpoint overlays and memory states
      saved-state.vmstate   the memory state of a Saved VM

``export.json`` (format_version 1)::

    {"format_version": 1, "exported_at": "…Z", "root": "/abs/path/of/the/folder",
     "state": "Off" | "Saved", "saved_state": "saved-state.vmstate" | null,
     "checkpoints": {"checkpoints": [...], "now_parent": …, "now_disks": {…}}}

Every path in ``vm.json`` and ``export.json`` is absolute and lies under ``root``, the
folder where the package was written. A package that was moved is read by swapping that
prefix for where it is now (:func:`relocated_prefix`); nothing else in it names a host path
but DVD and floppy media, which are not copied (Hyper-V does not export media either).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from viridian.checkpoints import Checkpoint, NowDisk, Tree
from viridian.errors import BadRequest

DEFINITION = "vm.json"
MANIFEST = "export.json"
DISKS_FOLDER = "Virtual Hard Disks"
CHECKPOINTS_FOLDER = "checkpoints"
SAVED_STATE = "saved-state.vmstate"
FORMAT_VERSION = 1
KNOWN_VERSIONS = (1,)
EXPORTABLE_STATES = ("Off", "Saved")


@dataclass(frozen=True)
class Manifest:
    """What ``export.json`` holds (see the module docstring)."""

    exported_at: str
    root: str
    state: str
    saved_state: str | None
    tree: Tree

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "exported_at": self.exported_at,
                "root": self.root, "state": self.state, "saved_state": self.saved_state,
                "checkpoints": tree_to_dict(self.tree)}

    @classmethod
    def from_dict(cls, where: str, data: Any) -> Manifest:
        """The manifest in ``data`` (read from ``where``).

        :raises BadRequest: not an object, an unknown ``format_version`` (the known ones
            are named), a missing or malformed field.
        """
        version = data.get("format_version") if isinstance(data, dict) else None
        if version not in KNOWN_VERSIONS:
            raise BadRequest(
                f"{where}: unknown format_version {version!r}; this viridian reads export "
                f"format_version {', '.join(map(str, KNOWN_VERSIONS))}; nothing was changed",
                path=where)
        assert isinstance(data, dict)
        try:
            state = str(data["state"])
            if state not in EXPORTABLE_STATES:
                raise ValueError(f"state {state!r} is not one of {', '.join(EXPORTABLE_STATES)}")
            return cls(str(data["exported_at"]), str(data["root"]), state,
                       data.get("saved_state"), tree_from_dict(data["checkpoints"]))
        except (KeyError, TypeError, ValueError) as err:
            raise BadRequest(f"{where}: malformed export manifest ({err}); nothing was changed",
                             path=where) from err


def tree_to_dict(tree: Tree) -> dict[str, Any]:
    """A checkpoint tree as JSON (the catalog's shapes of its parts)."""
    return {"checkpoints": [cp.to_dict() for cp in tree.checkpoints],
            "now_parent": tree.now_parent,
            "now_disks": {slot: now.to_dict() for slot, now in tree.now_disks.items()}}


def tree_from_dict(data: Any) -> Tree:
    """The inverse of :func:`tree_to_dict` (KeyError/TypeError/ValueError when malformed)."""
    return Tree(tuple(Checkpoint.from_dict(c) for c in data["checkpoints"]),
                data.get("now_parent"),
                {slot: NowDisk.from_dict(n) for slot, n in data["now_disks"].items()})


def relocated_prefix(old_root: str, new_root: str) -> Relocation:
    """A relocation that moves every path under ``old_root`` to the same place under
    ``new_root`` and leaves other paths (media on the host) as they are."""
    return Relocation(old_root.rstrip("/"), new_root.rstrip("/"))


@dataclass(frozen=True)
class Relocation:
    """Swaps the prefix ``old`` for ``new`` in paths (see :func:`relocated_prefix`)."""

    old: str
    new: str

    def __call__(self, path: str) -> str:
        if path == self.old:
            return self.new
        if path.startswith(self.old + "/"):
            return self.new + path[len(self.old):]
        return path

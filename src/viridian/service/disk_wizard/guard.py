"""What a disk operation may do to files the service knows (docs/api.md, "Disks").

Hyper-V's Edit Disk refuses a disk that a checkpoint is based on, and a disk a running
VM holds. The rules here, for each file an operation *writes* (expand, compact, repair,
merge into a parent, the merged child that disappears, a convert's destination) and each
file it only *reads* (a convert's source, the child merged into a new disk):

=====================  ======================  ====================================
the file is …          written                 read
=====================  ======================  ====================================
a checkpoint's base    refused                 allowed while the VM is Off
a checkpoint overlay   refused                 allowed while the VM is Off
memory / saved state   refused                 refused (not a disk)
a VM's drive           allowed while Off       allowed while the VM is Off
=====================  ======================  ====================================

A convert's destination and a merged child that is a VM's drive are refused in every
state (the VM would lose its disk). Every refusal is a :class:`Conflict` (409, exit 4)
that names the file, the VM, the checkpoint, what to do instead, and that nothing was
changed. An allowed operation on a VM's file runs on that VM's queue, so no start or
settings change interleaves with it; :meth:`DiskGuard.check` is called again when the
job runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from viridian import disks
from viridian.errors import Conflict
from viridian.model.states import VMState
from viridian.service.checkpoints.store import CheckpointStore
from viridian.service.context import ServiceContext
from viridian.service.storage.file_uses import FileUse, Role, file_uses

OFF = VMState.OFF.value


@dataclass(frozen=True)
class Access:
    """One file an operation touches: ``path``, whether it is ``written``, and the
    operation in words for messages (``"expand"``, ``"merge into its parent"``)."""

    path: Path
    written: bool
    action: str
    removes: bool = False  # the operation deletes the file (a child merged into its parent)
    creates: bool = False  # the operation creates the file (a convert's destination)


class DiskGuard:
    """The service's check of disk operations against the VMs' files."""

    def __init__(self, context: ServiceContext) -> None:
        self.context = context
        self.store = CheckpointStore(context.catalog)

    def uses(self, paths: Sequence[str | Path]) -> list[FileUse]:
        """Every use of ``paths`` by the service's VMs (see :func:`file_uses`)."""
        return file_uses(self.context, self.store, paths)

    def check(self, accesses: Sequence[Access]) -> tuple[str, str] | None:
        """Refuse what would break a VM or a checkpoint; else (VM id, VM name) of the VM
        whose queue the operation must run on (None: no VM uses these files).

        :raises Conflict: naming the file, the VM and what to do instead.
        """
        owner: tuple[str, str] | None = None
        for access in accesses:
            for use in sorted(self.uses([access.path]), key=_weight):
                refusal = _refusal(access, use)
                if refusal:
                    raise Conflict(f"cannot {access.action} {access.path}: {refusal}; "
                                   "nothing was changed", path=str(access.path), vm=use.vm,
                                   role=use.role.value, checkpoints=list(use.checkpoints))
                if access.written:
                    self.context.check_disk_work(self.context.find_vm(use.vm_id),
                                                    f"{access.action} {access.path}")
                owner = owner or (use.vm_id, use.vm)
        return owner


def _weight(use: FileUse) -> int:
    """Checkpoint and state files first: their refusal says more than "attached"."""
    return 1 if use.role is Role.DRIVE else 0


def _refusal(access: Access, use: FileUse) -> str | None:
    """Why ``access`` may not touch the file of ``use``, or None."""
    if use.role is Role.CHECKPOINT_BASE and (access.written or use.state != OFF):
        return _base_text(use)
    if use.role is Role.OVERLAY and (access.written or use.state != OFF):
        return _overlay_text(use)
    if use.role in (Role.CHECKPOINT_MEMORY, Role.SAVED_STATE):
        return _state_text(use)
    if access.creates or access.removes:
        return (f"it is the disk of VM '{use.vm}' at {use.where}; the VM would lose its "
                "disk" + ("; write to another file" if access.creates else
                          "; merge with --output NEW.vhd instead, or detach it first"))
    if use.state != OFF:
        return (f"the disk is attached to VM '{use.vm}' at {use.where}, which is "
                f"{use.state}; turn the VM off first (viridian vm stop {use.vm})")
    return None


def _base_text(use: FileUse) -> str:
    first = use.checkpoints[0]
    more = f" (and {len(use.checkpoints) - 1} more)" if len(use.checkpoints) > 1 else ""
    return (f"disk {use.path} is the base of checkpoint '{first}'{more} of VM '{use.vm}' "
            f"({use.where}); changing it would break the checkpoint, whose overlays hold "
            "the changes made since, as in Hyper-V; delete the VM's checkpoints first "
            f"(viridian checkpoint remove {use.vm} '{first}'; deleting the last one merges "
            "the VM's changes into the disk)" + _state_note(use))


def _overlay_text(use: FileUse) -> str:
    what = (f"a layer of checkpoint '{use.checkpoints[0]}'" if use.checkpoints
            else "the overlay it runs on now")
    return (f"{use.path} is {what} of VM '{use.vm}' ({use.where}), kept by the service; "
            f"it changes only through 'viridian checkpoint' commands" + _state_note(use))


def _state_text(use: FileUse) -> str:
    what = (f"the memory state of checkpoint '{use.checkpoints[0]}'" if use.checkpoints
            else "the saved state")
    return f"{use.path} is {what} of VM '{use.vm}', not a disk"


def _state_note(use: FileUse) -> str:
    return "" if use.state == OFF else f"; VM '{use.vm}' is {use.state}"


def merge_accesses(child: Path, output: Path | None) -> list[Access]:
    """The files ``merge`` touches: into a new ``output``, the child is read and the
    output created; into its parent, the child is removed and the parent written."""
    if output is not None:
        return [Access(child, False, "merge"),
                Access(output, True, f"merge {child} into", creates=True)]
    accesses = [Access(child, True, "merge into its parent", removes=True)]
    parent = _parent_of(child)
    if parent is not None:
        accesses.append(Access(parent, True, f"merge {child} into"))
    return accesses


def _parent_of(child: Path) -> Path | None:
    try:
        found = disks.inspect(child).parent_path
    except (disks.DiskError, OSError):
        return None  # the merge itself reports what is wrong with the child
    return Path(found) if found else None

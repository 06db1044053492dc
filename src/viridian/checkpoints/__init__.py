"""Checkpoints (Hyper-V snapshots) as pure data and plans — no I/O here.

The disk model (docs/architecture.md, "The storage path"): every hard disk slot of a
VM reads through a chain of images. The bottom is the admin's own disk (VHD, VHDX, qcow2
or raw, never a differencing VHD); above it sit qcow2 overlays that viridian creates in
the VM's checkpoint folder and owns. QEMU is only ever handed a qcow2 overlay or a
standalone disk, and follows the qcow2 backing chain itself.

- Taking checkpoint C freezes, per slot, the image Now writes into (C's *layer*) and gives
  Now a fresh overlay on top of it. The chain ending at C's layer is the disk at C.
- Applying C gives Now fresh overlays on top of C's layers (Now's old overlays are
  discarded), C's configuration and, when C has one, C's memory state.
- Deleting C merges each owned layer of C into every image that has it as backing
  (:class:`Merge`: the dependent gets C's data where it has none, then its backing becomes
  C's backing) and then deletes the layer. Images that do not depend on C are never read or
  written. A layer that is the admin's own disk is never merged away or deleted. When the
  last checkpoint goes, Now's overlays are committed into the admin's disks
  (:class:`Commit`), as Hyper-V merges the AVHDs back into the VHD.

Invariants the plans keep: Now's overlays are never a checkpoint's layer; an image is the
layer of at most one checkpoint or Now; only owned images are ever deleted.
"""

from viridian.checkpoints.plan import (
    Commit,
    DeletePlan,
    Merge,
    active_images,
    disk_images,
    orphan_files,
    plan_apply,
    plan_delete,
    plan_take,
    referenced_files,
    slots_needing_overlays,
)
from viridian.checkpoints.tree import (
    MAX_CHECKPOINTS,
    NAME_MAX_CHARS,
    CapturedState,
    Checkpoint,
    Image,
    NowDisk,
    Tree,
    check_name,
    default_name,
    find_checkpoint,
    unique_name,
)

__all__ = [
    "MAX_CHECKPOINTS",
    "NAME_MAX_CHARS",
    "CapturedState",
    "Checkpoint",
    "Commit",
    "DeletePlan",
    "Image",
    "Merge",
    "NowDisk",
    "Tree",
    "active_images",
    "check_name",
    "default_name",
    "disk_images",
    "find_checkpoint",
    "orphan_files",
    "plan_apply",
    "plan_delete",
    "plan_take",
    "referenced_files",
    "slots_needing_overlays",
    "unique_name",
]

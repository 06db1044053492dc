"""Where a backup point lives in a folder target (docs/api.md, "Backup")::

    <target>/<vm name>/<backup id>/       a good point
      backup.json                         its record (written last)
      vm.json                             the VM's configuration at the point in time
      checkpoints.json                    its checkpoint tree at the point in time
      manifest.json                       per-block checksums of the files above and disks
      disks/<bus>-<c>-<l>.qcow2           one image per hard disk
      memory.state                        with --with-memory: the VM's saved state
    <target>/<vm name>/.partial-<id>/     a point being written (never listed as good)

An incremental point's images name their parent's images as backing files by relative
path (``../../<parent id>/disks/…``), so a target folder may be moved as a whole.
"""

from __future__ import annotations

import posixpath
from pathlib import Path

RECORD = "backup.json"
DEFINITION = "vm.json"
CHECKPOINTS = "checkpoints.json"
MANIFEST = "manifest.json"
DISKS = "disks"
MEMORY = "memory.state"
PARTIAL_PREFIX = ".partial-"


def vm_folder(target: Path, vm_name: str) -> Path:
    """The folder of a VM's points in ``target`` (``/`` in a name becomes ``_``)."""
    return target / (vm_name.replace("/", "_").lstrip(".") or "vm")


def point_folder(target: Path, vm_name: str, backup_id: str) -> Path:
    return vm_folder(target, vm_name) / backup_id


def partial_folder(final: Path) -> Path:
    """Where the point that will be ``final`` is written first."""
    return final.with_name(PARTIAL_PREFIX + final.name)


def disk_file(slot: str) -> str:
    """The point-relative file of the disk in ``slot`` (``ide:0:1`` → ``disks/ide-0-1.qcow2``)."""
    return posixpath.join(DISKS, slot.replace(":", "-") + ".qcow2")


def parent_backing(parent_id: str, file: str) -> str:
    """The backing file an incremental image names: its parent's image, relatively."""
    return posixpath.join("..", "..", parent_id, file)

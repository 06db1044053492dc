"""``backup restore ID [--as NAME]`` (docs/architecture.md, "Backup").

- ``--as NAME``: a new VM (new id, new dynamic MAC addresses) named NAME;
- without it, when the backed-up VM is no longer registered: the VM again, same id
  and name;
- without it, when the VM is registered and Off without checkpoints: its disks are
  rewritten in place from the point (journaled: :mod:`.inplace`).

For a new VM the point's chain is written as a native export package
(:mod:`viridian.interchange.native`: ``vm.json`` + ``export.json`` + disks in the VM's
own formats) under ``<data>/backups/restore/`` and imported by copy
(:mod:`viridian.service.vms.importing`), whose journal makes the registration
all-or-nothing when the service is killed; the package is removed afterwards (and at
the next start if the service died). Fault point ``restore.package``.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

from viridian.backup import layout
from viridian.backup.records import BackupRecord
from viridian.checkpoints import Tree
from viridian.errors import BadRequest
from viridian.interchange.native import MANIFEST, SAVED_STATE, Manifest
from viridian.interchange.relocate import export_files, relocate_settings
from viridian.model import settings_from_dict, to_dict
from viridian.model.slots import hard_disks
from viridian.qemu import backup_images
from viridian.service.backup.files import read_json, write_json
from viridian.service.checkpoints.operations import fault
from viridian.service.checkpoints.store import CheckpointStore
from viridian.service.jobs import Job, now_iso
from viridian.service.vms.definition_file import Definition, read_definition
from viridian.service.vms.importing import ImportRequest, Registrar, import_vm
from viridian.service.vms.package_files import StagingJournal, copy_sparse

RESTORE_FOLDER = "backups/restore"


async def restore_as_new(core: Registrar, record: BackupRecord, name: str | None,
                         new_id: bool, job: Job) -> dict[str, Any]:
    """Register the point as a VM (module docstring); the result is the vm object."""
    root = core.data_dir / RESTORE_FOLDER / uuid.uuid4().hex[:12]
    try:
        package = await _write_package(record, root, job)
        fault("restore.package")
        request = ImportRequest(package, "copy", new_id, name or record.vm_name)
        vm = await import_vm(core, CheckpointStore(core.catalog),
                             StagingJournal(core.catalog), request, job)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {**vm, "restored_from": record.id}


async def _write_package(record: BackupRecord, root: Path, job: Job) -> Path:
    point = Path(record.folder)
    definition = read_definition(point)
    settings = settings_from_dict(definition.settings)
    plan = export_files(settings, Tree())
    package = root / "vm"
    package.mkdir(parents=True, mode=0o700)
    disks = {d.slot: d for d in record.disks}
    slots = [slot for slot in hard_disks(settings) if slot.path and slot.id in disks]
    for index, slot in enumerate(slots):
        assert slot.path is not None
        job.report(5 + 40 * index / max(1, len(slots)), f"writing {slot.label}")
        disk = disks[slot.id]
        await backup_images.write_disk(point / disk.file, package / plan.targets[slot.path],
                                       str(slot.format or "raw"), disk.size)
    moved = relocate_settings(settings, plan.move(str(package)))
    write_json(package / layout.DEFINITION,
               Definition(definition.id, definition.name, definition.created_at,
                          to_dict(moved)).to_dict())
    if record.memory:  # the VM comes back Saved: it continues where it was
        await copy_sparse(point / record.memory, package / SAVED_STATE)
    write_json(package / MANIFEST, Manifest(
        now_iso(), str(package), "Saved" if record.memory else "Off",
        SAVED_STATE if record.memory else None, Tree()).to_dict())
    return package


def read_point_record(folder: Path) -> BackupRecord | None:
    """The record a point folder holds (None when it has none or it is unreadable)."""
    try:
        return BackupRecord.from_dict(read_json(folder / layout.RECORD))
    except (OSError, ValueError, BadRequest):
        return None


async def write_point_package(record: BackupRecord, root: Path, job: Job) -> Path:
    """The point ``record`` written as a native export package (Off, no checkpoints) in
    ``root/vm``; used by ``vm export --from-backup`` (:mod:`viridian.service.vms.backup_export`)."""
    return await _write_package(record, root, job)

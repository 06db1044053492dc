"""``vm export NAME DIR``: Hyper-V's export of a VM that is Off or Saved into the native
package ``DIR/<name>/`` (:mod:`viridian.interchange.native`): its configuration file,
disks, checkpoints with their data, and its saved state.

Crash safety: the package is written into a staging folder ``DIR/.<name>.export-<id>``
recorded in the staging journal first; it is renamed to ``DIR/<name>`` only when every
file is written and synced. A service killed before that leaves no ``DIR/<name>``, and
its next start removes the staging folder. The VM itself is only read.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from viridian.checkpoints import Tree
from viridian.errors import Conflict, InvalidSetting, NotFound
from viridian.interchange.native import (
    DEFINITION,
    EXPORTABLE_STATES,
    MANIFEST,
    SAVED_STATE,
    Manifest,
)
from viridian.interchange.relocate import export_files, overlays, relocate_settings, relocate_tree
from viridian.model import to_dict
from viridian.model.slots import hard_disks
from viridian.service.checkpoints.operations import fault
from viridian.service.jobs import Job, now_iso
from viridian.service.storage.checks import is_block_device
from viridian.service.vms.definition_file import Definition
from viridian.service.vms.live import LiveVM
from viridian.service.vms.package_files import (
    StagingJournal,
    copy_sparse,
    point_backing,
    publish,
    sync_folder,
)


def check_exportable(live: LiveVM, folder: str) -> Path:
    """The package folder ``folder/<name>`` an export of ``live`` would write.

    :raises InvalidSetting: ``folder`` is not absolute.
    :raises NotFound: ``folder`` does not exist.
    :raises Conflict: the VM is not Off or Saved, holds a pass-through disk, or
        ``folder/<name>`` exists already (each named; nothing was changed).
    """
    if not Path(folder).is_absolute():
        raise InvalidSetting("folder", folder, "an absolute path of an existing folder")
    where = Path(folder)
    if not where.is_dir():
        raise NotFound(f"export folder {where} does not exist; nothing was changed",
                       path=folder)
    name = live.record.name
    if live.state.value not in EXPORTABLE_STATES:
        raise Conflict(f"cannot export VM '{name}' while it is {live.state.value}; allowed in "
                       f"states {' and '.join(EXPORTABLE_STATES)} (shut it down or save it "
                       "first); nothing was changed", vm=name, state=live.state.value)
    for slot in hard_disks(live.record.settings):
        if slot.path and is_block_device(slot.path):
            raise Conflict(f"cannot export VM '{name}': {slot.label} is the host disk "
                           f"{slot.path} (pass-through), which an export cannot copy; remove "
                           "it first; nothing was changed", vm=name, path=slot.path)
    final = where / _folder_name(name)
    if final.exists():
        raise Conflict(f"{final} exists already; choose another folder or remove it; "
                       "nothing was changed", path=str(final))
    return final


async def export_vm(live: LiveVM, tree: Tree, final: Path, journal: StagingJournal,
                    job: Job) -> dict[str, Any]:
    """Write the package of ``live`` (with checkpoint ``tree``) to ``final`` (checked
    by :func:`check_exportable`); the job's result names the folder and its files."""
    staging = final.with_name(f".{final.name}.export-{uuid.uuid4().hex[:8]}")
    journal.begin(staging, "export", live.record.id)
    staging.mkdir(mode=0o700)
    try:
        files = await _write_package(live, tree, final, staging, job)
        fault("export.written")
        publish(staging, final)
    except BaseException:
        journal.discard(staging)
        raise
    journal.end(staging)
    return {"vm": live.record.name, "folder": str(final), "state": live.state.value,
            "checkpoints": len(tree.checkpoints), "files": files}


async def _write_package(live: LiveVM, tree: Tree, final: Path, staging: Path,
                         job: Job) -> list[str]:
    settings = live.record.settings
    plan = export_files(settings, tree)
    move = plan.move(str(final))
    for index, (source, target) in enumerate(plan.targets.items()):
        job.report(5 + 80 * index / max(1, len(plan.targets)), f"copying {source}")
        await copy_sparse(Path(source), staging / target)
    saved = live.state.value == "Saved"
    if saved:
        await copy_sparse(live.saved_state, staging / SAVED_STATE)
    moved_tree = relocate_tree(tree, move)
    for image in overlays(moved_tree):
        assert image.backing and image.backing_format
        await point_backing(staging / Path(image.path).relative_to(final), image.backing,
                            image.backing_format)
    definition = Definition(live.record.id, live.record.name, live.record.created_at,
                            to_dict(relocate_settings(settings, move)))
    manifest = Manifest(now_iso(), str(final), live.state.value,
                        SAVED_STATE if saved else None, moved_tree)
    _write_json(staging / DEFINITION, definition.to_dict())
    _write_json(staging / MANIFEST, manifest.to_dict())
    job.report(90, "syncing")
    sync_folder(staging)
    return sorted([*plan.targets.values(), DEFINITION, MANIFEST,
                   *([SAVED_STATE] if saved else [])])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _folder_name(name: str) -> str:
    """The package folder's name: the VM's name, with ``/`` (not allowed in a file
    name) replaced by ``_``."""
    return name.replace("/", "_").lstrip(".") or "vm"

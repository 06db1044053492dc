"""``vm export NAME DIR --from-backup ID``: the native export of a VM as it was at a
backup point (issue 16 part 2: "live from a backup point") — the VM may be running, it
is not touched: the point's chain (docs/architecture.md, "Backup") is written as a native
package (:mod:`viridian.interchange.native`: no checkpoints; Off, or Saved when the
point holds the memory and the restore path writes it) by the restore path
(:func:`viridian.service.backup.restore.write_point_package`).

Crash safety as the native export's: written in a journaled staging folder beside
``DIR/<name>``, renamed into place when complete (fault point ``export.written``).
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from viridian.backup.chains import chain
from viridian.backup.records import BackupRecord
from viridian.errors import BadRequest, Conflict, InvalidSetting, NotFound
from viridian.interchange.native import MANIFEST
from viridian.service.backup.restore import write_point_package
from viridian.service.backup.store import BackupStore
from viridian.service.checkpoints.operations import fault
from viridian.service.jobs import Job
from viridian.service.vms.live import LiveVM
from viridian.service.vms.package_files import StagingJournal, publish, sync_folder


def check_backup_export(live: LiveVM, store: BackupStore, backup_id: str,
                        folder: str) -> tuple[BackupRecord, Path]:
    """The point and the package folder ``folder/<name>`` of an export of ``live`` from
    backup ``backup_id``.

    :raises InvalidSetting: ``folder`` is not absolute.
    :raises NotFound: ``folder``, the point or a point of its chain is missing.
    :raises BadRequest: the point is another VM's.
    :raises Conflict: ``folder/<name>`` exists.
    """
    if not Path(folder).is_absolute():
        raise InvalidSetting("folder", folder, "an absolute path of an existing folder")
    if not Path(folder).is_dir():
        raise NotFound(f"export folder {folder} does not exist; nothing was changed",
                       path=folder)
    record = store.get(backup_id)
    if record.vm_id != live.record.id:
        raise BadRequest(f"backup {backup_id} is a point of VM '{record.vm_name}', not of "
                         f"'{live.record.name}'; nothing was changed", backup=backup_id)
    for point in chain(store.good(), record.id):
        if not Path(point.folder).is_dir():
            raise NotFound(f"backup {point.id} (in the chain of {record.id}) is missing "
                           f"from {point.folder}; nothing was changed", path=point.folder)
    final = Path(folder) / (live.record.name.replace("/", "_").lstrip(".") or "vm")
    if final.exists():
        raise Conflict(f"{final} exists already; choose another folder or remove it; "
                       "nothing was changed", path=str(final))
    return record, final


async def export_from_backup(live: LiveVM, record: BackupRecord, final: Path,
                             journal: StagingJournal, job: Job) -> dict[str, Any]:
    """Write the package of the point ``record`` at ``final`` (checked by
    :func:`check_backup_export`)."""
    staging = final.with_name(f".{final.name}.export-{uuid.uuid4().hex[:8]}")
    journal.begin(staging, "export", live.record.id)
    try:
        package = await write_point_package(record, staging, job)
        state = str(json.loads((package / MANIFEST).read_text(encoding="utf-8"))["state"])
        files = sorted(str(p.relative_to(package)) for p in package.rglob("*") if p.is_file())
        sync_folder(staging)
        fault("export.written")
        publish(package, final)
        shutil.rmtree(staging)
    except BaseException:
        journal.discard(staging)
        raise
    journal.end(staging)
    return {"vm": live.record.name, "folder": str(final), "state": state, "checkpoints": 0,
            "files": files, "from_backup": record.id, "point_created_at": record.created_at,
            "consistency": record.consistency}

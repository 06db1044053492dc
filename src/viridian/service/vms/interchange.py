"""The export/import capability (docs/architecture.md, "Export and import"): ``vm
export`` of a VM that is Off or Saved and ``vm import`` of a package, each a job; at
start, whatever a killed export or import left half made is removed."""

from __future__ import annotations

import asyncio
import logging
import shutil
from typing import Any

from fastapi import FastAPI

from viridian.errors import BadRequest
from viridian.service.backup.store import BackupStore
from viridian.service.capability import Capability
from viridian.service.checkpoints.store import CheckpointStore
from viridian.service.jobs import Job
from viridian.service.vms.backup_export import check_backup_export, export_from_backup
from viridian.service.vms.export import check_exportable, export_vm
from viridian.service.vms.foreign_import import import_foreign, import_libvirt
from viridian.service.vms.importing import ImportRequest, Mode, Registrar, check_request, import_vm
from viridian.service.vms.interchange_routes import install_interchange_routes
from viridian.service.vms.live import LiveVM
from viridian.service.vms.ovf_export import OvfFormat, check_ovf_export, export_ovf
from viridian.service.vms.ovf_import import import_ovf
from viridian.service.vms.package_files import StagingJournal

log = logging.getLogger(__name__)


class Interchange(Capability):
    """Export and import of VMs; imports run one at a time (ids and names are checked
    and committed without another import in between)."""

    name = "interchange"

    def __init__(self, core: Registrar) -> None:
        self.core = core
        self.journal = StagingJournal(core.catalog)
        self.store = CheckpointStore(core.catalog)
        self._importing = asyncio.Lock()

    def install_routes(self, app: FastAPI) -> None:
        install_interchange_routes(app, self)

    def start(self) -> None:
        """Remove staging folders of exports and imports a killed service left, and the
        checkpoint rows of an import whose VM was never committed."""
        for path, kind, vm_id in self.journal.leftovers():
            if kind == "import" and vm_id and self.core.catalog.get_vm(vm_id) is None:
                self.store.forget_vm(vm_id)
            if path.exists():
                log.warning("removing %s left by an interrupted %s", path, kind)
                shutil.rmtree(path, ignore_errors=True)
            self.journal.end(path)

    def export(self, ref: str, folder: str, kind: str = "native",
               from_backup: str | None = None) -> dict[str, Any]:
        """Queue the export of VM ``ref`` into ``folder`` (checked now and again when
        the job runs on the VM's queue); ``kind`` native, ovf or ova; ``from_backup``:
        the VM as it was at that backup point (native only; the VM may run)."""
        live = self.core.find_vm(ref)
        if from_backup is not None:
            return self._export_from_backup(live, folder, kind, from_backup)
        if kind in ("ovf", "ova"):
            check_ovf_export(live, folder, "ova" if kind == "ova" else "ovf")
        else:
            check_exportable(live, folder)

        async def run(job: Job) -> dict[str, Any]:
            tree = self.store.tree(live.record.id)
            if kind in ("ovf", "ova"):
                ovf_kind: OvfFormat = "ova" if kind == "ova" else "ovf"
                return await export_ovf(live, tree, check_ovf_export(live, folder, ovf_kind),
                                        ovf_kind, self.journal, job)
            final = check_exportable(live, folder)
            return await export_vm(live, tree, final, self.journal, job)
        return self.core.jobs.submit("export", live.record.id, live.record.name,
                                     run).to_dict()

    def _export_from_backup(self, live: LiveVM, folder: str, kind: str,
                            backup_id: str) -> dict[str, Any]:
        if kind != "native":
            raise BadRequest(f"an export from a backup point is a native package; format "
                             f"{kind} is not allowed with from_backup (allowed: native); "
                             "nothing was changed")
        backups = BackupStore(self.core.catalog)
        check_backup_export(live, backups, backup_id, folder)

        async def run(job: Job) -> dict[str, Any]:
            record, final = check_backup_export(live, backups, backup_id, folder)
            return await export_from_backup(live, record, final, self.journal, job)
        return self.core.jobs.submit("export", live.record.id, live.record.name,
                                     run).to_dict()

    def import_vm(self, folder: str, mode: Mode, new_id: bool,
                  name: str | None) -> dict[str, Any]:
        """Queue the import of the package ``folder``."""
        request = ImportRequest(check_request(folder, mode, new_id), mode, new_id, name)

        async def run(job: Job) -> dict[str, Any]:
            async with self._importing:
                if request.folder.suffix.lower() in (".ovf", ".ova"):
                    return await import_ovf(self.core, self.journal, request.folder,
                                            name, job)
                if request.folder.is_file():  # a foreign VM's configuration
                    return await import_foreign(self.core, self.journal, request.folder,
                                                name, job)
                return await import_vm(self.core, self.store, self.journal, request, job)
        return self.core.jobs.submit("import", None, name, run).to_dict()

    def import_libvirt(self, domain: str, name: str | None) -> dict[str, Any]:
        """Queue the import of the local libvirt's shut off domain ``domain``."""
        async def run(job: Job) -> dict[str, Any]:
            async with self._importing:
                return await import_libvirt(self.core, self.journal, domain, name, job)
        return self.core.jobs.submit("import", None, name or domain, run).to_dict()

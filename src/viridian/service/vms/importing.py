"""``vm import DIR [--copy|--register-in-place] [--new-id]``: Hyper-V's three ways of
importing an exported VM (a native package, :mod:`viridian.interchange.native`):

- **register in place** — the package folder becomes the VM's folder; same id;
- **restore** (``copy``) — the package is copied into ``<data>/vms/<id>/``; same id;
- **copy with a new id** (``copy`` + ``new_id``) — the same, with a new VM id, new
  checkpoint ids and (for a VM that is Off) new dynamic MAC addresses.

The VM comes back in its exported state (Off or Saved) with its checkpoints. Conflicts
(id, name, a disk another VM uses, a MAC address) are refused naming what conflicts,
before anything is registered; a refused copy leaves nothing behind.

Crash safety: a copy is made in ``<data>/vms/.new-<id>`` (recorded in the staging
journal first), the checkpoint tree and then the VM are committed, and the folder is
renamed last. A service killed before the VM's commit registers nothing (the next start
removes the staging folder and any checkpoint rows); killed after it, the core's folder
sweep finishes the rename (docs/architecture.md, "Crash-safety rules").
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

from viridian.checkpoints import Tree
from viridian.errors import BadRequest, Conflict, InvalidSetting, NotFound
from viridian.interchange.native import (
    CHECKPOINTS_FOLDER,
    DISKS_FOLDER,
    MANIFEST,
    SAVED_STATE,
    Manifest,
    relocated_prefix,
)
from viridian.interchange.relocate import (
    overlays,
    relocate_settings,
    relocate_tree,
    renumbered,
    tree_files,
)
from viridian.model import VMSettings, settings_from_dict, to_dict
from viridian.model.choices import DriveKind, MacMode
from viridian.model.slots import DriveSlot, map_drives
from viridian.model.states import VMState
from viridian.service.catalog import Catalog, VMRecord
from viridian.service.checkpoints.operations import fault
from viridian.service.checkpoints.store import CheckpointStore
from viridian.service.jobs import Job, JobRunner
from viridian.service.vms.definition_file import Definition, read_definition, write_definition
from viridian.service.vms.live import LiveVM
from viridian.service.vms.package_files import (
    StagingJournal,
    copy_sparse,
    point_backing,
    publish,
    sync_folder,
)

Mode = Literal["register_in_place", "copy"]


class Registrar(Protocol):
    """What importing needs of the core (:class:`viridian.service.core.ServiceCore`)."""

    def check_disk_work(self, vm: LiveVM, action: str) -> None:
        """Every capability's check before ``action`` opens or rewrites ``vm``'s disks."""

    @property
    def catalog(self) -> Catalog:
        """The catalog."""

    @property
    def data_dir(self) -> Path:
        """The data folder."""

    @property
    def jobs(self) -> JobRunner:
        """The job runner."""

    def find_vm(self, ref: str) -> LiveVM:
        """The VM named ``ref`` (or with id ``ref``); raises NotFound."""

    def checked_registration(self, vm_id: str, name: str,
                             settings: dict[str, Any]) -> VMSettings:
        """Settings of a VM about to be registered, checked like a new VM's (files,
        disks in use, MACs) and by every capability; raises a refusal naming the
        conflict."""

    def register_record(self, record: VMRecord) -> LiveVM:
        """Commit ``record`` and manage the VM."""

    async def register_in_place(self, folder: str) -> dict[str, Any]:
        """Register a plain VM folder (``vm.json`` only) again where it is."""


@dataclass(frozen=True)
class ImportRequest:
    folder: Path
    mode: Mode
    new_id: bool
    name: str | None


@dataclass
class Package:
    """An export package read from disk, with what importing decided so far."""

    folder: Path
    definition: Definition
    manifest: Manifest
    vm_id: str
    name: str
    settings: VMSettings
    tree: Tree
    notices: list[str]


def check_request(folder: str, mode: str, new_id: bool) -> Path:
    """The package folder of an import request; refuses what no mode allows.

    :raises InvalidSetting: ``folder`` is not absolute.
    :raises BadRequest: ``new_id`` with register in place (the VM keeps its id there).
    """
    if not Path(folder).is_absolute():
        raise InvalidSetting("folder", folder, "an absolute path of an exported VM's folder "
                             "(it holds vm.json and export.json)")
    if new_id and mode == "register_in_place":
        raise BadRequest("a VM registered in place keeps its id: give new_id only with mode "
                         "copy (allowed modes: register_in_place, copy); nothing was changed")
    return Path(folder).resolve()


async def import_vm(core: Registrar, store: CheckpointStore, journal: StagingJournal,
                    request: ImportRequest, job: Job) -> dict[str, Any]:
    """Import the package at ``request.folder`` (see the module docstring); the result
    is the vm object plus ``mode`` and ``notices``."""
    if not (request.folder / MANIFEST).is_file():
        return await _plain_folder(core, request)
    package = read_package(core.catalog, request)
    if request.mode == "register_in_place":
        live = await _register_in_place(core, store, package)
    else:
        live = await _copy(core, store, journal, package, job)
    vm = live.to_dict()
    return {**vm, "mode": request.mode, "notices": package.notices}


async def _plain_folder(core: Registrar, request: ImportRequest) -> dict[str, Any]:
    if request.mode != "register_in_place" or request.name:
        raise BadRequest(
            f"{request.folder} holds no {MANIFEST}: it is a VM folder, not an export; such a "
            "folder can only be registered in place (mode register_in_place, no new name); "
            "nothing was changed", path=str(request.folder))
    vm = await core.register_in_place(str(request.folder))
    return {**vm, "mode": request.mode, "notices": []}


def read_package(catalog: Catalog, request: ImportRequest) -> Package:
    """The package at ``request.folder`` with the id and name it will get, checked
    against the catalog (id and name free) before any file is touched."""
    definition = read_definition(request.folder)
    manifest = _read_manifest(request.folder / MANIFEST)
    vm_id = str(uuid.uuid4()) if request.new_id else definition.id
    name = request.name or definition.name
    check_free(catalog, vm_id, name)
    settings = settings_from_dict({**definition.settings, "name": name})
    settings, notices = _without_missing_media(settings)
    tree = manifest.tree
    if request.new_id:
        tree = renumbered(tree, lambda: str(uuid.uuid4()))
        if manifest.state == "Off":
            settings = _new_dynamic_macs(settings)
    if manifest.state == "Saved" and not (request.folder / SAVED_STATE).is_file():
        raise BadRequest(f"{request.folder} was exported Saved but holds no {SAVED_STATE}; "
                         "nothing was changed", path=str(request.folder))
    return Package(request.folder, definition, manifest, vm_id, name, settings, tree, notices)


async def _register_in_place(core: Registrar, store: CheckpointStore,
                             package: Package) -> LiveVM:
    """The package folder becomes the VM's folder (paths moved if the package was)."""
    move = relocated_prefix(package.manifest.root, str(package.folder))
    settings = core.checked_registration(
        package.vm_id, package.name, to_dict(relocate_settings(package.settings, move)))
    tree = relocate_tree(package.tree, move)
    for path in tree_files(tree):
        _require_file(path)
    for image in overlays(tree) if move.old != move.new else []:
        assert image.backing and image.backing_format
        await point_backing(Path(image.path), image.backing, image.backing_format)
    live = _commit(core, store, package, settings, tree, package.folder)
    write_definition(package.folder, Definition.of(live.record))
    (package.folder / MANIFEST).unlink(missing_ok=True)  # consumed: vm.json rules now
    return live


async def _copy(core: Registrar, store: CheckpointStore, journal: StagingJournal,
                package: Package, job: Job) -> LiveVM:
    final = core.data_dir / "vms" / package.vm_id
    staging = final.with_name(f".new-{package.vm_id}")
    if final.exists():
        raise Conflict(f"{final} exists already (a VM folder with id {package.vm_id}); "
                       "import with a new id; nothing was changed", path=str(final))
    journal.begin(staging, "import", package.vm_id)
    committed = False
    try:
        staging.mkdir(mode=0o700)
        await _copy_files(package.folder, staging, job)
        settings, tree = await _prepared_copy(core, package, staging, final)
        sync_folder(staging)
        fault("import.copied")
        live = _commit(core, store, package, settings, tree, final)
        committed = True
        fault("import.committed")
        publish(staging, final)
    except BaseException:
        if not committed:
            journal.discard(staging)
        raise
    journal.end(staging)
    return live


async def _prepared_copy(core: Registrar, package: Package, staging: Path,
                         final: Path) -> tuple[VMSettings, Tree]:
    """Settings checked on the staged copy, then moved to the final folder; the tree
    moved there, its overlays' headers pointing at their backings' final paths."""
    root = package.manifest.root
    staged = relocate_settings(package.settings, relocated_prefix(root, str(staging)))
    checked = core.checked_registration(package.vm_id, package.name, to_dict(staged))
    settings = relocate_settings(checked, relocated_prefix(str(staging), str(final)))
    tree = relocate_tree(package.tree, relocated_prefix(root, str(final)))
    for image in overlays(tree):
        assert image.backing and image.backing_format
        await point_backing(staging / Path(image.path).relative_to(final), image.backing,
                            image.backing_format)
    write_definition(staging, Definition(package.vm_id, package.name,
                                         package.definition.created_at, to_dict(settings)))
    return settings, tree


async def _copy_files(source: Path, staging: Path, job: Job) -> None:
    files = [path for sub in (DISKS_FOLDER, CHECKPOINTS_FOLDER) if (source / sub).is_dir()
             for path in sorted((source / sub).iterdir()) if path.is_file()]
    if (source / SAVED_STATE).is_file():
        files.append(source / SAVED_STATE)
    for index, path in enumerate(files):
        job.report(5 + 80 * index / max(1, len(files)), f"copying {path.name}")
        await copy_sparse(path, staging / path.relative_to(source))


def _commit(core: Registrar, store: CheckpointStore, package: Package, settings: VMSettings,
            tree: Tree, folder: Path) -> LiveVM:
    """The tree, then the VM (each one durable transaction; a crash between the two
    leaves only checkpoint rows of an unknown id, removed at the next start)."""
    if tree.checkpoints or tree.now_disks:
        with store.catalog.transaction() as db:
            store.put_tree(db, package.vm_id, tree)
    state = VMState.SAVED if package.manifest.state == "Saved" else VMState.OFF
    record = VMRecord(package.vm_id, package.name, settings, state, None, str(folder),
                      package.definition.created_at)
    try:
        return core.register_record(record)
    except BaseException:
        store.forget_vm(package.vm_id)
        raise


def _read_manifest(path: Path) -> Manifest:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise BadRequest(f"{path} is not a readable export manifest ({err}); nothing was "
                         "changed", path=str(path)) from err
    return Manifest.from_dict(str(path), data)


def check_free(catalog: Catalog, vm_id: str, name: str) -> None:
    for other_id, other_name in catalog.ids_and_names(vm_id) + catalog.ids_and_names(name):
        if other_id == vm_id:
            raise Conflict(f"cannot import VM '{name}': its id {vm_id} is used by the "
                           f"registered VM '{other_name}'; remove that VM first or import a "
                           "copy with a new id; nothing was changed", vm=other_name, id=vm_id)
        raise Conflict(f"cannot import VM '{name}': the name is used by the registered VM "
                       f"'{other_name}'; import under another name; nothing was changed",
                       vm=other_name, name=name)


def _without_missing_media(settings: VMSettings) -> tuple[VMSettings, list[str]]:
    """Media (DVD, floppy) not on this host are ejected, each with a notice."""
    notices: list[str] = []

    def eject(slot: DriveSlot) -> DriveSlot:
        if slot.kind is DriveKind.DVD and slot.path and not os.path.exists(slot.path):
            notices.append(f"DVD {slot.path} at {slot.label} is not on this host: ejected")
            return replace(slot, path=None, format=None)
        return slot
    settings = map_drives(settings, eject)
    floppy = settings.floppy.path
    if floppy and not os.path.exists(floppy):
        notices.append(f"floppy {floppy} is not on this host: ejected")
        settings = replace(settings, floppy=replace(settings.floppy, path=None))
    return settings, notices


def _new_dynamic_macs(settings: VMSettings) -> VMSettings:
    """Dynamic adapters lose their MAC: the copy gets addresses of its own."""
    return replace(settings, network_adapters=tuple(
        replace(a, mac=None) if a.mac_mode is MacMode.DYNAMIC else a
        for a in settings.network_adapters))


def _require_file(path: str) -> None:
    if not os.path.isfile(path):
        raise NotFound(f"checkpoint file {path} of the export is missing; nothing was "
                       "changed", path=path)

"""The management service's core (Hyper-V's VMMS): one owner of every VM's state.

It keeps the catalog and the VM folders, turns requests into jobs (queued per VM), runs
admission control, and reconciles the catalog with the QEMU processes it finds at start.
All host-state changes pass through here; the API layer only translates.

Everything else is a capability (:mod:`viridian.service.capability`) built with the
narrow :class:`~viridian.service.context.ServiceContext` this core implements. The core
tells the capabilities about every VM event in the order of
:attr:`ServiceCore.capabilities` (docs/architecture.md, "How to add a capability"):

1. resource control (cgroups) — first to see a QEMU process, last to miss it;
2. integration services — the guest agent of a running QEMU;
3. virtual switches — taps before QEMU opens them;
4. checkpoints — recovery of journaled operations, overlays before a start;
5. devices, 6. counters, 7. the disk wizard, 8. disk copies, 9. configuration files,
10. renaming — routes, background work and what each adds to the vm object;
11. Redfish — after the checkpoints: its boot override wraps their disk view;
12. library; then the failover cluster, last: an HA VM is claimed in etcd only after
    every other capability let its start go ahead.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from viridian import __version__
from viridian.errors import BadRequest, Conflict, InvalidSetting, NotFound, ViridianError
from viridian.host.admission import AdmissionPolicy, HostLoad, check_admission
from viridian.host.resources import read_boot_id, read_resources
from viridian.model import StartAction, StopAction, VMSettings
from viridian.model.states import Request, VMState
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.confinement import status as confinement_status
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.service.backup.capability import BackupCapability
from viridian.service.capability import Capability, SettingsChange
from viridian.service.catalog import Catalog, VMRecord
from viridian.service.checkpoints.operations import CheckpointsCapability
from viridian.service.cluster.capability import ClusterCapability
from viridian.service.counters.sampler import CountersCapability
from viridian.service.devices.hotplug import live_changes
from viridian.service.devices.operations import DevicesCapability
from viridian.service.disk_wizard.routes import DiskWizard
from viridian.service.integration_services.services import IntegrationServices
from viridian.service.jobs import Job, JobRunner, Operation, now_iso
from viridian.service.library.capability import LibraryCapability
from viridian.service.migration.capability import Migration
from viridian.service.redfish.capability import RedfishCapability
from viridian.service.storage.checks import CONVERTED_FOLDER, convert_differencing
from viridian.service.switches.service import SwitchService
from viridian.service.tls import transport_view
from viridian.service.vms import availability
from viridian.service.vms.config import VMConfigurator
from viridian.service.vms.definition_file import DefinitionFiles, read_definition
from viridian.service.vms.disk_copies import DiskCopies, copies_made, snapshot
from viridian.service.vms.interchange import Interchange
from viridian.service.vms.listing import VMListing
from viridian.service.vms.live import LiveVM
from viridian.service.vms.new_disk import NewVHD, plan_new_vhd
from viridian.service.vms.rename import RenameCapability
from viridian.service.vms.resource_control import ResourceControl

log = logging.getLogger(__name__)

SAVED_STATE_FILE = "saved-state.vmstate"
DEFAULT_SHUTDOWN_TIMEOUT_S = 120.0
META_BOOT_ID = "boot_id"


class ServiceCore:
    """Owns the catalog, the live VMs and the job runner of one data folder; implements
    :class:`~viridian.service.context.ServiceContext` and
    :class:`~viridian.service.vms.live.VMEvents`."""

    def __init__(self, data_dir: Path, host: HostCapabilities,
                 policy: AdmissionPolicy | None = None) -> None:
        self._data_dir = data_dir
        self._host = host
        self._policy = policy or AdmissionPolicy()
        for sub in ("vms", "run"):
            (data_dir / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        self._catalog = Catalog(data_dir / "catalog.sqlite")
        self._jobs = JobRunner(self._catalog)
        self.live: dict[str, LiveVM] = {}
        self.resources = ResourceControl(self)
        integration = IntegrationServices(self)
        self.switches = SwitchService(self)
        self.counters = CountersCapability(self, self.switches.store)
        self.disk_copies = DiskCopies(self)
        self.checkpoints = CheckpointsCapability(self, integration)
        self.capabilities: tuple[Capability, ...] = (
            self.resources, integration, self.switches,
            self.checkpoints, DevicesCapability(self),
            self.counters, DiskWizard(self), self.disk_copies, DefinitionFiles(),
            RenameCapability(self), Interchange(self), RedfishCapability(self),
            LibraryCapability(self), Migration(self), ClusterCapability(self))
        self.capabilities += (BackupCapability(self, integration),)  # issue 16
        self.config = VMConfigurator(self._catalog)
        self.listing = VMListing()
        self.boot_id = read_boot_id()
        self._started = time.monotonic()

    # --- the context offered to capabilities -----------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def catalog(self) -> Catalog:
        return self._catalog

    @property
    def jobs(self) -> JobRunner:
        return self._jobs

    @property
    def host(self) -> HostCapabilities:
        return self._host

    @property
    def policy(self) -> AdmissionPolicy:
        return self._policy

    def find_vm(self, ref: str) -> LiveVM:
        return self.find_live(ref)

    def vms(self) -> Mapping[str, LiveVM]:
        return self.live

    # --- VM events, told to every capability in order ----------------------------------

    def launching(self, vm: LiveVM) -> None:
        for capability in self.capabilities:
            capability.launching(vm)

    def adopted(self, vm: LiveVM) -> None:
        for capability in self.capabilities:
            capability.adopted(vm)

    def exited(self, vm: LiveVM) -> None:
        for capability in self.capabilities:
            capability.exited(vm)

    def resumed(self, vm: LiveVM, restored: bool) -> None:
        for capability in self.capabilities:
            capability.resumed(vm, restored)

    def describe(self, vm: LiveVM) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        for capability in self.capabilities:
            extra.update(capability.describe(vm))
        return extra

    def install_routes(self, app: FastAPI) -> None:
        """Every capability's routes, in order (before the generic VM routes)."""
        for capability in self.capabilities:
            capability.install_routes(app)

    # --- start-up and recovery --------------------------------------------------------

    async def start(self) -> None:
        """Recover from whatever the previous service process left, then run boot actions."""
        self._sweep_vm_folders()
        self.jobs.fail_interrupted()
        host_booted = self.catalog.get_meta(META_BOOT_ID) != self.boot_id
        await asyncio.gather(*(self._recover(vm) for vm in self.catalog.list_vms()))
        self.catalog.set_meta(META_BOOT_ID, self.boot_id)
        for capability in self.capabilities:  # after recovery: running VMs' taps are kept
            capability.start()
        if host_booted:
            self._schedule_automatic_starts()

    async def close(self) -> None:
        """Stop managing; running VMs keep running (their QEMU processes are detached)."""
        for capability in self.capabilities:
            await capability.close()
        for live in self.live.values():
            await live.detach()
        self.catalog.close()

    def _sweep_vm_folders(self) -> None:
        """Finish or undo folder moves that a killed service left half done."""
        known = {str(row[0]) for row in self.catalog.read("SELECT id FROM vms")}  # no decoding
        for entry in (self.data_dir / "vms").iterdir():
            prefix, _, vm_id = entry.name.partition("-")
            if prefix in (".new", ".trash") and vm_id in known:
                entry.rename(entry.with_name(vm_id))
            elif prefix in (".new", ".trash"):
                shutil.rmtree(entry, ignore_errors=True)

    async def _recover(self, vm: VMRecord) -> None:
        live = self._new_live(vm)
        await live.reconcile()
        for capability in self.capabilities:
            await capability.recover(live)

    def _new_live(self, vm: VMRecord) -> LiveVM:
        live = LiveVM(vm, self.catalog, self.host,
                      RuntimePaths(self.data_dir / "run" / vm.id),
                      Path(vm.folder) / SAVED_STATE_FILE, self)
        for capability in self.capabilities:
            capability.attach(live)
        self.live[vm.id] = live
        return live

    def _schedule_automatic_starts(self) -> None:
        for live in self.live.values():
            auto = live.record.settings.automatic_start
            was_running = live.record.auto_stopped or live.state_before_recovery in (
                VMState.RUNNING, VMState.PAUSED)
            if auto.action is StartAction.ALWAYS or (
                    auto.action is StartAction.IF_RUNNING and was_running):
                asyncio.get_running_loop().call_later(
                    float(auto.delay_s), self._automatic_start, live.record.id)

    def _automatic_start(self, vm_id: str) -> None:
        live = self.live.get(vm_id)
        if live and live.state in (VMState.OFF, VMState.SAVED):
            operation = self._operation(live, Request.START, None)
            self.jobs.submit("start", vm_id, live.record.name, operation)

    # --- host -------------------------------------------------------------------------

    def host_load(self) -> HostLoad:
        resources = read_resources()
        active = [lv for lv in self.live.values() if lv.holds_resources]
        return HostLoad(
            memory_mb=resources.memory_mb,
            logical_processors=resources.logical_processors,
            assigned_memory_mb=sum(lv.memory_mb for lv in active),
            running_virtual_processors=sum(lv.processors for lv in active),
            reserved_processors=sum(lv.processors * lv.record.settings.processor.reserve_pct
                                    / 100 for lv in active),
            vm_processor_capacity=self.resources.capacity,
        )

    def host_info(self) -> dict[str, Any]:
        resources = read_resources()
        load = self.host_load()
        caps = self.host
        return {
            "hostname": socket.gethostname(),
            "version": __version__,
            "accelerator": caps.accelerator,
            "qemu_version": ".".join(map(str, caps.qemu_version)),
            "logical_processors": resources.logical_processors,
            "memory_mb": resources.memory_mb,
            "memory_available_mb": resources.memory_available_mb,
            "host_reserve_mb": self.policy.host_reserve_mb,
            "memory_assigned_mb": load.assigned_memory_mb,
            "vms_total": len(self.live),
            "vms_running": sum(1 for lv in self.live.values() if lv.holds_resources),
            "virtual_processors_running": load.running_virtual_processors,
            "virtual_processor_ratio": self.policy.virtual_processor_ratio,
            "data_dir": str(self.data_dir),
            "boot_id": self.boot_id,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "transport": transport_view(self.data_dir),  # HTTPS and its fingerprint (tls.py)
            "confinement": confinement_status().view(),  # per-VM users (qemu.confinement)
        }

    def host_shutdown(self) -> dict[str, Any]:
        """Run every VM's automatic stop action (the host is going down)."""
        job = self.jobs.submit("host_shutdown", None, None, self._host_shutdown)
        return job.to_dict()

    async def _host_shutdown(self, job: Job) -> dict[str, str]:
        actions = {StopAction.SAVE: Request.SAVE, StopAction.TURN_OFF: Request.STOP,
                   StopAction.SHUT_DOWN: Request.SHUTDOWN}
        running = [lv for lv in self.live.values() if lv.state in (VMState.RUNNING, VMState.PAUSED)]
        subjobs: dict[str, Job] = {}
        instead: dict[str, str] = {}
        for live in running:
            request = actions[live.record.settings.automatic_stop.action]
            why = availability.unavailable(live).get(request.value)
            if why:  # the nearest action that loses no data; the result says so and why
                request, instead[live.record.name] = Request.SHUTDOWN, why
            live.mark_auto_stopped(True)
            subjobs[live.record.name] = self.jobs.submit(
                request.value, live.record.id, live.record.name,
                self._operation(live, request, None))
        job.report(5, f"stopping {len(subjobs)} VMs")
        await asyncio.gather(*(sj.done.wait() for sj in subjobs.values()))
        for live in self.live.values():  # storage daemons end with the host
            async with self.jobs.queue_for(live.record.id):
                await live.end_storage_daemon()
        return {name: _stop_outcome(sj, instead.get(name)) for name, sj in subjobs.items()}

    # --- VM definitions -----------------------------------------------------------------

    def find_live(self, ref: str) -> LiveVM:
        record = self.catalog.find_vm(ref)
        live = self.live.get(record.id)
        if live is None:  # pragma: no cover - catalog and live map are kept in step
            raise NotFound(f"no VM named '{ref}'", vm=ref)
        return live

    def list_vms(self) -> list[dict[str, Any]]:
        return [lv.to_dict() for lv in self._by_name()]

    def list_vms_json(self, summary: bool = False) -> bytes:
        """The encoded ``GET /vms`` body (``summary``: ``?view=summary``); VMs at rest come
        from :class:`VMListing`'s cache, so listing ten thousand costs little more than
        joining their bytes."""
        return self.listing.body(self._by_name(), summary)

    def list_vms_chunks(self, summary: bool = False) -> Iterator[bytes]:
        """:meth:`list_vms_json` in pieces (no single buffer of the whole list)."""
        return self.listing.chunks(self._by_name(), summary)

    def _by_name(self) -> list[LiveVM]:
        return sorted(self.live.values(), key=lambda v: v.record.name)

    def show_vm(self, ref: str) -> dict[str, Any]:
        return self.find_live(ref).to_dict()

    async def create_vm(self, name: str, patch: dict[str, Any], *, memory_mb: int | None,
                        processors: int | None, dvd: str | None, vhd: str | None,
                        new_vhd: NewVHD | None = None) -> dict[str, Any]:
        """Define a VM (docs/api.md, "VMs"). Everything is checked before a file is made:
        the settings without the disks still to be made; then the ``new_vhd`` and the
        standalone copies of differencing disks are made and the settings checked again
        with them; then the folder and the catalog row appear together. A refusal at any
        step removes every file this request made. The vm object carries ``notices``
        when a disk was copied."""
        if vhd is not None and new_vhd is not None:
            raise BadRequest("give 'vhd' (an existing disk) or 'new_vhd' (a disk to create), "
                             "not both; nothing was changed")
        planned = plan_new_vhd(new_vhd) if new_vhd else None
        storage_free = {key: value for key, value in patch.items() if key not in ("ide", "scsi")}
        self.config.new_settings(name, storage_free, memory_mb, processors, dvd, None)
        copies_folder = self.data_dir / CONVERTED_FOLDER
        existing = set(copies_folder.iterdir()) if copies_folder.is_dir() else set()
        pairs: list[tuple[str, str]] = []
        try:
            if planned:
                await planned.create()
                vhd = str(planned.path)
            return await self._define(name, patch, memory_mb, processors, dvd, vhd, pairs)
        except BaseException:
            if planned:
                planned.discard()
            for _, copy in pairs:
                if Path(copy) not in existing:
                    Path(copy).unlink(missing_ok=True)
            raise

    async def _define(self, name: str, patch: dict[str, Any], memory_mb: int | None,
                      processors: int | None, dvd: str | None, vhd: str | None,
                      pairs: list[tuple[str, str]]) -> dict[str, Any]:
        """Copy differencing disks (their (original, copy) pairs added to ``pairs``),
        check, then commit the new VM."""
        patch = {**patch, "ide": [*patch.get("ide", []), *([{
            "controller": 0, "location": 0, "kind": "hard_disk", "path": vhd}] if vhd else [])]}
        before = snapshot(patch)
        await convert_differencing(patch, self.data_dir)
        pairs.extend(copies_made(before))
        if vhd:
            vhd = patch["ide"].pop()["path"]
        if not patch["ide"]:
            del patch["ide"]
        settings = self.config.new_settings(name, patch, memory_mb, processors, dvd, vhd)
        vm_id = str(uuid.uuid4())
        self._check_settings(SettingsChange(vm_id, settings.name, None, None, settings))
        folder = self.data_dir / "vms" / vm_id
        staging = folder.with_name(f".new-{vm_id}")
        staging.mkdir(mode=0o700)
        record = VMRecord(vm_id, settings.name, settings, VMState.OFF, None, str(folder),
                          now_iso())
        try:
            self.catalog.insert_vm(record)
        except ViridianError:
            staging.rmdir()
            raise
        staging.rename(folder)
        notices = self.disk_copies.record(pairs)
        live = self._new_live(record)
        vm = live.to_dict()
        self.listing.remember(live, vm)  # GET /vms need not encode it again
        return {**vm, "notices": notices} if notices else vm

    async def register_in_place(self, folder: str) -> dict[str, Any]:
        """Register again the VM whose configuration file is ``folder/vm.json``, its folder
        staying where it is (Hyper-V's "register in place"). It comes back Off with the
        same id, name, settings and creation time.

        :raises InvalidSetting: ``folder`` is not absolute.
        :raises NotFound: no such folder or no ``vm.json`` in it.
        :raises BadRequest: an unreadable file or an unknown ``format_version``.
        :raises Conflict: its id or name is used by a registered VM (named).
        """
        if not Path(folder).is_absolute():
            raise InvalidSetting("folder", folder, "an absolute path of a VM folder that "
                                 "holds vm.json")
        where = Path(folder).resolve()
        definition = read_definition(where)
        settings = self.config.registered_settings(definition.id, definition.name,
                                                   definition.settings)
        self._check_settings(SettingsChange(definition.id, definition.name, None, None,
                                            settings))
        record = VMRecord(definition.id, definition.name, settings, VMState.OFF, None,
                          str(where), definition.created_at)
        self.catalog.insert_vm(record)
        return self._new_live(record).to_dict()

    def checked_registration(self, vm_id: str, name: str, settings: dict[str, Any], *,
                             replacing: bool = False) -> VMSettings:
        """Settings of a VM about to be registered (an import), checked like a new VM's
        and by every capability (``service.vms.importing.Registrar``); ``replacing``: the
        VM registered with ``vm_id`` will make way for it (a move's older copy)."""
        checked = self.config.registered_settings(vm_id, name, settings, replacing=replacing)
        self._check_settings(SettingsChange(vm_id, name, None, None, checked))
        return checked

    def register_record(self, record: VMRecord) -> LiveVM:
        """Commit ``record`` (an imported VM) and manage it."""
        self.catalog.insert_vm(record)
        return self._new_live(record)

    def stage_incoming(self, record: VMRecord) -> LiveVM:
        """A VM migrating here (docs/architecture.md, "Migration"): managed by the caller
        until :meth:`commit_incoming`, neither in the catalog nor in the VM list."""
        live = LiveVM(record, self.catalog, self.host,
                      RuntimePaths(self.data_dir / "run" / record.id),
                      Path(record.folder) / SAVED_STATE_FILE, self)
        for capability in self.capabilities:
            capability.attach(live)
        return live

    def commit_incoming(self, live: LiveVM) -> None:
        """Register a staged VM (its record as it is now) and manage it."""
        self.catalog.insert_vm(live.record)
        self.live[live.record.id] = live

    def forget(self, live: LiveVM) -> None:
        """Unregister a VM that moved to another host (or a staged VM given up): its record
        goes, every file stays (the other host owns them now)."""
        if self.live.get(live.record.id) is live:
            self.catalog.delete_vm(live.record.id)
            del self.live[live.record.id]
        for capability in self.capabilities:
            capability.removed(live, False)

    def unregister_older_copy(self, live: LiveVM) -> None:
        """Unregister this host's copy of an HA VM another host owns — one that moves here
        from its owner (``service.migration.incoming``), or one the cluster agent
        registered for a start another host won: only its record goes. No capability
        hears of a removal: the folder's vm.json stays as the owner wrote it, the cluster
        keeps the VM's record, and what capabilities hold for the id (its confinement
        uid) stays for the VM, which takes the same id when it comes back."""
        if self.live.get(live.record.id) is live:
            self.catalog.delete_vm(live.record.id)
            del self.live[live.record.id]

    def operation(self, live: LiveVM, request: Request) -> Operation:
        """The lifecycle ``request`` of ``live`` as a job body, for a capability that runs
        it inside a job of its own (a migration saving or restoring)."""
        return self._operation(live, request, None)

    def has_checkpoints(self, vm_id: str) -> bool:
        return bool(self.checkpoints.store.tree(vm_id).checkpoints)

    def check_disk_work(self, vm: LiveVM, action: str) -> None:
        for capability in self.capabilities:
            capability.check_disk_work(vm, action)

    def _check_settings(self, change: SettingsChange) -> None:
        for capability in self.capabilities:
            capability.check_settings(change)

    async def update_vm(self, ref: str, patch: Mapping[str, Any]) -> dict[str, Any]:
        live = self.find_live(ref)
        async with self.jobs.queue_for(live.record.id):
            await self.apply_settings(live, patch)
        return live.to_dict()

    async def apply_settings(self, live: LiveVM, patch: Mapping[str, Any]) -> None:
        """Validate ``patch``, apply what can change live to the running QEMU (hot plug),
        then commit; a failure leaves QEMU and the catalog unchanged. The caller holds the
        VM's queue (``jobs.queue_for``)."""
        patch = dict(patch)
        await convert_differencing(patch, self.data_dir)
        settings = self.config.changed_settings(live.record, patch, live.state)
        change = SettingsChange(live.record.id, live.record.name, live, live.record.settings,
                                settings)
        self._check_settings(change)
        for capability in self.capabilities:  # e.g. counters: meter disks about to go
            await capability.before_live_change(change)
        await live.disks_changing(settings)  # an Off VM's storage daemon lets go of them
        async with live_changes(live, live.record.settings, settings):
            record = replace(live.record, name=settings.name, settings=settings)
            self.catalog.update_vm(record)
            live.record = record
        self.settings_committed(live)

    def settings_committed(self, vm: LiveVM) -> None:
        """Tell every capability, in order, that ``vm``'s settings were committed."""
        for capability in self.capabilities:
            capability.settings_changed(vm)

    async def remove_vm(self, ref: str, delete_files: bool) -> dict[str, Any]:
        live = self.find_live(ref)
        async with self.jobs.queue_for(live.record.id):
            if live.state not in (VMState.OFF, VMState.SAVED):
                raise Conflict(
                    f"cannot remove VM '{live.record.name}': it is {live.state.value}; "
                    "turn it off first (viridian vm stop); nothing was changed",
                    vm=live.record.name, state=live.state.value)
            for capability in self.capabilities:
                capability.check_removal(live, delete_files)
            await live.end_storage_daemon()
            self._remove_files_and_record(live, delete_files)
            del self.live[live.record.id]
            for capability in self.capabilities:
                capability.removed(live, delete_files)
        return {"removed": live.record.name, "deleted_files": delete_files}

    def _remove_files_and_record(self, live: LiveVM, delete_files: bool) -> None:
        folder = Path(live.record.folder)
        if live.state is VMState.SAVED:  # an Off VM's folder may hold another host's
            live.saved_state.unlink(missing_ok=True)  # (shared storage): not its own
        if not delete_files:
            self.catalog.delete_vm(live.record.id)
            return
        trash = folder.with_name(f".trash-{live.record.id}")
        if folder.exists():
            folder.rename(trash)
        self.catalog.delete_vm(live.record.id)
        shutil.rmtree(trash, ignore_errors=True)  # disks outside the VM's folder are kept

    # --- lifecycle requests -------------------------------------------------------------

    def request(self, ref: str, action: str, *, timeout_s: float | None,
                turn_off_after_timeout: bool = False) -> dict[str, Any]:
        """Queue ``action`` for the VM. Checked now when the VM is idle, else when it runs;
        a request this VM cannot do at all (:mod:`viridian.service.vms.availability`) is
        refused at once. ``timeout_s`` and ``turn_off_after_timeout`` shape a shut down
        (:meth:`LiveVM.perform`)."""
        live = self.find_live(ref)
        request = Request(action)
        if request is Request.STOP and live.state is VMState.SHUTTING_DOWN:
            live.turn_off_during_shut_down()
            operation = self._after_turn_off_during_shut_down(live)
        else:
            if not self.jobs.busy(live.record.id):
                availability.check(live, request)
            elif request is Request.SAVE:
                availability.check_save(live)
            operation = self._operation(live, request, timeout_s,
                                        turn_off_after_timeout=turn_off_after_timeout)
        return self.jobs.submit(action, live.record.id, live.record.name, operation).to_dict()

    def _after_turn_off_during_shut_down(self, live: LiveVM) -> Operation:
        """The Turn Off job of a VM turned off while shutting down: queued behind the shut
        down (which ends once QEMU has), it reports the VM Off — or, when a request queued
        before it started the VM again meanwhile, turns it off as any Turn Off does."""
        turn_off = self._operation(live, Request.STOP, None)

        async def run(job: Job) -> dict[str, Any]:
            if live.state is not VMState.OFF:
                result: dict[str, Any] = await turn_off(job)
                return result
            return {"state": live.state.value, "enabled_state": live.state.enabled_state,
                    "method": "turned off while shutting down"}
        return run

    async def delete_saved_state(self, ref: str) -> dict[str, Any]:
        """Hyper-V's "Delete Saved State": the Saved VM becomes Off and its saved-state
        file is removed. Refused (naming the state and what it allows) unless Saved."""
        live = self.find_live(ref)
        async with self.jobs.queue_for(live.record.id):
            availability.check_delete_saved_state(live)
            await live.delete_saved_state()
        return live.to_dict()

    def _operation(self, live: LiveVM, request: Request, timeout_s: float | None, *,
                   turn_off_after_timeout: bool = False) -> Operation:
        async def run(job: Job) -> dict[str, Any]:
            availability.check(live, request)
            if request is Request.START:
                for capability in self.capabilities:
                    await capability.prepare_start(live)
                self.admit(live)
            facts = await live.perform(request, job, timeout_s or DEFAULT_SHUTDOWN_TIMEOUT_S,
                                       turn_off_after_timeout=turn_off_after_timeout)
            return {"state": live.state.value, "enabled_state": live.state.enabled_state,
                    **facts}
        return run

    def admit(self, live: LiveVM) -> None:
        """Admission and reservation happen in one step of the loop: no two starts race."""
        check_admission(live.record.name, live.memory_mb, live.processors, self.host_load(),
                        self.policy, live.record.settings.processor.reserve_pct)
        live.reserve()


def _stop_outcome(job: Job, save_refused: str | None) -> str:
    """One VM's line of the host-shutdown result: ``"save: completed"``, or for a VM that
    could not be saved ``"shutdown instead of save (<why>): completed, method: …"``."""
    if save_refused is None:
        line = f"{job.kind}: {job.state}"
    else:
        method = (job.result or {}).get("method") if isinstance(job.result, dict) else None
        line = f"{job.kind} instead of save ({save_refused}): {job.state}"
        line += f", method: {method}" if method else ""
    return line + (f" ({job.error['message']})" if job.error else "")

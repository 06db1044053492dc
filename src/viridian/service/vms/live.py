"""One VM as the service sees it: its catalog record, its shown state, its QEMU worker.

State rules: the catalog holds the settled state (Off, Running, Paused, Saved); the shown
state may be a transitional one while a job runs. A settled state is committed to the
catalog *before* the job that reached it reports success.

Saving is ordered so that a service killed at any moment leaves the VM Running or Saved,
never lost: QEMU writes the state to ``<saved>.partial``; only a completed, fsynced file is
renamed to the saved-state name; then the catalog says Saved; then QEMU quits. At start,
``reconcile`` finishes or undoes whatever step was interrupted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from viridian.errors import HostError, InvalidTransition, ViridianError
from viridian.model import VMSettings, to_dict
from viridian.model.states import Request, VMState, check_request
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.errors import WorkerGone
from viridian.qemu.firmware import write_numlock_rom
from viridian.qemu.netboot import write_netboot_rom
from viridian.qemu.render import render_argv
from viridian.qemu.render.bios import boot_indexes
from viridian.qemu.render.netboot import needs_netboot
from viridian.qemu.render.storage import needs_storage_daemon, render_storage_daemon
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.storage_daemon import StorageDaemon
from viridian.qemu.worker import ExitInfo, ExitReason, Worker, remove_runtime_folder
from viridian.service.catalog import Catalog, VMRecord
from viridian.service.jobs import Job
from viridian.service.storage.daemons import LOCK_HANDOVER_S, DaemonKeeper
from viridian.service.storage.vhdx_logs import replay_pending_logs
from viridian.service.vms import availability

log = logging.getLogger(__name__)

ACTIVE = {VMState.STARTING, VMState.RUNNING, VMState.PAUSED, VMState.SAVING, VMState.STOPPING,
          VMState.SHUTTING_DOWN, VMState.PAUSING, VMState.RESUMING, VMState.RESETTING}
AGENT_PING_TIMEOUT_S = 1.0
AGENT_RETRY_S = 2.0
"""While a shut down waits on the ACPI power button, the agent is asked again this often."""
AGENT = "guest agent"
ACPI = "ACPI power button"

DiskView = Callable[[str, VMSettings], VMSettings]
"""A capability's view of a VM's settings: (VM id, settings) → settings QEMU sees."""
_VIEW_CHAINS: dict[tuple[DiskView, ...], tuple[DiskView, ...]] = {}
_RUN_ROOTS: dict[Path, Path] = {}
"""``<data>/run`` of each data folder: one Path object for all its VMs."""
"""The distinct view chains (one or two per service), shared by the VMs."""


class VMEvents(Protocol):
    """Where a VM reports what happened to its QEMU process (the core, which tells every
    capability in order: :mod:`viridian.service.capability`)."""

    def launching(self, vm: LiveVM) -> None:
        """QEMU is about to be launched (may raise to refuse the start)."""

    def adopted(self, vm: LiveVM) -> None:
        """A QEMU process of the VM runs (started, restored or found again)."""

    def exited(self, vm: LiveVM) -> None:
        """The VM's QEMU process ended or was found gone."""

    def resumed(self, vm: LiveVM, restored: bool) -> None:
        """The guest runs on after a resume (``restored`` False) or a restore (True)."""

    def describe(self, vm: LiveVM) -> dict[str, Any]:
        """Extra keys of the vm object."""


class LiveVM:
    """One VM: its record, its shown state and its QEMU worker (see the module docstring
    for the state and crash-safety rules)."""

    def __init__(self, record: VMRecord, catalog: Catalog, capabilities: HostCapabilities,
                 paths: RuntimePaths, saved_state: Path, events: VMEvents) -> None:
        self.record = record
        self.catalog = catalog
        self.capabilities = capabilities
        if paths.folder.name != record.id or saved_state.parent != Path(record.folder):
            raise ValueError(f"VM {record.id}: runtime folder {paths.folder} or saved state "
                             f"{saved_state} is not the VM's")
        self._run_root = _RUN_ROOTS.setdefault(paths.folder.parent, paths.folder.parent)
        self._saved_name = sys.intern(saved_state.name)
        self.state = record.state
        self.state_before_recovery = self.state
        self.worker: Worker | None = None
        self._storage: DaemonKeeper | None = None  # made on first use (docs: "Scale")
        self._expect_exit = False
        self._exited_event: asyncio.Event | None = None  # made on first use: see _exited
        self._reserved = False
        self.events = events
        self._disk_views: tuple[DiskView, ...] = ()  # see disk_view
        self._turned_off_while_shutting_down = False  # see turn_off_during_shut_down
        self.keep_paused = False  # recovery: a checkpoint operation paused QEMU on purpose
        self.restore_paused = False  # the next restore ends Paused (a Paused checkpoint)
        self.view_revision = 0  # bumped by view_changed (service/vms/listing.py)

    # --- facts ------------------------------------------------------------------------

    @property
    def paths(self) -> RuntimePaths:
        """The files of the VM's runtime folder, ``<data>/run/<vm id>`` (made on use, not
        kept per VM: docs/architecture.md, "Scale")."""
        return RuntimePaths(self._run_root / self.record.id)

    @property
    def saved_state(self) -> Path:
        """The saved-state file in the VM's folder (made on use, like :attr:`paths`)."""
        return Path(self.record.folder) / self._saved_name

    def disk_view(self, settings: VMSettings) -> VMSettings:
        """``settings`` as QEMU must see them: each view added by :meth:`add_disk_view`
        applied in turn (checkpoints put disks behind qcow2 overlays, a Redfish boot
        override changes the boot order)."""
        for view in self._disk_views:
            settings = view(self.record.id, settings)
        return settings

    def add_disk_view(self, view: DiskView) -> None:
        """Apply ``view(vm_id, settings)`` after the views added before. Every VM with
        the same views holds one shared tuple, no closure of its own (docs/architecture.md,
        "Scale")."""
        chain = (*self._disk_views, view)
        self._disk_views = _VIEW_CHAINS.setdefault(chain, chain)

    @property
    def memory_mb(self) -> int:
        return self.record.settings.memory.startup_mb

    @property
    def processors(self) -> int:
        return self.record.settings.processor.count

    @property
    def storage_daemon_serves(self) -> bool:
        """Whether the VM's disks are served by its storage daemon: while QEMU runs,
        whether it was started with one (a VHD hot-added to a VM started without one is
        opened by QEMU itself); otherwise whether it gets one when it starts (a VM with
        VHD/VHDX disks on a host that has one; docs/architecture.md, "The storage
        daemon"). Decided on the VM's own disks, so checkpoint overlays on VHDs go the
        same way."""
        if self.worker is not None:
            return self.worker.storage is not None
        return needs_storage_daemon(self.record.settings, self.capabilities)

    @property
    def holds_resources(self) -> bool:
        return self._reserved or self.state in ACTIVE

    @property
    def partial_state(self) -> Path:
        return self.saved_state.with_name(self.saved_state.name + ".partial")

    def uptime_s(self) -> float:
        if self.worker is None or self.state not in ACTIVE:
            return 0.0
        return round(max(0.0, time.time() - self.worker.record.started_at), 1)

    def to_dict(self) -> dict[str, Any]:
        rec = self.record
        return {
            "id": rec.id, "name": rec.name, "state": self.state.value,
            "enabled_state": self.state.enabled_state, "memory_mb": self.memory_mb,
            "processors": self.processors, "uptime_s": self.uptime_s(), "status": rec.status,
            "pid": self.worker.pid if self.worker else None, "folder": rec.folder,
            "created_at": rec.created_at, "settings": to_dict(rec.settings),
            "allowed": availability.allowed(self), "unavailable": availability.unavailable(self),
            **self.events.describe(self),
        }

    @property
    def _exited(self) -> asyncio.Event:
        """Set when the QEMU process ended. Made on first use: an Event per VM that never
        runs costs memory at ten thousand VMs (docs/architecture.md, "Scale")."""
        if self._exited_event is None:
            self._exited_event = asyncio.Event()
        return self._exited_event

    def view_changed(self) -> None:
        """What a capability's ``describe`` shows for this VM changed although its record
        did not (e.g. the host's key-value pairs): the cached vm object of ``GET /vms``
        is built again (:mod:`viridian.service.vms.listing`)."""
        self.view_revision += 1

    # --- persistence ------------------------------------------------------------------

    def _settle(self, state: VMState, status: str | None = None) -> None:
        """Commit a settled state, then show it."""
        self.record = self.catalog.set_state(self.record, state, status)
        self.state = state
        self._reserved = False

    def mark_auto_stopped(self, flag: bool) -> None:
        self.record = replace(self.record, auto_stopped=flag)
        self.catalog.update_vm(self.record)

    def reserve(self) -> None:
        self._reserved = True

    # --- recovery ---------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Make the shown state true again after a service (re)start (the storage daemon,
        which outlives QEMU, is taken over first)."""
        if self.paths.storage_folder.exists():
            self._keeper().adopt()
        try:
            worker = await Worker.attach(self.paths)
        except WorkerGone as gone:
            await self._reconcile_without_qemu(str(gone))
            return
        await self._reconcile_with_qemu(worker)

    async def _reconcile_without_qemu(self, why: str) -> None:
        if not self._foreign_state_files():
            self.partial_state.unlink(missing_ok=True)
            self.saved_state.with_name(self.saved_state.name + ".restored").unlink(
                missing_ok=True)
            if self.saved_state.exists():
                self._settle(VMState.SAVED, self.record.status)
            elif self.state is not VMState.OFF:
                self._settle(VMState.OFF, f"{why} (while the service was not running)")
        remove_runtime_folder(self.paths)
        self.events.exited(self)

    def _foreign_state_files(self) -> bool:
        """Whether the state files in the VM's folder cannot be this host's: an HA VM that
        is Off here neither ran, saved nor restored here (each commits another state
        first), so a saved, partial or restored state in its folder on the shared storage
        is another cluster host's — maybe being written or read there now. They are left
        alone and the VM stays Off here (docs/architecture.md, "Failover cluster")."""
        return self.state is VMState.OFF and self.record.settings.high_availability.ha

    async def _reconcile_with_qemu(self, worker: Worker) -> None:
        """QEMU survived the service. A save that had not reached the catalog is undone:
        the migration is cancelled and the VM runs on (it was Running when asked). A
        daemon QEMU was started with that is gone meanwhile is started again."""
        replaced = False
        if worker.record.storage_daemon is not None:
            keeper = self._keeper()
            replaced = keeper.daemon is None
            worker.storage = await keeper.ensure(qemu_runs=True)
            if replaced:
                await worker.reconnect_storage()
        self._adopt(worker)
        if worker.storage is not None and replaced:  # late errors: watched off the start path
            _in_background(worker.resume_after_io_error())
        elif worker.storage is not None:  # the daemon lived on: only an earlier pause to undo
            await worker.resume_after_io_error(watch_s=0)
        if self.state is VMState.SAVED:
            await self._quit_saved(worker)  # killed between committing Saved and quitting
            return
        await worker.monitor.cancel_migration()
        # A save writes its state file while migrating; a move to another host writes none.
        was_saving = self.partial_state.exists() or self.saved_state.exists()
        self.partial_state.unlink(missing_ok=True)
        self.saved_state.with_name(self.saved_state.name + ".restored").unlink(missing_ok=True)
        self.saved_state.unlink(missing_ok=True)
        status = await worker.status()
        if status == "postmigrate" and not self.keep_paused and not was_saving:  # moved away
            # (a take saving memory and an interrupted save leave postmigrate too: the
            # take's recovery resumes the guest, the save's is undone below)
            self._settle(VMState.PAUSED, "its memory was migrated to another host while the "
                         "service was down: check there before resuming it here")
            return
        running = status == "running"
        if self.state is VMState.RUNNING and not running and not self.keep_paused:
            await worker.resume()  # a pause/save was interrupted: give the VM back its CPU
        elif self.state is VMState.OFF or (self.state is VMState.PAUSED and running):
            self._settle(VMState.RUNNING if running else VMState.PAUSED, self.record.status)

    async def _quit_saved(self, worker: Worker) -> None:
        self._expect_exit = True
        await worker.turn_off()
        await self._exited.wait()
        self.state = VMState.SAVED

    async def detach(self) -> None:
        if self.worker is not None:
            await self.worker.close()
        if self._storage is not None:
            await self._storage.close()

    # --- storage daemon (docs/architecture.md, "The storage daemon") --------------------

    def _keeper(self) -> DaemonKeeper:
        if self._storage is None:
            self._storage = DaemonKeeper(self.paths, self.record.name, self._storage_argv,
                                         lambda: self.worker)
        return self._storage

    async def storage_daemon(self, lock_wait_s: float = 0.0) -> StorageDaemon | None:
        """The VM's storage daemon, started if needed (e.g. for a backup of an Off VM: its
        ``monitor()`` is the QMP where the disks' nodes and dirty bitmaps live), or None
        when the VM gets none (no VHD/VHDX disk, or the host's ``storage_daemon`` is off;
        a daemon left from before is ended then). Images locked by another process are
        waited for up to ``lock_wait_s`` seconds. The caller holds the VM's queue.

        :raises QemuStartError: it could not be started."""
        if self.worker is not None:
            return self.worker.storage
        if not needs_storage_daemon(self.record.settings, self.capabilities):
            await self.end_storage_daemon()
            return None
        keeper = self._keeper()
        daemon = keeper.daemon
        if daemon is None or not daemon.alive or daemon.argv != tuple(self._storage_argv()):
            await keeper.end()
            await replay_pending_logs(self.record.settings)  # never a dirty VHDX to it
        return await keeper.ensure(lock_wait_s=lock_wait_s)

    async def disks_changing(self, settings: VMSettings) -> None:
        """``settings`` are about to be committed: an Off VM's daemon serving other disks
        than they name is ended first (a disk detached here may go to another VM next)."""
        if self._storage is not None and self._storage.daemon is not None and \
                self.worker is None and self._storage_argv() != self._storage_argv(settings):
            await self.end_storage_daemon()

    async def end_storage_daemon(self) -> None:
        """End the VM's storage daemon before its disk files are changed or read by
        anything else while QEMU is not running (removal, offline disk edits and
        checkpoint operations, host shutdown): never two writers. Nothing while QEMU runs
        (the daemon serves it) or when there is none."""
        if self.worker is None and self._storage is not None:
            await self._storage.end()

    # --- worker ownership -------------------------------------------------------------

    def _adopt(self, worker: Worker) -> None:
        self.worker = worker
        self._expect_exit = False
        self._exited.clear()
        asyncio.get_running_loop().create_task(self._watch(worker))
        self.events.adopted(self)

    def _storage_argv(self, settings: VMSettings | None = None) -> list[str]:
        """The storage daemon's argv for the VM's disks (of ``settings``, default its
        own) as QEMU sees them now (checkpoint overlays included)."""
        binary = self.capabilities.storage_daemon or "qemu-storage-daemon"
        return render_storage_daemon(binary, self.disk_view(settings or self.record.settings),
                                     self.paths)

    async def _watch(self, worker: Worker) -> None:
        info = await worker.wait_exit()
        if self.worker is not worker:
            return
        self.worker = None
        self.events.exited(self)
        await worker.cleanup()
        if not self._expect_exit:
            self._settle(VMState.OFF, _exit_status(info))
        self._exited.set()

    # --- operations -------------------------------------------------------------------

    async def perform(self, request: Request, job: Job, timeout_s: float, *,
                      turn_off_after_timeout: bool = False) -> dict[str, Any]:
        """Carry out ``request``; returns facts worth reporting in the job's result.

        ``timeout_s`` bounds a shut down; with ``turn_off_after_timeout`` a guest that has
        not shut down by then is turned off (Hyper-V's choice) instead of the job failing.
        """
        shut_down = functools.partial(self._shut_down,
                                      turn_off_after_timeout=turn_off_after_timeout)
        operations: dict[Request, Callable[[Job, float], Awaitable[dict[str, Any] | None]]] = {
            Request.START: self._start, Request.STOP: self._turn_off,
            Request.SHUTDOWN: shut_down, Request.SAVE: self._save,
            Request.PAUSE: self._pause, Request.RESUME: self._resume, Request.RESET: self._reset,
        }
        before = self.state
        try:
            return await operations[request](job, timeout_s) or {}
        except BaseException:
            if self.state not in (VMState.OFF, VMState.SAVED, VMState.RUNNING, VMState.PAUSED):
                self.state = before if self.worker or before in (VMState.OFF, VMState.SAVED) \
                    else VMState.OFF
            self._reserved = False
            raise

    async def _start(self, job: Job, _: float) -> None:
        restoring = self.state is VMState.SAVED
        self.state = VMState.STARTING
        job.report(5, "restoring saved state" if restoring else "starting QEMU")
        settings = self.disk_view(self.record.settings)
        # kept from the last run when it still fits; an HA VM's images may still be held by
        # the daemon another cluster host kept for it while Off there, until it lets go
        handover = LOCK_HANDOVER_S if self.record.settings.high_availability.ha else 0.0
        storage = await self.storage_daemon(handover)
        argv = render_argv(self.record.id, settings, self.capabilities, self.paths,
                           incoming=restoring, storage_daemon=storage is not None)
        if settings.bios.num_lock:
            write_numlock_rom(self.paths)
        if needs_netboot(settings, boot_indexes(settings)):
            write_netboot_rom(self.paths)
        if storage is None:
            await replay_pending_logs(self.record.settings)  # never a dirty VHDX to QEMU
        self.events.launching(self)  # e.g. virtual switch ports: taps before QEMU opens them
        worker = await Worker.launch(
            argv, self.paths, vm_id=self.record.id, vm_name=self.record.name,
            accelerator=self.capabilities.accelerator, settings=to_dict(self.record.settings),
            incoming_state=self.saved_state if restoring else None,
            start_paused=restoring and self.restore_paused, storage=storage)
        self._adopt(worker)
        self._settle(VMState.PAUSED if restoring and self.restore_paused else VMState.RUNNING,
                     None)
        self.restore_paused = False
        if restoring:
            self._discard_saved_state()
            self.events.resumed(self, True)
        if self.record.auto_stopped:
            self.mark_auto_stopped(False)

    def _discard_saved_state(self) -> None:
        """Unlinking a large state file takes milliseconds: done off the request's path
        (Running is committed already; a leftover file is removed at the next recovery)."""
        stale = self.saved_state.with_name(self.saved_state.name + ".restored")
        os.replace(self.saved_state, stale)
        task = asyncio.get_running_loop().run_in_executor(None, stale.unlink, True)
        _background.add(task)
        task.add_done_callback(_background.discard)

    async def _turn_off(self, job: Job, _: float) -> None:
        worker = self.require_worker()
        self.state = VMState.STOPPING
        job.report(10, "turning off")
        self._expect_exit = True
        await worker.turn_off()
        await self._exited.wait()
        self._settle(VMState.OFF, None)

    def turn_off_during_shut_down(self) -> None:
        """Turn Off asked while a shut down waits for the guest (Hyper-V allows it): QEMU
        is ended now, and the waiting shut down ends with the method ``turned off while
        shutting down (asked: …)``. Raises :class:`InvalidTransition` unless ShuttingDown."""
        if self.state is not VMState.SHUTTING_DOWN or self.worker is None:
            check_request(self.record.name, self.state, Request.STOP)  # names what it allows
            raise InvalidTransition(self.record.name, Request.STOP.value, self.state.value, [])
        self._turned_off_while_shutting_down = True
        _in_background(self._end_worker(self.worker))

    @staticmethod
    async def _end_worker(worker: Worker) -> None:
        await worker.turn_off()

    async def _shut_down(self, job: Job, timeout_s: float, *,
                         turn_off_after_timeout: bool = False) -> dict[str, Any]:
        """Ask the guest to shut down and wait up to ``timeout_s``. The result's ``method``
        says what ended the VM: ``guest agent``, ``ACPI power button``, ``guest agent
        (after the ACPI power button)`` when the agent answered only later, or ``turned
        off after N s …`` (``turn_off_after_timeout``). Without it a guest still running at
        the timeout fails the job and the VM stays Running."""
        worker = self.require_worker()
        self.state = VMState.SHUTTING_DOWN
        self._expect_exit = True
        self._turned_off_while_shutting_down = False
        try:
            how, exited = await self._wait_for_guest_shutdown(worker, job, timeout_s)
        except Exception:
            if not self._turned_off_while_shutting_down:
                self._expect_exit = worker.has_exited()
                raise
            await self._exited.wait()  # Turn Off ended QEMU while the guest was being asked
            how, exited = "", True
        except BaseException:
            self._expect_exit = worker.has_exited()
            raise
        if exited and self._turned_off_while_shutting_down:
            how = "turned off while shutting down" + (f" (asked: {how})" if how else "")
        if not exited and not turn_off_after_timeout:
            self._expect_exit = False
            self.state = VMState.RUNNING
            raise HostError(
                f"the guest of VM '{self.record.name}' did not shut down within {timeout_s:g} s "
                f"({how}); it is still Running — use 'viridian vm stop' to turn it off, or "
                "shut down with --turn-off-after-timeout", vm=self.record.name,
                timeout_s=timeout_s) from None
        if not exited:
            job.report(90, f"turning off: the guest did not shut down within {timeout_s:g} s")
            await worker.turn_off()
            await self._exited.wait()
            how = f"turned off after {timeout_s:g} s (the guest did not shut down; asked: {how})"
        self._settle(VMState.OFF, None)
        return {"method": how}

    async def _wait_for_guest_shutdown(self, worker: Worker, job: Job,
                                       timeout_s: float) -> tuple[str, bool]:
        """Ask the guest, then wait for QEMU to end (at most ``timeout_s``). While the
        request went to the ACPI power button — which a guest still booting ignores — the
        agent is asked again every :data:`AGENT_RETRY_S` and, once it answers, told to
        shut down. Returns how the guest was asked and whether QEMU ended."""
        deadline = time.monotonic() + timeout_s
        how = await self._ask_guest_to_shut_down(worker)
        job.report(20, f"waiting up to {timeout_s:g} s for the guest to shut down ({how})")
        while (remaining := deadline - time.monotonic()) > 0:
            retry = how == ACPI and self._agent_shutdown_on()
            try:
                await asyncio.wait_for(self._exited.wait(),
                                       min(remaining, AGENT_RETRY_S) if retry else remaining)
                return how, True
            except TimeoutError:
                pass
            if retry and await self._agent_shutdown(worker):
                how = f"{AGENT} (after the {ACPI})"
                job.report(30, f"the guest agent answered; waiting for the guest ({how})")
        return how, self._exited.is_set()

    def _agent_shutdown_on(self) -> bool:
        return self.record.settings.integration_services.operating_system_shutdown

    async def _agent_shutdown(self, worker: Worker) -> bool:
        """Ask the guest agent to shut the guest down; False when it does not answer."""
        try:
            if await worker.guest_agent.ping(timeout=AGENT_PING_TIMEOUT_S):
                await worker.guest_agent.shutdown()
                return True
        except ViridianError as err:
            log.info("guest agent of %s unavailable (%s)", self.record.name, err)
        return False

    async def _ask_guest_to_shut_down(self, worker: Worker) -> str:
        if self._agent_shutdown_on() and await self._agent_shutdown(worker):
            return AGENT
        if await worker.status() != "running":
            await worker.resume()
        await worker.power_button()
        return ACPI

    async def _save(self, job: Job, _: float) -> None:
        worker = self.require_worker()
        self.state = VMState.SAVING
        self._expect_exit = True
        try:
            await worker.save(self.saved_state,
                              progress=lambda f: job.report(5 + f * 90, "saving memory"))
        except BaseException:
            self._expect_exit = worker.has_exited()
            raise
        await self._exited.wait()
        self._settle(VMState.SAVED, None)

    async def _pause(self, job: Job, _: float) -> None:
        self.state = VMState.PAUSING
        await self.require_worker().pause()
        self._settle(VMState.PAUSED, None)

    async def _resume(self, job: Job, _: float) -> None:
        self.state = VMState.RESUMING
        await self.require_worker().resume()
        self._settle(VMState.RUNNING, None)
        self.events.resumed(self, False)

    async def _reset(self, job: Job, _: float) -> None:
        worker = self.require_worker()
        self.state = VMState.RESETTING
        await worker.reset()
        if await worker.status() != "running":
            await worker.resume()
        self._settle(VMState.RUNNING, None)

    async def delete_saved_state(self) -> None:
        """Hyper-V's "Delete Saved State": a Saved VM becomes Off and its saved-state file
        is removed (the caller checked the state and holds the VM's queue). Crash-safe: the
        file is first renamed to the ``.restored`` name that recovery removes, so a killed
        service never brings the state back."""
        stale = self.saved_state.with_name(self.saved_state.name + ".restored")
        if self.saved_state.exists():
            os.replace(self.saved_state, stale)
        self.restore_paused = False
        self._settle(VMState.OFF, "the saved state was deleted")
        await asyncio.get_running_loop().run_in_executor(None, stale.unlink, True)

    # --- migration (service.migration; docs/architecture.md, "Migration") ---------------

    async def launch_incoming(self) -> Worker:
        """Launch QEMU paused, waiting for a live migration (``-incoming defer``; its disks
        opened by QEMU itself: a VM a storage daemon serves moves quick only). The VM is
        not in this host's catalog yet: until :meth:`arrived`, an end of this QEMU settles
        nothing (the migration capability discards the VM).

        :raises QemuStartError: QEMU (or its storage daemon) did not start; nothing runs.
        """
        self.state = VMState.STARTING
        settings = self.disk_view(self.record.settings)
        argv = render_argv(self.record.id, settings, self.capabilities, self.paths,
                           incoming=True, storage_daemon=False)
        if settings.bios.num_lock:
            write_numlock_rom(self.paths)
        if needs_netboot(settings, boot_indexes(settings)):
            write_netboot_rom(self.paths)
        self.events.launching(self)
        worker = await Worker.launch(
            argv, self.paths, vm_id=self.record.id, vm_name=self.record.name,
            accelerator=self.capabilities.accelerator, settings=to_dict(self.record.settings),
            incoming_live=True)
        self._adopt(worker)
        self._expect_exit = True
        return worker

    def arrived(self, state: VMState) -> None:
        """The migrated guest runs here (its record was just committed in ``state``)."""
        self.record = replace(self.record, state=state)
        self.state = state
        self._expect_exit = False
        self._reserved = False
        self.events.resumed(self, True)

    async def end_here(self) -> None:
        """End this VM's QEMU on purpose, settling nothing: after it migrated away
        (``postmigrate``), or an incoming migration that was abandoned."""
        worker = self.worker
        if worker is None:
            return
        self._expect_exit = True
        await worker.turn_off()
        await self._exited.wait()
        await self.end_storage_daemon()  # the disks are the other host's now
        self.state = VMState.OFF

    def require_worker(self) -> Worker:
        if self.worker is None:
            raise HostError(f"VM '{self.record.name}' has no QEMU process", vm=self.record.name)
        return self.worker


_background: set[asyncio.Future[None]] = set()


def _in_background(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` as a task kept referenced until it ends (asyncio keeps weak ones)."""
    task = asyncio.ensure_future(work)
    _background.add(task)
    task.add_done_callback(_background.discard)


def _exit_status(info: ExitInfo) -> str:
    if info.reason is ExitReason.GUEST_POWERED_OFF:
        return "the guest shut itself down"
    return f"QEMU ended unexpectedly: {info.detail}"

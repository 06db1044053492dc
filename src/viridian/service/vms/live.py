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
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from viridian.errors import HostError, ViridianError
from viridian.model import settings_from_dict
from viridian.model.states import Request, VMState
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.errors import WorkerGone
from viridian.qemu.firmware import write_numlock_rom
from viridian.qemu.netboot import write_netboot_rom
from viridian.qemu.render import render_argv
from viridian.qemu.render.bios import boot_indexes
from viridian.qemu.render.netboot import needs_netboot
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.worker import ExitInfo, ExitReason, Worker, remove_runtime_folder
from viridian.service.catalog import Catalog, VMRecord
from viridian.service.jobs import Job

log = logging.getLogger(__name__)

ACTIVE = {VMState.STARTING, VMState.RUNNING, VMState.PAUSED, VMState.SAVING, VMState.STOPPING,
          VMState.SHUTTING_DOWN, VMState.PAUSING, VMState.RESUMING, VMState.RESETTING}
AGENT_PING_TIMEOUT_S = 1.0


class LiveVM:
    def __init__(self, record: VMRecord, catalog: Catalog, capabilities: HostCapabilities,
                 paths: RuntimePaths, saved_state: Path) -> None:
        self.record = record
        self.catalog = catalog
        self.capabilities = capabilities
        self.paths = paths
        self.saved_state = saved_state
        self.state = VMState(record.state)
        self.state_before_recovery = self.state
        self.worker: Worker | None = None
        self._expect_exit = False
        self._exited = asyncio.Event()
        self._reserved = False
        self.hooks: list[Any] = []  # VM hooks: resource control, integration services
        # Settings as QEMU must see them (checkpoints put disks behind qcow2 overlays).
        self.disk_view: Callable[[dict[str, Any]], dict[str, Any]] = lambda s: s
        self.keep_paused = False  # recovery: a checkpoint operation paused QEMU on purpose
        self.restore_paused = False  # the next restore ends Paused (a Paused checkpoint)

    # --- facts ------------------------------------------------------------------------

    @property
    def memory_mb(self) -> int:
        return int(self.record.settings["memory"]["startup_mb"])

    @property
    def processors(self) -> int:
        return int(self.record.settings["processor"]["count"])

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
            "created_at": rec.created_at, "settings": rec.settings,
            **{k: v for hook in self.hooks for k, v in hook.describe(self).items()},
        }

    # --- persistence ------------------------------------------------------------------

    def _settle(self, state: VMState, status: str | None = None) -> None:
        """Commit a settled state, then show it."""
        self.record = self.catalog.set_state(self.record, state.value, status)
        self.state = state
        self._reserved = False

    def mark_auto_stopped(self, flag: bool) -> None:
        self.record = replace(self.record, auto_stopped=flag)
        self.catalog.update_vm(self.record)

    def reserve(self) -> None:
        self._reserved = True

    # --- recovery ---------------------------------------------------------------------

    async def reconcile(self) -> None:
        """Make the shown state true again after a service (re)start."""
        try:
            worker = await Worker.attach(self.paths)
        except WorkerGone as gone:
            await self._reconcile_without_qemu(str(gone))
            return
        await self._reconcile_with_qemu(worker)

    async def _reconcile_without_qemu(self, why: str) -> None:
        self.partial_state.unlink(missing_ok=True)
        self.saved_state.with_name(self.saved_state.name + ".restored").unlink(missing_ok=True)
        if self.saved_state.exists():
            self._settle(VMState.SAVED, self.record.status)
        elif self.state is not VMState.OFF:
            self._settle(VMState.OFF, f"{why} (while the service was not running)")
        remove_runtime_folder(self.paths)
        self._notify("exited")

    async def _reconcile_with_qemu(self, worker: Worker) -> None:
        """QEMU survived the service. A save that had not reached the catalog is undone:
        the migration is cancelled and the VM runs on (it was Running when asked)."""
        self._adopt(worker)
        if self.state is VMState.SAVED:
            await self._quit_saved(worker)  # killed between committing Saved and quitting
            return
        await worker.monitor.cancel_migration()
        self.partial_state.unlink(missing_ok=True)
        self.saved_state.with_name(self.saved_state.name + ".restored").unlink(missing_ok=True)
        self.saved_state.unlink(missing_ok=True)
        running = await worker.status() == "running"
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

    # --- worker ownership -------------------------------------------------------------

    def _adopt(self, worker: Worker) -> None:
        self.worker = worker
        self._expect_exit = False
        self._exited.clear()
        asyncio.get_running_loop().create_task(self._watch(worker))
        self._notify("adopted")

    def _notify(self, event: str, *args: Any) -> None:
        """Tell every hook that has a method named ``event`` (hooks may skip events)."""
        for hook in self.hooks:
            handler = getattr(hook, event, None)
            if handler is not None:
                handler(self, *args)

    async def _watch(self, worker: Worker) -> None:
        info = await worker.wait_exit()
        if self.worker is not worker:
            return
        self.worker = None
        self._notify("exited")
        await worker.cleanup()
        if not self._expect_exit:
            self._settle(VMState.OFF, _exit_status(info))
        self._exited.set()

    # --- operations -------------------------------------------------------------------

    async def perform(self, request: Request, job: Job, timeout_s: float) -> dict[str, Any]:
        """Carry out ``request``; returns facts worth reporting in the job's result."""
        operations = {
            Request.START: self._start, Request.STOP: self._turn_off,
            Request.SHUTDOWN: self._shut_down, Request.SAVE: self._save,
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
        settings = settings_from_dict(self.disk_view(self.record.settings))
        argv = render_argv(self.record.id, settings, self.capabilities, self.paths,
                           incoming=restoring)
        if settings.bios.num_lock:
            write_numlock_rom(self.paths)
        if needs_netboot(settings, boot_indexes(settings)):
            write_netboot_rom(self.paths)
        self._notify("launching")  # e.g. virtual switch ports: taps before QEMU opens them
        worker = await Worker.launch(
            argv, self.paths, vm_id=self.record.id, vm_name=self.record.name,
            accelerator=self.capabilities.accelerator, settings=self.record.settings,
            incoming_state=self.saved_state if restoring else None,
            start_paused=restoring and self.restore_paused)
        self._adopt(worker)
        self._settle(VMState.PAUSED if restoring and self.restore_paused else VMState.RUNNING,
                     None)
        self.restore_paused = False
        if restoring:
            self._discard_saved_state()
            self._notify("resumed", True)
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

    async def _shut_down(self, job: Job, timeout_s: float) -> dict[str, Any]:
        worker = self.require_worker()
        self.state = VMState.SHUTTING_DOWN
        how = await self._ask_guest_to_shut_down(worker)
        job.report(20, f"waiting up to {timeout_s:g} s for the guest to shut down ({how})")
        self._expect_exit = True
        try:
            await asyncio.wait_for(self._exited.wait(), timeout_s)
        except TimeoutError:
            self._expect_exit = False
            self.state = VMState.RUNNING
            raise HostError(
                f"the guest of VM '{self.record.name}' did not shut down within {timeout_s:g} s "
                f"({how}); it is still Running — use 'viridian vm stop' to turn it off",
                vm=self.record.name, timeout_s=timeout_s) from None
        self._settle(VMState.OFF, None)
        return {"method": how}

    async def _ask_guest_to_shut_down(self, worker: Worker) -> str:
        try:
            if self.record.settings.get("integration_services", {}).get(
                    "operating_system_shutdown", True) and \
                    await worker.guest_agent.ping(timeout=AGENT_PING_TIMEOUT_S):
                await worker.guest_agent.shutdown()
                return "guest agent"
        except ViridianError as err:
            log.info("guest agent of %s unavailable (%s); using ACPI", self.record.name, err)
        if await worker.status() != "running":
            await worker.resume()
        await worker.power_button()
        return "ACPI power button"

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
        self._notify("resumed", False)

    async def _reset(self, job: Job, _: float) -> None:
        worker = self.require_worker()
        self.state = VMState.RESETTING
        await worker.reset()
        if await worker.status() != "running":
            await worker.resume()
        self._settle(VMState.RUNNING, None)

    def require_worker(self) -> Worker:
        if self.worker is None:
            raise HostError(f"VM '{self.record.name}' has no QEMU process", vm=self.record.name)
        return self.worker


_background: set[asyncio.Future[None]] = set()


def _exit_status(info: ExitInfo) -> str:
    if info.reason is ExitReason.GUEST_POWERED_OFF:
        return "the guest shut itself down"
    return f"QEMU ended unexpectedly: {info.detail}"

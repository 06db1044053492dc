"""``backup new VM --to FOLDER [--incremental]``: one backup point of a VM
(docs/architecture.md, "Backup").

A Running or Paused VM is backed up live: the guest's file systems are frozen through
the guest agent (backup integration service) for the instant of the point in time —
the point is *application*-consistent then, *crash*-consistent when the agent or the
service is not there — and :mod:`viridian.qemu.backup_jobs` starts the jobs into local
staging images; then the images are copied to the target, checksummed and published.
A VM that is Off or Saved is read the same way through its storage daemon when it has
one (the daemon keeps the dirty bitmaps while the VM is registered), else from its files
(always full).

Crash safety: the catalog row is written *partial* before any file exists; the point is
written under ``.partial-<id>`` and renamed to its final folder only when complete and
synced; then the row turns *good*. At start (:mod:`.recovery`) a partial row is rolled
forward when its final folder holds a good record, removed with its files otherwise.
Fault points ``backup.begun``, ``backup.memory_saved`` (QEMU paused in ``postmigrate``
with the point's jobs started), ``backup.started``, ``backup.copied``, ``backup.published``.

Memory (``--with-memory``; the decisions in :mod:`viridian.backup.memory`): a Running or
Paused VM is paused, its memory and device state saved to local staging (QEMU
``migrate`` to a file), then the disks' transaction runs (in QEMU or its storage
daemon), then the guest runs again — disks and memory are of the same instant, and a
restore of the point gives a Saved VM that continues where it was. The guest is paused
for the save (seconds for its memory size; the result's ``timings_s`` has the pause as
``paused_s``) and its file systems are not frozen (a frozen guest would be saved
frozen): the point is ``crash``-consistent as disks alone, whole with its memory. When
QEMU opens the disks itself (raw/qcow2), the save leaves its images inactive and
``cont`` re-activates them, with the point's jobs paused across it. A Saved VM's point
copies its saved-state file.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from viridian.backup import layout
from viridian.backup.chains import latest_good
from viridian.backup.memory import MemoryPlan, memory_plan, save_order
from viridian.backup.records import BackupDisk, BackupRecord, Consistency
from viridian.checkpoints import Tree
from viridian.errors import Conflict
from viridian.interchange.native import tree_to_dict
from viridian.model.slots import hard_disks
from viridian.model.states import VMState
from viridian.qemu import backup_images, backup_jobs
from viridian.qemu.backup_jobs import PointDisk
from viridian.qemu.monitor import Monitor
from viridian.qemu.worker import Worker
from viridian.service.backup.files import (
    build_manifest,
    copy_to_target,
    finish_folder,
    write_json,
)
from viridian.service.backup.store import BackupStore
from viridian.service.checkpoints.operations import fault
from viridian.service.jobs import Job, now_iso
from viridian.service.vms.definition_file import Definition
from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

LIVE_STATES = (VMState.RUNNING, VMState.PAUSED)


@dataclass(frozen=True)
class SourceDisk:
    """A hard disk as the VM reads it now: its slot, the top image (a checkpoint overlay
    or the disk itself) and that image's format."""

    slot: str
    path: str
    format: str


@dataclass(frozen=True)
class TakeRequest:
    target: Path
    incremental: bool
    rate_bps: int | None
    with_memory: bool = False
    """Include the VM's memory state (module docstring, "Memory"); refused (409) when
    the VM has none when the job runs."""


def plan_memory(live: LiveVM) -> MemoryPlan:
    """Whether and how a point of ``live`` can hold its memory now."""
    return memory_plan(live.state, live.worker is not None, live.saved_state.exists())


def require_memory(live: LiveVM) -> MemoryPlan:
    """:func:`plan_memory`, or Conflict naming why the VM's memory cannot be included."""
    plan = plan_memory(live)
    if plan.source is None:
        raise Conflict(f"cannot include the memory of VM '{live.record.name}': "
                       f"{plan.reason}; memory is included for a Running, Paused or Saved "
                       "VM (back it up without --with-memory); nothing was changed",
                       vm=live.record.name, state=live.state.value)
    return plan


def source_disks(live: LiveVM, tree: Tree) -> list[SourceDisk]:
    """The VM's hard disks with a file, each at the top of its chain."""
    found: list[SourceDisk] = []
    for slot in hard_disks(live.record.settings):
        if not slot.path:
            continue
        now = tree.now_disks.get(slot.id)
        if now is not None and now.base == slot.path:
            found.append(SourceDisk(slot.id, now.image.path, now.image.format))
        else:
            found.append(SourceDisk(slot.id, slot.path, str(slot.format or "raw")))
    return found


class Taker:
    """Takes points; ``freeze``/``thaw`` are the backup integration service's."""

    def __init__(self, store: BackupStore, staging_root: Path, integration: Any) -> None:
        self.store = store
        self.staging_root = staging_root
        self.integration = integration

    async def take(self, live: LiveVM, tree: Tree, request: TakeRequest,
                   job: Job) -> dict[str, Any]:
        point_id = str(uuid.uuid4())
        memory = require_memory(live).source if request.with_memory else None
        disks = source_disks(live, tree)
        final = layout.point_folder(request.target, live.record.name, point_id)
        partial = layout.partial_folder(final)
        monitor = await _block_monitor(live)
        parent = latest_good(self.store.all(), live.record.id) if request.incremental \
            else None
        kind, reason, sizes = await self._plan(monitor, disks, parent, request.incremental)
        record = BackupRecord(
            point_id, live.record.id, live.record.name, now_iso(), kind,
            parent.id if parent and kind == "incremental" else None, "crash",
            live.state.value, reason, str(final),
            tuple(BackupDisk(d.slot, layout.disk_file(d.slot), d.format, sizes[d.slot])
                  for d in disks))
        self.store.put(record)
        fault("backup.begun")
        timings: dict[str, float] = {}
        try:
            partial.mkdir(parents=True, mode=0o700)
            (partial / layout.DISKS).mkdir()
            write_json(partial / layout.DEFINITION, Definition.of(live.record).to_dict())
            write_json(partial / layout.CHECKPOINTS, tree_to_dict(tree))
            if monitor is not None:
                record, written = await self._live(live, monitor, record, disks, partial,
                                                   request, memory == "save", job, timings)
            else:
                with _timed(timings, "read_files_s"):
                    written = await self._offline(disks, partial, job)
            if memory == "saved_state":  # a Saved VM: its saved state is its memory
                written += await copy_to_target(live.saved_state, partial / layout.MEMORY,
                                                request.rate_bps)
                record = replace(record, memory=layout.MEMORY)
                self.store.put(record)
            fault("backup.copied")
            job.report(90, "checksumming")
            names = [layout.DEFINITION, layout.CHECKPOINTS,
                     *(d.file for d in record.disks), *([record.memory] if record.memory
                                                        else [])]
            with _timed(timings, "checksums_s"):
                write_json(partial / layout.MANIFEST,
                           build_manifest(partial, names).to_dict())
            record = record.completed(now_iso(), written)
            write_json(partial / layout.RECORD, record.to_dict())
            with _timed(timings, "sync_publish_s"):
                finish_folder(partial, final)
            fault("backup.published")
            self.store.put(record)
        except BaseException:
            await self._undo(monitor, record, partial)
            raise
        if monitor is not None:
            with contextlib.suppress(Exception):  # the parent's bitmap is no longer needed
                await backup_jobs.drop_bitmaps(monitor, keep=backup_jobs.bitmap_name(point_id))
        return {**record.to_dict(), "timings_s": timings}

    async def _plan(self, monitor: Monitor | None, disks: list[SourceDisk],
                    parent: BackupRecord | None,
                    incremental: bool) -> tuple[Any, str, dict[str, int]]:
        """Full or incremental, why, and each disk's size."""
        if monitor is None:
            sizes = {d.slot: await backup_images.virtual_size(d.path, d.format) for d in disks}
            why = "the VM is not running: its disks were read from their files" \
                if incremental else ""
            return "full", ("full: " + why) if why else "", sizes
        nodes = {d.slot: await backup_jobs.image_node(monitor, d.path) for d in disks}
        sizes = {slot: node.virtual_size for slot, node in nodes.items()}
        if not incremental:
            return "full", "", sizes
        if parent is None:
            return "full", "full: no earlier backup of this VM to build on", sizes
        lost = [slot for slot, node in nodes.items()
                if backup_jobs.bitmap_name(parent.id) not in node.bitmaps]
        if lost or {d.slot for d in parent.disks} != set(nodes):
            return "full", (f"full: the change tracking since backup {parent.id} is lost on "
                            f"{', '.join(lost) or 'changed disks'} (the storage daemon or "
                            "QEMU restarted, the VM was turned off, or a checkpoint changed "
                            "the disk), so every block was read"), sizes
        return "incremental", "", sizes

    async def _live(self, live: LiveVM, monitor: Monitor, record: BackupRecord,
                    disks: list[SourceDisk], partial: Path, request: TakeRequest,
                    save_memory: bool, job: Job,
                    timings: dict[str, float]) -> tuple[BackupRecord, int]:
        staging = self.staging_root / record.id
        staging.mkdir(parents=True, mode=0o700)
        try:
            points = []
            for index, (disk, saved) in enumerate(zip(disks, record.disks, strict=True)):
                image = staging / Path(saved.file).name
                await backup_images.create_staging(image, saved.size)
                points.append(PointDisk(
                    await _node(monitor, disk.path), str(image), index,
                    record.parent if record.kind == "incremental" else None))
            memory = staging / layout.MEMORY if save_memory else None
            with _timed(timings, "point_in_time_s"):
                if memory is not None:
                    timings["paused_s"] = await _with_memory(live, monitor, record.id,
                                                             points, memory)
                    consistency: Consistency = "crash"
                else:
                    consistency = await self._point_in_time(live, monitor, record.id,
                                                            points)
            record = replace(record, consistency=consistency,
                             memory=layout.MEMORY if memory is not None else None)
            self.store.put(record)
            fault("backup.started")
            job.report(10, "copying to local staging")
            with _timed(timings, "local_staging_s"):
                await backup_jobs.wait_point(monitor, record.id, points,
                                             lambda f: job.report(10 + 40 * f))
            began, written = time.monotonic(), 0
            for index, saved in enumerate(record.disks):
                job.report(50 + 40 * index / len(record.disks), f"writing {saved.file}")
                target = partial / saved.file
                written += await copy_to_target(staging / Path(saved.file).name, target,
                                                request.rate_bps)
                if record.parent:
                    await backup_images.set_backing(
                        target, layout.parent_backing(record.parent, saved.file))
            if memory is not None:
                written += await copy_to_target(memory, partial / layout.MEMORY,
                                                request.rate_bps)
            timings["target_copy_s"] = round(time.monotonic() - began, 2)
            return record, written
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def _point_in_time(self, live: LiveVM, monitor: Monitor, point_id: str,
                             points: list[PointDisk]) -> Consistency:
        frozen = await self._freeze(live)
        try:
            await backup_jobs.start_point(monitor, point_id, points)
        finally:
            if frozen:
                await self._thaw(live)
        return "application" if frozen else "crash"

    async def _freeze(self, live: LiveVM) -> bool:
        if not live.record.settings.integration_services.backup or \
                live.state is not VMState.RUNNING:
            return False
        try:
            await self.integration.freeze(live)
        except Exception as err:  # no agent answering: crash-consistent
            log.info("VM %s: file systems not frozen for the backup: %s",
                     live.record.name, err)
            return False
        return True

    async def _thaw(self, live: LiveVM) -> None:
        try:
            await self.integration.thaw(live)
        except Exception as err:
            log.warning("VM %s: thawing after the backup's point in time: %s",
                        live.record.name, err)

    async def _offline(self, disks: list[SourceDisk], partial: Path, job: Job) -> int:
        for index, disk in enumerate(disks):
            job.report(10 + 80 * index / max(1, len(disks)), f"reading {disk.path}")
            await backup_images.copy_off_disk(
                disk.path, disk.format, partial / layout.disk_file(disk.slot))
        return sum((partial / layout.disk_file(d.slot)).stat().st_size for d in disks)

    async def _undo(self, monitor: Monitor | None, record: BackupRecord,
                    partial: Path) -> None:
        if monitor is not None:
            with contextlib.suppress(Exception):
                await backup_jobs.abandon(monitor, record.id)
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(self.staging_root / record.id, ignore_errors=True)
        self.store.forget(record.id)


async def _block_monitor(live: LiveVM) -> Monitor | None:
    """Where the VM's images are open: QEMU or its storage daemon while it runs; for an
    Off or Saved VM its storage daemon, which keeps the dirty bitmaps while the VM is
    registered (docs/architecture.md, "The storage daemon"); None: read the files."""
    if live.state in LIVE_STATES and live.worker is not None:
        return await live.worker.block_monitor()
    if live.state in LIVE_STATES:
        return None
    daemon = await live.storage_daemon()
    return await daemon.monitor() if daemon is not None else None


async def _with_memory(live: LiveVM, monitor: Monitor, point_id: str,
                       points: list[PointDisk], memory: Path) -> float:
    """Save the memory to ``memory`` and start the disks' point at the same instant, in
    the order of :class:`viridian.backup.memory.SaveOrder`; the seconds the guest was
    paused. On failure the point is abandoned before the guest runs again, and the VM is
    left running (or paused, as it was)."""
    worker = live.require_worker()
    was_running = await worker.status() == "running"
    order = save_order(monitor is worker.monitor, was_running)
    held: list[str] = []
    began = time.monotonic()
    try:
        await worker.pause()
        await worker.monitor.cancel_migration()
        await worker.monitor.save_to_file(memory)
        await backup_jobs.start_point(monitor, point_id, points)
        fault("backup.memory_saved")
        if order.hold_jobs:
            held = await backup_jobs.pause_jobs(monitor, point_id, points)
    except BaseException:
        with contextlib.suppress(Exception):  # no job may read images being re-activated
            await backup_jobs.abandon(monitor, point_id)
        await _run_again(worker, was_running, order.pause_again)
        raise
    await _run_again(worker, was_running, order.pause_again)
    paused = time.monotonic() - began
    await backup_jobs.resume_jobs(monitor, held)
    return round(paused, 3)


async def _run_again(worker: Worker, was_running: bool, stop_after: bool) -> None:
    """``cont`` when the guest ran, or when a save left the images inactive
    (``postmigrate``); paused again for a VM that was Paused."""
    if was_running or await worker.status() == "postmigrate":
        await worker.resume()
    if stop_after:
        await worker.pause()


async def _node(monitor: Monitor, path: str) -> str:
    return (await backup_jobs.image_node(monitor, path)).node


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record how long the block took under ``name`` (shown in the job's result)."""
    began = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - began, 2)


"""The backup capability: backup points of VMs in folder targets — take (a job on the
VM's queue), list, show, verify, restore, remove — and the recovery of whatever a killed
service left half done (docs/architecture.md, "Backup")."""

from __future__ import annotations

import contextlib
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from viridian.backup import layout
from viridian.backup.chains import chain, check_removable
from viridian.backup.pick import parse_time, point_at
from viridian.backup.records import BackupRecord
from viridian.backup.retention import Retention, plan
from viridian.backup.schedule import Schedule
from viridian.errors import InvalidSetting, NotFound
from viridian.model.states import VMState
from viridian.qemu import backup_jobs
from viridian.service.backup.every import back_up_all
from viridian.service.backup.inplace import InPlaceJournal, recover_in_place, restore_in_place
from viridian.service.backup.restore import (
    RESTORE_FOLDER,
    read_point_record,
    restore_as_new,
)
from viridian.service.backup.routes import install_backup_routes
from viridian.service.backup.schedules import Scheduler, ScheduleStore
from viridian.service.backup.store import BackupStore
from viridian.service.backup.take import Taker, TakeRequest, plan_memory, require_memory
from viridian.service.backup.verify import verify_chain
from viridian.service.capability import Capability
from viridian.service.checkpoints.store import CheckpointStore
from viridian.service.jobs import Job
from viridian.service.vms.importing import Registrar
from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

STAGING_FOLDER = "backups/staging"


class BackupCapability(Capability):
    """Backup points (see the module docstring); ``integration`` freezes file systems."""

    name = "backup"

    def __init__(self, core: Registrar, integration: Any) -> None:
        self.core = core
        self.store = BackupStore(core.catalog)
        self.checkpoints = CheckpointStore(core.catalog)
        self.taker = Taker(self.store, core.data_dir / STAGING_FOLDER, integration)
        self.schedules = ScheduleStore(core.catalog)
        self.scheduler = Scheduler(self.schedules, self.new)
        self.in_place = InPlaceJournal(core.catalog)

    def install_routes(self, app: FastAPI) -> None:
        install_backup_routes(app, self)

    # --- recovery ---------------------------------------------------------------------

    def attach(self, vm: LiveVM) -> None:
        """A VM with an unfinished point may have been killed inside a memory save (QEMU
        in ``postmigrate``, its images inactive): that is this capability's to undo in
        :meth:`recover`, not a move to another host (``LiveVM.keep_paused``; attached
        after checkpoints, so their own claim stands)."""
        if any(r.vm_id == vm.record.id for r in self.store.partial()):
            vm.keep_paused = True

    async def recover(self, vm: LiveVM) -> None:
        """A running VM's QEMU (or daemon) may still hold jobs, staging nodes and bitmaps
        of a point the service did not finish: end them; then a guest a memory save left
        paused runs again as it was shown (Running, or Paused after ``cont``
        re-activated its images)."""
        mine = [r for r in self.store.partial() if r.vm_id == vm.record.id]
        if vm.worker is None or not mine:
            return
        for record in mine:
            with contextlib.suppress(Exception):
                await backup_jobs.abandon(await vm.worker.block_monitor(), record.id)
        vm.keep_paused = False
        status = await vm.worker.status()
        if status == "postmigrate" or (status == "paused" and vm.state is VMState.RUNNING):
            log.warning("VM %s: running again after an interrupted backup with memory",
                        vm.record.name)
            await vm.worker.resume()
            if vm.state is VMState.PAUSED:
                await vm.worker.pause()

    def start(self) -> None:
        """Finish or undo a killed in-place restore (:mod:`.inplace`); finish or remove
        every partial point (module :mod:`.take`), clear staging."""
        recover_in_place(self.in_place)
        for record in self.store.partial():
            final = Path(record.folder)
            found = read_point_record(final)
            if found is not None and found.good and found.id == record.id:
                log.warning("backup %s was complete on disk: recording it", record.id)
                self.store.put(found)
                continue
            log.warning("removing the unfinished backup %s of VM %s", record.id,
                        record.vm_name)
            shutil.rmtree(layout.partial_folder(final), ignore_errors=True)
            shutil.rmtree(final, ignore_errors=True)
            self.store.forget(record.id)
        for folder in (STAGING_FOLDER, RESTORE_FOLDER):
            shutil.rmtree(self.core.data_dir / folder, ignore_errors=True)
        self.scheduler.start()

    async def close(self) -> None:
        await self.scheduler.close()

    # --- requests ---------------------------------------------------------------------

    def new(self, ref: str, target: str, incremental: bool, rate_bps: int | None,
            retention: Retention | None = None, with_memory: bool = False) -> dict[str, Any]:
        """Queue a backup point of VM ``ref`` into folder ``target``; with ``retention``,
        then remove the VM's points in that folder the rules do not keep; with
        ``with_memory`` the point holds the VM's memory state (:mod:`.take`).

        :raises InvalidSetting: ``target`` is not an absolute path.
        :raises NotFound: the VM or the target folder does not exist.
        :raises Conflict: memory asked of a VM that has none (Off) or is between states
            (:func:`viridian.backup.memory.memory_plan`)."""
        live = self.core.find_vm(ref)
        request = TakeRequest(_target(target), incremental, rate_bps, with_memory)
        if with_memory:
            require_memory(live)
        self.core.check_disk_work(live, "back up the disks")

        async def run(job: Job) -> dict[str, Any]:
            tree = self.checkpoints.tree(live.record.id)
            record = await self.taker.take(live, tree, request, job)
            if retention is not None and retention.active:
                record["pruned"] = self.prune(live.record.id, request.target, retention)
            return record
        return self.core.jobs.submit("backup", live.record.id, live.record.name,
                                     run).to_dict()

    def new_all(self, target: str, incremental: bool, rate_bps: int | None,
                retention: Retention | None = None, with_memory: bool = False) -> dict[str, Any]:
        """Queue a point of every registered VM (module :mod:`.every`): the parent job.
        With ``with_memory`` each VM's point holds its memory when it has one when its
        turn comes; a VM that has none (Off, or between states) is backed up without it
        and its outcome says why (``memory_skipped``).

        :raises InvalidSetting, NotFound: as :meth:`new`, for the target."""
        _target(target)
        vms = [(r.id, r.name) for r in sorted(self.core.catalog.list_vms(),
                                               key=lambda r: r.name)]

        def new_point(vm_id: str) -> dict[str, Any]:
            skipped = None
            if with_memory:
                skipped = plan_memory(self.core.find_vm(vm_id)).reason or None
            queued = self.new(vm_id, target, incremental, rate_bps, retention,
                              with_memory and skipped is None)
            return {**queued, "memory_skipped": skipped} if with_memory else queued

        async def run(job: Job) -> dict[str, Any]:
            return await back_up_all(vms, new_point, self.core.jobs, job)
        return self.core.jobs.submit("backup-all", None, None, run).to_dict()

    def points(self, vm: str | None) -> list[dict[str, Any]]:
        records = self.store.good()
        if vm is not None:
            records = [r for r in records if vm in (r.vm_id, r.vm_name)]
        return [r.to_dict() for r in records]

    def show(self, backup_id: str) -> dict[str, Any]:
        record = self.store.get(backup_id)
        return {**record.to_dict(),
                "chain": [r.id for r in chain(self.store.good(), record.id)]}

    def verify(self, backup_id: str) -> dict[str, Any]:
        points = chain(self.store.good(), self.store.get(backup_id).id)

        async def run(job: Job) -> dict[str, Any]:
            return await verify_chain(points, job)
        return self.core.jobs.submit("backup-verify", None, None, run).to_dict()

    def restore(self, backup_id: str, name: str | None,
                to_time: str | None = None) -> dict[str, Any]:
        """Queue a restore (see :mod:`.restore` for the three ways); with ``to_time``,
        ``backup_id`` may name the VM and the point is the newest at or before that time
        (:mod:`viridian.backup.pick`; a time without offset is in the host's zone)."""
        record = self.store.get(backup_id) if to_time is None else \
            self._point_at(backup_id, to_time)
        for point in chain(self.store.good(), record.id):
            if not Path(point.folder).is_dir():
                raise NotFound(f"backup {point.id} (in the chain of {record.id}) is "
                               f"missing from {point.folder}; nothing was changed",
                               path=point.folder)
        if name is None and self.core.catalog.get_vm(record.vm_id) is not None:
            live = self.core.find_vm(record.vm_id)
            action = f"restore backup {record.id} into the disks"
            self.core.check_disk_work(live, action)  # now, and again when the job runs

            async def in_place(job: Job) -> dict[str, Any]:
                self.core.check_disk_work(live, action)
                return await restore_in_place(
                    live, self.checkpoints.tree(live.record.id), record, self.in_place, job)
            return self.core.jobs.submit("restore", live.record.id, live.record.name,
                                         in_place).to_dict()

        async def as_new(job: Job) -> dict[str, Any]:
            return await restore_as_new(self.core, record, name, name is not None, job)
        return self.core.jobs.submit("restore", None, name or record.vm_name,
                                     as_new).to_dict()

    def _point_at(self, ref: str, to_time: str) -> BackupRecord:
        when = parse_time(to_time, datetime.now().astimezone().tzinfo or UTC)
        good = self.store.good()
        of_point = [r for r in good if r.id == ref]
        vm_id = of_point[0].vm_id if of_point else self._vm_id(ref, good)
        names = [r.vm_name for r in good if r.vm_id == vm_id]
        return point_at(good, vm_id, names[-1] if names else ref, when)

    def _vm_id(self, ref: str, good: list[BackupRecord]) -> str:
        """The id of VM ``ref`` (registered, or removed but with points)."""
        with contextlib.suppress(NotFound):
            return self.core.find_vm(ref).record.id
        for record in reversed(good):
            if ref in (record.vm_id, record.vm_name):
                return record.vm_id
        raise NotFound(f"no backup point and no VM named {ref!r} (list points with "
                       "'viridian backup list'); nothing was changed", backup=ref)

    def prune(self, vm_id: str, target: Path, retention: Retention) -> list[str]:
        """Remove the VM's good points in ``target`` that ``retention`` does not keep
        (newest first, so no kept point loses a parent); their ids."""
        mine = [r for r in self.store.good() if r.vm_id == vm_id
                and Path(r.folder).parent.parent == target]
        removed = list(plan(mine, retention).remove)
        for point_id in removed:
            self.remove(point_id)
        return removed

    def set_schedule(self, ref: str, target: str, every_minutes: int, incremental: bool,
                     retention: Retention) -> dict[str, Any]:
        """Back VM ``ref`` up into ``target`` every ``every_minutes`` (replaces its
        schedule; the first run is due at once)."""
        live = self.core.find_vm(ref)
        schedule = Schedule(live.record.id, str(_target(target)), every_minutes, incremental,
                            retention.keep_daily, retention.keep_weekly)
        self.schedules.put(schedule)
        return {**schedule.to_dict(), "vm": live.record.name}

    def schedule_list(self) -> list[dict[str, Any]]:
        found = [(s, self.core.catalog.get_vm(s.vm_id)) for s in self.schedules.all()]
        return [{**s.to_dict(), "vm": vm.name if vm else None} for s, vm in found]

    def remove_schedule(self, ref: str) -> dict[str, Any]:
        live = self.core.find_vm(ref)
        self.schedules.remove(live.record.id)
        return {"removed": live.record.name}

    def remove(self, backup_id: str) -> dict[str, Any]:
        """Remove a point that no later point builds on: its row, then its folder."""
        record = self.store.get(backup_id)
        check_removable(self.store.all(), record.id)
        self.store.forget(record.id)
        shutil.rmtree(record.folder, ignore_errors=True)
        return {"removed": record.id, "folder": record.folder}


def _target(target: str) -> Path:
    if not Path(target).is_absolute():
        raise InvalidSetting("target", target, "an absolute path of an existing folder")
    if not Path(target).is_dir():
        raise NotFound(f"backup target {target} is not an existing folder; nothing was "
                       "changed", path=target)
    return Path(target)


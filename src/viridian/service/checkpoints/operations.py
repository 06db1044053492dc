"""Checkpoint operations of the service: take, apply, rename, delete — journaled.

Each operation is planned purely (:mod:`viridian.checkpoints`), its plan journaled in the
catalog before the first file is touched, and executed in idempotent steps, each
recorded when done. A service killed at any point finds the journal at its next start
and finishes the operation (roll forward) or, for a take whose disks QEMU has not yet
switched, undoes it (roll back). Files are deleted only after the catalog no longer
refers to them; files the catalog never referred to (a crash between creating a file and
journaling it cannot happen: plans come first) are swept at start.

Rules per VM state (Hyper-V's):
- take: Off (disks only), Running (disks + memory; the guest pauses for the memory
  save, then runs on), Paused (stays paused), Saved (disks + the saved state).
- apply: any settled state; the current state is discarded (``checkpoint_first`` takes
  a checkpoint of it first); the VM returns to the captured state.
- delete: any settled state; data is merged online with QEMU block jobs while the VM
  runs, with ``qemu-img`` otherwise.

Switching a running VM's disks (take): the journal says ``switching`` before QEMU or the
storage daemon is told to put the overlays on top, and from then on the disks "as QEMU
sees them" (:meth:`CheckpointsCapability.disk_view`) include the take's overlays — so a
storage daemon started again in that window (it crashed, or the service restarted and
found it gone) opens exactly what the switch made. Whether the switch happened is then
read from where the images are open (``query-named-block-nodes``), never assumed: a take
whose switch is seen is finished, one whose switch is not seen is undone
(docs/architecture.md, "Crash-safety rules").

Fault points (tests): ``$VIRIDIAN_FAULT_POINTS`` lists points (comma separated) where the
service kills itself with SIGKILL, e.g. ``take.switched`` or ``delete.step0``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from viridian.checkpoints import (
    MAX_CHECKPOINTS,
    CapturedState,
    Checkpoint,
    Commit,
    Image,
    Merge,
    NowDisk,
    Tree,
    check_name,
    default_name,
    disk_images,
    find_checkpoint,
    orphan_files,
    plan_apply,
    plan_delete,
    plan_take,
    slots_needing_overlays,
    unique_name,
)
from viridian.checkpoints.plan import Step, active_images, new_overlays, step_from_dict
from viridian.errors import Conflict, HostError
from viridian.model import DiskFormat, VMSettings, to_dict
from viridian.model.slots import DriveSlot, map_drives, slot_label
from viridian.model.states import Request, VMState
from viridian.qemu import blockjobs, images
from viridian.qemu.errors import QemuError
from viridian.service.capability import Capability, SettingsChange
from viridian.service.checkpoints.routes import install_checkpoint_routes
from viridian.service.checkpoints.store import CheckpointStore, JournalEntry
from viridian.service.context import ServiceContext
from viridian.service.jobs import Job, Operation
from viridian.service.storage.checks import memory_save_blocker
from viridian.service.vms.live import LiveVM

if TYPE_CHECKING:
    from viridian.service.integration_services.services import IntegrationServices

log = logging.getLogger(__name__)

SETTLED = {VMState.OFF: CapturedState.OFF, VMState.RUNNING: CapturedState.RUNNING,
           VMState.PAUSED: CapturedState.PAUSED, VMState.SAVED: CapturedState.SAVED}
MEMORY_SUFFIX = ".vmstate"
STANDARD, PRODUCTION = "standard", "production"
CHECKPOINT_TYPES = (STANDARD, PRODUCTION)
"""Hyper-V's checkpoint types a take may ask for (``ProductionOnly`` is ``production``
here: a production checkpoint never needs the fallback)."""
FOLDER_NAME = "checkpoints"
SWITCHING_STEPS = frozenset({"switching", "switched", "memory"})
"""Take steps in which Now's disks are (or may be) the take's overlays, not yet committed."""


def fault(point: str) -> None:
    """Die here (SIGKILL, no clean-up) when a test asked for it."""
    if point in os.environ.get("VIRIDIAN_FAULT_POINTS", "").split(","):
        log.warning("fault point %s: killing the service", point)
        os.kill(os.getpid(), signal.SIGKILL)


_HA_REFUSAL = (
    "VM '{vm}' cannot {what}: a highly available VM may be restarted on another host of "
    "the cluster, and checkpoints are kept in one host's catalog, so that host would run "
    "it without them (docs/architecture.md, \"Failover cluster\"); ")


class CheckpointsCapability(Capability):
    """The checkpoint part of the VMMS; one per service. Freezes guest file systems for
    production checkpoints through the integration services it is given."""

    name = "checkpoints"

    def __init__(self, context: ServiceContext, integration: IntegrationServices) -> None:
        self.context = context
        self.integration = integration
        self.store = CheckpointStore(context.catalog)

    def install_routes(self, app: FastAPI) -> None:
        install_checkpoint_routes(app, self, self.context.jobs)

    # --- facts ------------------------------------------------------------------------

    def folder(self, live: LiveVM) -> Path:
        custom = live.record.settings.checkpoint_folder
        return Path(custom) if custom else Path(live.record.folder) / FOLDER_NAME

    def tree_view(self, ref: str) -> dict[str, Any]:
        """The checkpoint tree of VM ``ref`` as the API shows it."""
        live = self.context.find_vm(ref)
        tree = self.store.tree(live.record.id)
        return {"vm": live.record.name, "vm_id": live.record.id,
                "now_parent_id": tree.now_parent, "count": len(tree.checkpoints),
                "limit": MAX_CHECKPOINTS, "folder": str(self.folder(live)),
                "now_disks": {slot: now.image.path for slot, now in tree.now_disks.items()},
                "checkpoints": [_public(cp, tree) for cp in tree.checkpoints]}

    def disk_view(self, vm_id: str, settings: VMSettings) -> VMSettings:
        """``settings`` with each hard disk replaced by the image Now writes into (a take
        switching the disks counts with its overlays: see the module docs)."""
        active = active_images(_with_switching(self.store.tree(vm_id),
                                               self.store.journal(vm_id)), settings)
        if not any(image.owned for image in active.values()):
            return settings
        return map_drives(settings, lambda slot: _pointed(slot, active.get(slot.id)))

    # --- hooks the manager calls --------------------------------------------------------

    def attach(self, live: LiveVM) -> None:
        vm_id = live.record.id
        live.add_disk_view(self.disk_view)
        journal = self.store.journal(vm_id)
        live.keep_paused = journal is not None and journal.op == "take"

    async def prepare_start(self, live: LiveVM) -> None:
        """Before QEMU opens the disks: no slot may write into an image a checkpoint
        reads (a disk re-attached after applying an older checkpoint gets an overlay)."""
        tree, settings = self.store.tree(live.record.id), live.record.settings
        slots = slots_needing_overlays(tree, settings)
        if not slots:
            return
        await live.end_storage_daemon()  # it may hold the images the overlays go on
        active, disks = active_images(tree, settings), disk_images(settings)
        added = new_overlays({s: (disks[s].path, active[s]) for s in slots}, self._namer(live))
        for now in added.values():
            await _create(now)
        tree = replace(tree, now_disks={**tree.now_disks, **added})
        with self.store.catalog.transaction() as db:
            self.store.put_tree(db, live.record.id, tree)

    def check_settings(self, change: SettingsChange) -> None:
        """Refuse changes that would orphan checkpoint data (Conflict, nothing changed)."""
        if change.vm is None or change.old is None:
            return
        live, old, new = change.vm, change.old, change.new
        tree = self.store.tree(live.record.id)
        if not tree.checkpoints and not tree.now_disks:
            return
        if new.high_availability.ha and not old.high_availability.ha:
            raise Conflict(_HA_REFUSAL.format(vm=live.record.name, what="be made highly "
                                              "available while it has checkpoints") +
                           "delete them first (viridian checkpoint remove VM NAME --subtree); "
                           "nothing was changed", vm=live.record.name)
        if old.checkpoint_folder != new.checkpoint_folder:
            raise Conflict(
                f"cannot move the checkpoint folder of VM '{live.record.name}' while it has "
                f"{len(tree.checkpoints)} checkpoints; delete them first; nothing was changed",
                vm=live.record.name)
        old_disks, new_disks = disk_images(old), disk_images(new)
        for slot, now in tree.now_disks.items():
            if _path_at(old_disks, slot) == now.base and _path_at(new_disks, slot) != now.base:
                raise Conflict(
                    f"cannot remove or replace the hard disk at {slot_label(slot)} "
                    f"of VM '{live.record.name}': its data since the last checkpoint is in "
                    f"{now.image.path} and checkpoints depend on it; delete the VM's "
                    "checkpoints first (viridian checkpoint remove VM NAME --subtree); "
                    "nothing was changed", vm=live.record.name, slot=slot)

    def check_removal(self, live: LiveVM, delete_files: bool) -> None:
        tree = self.store.tree(live.record.id)
        if (tree.checkpoints or tree.now_disks) and not delete_files:
            raise Conflict(
                f"VM '{live.record.name}' has {len(tree.checkpoints)} checkpoints whose files "
                "would be left behind; delete them first (viridian checkpoint remove VM NAME "
                "--subtree) or remove the VM with its files (--delete-files); nothing was "
                "changed", vm=live.record.name, checkpoints=len(tree.checkpoints))

    def removed(self, live: LiveVM, delete_files: bool) -> None:
        """The VM was removed with its files: delete every checkpoint file."""
        if not delete_files:
            return
        tree = self.store.tree(live.record.id)
        for path in _owned_files(tree):
            Path(path).unlink(missing_ok=True)
        self.store.forget_vm(live.record.id)

    # --- requests (each becomes a job on the VM's queue) --------------------------------

    def take(self, ref: str, name: str | None, notes: str,
             kind: str = STANDARD) -> dict[str, Any]:
        """Take a checkpoint; ``kind`` is Hyper-V's checkpoint type: ``standard`` (with
        memory, or disks only when QEMU cannot save the memory) or ``production`` (disks
        only, file systems frozen; docs/api.md, "Checkpoints")."""
        live = self._idle(ref, "take a checkpoint of")
        if live.record.settings.high_availability.ha:
            raise Conflict(_HA_REFUSAL.format(vm=live.record.name, what="have checkpoints") +
                           "turn high availability off first (viridian vm set VM --ha off); "
                           "nothing was changed", vm=live.record.name)
        wanted = check_name(name) if name is not None else None
        self._check_room(live, wanted)

        async def run(job: Job) -> dict[str, Any]:
            vm_state = live.state
            cp = await self._take(live, job, wanted, notes, production=kind == PRODUCTION)
            return _taken(cp, self.store.tree(live.record.id), vm_state)
        return self._submit("checkpoint", live, run)

    def apply(self, ref: str, cp_ref: str, checkpoint_first: bool) -> dict[str, Any]:
        live = self._idle(ref, "apply a checkpoint to")
        target = find_checkpoint(self.store.tree(live.record.id), live.record.name, cp_ref)
        if checkpoint_first:
            self._check_room(live, None)

        async def run(job: Job) -> dict[str, Any]:
            taken = None
            if checkpoint_first:
                taken = await self._take(live, job, None, "taken before applying "
                                         f"'{target.name}'")
            await self._apply(live, job, target.id)
            tree = self.store.tree(live.record.id)
            return {"applied": _public(tree.get(target.id), tree),
                    "checkpoint_taken": _public(taken, tree) if taken else None,
                    "state": live.state.value}
        return self._submit("checkpoint_apply", live, run)

    def remove(self, ref: str, cp_ref: str, subtree: bool) -> dict[str, Any]:
        live = self._idle(ref, "delete a checkpoint of")
        target = find_checkpoint(self.store.tree(live.record.id), live.record.name, cp_ref)

        async def run(job: Job) -> dict[str, Any]:
            removed = await self._delete(live, job, target.id, subtree)
            return {"removed": removed}
        return self._submit("checkpoint_delete", live, run)

    async def rename(self, ref: str, cp_ref: str, name: str | None,
                     notes: str | None) -> dict[str, Any]:
        live = self.context.find_vm(ref)
        async with self.context.jobs.queue_for(live.record.id):
            tree = self.store.tree(live.record.id)
            cp = find_checkpoint(tree, live.record.name, cp_ref)
            changed = cp
            if name is not None:
                changed = replace(changed, name=check_name(name))
                unique_name(tree, changed.name, exclude=cp.id)
            if notes is not None:
                changed = replace(changed, notes=notes)
            with self.store.catalog.transaction() as db:
                self.store.put_checkpoint(db, live.record.id, changed)
            return _public(changed, self.store.tree(live.record.id))

    def _idle(self, ref: str, what: str) -> LiveVM:
        live = self.context.find_vm(ref)
        if self.context.jobs.busy(live.record.id):
            raise Conflict(f"cannot {what} VM '{live.record.name}' now: a job is running on "
                           "it; wait for it to finish (viridian job list); nothing was changed",
                           vm=live.record.name)
        _require_settled(live, what)
        return live

    def _check_room(self, live: LiveVM, wanted: str | None) -> None:
        tree = self.store.tree(live.record.id)
        if len(tree.checkpoints) >= MAX_CHECKPOINTS:
            raise Conflict(
                f"VM '{live.record.name}' already has {MAX_CHECKPOINTS} checkpoints, the most "
                "a VM can have; delete some first (viridian checkpoint remove); nothing was "
                "changed", vm=live.record.name, limit=MAX_CHECKPOINTS)
        if wanted is not None:
            unique_name(tree, wanted)

    def _submit(self, kind: str, live: LiveVM, run: Operation) -> dict[str, Any]:
        return self.context.jobs.submit(kind, live.record.id, live.record.name, run).to_dict()

    def _namer(self, live: LiveVM) -> Any:
        folder = self.folder(live)

        def name(slot: str, below: Image) -> str:
            stem = Path(below.path).stem.split("_")[0][:40] or "disk"
            return str(folder / f"{stem}_{slot.replace(':', '-')}_{uuid.uuid4().hex[:12]}.qcow2")
        return name

    # --- take -------------------------------------------------------------------------

    async def _take(self, live: LiveVM, job: Job, name: str | None, notes: str, *,
                    production: bool = False) -> Checkpoint:
        _require_settled(live, "take a checkpoint of")
        self._check_room(live, None)
        await live.end_storage_daemon()  # offline: qemu-img works on the files (Off, Saved)
        tree = self.store.tree(live.record.id)
        when = datetime.now().astimezone()
        name = name or _free_default_name(tree, live.record.name, when)
        unique_name(tree, name)
        folder = self.folder(live)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        state = SETTLED[live.state]
        captured, why = state, memory_save_blocker(live.record.settings,
                                                   live.storage_daemon_serves)
        if production:
            why = "production checkpoint asked for"
        if why and state in (CapturedState.RUNNING, CapturedState.PAUSED):
            captured = CapturedState.OFF  # Hyper-V's "production checkpoint"
            notes = (notes + f" [production checkpoint: disks only, file systems frozen "
                     f"by the guest agent when available; {why}]").strip()
        layers, now_disks = plan_take(tree, live.record.settings, self._namer(live))
        cp_id = str(uuid.uuid4())
        cp = Checkpoint(cp_id, name, tree.now_parent, when.isoformat(timespec="seconds"),
                        captured, to_dict(live.record.settings), layers,
                        str(folder / f"{cp_id}{MEMORY_SUFFIX}") if captured.has_memory
                        else None, notes, self.store.next_seq(live.record.id))
        plan = {"checkpoint": cp.to_dict(), "vm_state": state.value,
                "now_disks": {s: n.to_dict() for s, n in now_disks.items()}}
        entry = self.store.begin(live.record.id, "take", plan)
        fault("take.planned")
        job.report(5, "creating checkpoint disks")
        return await self._continue_take(live, entry, job)

    async def _continue_take(self, live: LiveVM, entry: JournalEntry, job: Job | None) -> \
            Checkpoint:
        cp = Checkpoint.from_dict(entry.plan["checkpoint"])
        now_disks = {s: NowDisk.from_dict(n) for s, n in entry.plan["now_disks"].items()}
        if entry.step == "planned":
            for now in now_disks.values():
                await _create(now)
            entry = self.store.step(entry, "overlays")
            fault("take.overlays")
        vm_state = CapturedState(entry.plan["vm_state"])
        live_disks = vm_state in (CapturedState.RUNNING, CapturedState.PAUSED)
        if entry.step == "overlays" and live_disks:
            try:
                worker = live.require_worker()
                if cp.memory_file is None:
                    await self._freeze(live)
                elif vm_state is CapturedState.RUNNING:
                    await worker.pause()
                fault("take.paused")
                entry = self.store.step(entry, "switching")
                fault("take.switching")
                await blockjobs.snapshot(await worker.block_monitor(), [
                    (cp.disks[slot].path, now.image.path, _node_name(cp.id, slot))
                    for slot, now in now_disks.items()])
                fault("take.snapshotted")
            except BaseException:
                if not await _switched(live, now_disks):  # e.g. QEMU refused
                    await self._undo_take(live, entry)
                    raise
                log.warning("VM %s: the disks switched although the switch reported an "
                            "error; the checkpoint goes on", live.record.name)
            entry = self.store.step(entry, "switched")
            fault("take.switched")
        if entry.step == "switched" and cp.memory_file is None:
            await self._thaw(live)
            entry = self.store.step(entry, "memory")
        if entry.step == "switched":
            assert cp.memory_file is not None
            if job:
                job.report(20, "saving memory")
            try:
                await _save_memory(live, Path(cp.memory_file), job)
            except QemuError as err:  # the disks switched already: keep them, crash-consistent
                log.error("VM %s: memory state of checkpoint %s not saved: %s",
                          live.record.name, cp.name, err)
                cp = replace(cp, state=CapturedState.OFF, memory_file=None,
                             notes=(cp.notes + f" (memory state not saved: {err})").strip())
                entry = JournalEntry(entry.vm_id, entry.op, entry.step,
                                     {**entry.plan, "checkpoint": cp.to_dict()})
            entry = self.store.step(entry, "memory")
            fault("take.memory")
        elif entry.step == "overlays" and vm_state is CapturedState.SAVED:
            assert cp.memory_file is not None
            _link(live.saved_state, Path(cp.memory_file))
        if entry.step != "committed":
            tree = self.store.tree(live.record.id)
            after = Tree((*tree.checkpoints, cp), cp.id, now_disks)
            with self.store.catalog.transaction() as db:
                self.store.put_tree(db, live.record.id, after)
                entry = self.store.step(entry, "committed", db)
            fault("take.committed")
        if vm_state is CapturedState.RUNNING and live.worker is not None:
            if cp.memory_file is None:
                await self._thaw(live)
            elif await live.worker.status() != "running":
                await live.worker.resume()
        self.store.finish(live.record.id)
        live.keep_paused = False
        return cp

    async def _undo_take(self, live: LiveVM, entry: JournalEntry) -> None:
        """Before QEMU switched disks nothing but new files exists: delete them."""
        cp = Checkpoint.from_dict(entry.plan["checkpoint"])
        for now in entry.plan["now_disks"].values():
            Path(now["image"]["path"]).unlink(missing_ok=True)
        if cp.memory_file:
            for path in (Path(cp.memory_file), Path(cp.memory_file + ".partial")):
                path.unlink(missing_ok=True)
        if CapturedState(entry.plan["vm_state"]) is CapturedState.RUNNING and \
                live.worker is not None:
            if await live.worker.status() != "running":
                await live.worker.resume()
            if cp.memory_file is None:  # a production checkpoint froze the file systems
                await self._thaw(live)
        self.store.finish(live.record.id)
        live.keep_paused = False

    async def _freeze(self, live: LiveVM) -> None:
        """Application-consistent disks for a production checkpoint, when the guest agent
        and the backup integration service allow; crash-consistent otherwise."""
        if not live.record.settings.integration_services.backup:
            return
        try:
            await self.integration.freeze(live)
        except Exception as err:  # no agent: the snapshot is crash-consistent
            log.info("VM %s: file systems not frozen for the checkpoint: %s",
                     live.record.name, err)

    async def _thaw(self, live: LiveVM) -> None:
        if live.worker is None:
            return
        with contextlib.suppress(Exception):
            await self.integration.thaw(live)

    # --- apply ------------------------------------------------------------------------

    async def _apply(self, live: LiveVM, job: Job, cp_id: str) -> None:
        _require_settled(live, "apply a checkpoint to")
        tree = self.store.tree(live.record.id)
        cp = tree.get(cp_id)
        plan = {"checkpoint_id": cp.id,
                "now_disks": {s: n.to_dict() for s, n in
                              plan_apply(cp, self._namer(live)).items()},
                "old_now": [n.image.path for n in tree.now_disks.values()]}
        entry = self.store.begin(live.record.id, "apply", plan)
        fault("apply.planned")
        await self._continue_apply(live, entry, job)

    async def _continue_apply(self, live: LiveVM, entry: JournalEntry, job: Job) -> None:
        tree = self.store.tree(live.record.id)
        cp = tree.get(entry.plan["checkpoint_id"])
        now_disks = {s: NowDisk.from_dict(n) for s, n in entry.plan["now_disks"].items()}
        if entry.step == "planned":
            if live.worker is not None:
                job.report(10, "turning off the VM's current state")
                await live.perform(Request.STOP, job, 0)
            await live.end_storage_daemon()  # the applied disks get a daemon of their own
            fault("apply.stopped")
            job.report(30, "creating disks")
            for now in now_disks.values():
                await _create(now)
            if cp.memory_file:
                _link(Path(cp.memory_file), live.saved_state)
            else:
                live.saved_state.unlink(missing_ok=True)
            fault("apply.overlays")
            state = VMState.SAVED if cp.memory_file else VMState.OFF
            settings = cp.vm_settings(live.record.name)
            record = replace(live.record, settings=settings, state=state, status=None)
            with self.store.catalog.transaction() as db:
                self.context.catalog.update_vm(record, db)
                self.store.put_tree(db, live.record.id, Tree(tree.checkpoints, cp.id, now_disks))
                entry = self.store.step(entry, "committed", db)
            live.record, live.state = record, state
            self.context.settings_committed(live)  # vm.json and the others follow
            fault("apply.committed")
        keep = {n.image.path for n in now_disks.values()}
        for path in entry.plan["old_now"]:
            if path not in keep:
                Path(path).unlink(missing_ok=True)
        try:
            if cp.state in (CapturedState.RUNNING, CapturedState.PAUSED) and \
                    live.state is VMState.SAVED:
                job.report(60, "restoring the checkpoint's memory")
                live.restore_paused = cp.state is CapturedState.PAUSED
                self.context.admit(live)
                await live.perform(Request.START, job, 0)
        finally:  # applied either way; a failed restore leaves the VM Saved (start it later)
            live.restore_paused = False
            self.store.finish(live.record.id)

    # --- delete -----------------------------------------------------------------------

    async def _delete(self, live: LiveVM, job: Job, cp_id: str, subtree: bool) -> list[str]:
        _require_settled(live, "delete a checkpoint of")
        await live.end_storage_daemon()  # offline merges run in qemu-img
        plan = plan_delete(self.store.tree(live.record.id), cp_id, subtree=subtree)
        entry = self.store.begin(live.record.id, "delete", {
            "removed": [cp.name for cp in plan.removed],
            "steps": [step.to_dict() for step in plan.steps],
            "files": list(plan.files),
            "tree": _tree_dict(plan.tree)})
        fault("delete.planned")
        await self._continue_delete(live, entry, job)
        return [cp.name for cp in plan.removed]

    async def _continue_delete(self, live: LiveVM, entry: JournalEntry, job: Job | None) -> None:
        steps = [step_from_dict(d) for d in entry.plan["steps"]]
        if entry.step != "committed":
            for index, step in enumerate(steps):
                def progress(fraction: float, index: int = index) -> None:
                    if job:
                        job.report(5 + 85 * (index + fraction) / len(steps),
                                   f"merging ({index + 1} of {len(steps)})")
                await self._run_step(live, step, progress)
                fault(f"delete.step{index}")
            with self.store.catalog.transaction() as db:
                self.store.put_tree(db, live.record.id, _tree_from(entry.plan["tree"]))
                entry = self.store.step(entry, "committed", db)
            fault("delete.committed")
        for path in entry.plan["files"]:
            if live.worker is not None:
                with contextlib.suppress(QemuError):
                    await blockjobs.release_image(await live.worker.block_monitor(), path)
            Path(path).unlink(missing_ok=True)
        self.store.finish(live.record.id)

    async def _run_step(self, live: LiveVM, step: Step,
                        progress: Callable[[float], None]) -> None:
        worker = live.worker
        block = await worker.block_monitor() if worker else None
        open_images = await blockjobs.image_nodes(block) if block else {}
        if isinstance(step, Merge):
            if step.target in open_images:
                assert worker is not None and block is not None
                await _reactivate(worker)
                await blockjobs.stream(block, _job_id("merge", step.target),
                                       step.target, step.new_backing, progress)
            elif await images.backing_of(step.target) != step.new_backing:
                await images.rebase(step.target, step.new_backing, step.new_backing_format)
        elif isinstance(step, Commit):
            if step.top in open_images:
                assert worker is not None and block is not None
                await _reactivate(worker)
                await blockjobs.commit_active(block, _job_id("commit", step.top),
                                              step.top, step.base, progress)
            elif Path(step.top).exists():
                await images.commit(step.top)

    # --- recovery ---------------------------------------------------------------------

    async def recover(self, live: LiveVM) -> None:
        """After a service (re)start and the VM's reconcile: finish or undo its journaled
        operation, then delete files of the checkpoint folder nothing refers to."""
        entry = self.store.journal(live.record.id)
        if entry is not None:
            await live.end_storage_daemon()  # only when QEMU is gone: files change offline
            log.warning("VM %s: finishing the interrupted checkpoint %s (step %s)",
                        live.record.name, entry.op, entry.step)
            try:
                await self._recover_entry(live, entry)
            except Exception:
                log.exception("VM %s: recovering checkpoint %s failed; will retry at the "
                              "next start", live.record.name, entry.op)
                return
        self.sweep(live)

    async def _recover_entry(self, live: LiveVM, entry: JournalEntry) -> None:
        job = Job(f"recovery-{uuid.uuid4()}", "recovery", live.record.id, live.record.name)
        if entry.op == "take":
            await self._recover_take(live, entry, job)
        elif entry.op == "apply":
            await self._continue_apply(live, entry, job)
        else:
            await self._continue_delete(live, entry, job)

    async def _recover_take(self, live: LiveVM, entry: JournalEntry, job: Job) -> None:
        now_disks = {s: NowDisk.from_dict(n) for s, n in entry.plan["now_disks"].items()}
        if entry.step in ("planned", "overlays", "switching") and \
                await _switched(live, now_disks):  # switched, the journal step not recorded
            entry = self.store.step(entry, "switched")
        if entry.step == "switching":
            entry = self.store.step(entry, "overlays")  # not switched: undone below
        if entry.step == "switched" and live.worker is None:
            await self._undo_take(live, entry)  # QEMU ended while paused: no guest write since
            return
        if entry.step in ("planned", "overlays"):
            await self._undo_take(live, entry)
            return
        await self._continue_take(live, entry, job)

    def sweep(self, live: LiveVM) -> None:
        folder = self.folder(live)
        if not folder.is_dir() or self.store.journal(live.record.id) is not None:
            return
        present = [str(p) for p in folder.iterdir() if p.is_file()]
        for path in orphan_files(present, self.store.tree(live.record.id)):
            log.warning("VM %s: removing orphaned checkpoint file %s", live.record.name, path)
            Path(path).unlink(missing_ok=True)


# --- helpers ---------------------------------------------------------------------------


def _require_settled(live: LiveVM, what: str) -> None:
    if live.state not in SETTLED:
        raise Conflict(f"cannot {what} VM '{live.record.name}' while it is {live.state.value}; "
                       "allowed in states Off, Running, Paused and Saved; nothing was changed",
                       vm=live.record.name, state=live.state.value)


def _free_default_name(tree: Tree, vm_name: str, when: datetime) -> str:
    base = default_name(vm_name, when)
    taken = {cp.name for cp in tree.checkpoints}
    name, n = base, 2
    while name in taken:
        name, n = f"{base} ({n})", n + 1
    return name


def _public(cp: Checkpoint, tree: Tree) -> dict[str, Any]:
    return {"id": cp.id, "name": cp.name, "parent_id": cp.parent_id,
            "children": [c.id for c in tree.children(cp.id)], "created_at": cp.created_at,
            "notes": cp.notes, "state": cp.state.value, "has_memory": cp.memory_file is not None,
            "memory_file": cp.memory_file,
            "is_now_parent": tree.now_parent == cp.id,
            "disks": {slot: image.path for slot, image in cp.disks.items()},
            "memory_mb": cp.settings.get("memory", {}).get("startup_mb"),
            "processors": cp.settings.get("processor", {}).get("count")}


def _taken(cp: Checkpoint, tree: Tree, vm_state: VMState) -> dict[str, Any]:
    """The result of a take: the checkpoint, plus the state the VM was in
    (``vm_state``) and whether it was a production checkpoint (disks only, taken of a
    Running or Paused VM — asked for, or its memory could not be saved; its ``state`` is
    Off because applying it leaves the VM Off)."""
    production = cp.memory_file is None and vm_state in (VMState.RUNNING, VMState.PAUSED)
    return {**_public(cp, tree), "vm_state": vm_state.value, "production": production}


def _tree_dict(tree: Tree) -> dict[str, Any]:
    return {"checkpoints": [cp.to_dict() for cp in tree.checkpoints],
            "now_parent": tree.now_parent,
            "now_disks": {s: n.to_dict() for s, n in tree.now_disks.items()}}


def _tree_from(d: dict[str, Any]) -> Tree:
    return Tree(tuple(Checkpoint.from_dict(c) for c in d["checkpoints"]), d["now_parent"],
                {s: NowDisk.from_dict(n) for s, n in d["now_disks"].items()})


def _owned_files(tree: Tree) -> set[str]:
    files = {cp.memory_file for cp in tree.checkpoints if cp.memory_file}
    files |= {img.path for cp in tree.checkpoints for img in cp.disks.values() if img.owned}
    files |= {n.image.path for n in tree.now_disks.values()}
    return files


def _path_at(disks: dict[str, Image], slot: str) -> str | None:
    image = disks.get(slot)
    return image.path if image else None


def _pointed(slot: DriveSlot, image: Image | None) -> DriveSlot:
    """``slot`` pointing at ``image`` when a checkpoint owns it (its overlay)."""
    if image is None or not image.owned or not slot.path:
        return slot
    return replace(slot, path=image.path, format=DiskFormat(image.format))


def _with_switching(tree: Tree, journal: JournalEntry | None) -> Tree:
    """``tree`` with the overlays of a take that is switching the disks as Now's."""
    if journal is None or journal.op != "take" or journal.step not in SWITCHING_STEPS:
        return tree
    taking = {s: NowDisk.from_dict(n) for s, n in journal.plan["now_disks"].items()}
    return replace(tree, now_disks={**tree.now_disks, **taking})


async def _switched(live: LiveVM, now_disks: dict[str, NowDisk]) -> bool:
    """Whether the running VM's disks are on ``now_disks``' overlays (open where the
    images are: the storage daemon or QEMU); False when QEMU is not running or cannot
    tell (a daemon that does not answer is started again by its keeper, on the view)."""
    if live.worker is None or not now_disks:
        return False
    try:
        nodes = await blockjobs.image_nodes(await live.worker.block_monitor())
    except QemuError as err:
        log.warning("VM %s: cannot tell whether the disks switched: %s", live.record.name, err)
        return False
    return any(now.image.path in nodes for now in now_disks.values())


def _node_name(cp_id: str, slot: str) -> str:
    return f"cp{cp_id[:8]}-{slot.replace(':', '-')}"


def _job_id(kind: str, path: str) -> str:
    return f"{kind}-{uuid.uuid5(uuid.NAMESPACE_URL, path).hex[:12]}"


async def _create(now: NowDisk) -> None:
    assert now.image.backing is not None and now.image.backing_format is not None
    await images.create_overlay(Path(now.image.path), now.image.backing, now.image.backing_format)


def _link(source: Path, target: Path) -> None:
    """``target`` becomes another name of ``source``. Saved-state files are never written
    in place (a save writes ``.partial`` and renames it), so sharing the inode between a
    checkpoint and the VM's saved state is safe and costs no copy."""
    if not source.is_file():
        raise HostError(f"memory state {source} is missing", path=str(source))
    target.unlink(missing_ok=True)
    os.link(source, target)


async def _save_memory(live: LiveVM, path: Path, job: Job | None) -> None:
    worker = live.require_worker()
    partial = path.with_name(path.name + ".partial")
    await worker.monitor.cancel_migration()
    await worker.monitor.save_to_file(
        partial, progress=(lambda f: job.report(20 + f * 60, "saving memory")) if job else None)
    os.replace(partial, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


async def _reactivate(worker: Any) -> None:
    """After a memory save, QEMU (run state ``postmigrate``) has handed its images over
    as a migration source does; a paused VM's images become usable again only through
    ``cont``. The guest then runs for the moment between ``cont`` and ``stop``."""
    if await worker.status() == "postmigrate":
        await worker.resume()
        await worker.pause()


__all__ = ["CheckpointsCapability", "fault"]

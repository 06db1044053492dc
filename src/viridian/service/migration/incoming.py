"""The target's side of a move (docs/architecture.md, "Migration"; docs/api.md,
"Migration").

``prepare`` checks that the VM can live here (its id and name are free, its folder and
disks are visible from this host, its settings are valid here) and, for a live move,
launches its QEMU paused with ``-incoming defer`` listening on a free TCP port of the
address the source reached us at. Nothing is registered yet. ``commit`` runs the ownership
hand-over, then registers the VM and lets it run: a live move resumes the arrived guest, a
quick move restores the saved state (a failed restore unregisters it again, files kept).
``abort`` (or the source never committing within :data:`PREPARED_TTL_S`, or the incoming
QEMU ending) ends the QEMU and forgets the VM. A committed move cannot be aborted.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import os
import shutil
import socket
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viridian.errors import (
    BadRequest,
    Conflict,
    HostError,
    InvalidSetting,
    NotFound,
    ViridianError,
)
from viridian.model import VMSettings
from viridian.model.slots import drive_slots
from viridian.model.states import Request, VMState
from viridian.qemu.errors import WorkerGone
from viridian.qemu.migration import LiveTuning, listen, wait_arrived
from viridian.qemu.migration_storage import export_for_incoming, stop_exports
from viridian.qemu.render.storage import needs_storage_daemon
from viridian.qemu.runtime_paths import STORAGE_FOLDER_SUFFIX, RuntimePaths
from viridian.qemu.storage_daemon import remove_storage_folder
from viridian.qemu.worker import Worker, remove_runtime_folder
from viridian.service.catalog import VMRecord
from viridian.service.migration.bodies import IncomingRequest, Mode
from viridian.service.migration.host import MigrationHost
from viridian.service.migration.ownership import Holder, Ownership

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

PREPARED_TTL_S = 900.0
"""A prepared move the source neither commits nor aborts in this time is given up."""
ARRIVAL_TIMEOUT_S = 60.0
SOURCE_CHECK_S = 2.0
"""How often a prepared move of a cluster's HA VM checks that its source still owns it."""
COMMITTED_KEPT_S = 600.0
"""A committed move is remembered this long, so a source whose commit answer was lost
learns (commit again, or abort: 409) that the VM is here."""


@dataclass(eq=False)
class IncomingMove:
    """One prepared move into this host."""

    id: str
    mode: Mode
    live: LiveVM
    source: Holder
    uri: str | None = None
    committed: bool = False
    watch: asyncio.Task[None] | None = field(default=None, repr=False)
    copies: dict[str, str] = field(default_factory=dict)
    """Shared-nothing: source path → the new image here (made for this move)."""
    nbd: dict[str, Any] | None = None
    made_folder: bool = False
    handed_over: bool = False
    older: LiveVM | None = field(default=None, repr=False)
    """This host's older registration of the VM, replaced at the commit (kept until then:
    a refused or aborted move leaves it registered)."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "mode": self.mode, "vm": self.live.record.name,
                "vm_id": self.live.record.id, "uri": self.uri, "source": self.source.host,
                "committed": self.committed, "nbd": self.nbd}


class Incoming:
    """The moves into this host, by id."""

    def __init__(self, host: MigrationHost, ownership: Ownership) -> None:
        self.host = host
        self.ownership = ownership
        self._moves: dict[str, IncomingMove] = {}

    def list(self) -> list[dict[str, Any]]:
        """The moves prepared and not committed yet."""
        return [move.to_dict() for move in self._moves.values() if not move.committed]

    async def prepare(self, body: IncomingRequest, listen_host: str) -> dict[str, Any]:
        """Check and get ready; a live move's answer holds the ``uri`` to migrate to.

        :raises Conflict: a VM with this id or name is registered here.
        :raises InvalidSetting: the folder or a disk is not visible here; settings invalid.
        :raises AdmissionRefused: not enough memory here (live moves).
        :raises QemuStartError: the incoming QEMU did not start (nothing runs).
        """
        older = await self._older_copy(body)
        self._check_free(body, older)
        copies = self._local_copies(body)
        folder = self.host.data_dir / "vms" / body.vm.id
        made_folder = bool(copies) and not folder.exists()
        if made_folder:
            folder.mkdir(mode=0o700)
        try:
            await _create_images(copies, body.disks or {}, body.vm.settings)
            record = self._checked_record(body, copies, replacing=older is not None)
            if body.mode == "live" and needs_storage_daemon(record.settings, self.host.host):
                raise Conflict(f"VM '{record.name}' would be served by a storage daemon on "
                               "this host (VHD/VHDX disks): it can move here quick only (QEMU "
                               "7.2 cannot hand an open image between daemons); nothing was "
                               "changed", vm=record.name)
            live = self.host.stage_incoming(record)
        except BaseException:
            _remove_made(copies, folder if made_folder else None)
            raise
        move = IncomingMove(str(uuid.uuid4()), body.mode, live,
                            Holder(body.source, body.source_lease), copies=copies,
                            made_folder=made_folder, older=older)
        self.ownership.moving(record.id, _ha(live), True)
        try:
            self.host.admit(live)
            if body.mode == "live":
                await self._listen(move, listen_host, LiveTuning(postcopy=body.postcopy))
            if copies:
                await self._export(move, listen_host)
        except BaseException:
            await self._drop(move)
            raise
        self._moves[move.id] = move
        move.watch = asyncio.get_running_loop().create_task(self._expire(move))
        return move.to_dict()

    def _local_copies(self, body: IncomingRequest) -> dict[str, str]:
        """Shared-nothing: where each hard disk goes here (``<data>/vms/<id>/<name>``)."""
        if not body.with_storage:
            return {}
        if body.mode != "live" or not body.disks:
            raise BadRequest("with_storage needs a live move and the disks' sizes; nothing "
                             "was changed")
        folder = self.host.data_dir / "vms" / body.vm.id
        copies = {old: str(folder / Path(old).name) for old in body.disks}
        if len(set(copies.values())) != len(copies):
            raise Conflict("two disks of the VM have the same file name; nothing was changed")
        for new in copies.values():
            if Path(new).exists():
                raise Conflict(f"{new} exists on this host already; nothing was changed",
                               path=new)
        return copies

    async def _older_copy(self, body: IncomingRequest) -> LiveVM | None:
        """This host's older registration of the HA VM that moves here, which a move may
        replace (docs/architecture.md, "Migration"): the VM ran here before it failed
        over, or this host's cluster agent registered it for a start another host won.
        Only the same VM — id, name and folder (shared storage) — Off with no QEMU, no
        job and no checkpoints, owned by another host in this host's cluster."""
        vm = body.vm
        known = self.host.vms().get(vm.id)
        if known is None or body.with_storage or known.record.name != vm.name or \
                not _ha(known) or not _same_folder(known.record.folder, vm.folder):
            return None
        if known.worker is not None or known.state is not VMState.OFF or \
                self.host.jobs.busy(vm.id) or self.host.has_checkpoints(vm.id):
            return None
        me = self.ownership.me()
        if not me.lease or await self.ownership.holds(vm.id, True, me):
            return None  # no cluster, or this host owns it: a real conflict
        return known

    async def _drop_older_copy(self, move: IncomingMove) -> None:
        """At the commit, before the hand-over: unregister the older copy found at prepare
        (its storage daemon, kept for an Off VM, ended); the incoming VM takes its place
        under the same id. Its folder and files are the VM's own on the shared storage and
        stay as the owner wrote them (no vm.json written from the older record); what
        capabilities hold for the id stays for the VM. Gone meanwhile: nothing to do.

        :raises Conflict: it was started, changed or given a job since the prepare.
        """
        older = move.older
        if older is None or self.host.vms().get(older.record.id) is not older:
            return
        if older.worker is not None or older.state is not VMState.OFF or \
                self.host.jobs.busy(older.record.id) or \
                self.host.has_checkpoints(older.record.id):
            raise Conflict(f"VM '{older.record.name}' was started or changed on this host "
                           f"since the move was prepared (it is {older.state.value}): the "
                           "move is undone, the VM stays with its source",
                           vm=older.record.name)
        log.info("VM %s: this host's older registration (Off, owned by another host) is "
                 "replaced by the move", older.record.name)
        await older.end_storage_daemon()
        self.host.unregister_older_copy(older)
        move.older = None

    def _check_free(self, body: IncomingRequest, older: LiveVM | None) -> None:
        vm = body.vm
        for known in self.host.catalog.ids_and_names(vm.id) + \
                self.host.catalog.ids_and_names(vm.name):
            if older is not None and known[0] == older.record.id:
                continue
            raise Conflict(f"a VM with id {known[0]} named '{known[1]}' is registered on this "
                           "host already; nothing was changed", vm=vm.name)

    def _checked_record(self, body: IncomingRequest, copies: dict[str, str], *,
                        replacing: bool) -> VMRecord:
        vm = body.vm
        folder = str(self.host.data_dir / "vms" / vm.id) if copies else vm.folder
        settings = self.host.checked_registration(vm.id, vm.name,
                                                  _with_paths(vm.settings, copies),
                                                  replacing=replacing)
        _check_visible(None if copies else Path(folder), settings, set(copies.values()))
        return VMRecord(vm.id, vm.name, settings, VMState.OFF, None, folder, vm.created_at)

    async def _export(self, move: IncomingMove, host: str) -> None:
        port = _free_port(host)
        exports = await export_for_incoming(move.live.require_worker().monitor, host, port,
                                            list(move.copies.values()))
        move.nbd = {"host": host, "port": port,
                    "exports": {old: exports[new] for old, new in move.copies.items()}}

    async def _listen(self, move: IncomingMove, host: str, tuning: LiveTuning) -> None:
        worker = await move.live.launch_incoming()
        move.uri = f"tcp:{host}:{_free_port(host)}"
        await listen(worker.monitor, move.uri, tuning)

    async def commit(self, incoming_id: str) -> dict[str, Any]:
        """Hand over ownership, register the VM and run it here; returns the vm object.
        Committing twice answers the same.

        :raises NotFound: no such prepared move (aborted or expired).
        :raises HostError: the guest did not arrive or did not restore (the move is
            undone here: nothing registered, nothing running).
        """
        move = self._find(incoming_id)
        if move.committed:
            return move.live.to_dict()
        if move.watch is not None:
            move.watch.cancel()
        try:
            if move.mode == "live":
                await self._commit_live(move)
            else:
                await self._commit_quick(move)
        except BaseException:
            await self._give_back(move)
            await self._drop(move)
            raise
        finally:
            self.ownership.moving(move.live.record.id, _ha(move.live), False)
        asyncio.get_running_loop().call_later(COMMITTED_KEPT_S, self._moves.pop, move.id, None)
        return move.live.to_dict()

    async def _commit_live(self, move: IncomingMove) -> None:
        live = move.live
        worker = live.require_worker()
        await wait_arrived(worker.monitor, ARRIVAL_TIMEOUT_S)
        if move.copies:
            await stop_exports(worker.monitor)
        await self._drop_older_copy(move)
        await self.ownership.hand_over(live.record.id, _ha(live), move.source)
        move.handed_over = True
        await worker.resume()
        live.record = replace(live.record, state=VMState.RUNNING)
        self.host.commit_incoming(live)
        move.committed = True
        live.arrived(VMState.RUNNING)

    async def _commit_quick(self, move: IncomingMove) -> None:
        live = move.live
        saved = live.saved_state.exists()
        await self._drop_older_copy(move)
        await self.ownership.hand_over(live.record.id, _ha(live), move.source)
        move.handed_over = True
        state = VMState.SAVED if saved else VMState.OFF
        live.record = replace(live.record, state=state)
        live.state = state
        self.host.commit_incoming(live)
        move.committed = True
        if not saved:
            return
        job = self.host.jobs.submit("start", live.record.id, live.record.name,
                                    self.host.operation(live, Request.START))
        await job.done.wait()
        if job.state != "completed":
            move.committed = False  # _drop unregisters it again; the source restores it
            why = (job.error or {}).get("message", job.state)
            raise HostError(f"restoring VM '{live.record.name}' on this host failed: {why}",
                            vm=live.record.name)

    async def abort(self, incoming_id: str) -> dict[str, Any]:
        """Give up a prepared move: its QEMU ends, nothing stays registered.

        :raises NotFound: no such prepared move.
        :raises Conflict: it was committed (the VM is this host's now).
        """
        move = self._find(incoming_id)
        if move.committed:
            raise Conflict(f"the move of VM '{move.live.record.name}' was committed: it runs "
                           "on this host now; nothing was changed", vm=move.live.record.name)
        if move.watch is not None:
            move.watch.cancel()
        await self._drop(move)
        return {"aborted": move.id, "vm": move.live.record.name}

    async def _give_back(self, move: IncomingMove) -> None:
        """A commit failed after the hand-over: the source gets the VM back (it resumes
        only if it owns it again); if its lease is gone, this host keeps the ownership
        and its cluster agent starts the VM here once the move is dropped."""
        if not move.handed_over or move.committed:
            return
        live = move.live
        try:
            back = await self.ownership.hand_back(live.record.id, _ha(live), move.source)
        except ViridianError as err:
            log.warning("giving VM %s back to %s failed: %s", live.record.name,
                        move.source.host, err)
            back = False
        if not back:
            log.warning("VM %s stays owned by this host (its source %s cannot take it "
                        "back)", live.record.name, move.source.host)

    def _find(self, incoming_id: str) -> IncomingMove:
        move = self._moves.get(incoming_id)
        if move is None:
            raise NotFound(f"no prepared move with id '{incoming_id}' on this host (aborted, "
                           "expired, or never prepared)", incoming=incoming_id)
        return move

    async def _drop(self, move: IncomingMove) -> None:
        """End the incoming QEMU and forget the VM here (files stay)."""
        self._moves.pop(move.id, None)
        live = move.live
        with contextlib.suppress(ViridianError):
            await live.end_here()
        self.host.forget(live)
        _remove_made(move.copies, Path(live.record.folder) if move.made_folder else None)
        self.ownership.moving(live.record.id, _ha(live), False)

    async def _expire(self, move: IncomingMove) -> None:
        """Give the move up when its QEMU ends before the commit (the incoming migration
        failed), when the source neither commits nor aborts in time, or (a cluster's HA
        VM) when the source no longer owns the VM: it died, and failover takes it."""
        worker = move.live.worker
        ended = asyncio.ensure_future(worker.wait_exit()) if worker is not None else None
        loop = asyncio.get_running_loop()
        until = loop.time() + PREPARED_TTL_S
        try:
            while True:
                if loop.time() >= until:
                    log.warning("prepared move of %s expired", move.live.record.name)
                    break
                if ended is not None:
                    done, _ = await asyncio.wait({ended}, timeout=SOURCE_CHECK_S)
                    if done:
                        log.info("incoming QEMU of %s ended before the commit",
                                 move.live.record.name)
                        break
                else:
                    await asyncio.sleep(SOURCE_CHECK_S)
                if not await self._source_holds(move):
                    log.warning("the source %s of the move of %s no longer owns it",
                                move.source.host, move.live.record.name)
                    break
        finally:
            if ended is not None and not ended.done():
                ended.cancel()
        if not move.committed and move.id in self._moves:
            await self._drop(move)

    async def _source_holds(self, move: IncomingMove) -> bool:
        try:
            return await self.ownership.holds(move.live.record.id, _ha(move.live),
                                              move.source)
        except ViridianError:
            return True  # etcd unreachable: the TTL and the source's abort still apply

    async def sweep(self) -> None:
        """At service start: a runtime folder no registered VM owns is what a killed service
        left of a prepared move (its QEMU waiting for, or holding, a migration never
        committed): that QEMU is ended and the folder removed."""
        for folder in list((self.host.data_dir / "run").iterdir()):
            # a VM's storage daemon has its own folder <vm-id>-storage beside QEMU's
            vm_id = folder.name.removesuffix(STORAGE_FOLDER_SUFFIX)
            # looked up per folder: a VM's runtime folder appears only after its row does
            if folder.name.startswith(".") or self.host.catalog.ids_and_names(vm_id):
                continue
            if any(m.live.record.id == vm_id for m in self._moves.values()):
                continue
            if vm_id != folder.name:
                remove_storage_folder(RuntimePaths(folder.with_name(vm_id)))
                continue
            log.warning("ending the QEMU of a move that was never committed: %s", folder)
            await _end_leftover(RuntimePaths(folder))

    async def close(self) -> None:
        """The service stops: prepared moves are given up (committed VMs stay)."""
        for move in list(self._moves.values()):
            if move.watch is not None:
                move.watch.cancel()
            if not move.committed:
                await self._drop(move)


def _check_visible(folder: Path | None, settings: VMSettings, made_here: set[str]) -> None:
    """Shared storage: the VM's folder (None: made here) and every drive's file (but those
    this move makes here) must be visible here."""
    if folder is not None and (not folder.is_absolute() or not folder.is_dir()):
        raise InvalidSetting("vm.folder", str(folder), "the VM's folder on storage this host "
                             "sees too (shared storage)")
    for slot in drive_slots(settings):
        if slot.path and slot.path not in made_here and not Path(slot.path).exists():
            raise InvalidSetting(f"{slot.bus}:{slot.controller}:{slot.location}", slot.path,
                                 "a disk or medium file this host sees too (shared storage)")


def _free_port(host: str) -> int:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, 0))
            return int(sock.getsockname()[1])
    except OSError as err:
        raise HostError(f"cannot listen for the migration on {host}: {err.strerror}",
                        address=host) from err


def _with_paths(settings: dict[str, Any], copies: dict[str, str]) -> dict[str, Any]:
    """``settings`` (API dict) with each hard disk at its new path."""
    if not copies:
        return settings
    data = copy.deepcopy(settings)
    for drive in data.get("ide", []):
        drive["path"] = copies.get(drive.get("path"), drive.get("path"))
    for controller in data.get("scsi", []):
        for disk in controller.get("disks", []):
            disk["path"] = copies.get(disk.get("path"), disk.get("path"))
    return data


async def _create_images(copies: dict[str, str], sizes: dict[str, int],
                         settings: dict[str, Any]) -> None:
    """Empty images for a shared-nothing move, of each disk's format (from the source's
    ``settings``, API dict) and size."""
    drives = [*settings.get("ide", []),
              *(d for c in settings.get("scsi", []) for d in c.get("disks", []))]
    formats = {d.get("path"): str(d.get("format") or "raw") for d in drives}
    for old, new in copies.items():
        proc = await asyncio.create_subprocess_exec(
            "qemu-img", "create", "-q", "-f", formats.get(old, "raw"), new, str(sizes[old]),
            stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise HostError(f"cannot create {new}: {err.decode(errors='replace').strip()}",
                            path=new)


def _remove_made(copies: dict[str, str], folder: Path | None) -> None:
    """Remove the images a given-up shared-nothing move made (and the folder it made)."""
    for new in copies.values():
        Path(new).unlink(missing_ok=True)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


async def _end_leftover(paths: RuntimePaths) -> None:
    try:
        worker = await Worker.attach(paths)
    except WorkerGone:
        with contextlib.suppress(ViridianError, OSError):
            remove_runtime_folder(paths)
        return
    except ViridianError as err:
        log.warning("cannot end the QEMU in %s: %s", paths.folder, err)
        return
    with contextlib.suppress(ViridianError):
        await worker.turn_off()
        await worker.wait_exit(10.0)
        await worker.cleanup()
    with contextlib.suppress(ViridianError, OSError):
        remove_runtime_folder(paths)


def _same_folder(a: str, b: str) -> bool:
    return bool(a) and bool(b) and os.path.realpath(a) == os.path.realpath(b)


def _ha(live: LiveVM) -> bool:
    return live.record.settings.high_availability.ha

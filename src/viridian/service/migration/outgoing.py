"""The source's side of a move: the ``move`` job (docs/architecture.md, "Migration").

Quick (Hyper-V 2008's quick migration, shared storage): the target checks and gets ready;
the VM is saved into its folder; the target commits (ownership hand-over, registration,
restore); the VM is unregistered here. Live (shared storage): the target launches a
paused QEMU listening on TCP; the memory is migrated while the guest runs (auto-converge
by default, optional bandwidth cap, downtime limit, post-copy); once QEMU switched over
(the guest is paused here), the target commits and resumes it; this QEMU ends and the VM
is unregistered here.

One copy, always: until the target's commit the guest runs (or is saved) here; a failure
or a cancel before the commit aborts the target and lets the guest run on here. When the
commit's answer is lost, the target is asked to abort: a target that says it committed
keeps the VM; one that does not answer leaves the VM paused (live) or saved (quick) here
and the job says so — it is never resumed here without the target's word.
"""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from viridian.errors import BadRequest, Conflict, HostError, ViridianError
from viridian.model import to_dict
from viridian.model.slots import hard_disks
from viridian.model.states import Request, VMState
from viridian.qemu.migration import LiveTuning, read_result, send, wait_completed
from viridian.qemu.migration_storage import cancel_mirrors, finish_mirrors, mirror_to_nbd
from viridian.qemu.monitor import Monitor
from viridian.service.jobs import Job
from viridian.service.migration.bodies import MoveRequest
from viridian.service.migration.cluster_move import ClusterOwnership
from viridian.service.migration.cluster_peer import PEER_PREFIX, load_peer_token
from viridian.service.migration.host import MigrationHost
from viridian.service.migration.ownership import Holder
from viridian.service.migration.peer import AbortOutcome, Peer
from viridian.service.migration.storage_move import virtual_size

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

LIVE_TIMEOUT_S = 900.0
QUICK_STATES = (VMState.RUNNING, VMState.PAUSED, VMState.SAVED, VMState.OFF)
LIVE_STATES = (VMState.RUNNING,)


def check_movable(live: LiveVM, spec: MoveRequest, has_checkpoints: bool) -> None:
    """Refuse a move this VM cannot make now (nothing changed).

    :raises Conflict: wrong state; checkpoints; live move of a VM its storage daemon serves.
    :raises BadRequest: live-only options on a quick move.
    """
    name = live.record.name
    allowed = QUICK_STATES if spec.mode == "quick" else LIVE_STATES
    if live.state not in allowed:
        raise Conflict(f"cannot {spec.mode}-move VM '{name}': it is {live.state.value}; a "
                       f"{spec.mode} move needs it {' or '.join(s.value for s in allowed)}; "
                       "nothing was changed", vm=name, state=live.state.value)
    if has_checkpoints:
        raise Conflict(f"cannot move VM '{name}': it has checkpoints (their records stay on "
                       "this host); delete or apply them first; nothing was changed", vm=name)
    if spec.mode == "live" and live.storage_daemon_serves:
        raise Conflict(
            f"cannot live-move VM '{name}': its VHD/VHDX disks are served by its storage "
            "daemon, and QEMU 7.2 cannot hand an open image from one daemon to another "
            "(no inactive block nodes); use a quick move (mode 'quick'); nothing was "
            "changed", vm=name)
    if spec.with_storage and spec.postcopy:
        raise BadRequest("with_storage and postcopy cannot be combined (the disks are "
                         "finished while the source is paused); nothing was changed")
    if spec.mode == "quick" and (spec.postcopy or spec.bandwidth_mib_s is not None
                                 or spec.downtime_limit_ms is not None or spec.with_storage):
        raise BadRequest("postcopy, bandwidth_mib_s, downtime_limit_ms and with_storage are "
                         "live-move options; a quick move takes none; nothing was changed")


class Outgoing:
    """Moves of this host's VMs to other hosts."""

    def __init__(self, host: MigrationHost, ownership: ClusterOwnership) -> None:
        self.host = host
        self.ownership = ownership

    def move(self, ref: str, spec: MoveRequest) -> dict[str, Any]:
        """Check now, then queue the move as a job on the VM's queue (checked again)."""
        live = self.host.find_vm(ref)
        check_movable(live, spec, self.host.has_checkpoints(live.record.id))
        peer = self._peer(spec)
        peer.member = self.ownership.member_name(peer.url)  # its cluster name, if a member
        ha = live.record.settings.high_availability.ha

        async def run(job: Job) -> dict[str, Any]:
            self.ownership.moving(live.record.id, ha, True)
            try:
                check_movable(live, spec, self.host.has_checkpoints(live.record.id))
                return await self._move(live, spec, peer, job)
            finally:
                self.ownership.moving(live.record.id, ha, False)
                await peer.close()

        return self.host.jobs.submit("move", live.record.id, live.record.name, run).to_dict()

    def _peer(self, spec: MoveRequest) -> Peer:
        """The target: a member host of this cluster (by name or its published URL) is
        reached with the cluster's peer token when no token is given; any other target
        needs the token the admin gave."""
        member = self.ownership.member_url(spec.to)
        if member is not None and not spec.token:
            token = load_peer_token(self.host.data_dir)
            if token:
                return Peer(member, token, PEER_PREFIX,
                            self.ownership.member_certificate(member))
        if "://" not in spec.to and member is None:
            raise BadRequest(f"'to' must be the target service's URL (http://HOST:PORT) or "
                             f"the name of an Up host of this host's cluster (got "
                             f"{spec.to!r}); nothing was changed", to=spec.to)
        if not spec.token.strip():
            raise BadRequest("'token' (the target service's token) is empty, and the target "
                             "is no member of this host's cluster; nothing was changed",
                             to=spec.to)
        url = spec.to if "://" in spec.to else str(member)
        return Peer(url, spec.token, certificate=self.ownership.member_certificate(url))

    async def _move(self, live: LiveVM, spec: MoveRequest, peer: Peer,
                    job: Job) -> dict[str, Any]:
        job.report(2, f"asking {peer.url} to get ready")
        body = _incoming_body(live, spec, self.ownership.me())
        if spec.with_storage:
            body["disks"] = {d.path: await virtual_size(str(d.path), str(d.format or "raw"))
                             for d in hard_disks(live.record.settings) if d.path}
        ready = await peer.prepare(body)
        if spec.mode == "quick":
            facts = await self._quick(live, peer, ready["id"], job)
        else:
            facts = await self._live(live, spec, peer, ready, job)
        return {"moved_to": peer.url, "mode": spec.mode, "vm": live.record.name, **facts}

    # --- quick ------------------------------------------------------------------------

    async def _quick(self, live: LiveVM, peer: Peer, incoming_id: str,
                     job: Job) -> dict[str, Any]:
        before = live.state
        started = time.monotonic()
        if before in (VMState.RUNNING, VMState.PAUSED):
            job.report(5, "saving")
            try:
                await self.host.operation(live, Request.SAVE)(job)
            except BaseException:
                await peer.abort(incoming_id)
                raise
        saved_s = time.monotonic() - started
        await live.end_storage_daemon()  # the target's daemon opens the images next
        job.report(60, f"restoring on {peer.url}")
        try:
            await peer.commit(incoming_id)
        except ViridianError as err:
            await self._quick_not_committed(live, peer, incoming_id, before, job, err)
        self.host.forget(live)
        return {"downtime_ms": round((time.monotonic() - started) * 1000),
                "save_ms": round(saved_s * 1000)}

    async def _quick_not_committed(self, live: LiveVM, peer: Peer, incoming_id: str,
                                   before: VMState, job: Job, err: ViridianError) -> None:
        """Returns only when the target says it has the VM after all."""
        outcome = await peer.abort(incoming_id)
        if outcome is AbortOutcome.COMMITTED:
            return
        if outcome is AbortOutcome.UNKNOWN and await self._target_gone(live, peer):
            outcome = AbortOutcome.ABORTED  # the restore below claims it again
        if outcome is AbortOutcome.UNKNOWN:
            raise HostError(f"the move of VM '{live.record.name}' failed ({err}) and the "
                            f"target {peer.url} did not confirm it dropped the VM: it stays "
                            "Saved here; check the target before starting it here",
                            vm=live.record.name) from err
        if before in (VMState.RUNNING, VMState.PAUSED):
            job.report(80, "restoring here again")
            await self.host.operation(live, Request.START)(job)
        raise HostError(f"the move of VM '{live.record.name}' failed: {err}; it is "
                        f"{live.state.value} here again", vm=live.record.name) from err

    async def _target_gone(self, live: LiveVM, peer: Peer) -> bool:
        """In a cluster: the silent target's lease is gone while this host still owns the
        HA VM, so it can never take it (docs/architecture.md, "Half-done hand-overs",
        case 3)."""
        ha = live.record.settings.high_availability.ha
        return await self.ownership.target_gone(live.record.id, ha, self.ownership.me(),
                                                peer.member)

    # --- live -------------------------------------------------------------------------

    async def _live(self, live: LiveVM, spec: MoveRequest, peer: Peer, ready: dict[str, Any],
                    job: Job) -> dict[str, Any]:
        worker = live.require_worker()
        tuning = LiveTuning(spec.auto_converge, spec.bandwidth_mib_s, spec.downtime_limit_ms,
                            spec.postcopy)
        job.cancel_running = True
        mirrors: list[str] = []
        try:
            if spec.with_storage:
                mirrors = await self._copy_disks(worker.monitor, ready, job)
            status = await send(worker.monitor, str(ready["uri"]), tuning,
                                lambda f, s: job.report(50 + f * 40, f"migrating memory ({s})"),
                                LIVE_TIMEOUT_S)
        except BaseException:
            job.cancel_running = False
            await cancel_mirrors(worker.monitor, mirrors)
            await self._undo_live(live, peer, str(ready["id"]))
            raise
        job.cancel_running = False
        postcopy = status == "postcopy-active"
        job.report(92, f"switching over to {peer.url}")
        switched = time.monotonic()
        if mirrors:  # paused in postmigrate: the disks' last writes go over, then the target
            await self._finish_disks(live, peer, str(ready["id"]), mirrors)
        try:
            await peer.commit(str(ready["id"]))
        except ViridianError as err:
            await self._live_not_committed(live, peer, str(ready["id"]), postcopy, err)
        commit_ms = round((time.monotonic() - switched) * 1000)
        if postcopy:
            await wait_completed(worker.monitor, LIVE_TIMEOUT_S)
        result = await read_result(worker.monitor, postcopy)
        await live.end_here()
        self.host.forget(live)
        if mirrors:  # the target has the disks now: these copies are stale
            for disk in hard_disks(live.record.settings):
                Path(str(disk.path)).unlink(missing_ok=True)
        return {**result.to_dict(), "commit_ms": commit_ms}

    async def _copy_disks(self, monitor: Monitor, ready: dict[str, Any], job: Job) -> list[str]:
        """Shared-nothing: every hard disk mirrored to the target's NBD exports, until in
        step (then writes go to both while the memory moves)."""
        nbd = ready["nbd"]
        return await mirror_to_nbd(monitor, dict(nbd["exports"]), str(nbd["host"]),
                                   int(nbd["port"]),
                                   lambda f: job.report(5 + f * 45, "copying disks"))

    async def _finish_disks(self, live: LiveVM, peer: Peer, incoming_id: str,
                            mirrors: list[str]) -> None:
        """The mirrors end in step; if they cannot, the move is undone (the guest resumes
        here: the target never ran)."""
        worker = live.require_worker()
        try:
            await finish_mirrors(worker.monitor, mirrors)
        except ViridianError as err:
            await cancel_mirrors(worker.monitor, mirrors)
            await peer.abort(incoming_id)
            await worker.resume()
            raise HostError(f"the disks of VM '{live.record.name}' could not be finished on "
                            f"the target ({err}); it runs here again",
                            vm=live.record.name) from err

    async def _undo_live(self, live: LiveVM, peer: Peer, incoming_id: str) -> None:
        """Before the switch-over: stop the migration, the guest runs on here."""
        worker = live.require_worker()
        with contextlib.suppress(ViridianError):
            await worker.monitor.cancel_migration()
            if await worker.status() != "running":
                await worker.resume()
        await peer.abort(incoming_id)

    async def _live_not_committed(self, live: LiveVM, peer: Peer, incoming_id: str,
                                  postcopy: bool, err: ViridianError) -> None:
        """After the switch-over, the commit failed. Returns only when the target says it
        has the VM after all."""
        name = live.record.name
        if postcopy:
            raise HostError(f"the post-copy move of VM '{name}' failed after the switch-over "
                            f"({err}): the guest's memory is split between both hosts and "
                            "cannot run on either", vm=name) from err
        outcome = await peer.abort(incoming_id)
        if outcome is AbortOutcome.COMMITTED:
            return
        ha = live.record.settings.high_availability.ha
        if outcome is AbortOutcome.ABORTED and not await self.ownership.holds(
                live.record.id, ha, self.ownership.me()):
            outcome = AbortOutcome.UNKNOWN  # the target took the cluster's ownership
        if outcome is AbortOutcome.UNKNOWN and await self._target_gone(live, peer):
            outcome = AbortOutcome.ABORTED
        if outcome is AbortOutcome.UNKNOWN:
            why = (f"paused after its move to {peer.url} failed at the switch-over; check the "
                   "target before resuming it here")
            live.record = live.catalog.set_state(live.record, VMState.PAUSED, why)
            live.state = VMState.PAUSED
            raise HostError(f"the move of VM '{name}' failed at the switch-over ({err}) and "
                            f"the target {peer.url} did not confirm it dropped the VM: it stays "
                            "paused here; check the target, then resume or turn it off here",
                            vm=name) from err
        await live.require_worker().resume()  # cont from postmigrate: the images reactivate
        raise HostError(f"the target did not take VM '{name}' ({err}); it runs here again",
                        vm=name) from err


def _incoming_body(live: LiveVM, spec: MoveRequest, me: Holder) -> dict[str, Any]:
    rec = live.record
    return {"mode": spec.mode, "source": me.host, "source_lease": me.lease,
            "postcopy": spec.postcopy,
            "with_storage": spec.with_storage,
            "vm": {"id": rec.id, "name": rec.name, "folder": rec.folder,
                   "created_at": rec.created_at, "settings": to_dict(rec.settings)}}

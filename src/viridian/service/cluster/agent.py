"""The host agent: the service's shell around :class:`viridian.cluster.agent.AgentCore`
(docs/architecture.md, "Failover cluster: the agent loop").

One thread, once a second: keep the host's lease alive (the etcd client rotates
endpoints), publish the host record under the lease, feed the fence guard the new
deadline, read the cluster in one range read, plan with ``AgentCore`` and carry the plan
out — kill (hard, marked ``fenced``; a VM with only its kept storage daemon here loses
that daemon gently), release, claim (a transaction) and start. Starting
and registering a VM happen on the service's event loop through the core's normal paths
(a start job, "register in place" from the shared folder); etcd I/O never runs on the
event loop. Hooks of the capability hand their etcd work to this thread's queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from viridian.cluster.agent import AgentCore, Plan
from viridian.cluster.errors import ClusterConflict, ClusterUnavailable
from viridian.cluster.etcd import Compare, Etcd, Op
from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord, HostState, Priority
from viridian.cluster.ownership import (
    ClusterView,
    claim,
    host_key,
    owner,
    owner_key,
    read_cluster,
    release,
    stop_and_release,
    vm_key,
)
from viridian.cluster.placement import Placement, place
from viridian.errors import ViridianError
from viridian.host.admission import MIN_FREE_MB
from viridian.model import host_switches
from viridian.model.states import Request, VMState
from viridian.service.cluster.config import ClusterConfig, ClusterFolder
from viridian.service.cluster.fence_guard import (
    GuardFeed,
    fence_vm,
    kill_vm_processes,
    qemu_runs,
    running_pids,
    spawn_guard,
)
from viridian.service.cluster.validate_probe import ValidateResponder, host_facts
from viridian.service.context import ServiceContext
from viridian.service.library.placement import with_facts
from viridian.service.tls import service_certificate

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)

TICK_S = 1.0
START_RETRY_S = 30.0


class ClusterHost(ServiceContext, Protocol):
    """The core's paths the agent needs besides the capability context."""

    async def register_in_place(self, folder: str) -> dict[str, Any]: ...

    def unregister_older_copy(self, live: LiveVM) -> None: ...

    def request(self, ref: str, action: str, *, timeout_s: float | None) -> dict[str, Any]: ...


def policy_of(vm: LiveVM) -> HAPolicy:
    ha = vm.record.settings.high_availability
    return HAPolicy(ha.ha, Priority(ha.priority.value), ha.preferred_hosts, ha.anti_affinity,
                    ha.failback, ha.preferred_site, ha.failback_window)


def cluster_record(vm: LiveVM, desired: bool) -> ClusterVM:
    """The cluster-wide record of an HA VM: another host registers it from ``folder``
    (on the shared storage) and starts it; ``switches``: the host switches its adapters
    need (the failover prefers hosts that have them)."""
    switches = sorted(host_switches(vm.record.settings.network_adapters))
    return ClusterVM(vm.record.id, vm.record.name, vm.memory_mb, policy_of(vm), desired,
                     {"folder": vm.record.folder, "switches": switches})


def remembered(before: Mapping[str, tuple[str, str]], vms: Iterable[ClusterVM],
               decision: Placement) -> dict[str, tuple[str, str]]:
    """VM id → (host, reason) of the failover's latest placement of each VM: ``before``
    updated by ``decision``, kept while the VM is unowned or owned by that host (a VM
    gone, or moved since by a drain or a migration, loses its stale reason)."""
    placed = {**before, **{i: (host, decision.reasons[i])
                           for i, host in decision.assigned.items()}}
    owners = {vm.id: vm.owner for vm in vms}
    return {i: (host, why) for i, (host, why) in placed.items()
            if i in owners and owners[i] in (None, host)}


def service_url(data_dir: Path) -> str:
    """This service's URL as other hosts reach it (``<data>/service.json``, written at
    start; a wildcard listen address is named by the host's name); "" before it exists.
    Published in the host record: moves and drains find a member host's service by it."""
    try:
        found = json.loads((data_dir / "service.json").read_text())
        host, port = str(found["host"]), int(found["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if host in ("", "0.0.0.0", "::"):
        host = socket.getfqdn()
    return f"{found.get('scheme', 'http')}://{f'[{host}]' if ':' in host else host}:{port}"


@dataclass
class ExitLedger:
    """The exits of HA VMs' QEMUs on this host, counted twice: when the QEMU ends (on the
    event loop, with the capability's ``exited`` hook) and when the agent thread has
    written that exit to etcd (a stop: "not wanted running", released). A view read
    before an exit was written may still say "wanted running" for a VM the admin just
    stopped: a start planned from it is *stale* and is dropped (the next tick, reading
    after the write, decides), so an admin's stop is never undone by the agent."""

    _ended: dict[str, int] = field(default_factory=dict)
    _written: dict[str, int] = field(default_factory=dict)

    def ended(self, vm_id: str) -> int:
        """``vm_id``'s QEMU ended here (event loop): its exit number, for :meth:`written`."""
        count = self._ended.get(vm_id, 0) + 1
        self._ended[vm_id] = count
        return count

    def written(self, vm_id: str, count: int) -> None:
        """Exit ``count`` of ``vm_id`` was written to etcd (or its write failed for good)."""
        self._written[vm_id] = max(count, self._written.get(vm_id, 0))

    def before_read(self) -> dict[str, int]:
        """Taken just before a view is read: what that view already reflects."""
        return dict(self._written)

    def stale(self, vm_id: str, before_read: Mapping[str, int]) -> bool:
        """Whether ``vm_id`` ended here after the view (taken ``before_read``) saw its last
        written exit: a start planned from that view must not run."""
        return self._ended.get(vm_id, 0) > before_read.get(vm_id, 0)


class HostAgent:
    """The agent of one member host (see the module docstring)."""

    def __init__(self, context: ClusterHost, folder: ClusterFolder, config: ClusterConfig,
                 loop: asyncio.AbstractEventLoop) -> None:
        self.context = context
        self.folder = folder
        self.config = config
        self.loop = loop
        self.etcd = Etcd(config.endpoints, request_timeout=1.0)
        self.core = AgentCore(config.host, config.rule)
        self.feed = GuardFeed(folder.guard_file, folder.handoff)
        self.view: ClusterView | None = None
        self.pending: dict[str, str] = {}
        self.placed: dict[str, str] = {}
        """VM id → why the failover decision last placed it on its owner (every host
        computes the same decision, so each keeps the same reasons)."""
        self._placed_on: dict[str, tuple[str, str]] = {}
        self.last_error: str | None = None
        self.unreachable: str | None = None
        """Why the last tick could not reach etcd; None when it could."""
        self.guard: subprocess.Popen[bytes] | None = None
        self._work: queue.Queue[Callable[[], None]] = queue.Queue()
        self._stop = threading.Event()
        self._starting: dict[str, float] = {}
        self._draining: set[str] = set()
        self._failing_back: set[str] = set()
        self._letting_go: set[str] = set()  # VMs whose kept storage daemon is being ended
        self.exits = ExitLedger()
        self._view_exits: dict[str, int] = {}  # ``exits.before_read()`` of ``view``
        self.moving: set[str] = set()
        """VMs in a move here (source or target): not started, killed or drained by the
        plan meanwhile (a fenced host still kills them)."""
        self.drainer: Callable[[], object] | None = None
        """Set by the migration capability: a Paused host moves its HA VMs away (a job);
        without it they are turned off for the failover path."""
        self._inherited = (0.0, 0.0)
        self.responder = ValidateResponder(  # answers `cluster validate` requests
            self.etcd, config.name, config.host,
            lambda: host_facts(context.host.qemu_version, context.host.accelerator))
        self._thread = threading.Thread(target=self._run, name="cluster-agent", daemon=True)

    # --- life ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the guard and the agent thread. A restarted service inherits the
        deadline the previous process fed (``CLOCK_MONOTONIC`` is system-wide): its HA VMs
        keep running until then, and on after the first keepalive of the saved lease."""
        self.folder.handoff.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._inherited = self.feed.last_deadline()
        self._feed_guard()
        self._ensure_guard()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._work.put(lambda: None)
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def submit(self, work: Callable[[], None]) -> None:
        """Run ``work`` (etcd I/O of a hook) on the agent thread, in order."""
        self._work.put(work)

    def _run(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            try:
                self.tick()
                self.last_error = self.unreachable = None
            except ViridianError as err:
                self.last_error = str(err)
                if isinstance(err, ClusterUnavailable):
                    self.unreachable = str(err)
                log.warning("cluster agent: %s", err)
            except Exception as err:  # the loop must outlive any surprise
                self.last_error = f"{type(err).__name__}: {err}"
                log.exception("cluster agent tick failed")
            self._fence_if_due()
            self._feed_guard()
            self._drain_work(began + TICK_S)

    def _fence_if_due(self) -> None:
        """Past the deadline without a renewal (etcd unreachable): the agent turns its HA
        VMs off itself; the fence guard does the same when this process cannot."""
        if self.core.renewed_at is None or not self.core.must_fence(time.monotonic()):
            return  # before a first renewal the guard enforces the inherited deadline
        for vm_id, vm in self.ha_vms().items():
            if running_pids(vm.paths.folder):
                fence_vm(vm_id, vm.paths.folder, self.folder.handoff)

    def _drain_work(self, until: float) -> None:
        while not self._stop.is_set():
            left = until - time.monotonic()
            if left <= 0:
                return
            try:
                work = self._work.get(timeout=left)
            except queue.Empty:
                return
            try:
                work()
            except Exception as err:
                log.warning("cluster agent work: %s", err)

    # --- one tick -----------------------------------------------------------------------

    def tick(self) -> None:
        self._ensure_guard()
        self._lease()
        self._publish()
        self._feed_guard()
        self._view_exits = self.exits.before_read()
        self.view = read_cluster(self.etcd, self.config.name)
        self._act(self.view)
        self.responder.poll()

    def _lease(self) -> None:
        if self.core.lease:
            sent = time.monotonic()
            ttl = self.etcd.keepalive(self.core.lease)
            self.core.renewed(sent, ttl)
            if ttl > 0:
                return
            log.warning("cluster lease %x is gone: fenced, joining again", self.core.lease)
            self.core.lease = 0
        saved = self.folder.saved_lease()
        if saved and not self.core.fenced:
            sent = time.monotonic()  # a restarted service keeps a lease that still lives
            if self.etcd.keepalive(saved) > 0:
                self.core.new_lease(saved, sent)
                return
        sent = time.monotonic()
        lease = self.etcd.grant(self.config.lease_ttl)
        self.folder.save_lease(lease)
        self.core.new_lease(lease, sent)

    def host_record(self) -> HostRecord:
        load = self.context.host_load()
        free = (load.memory_mb - load.assigned_memory_mb - self.context.policy.host_reserve_mb
                - MIN_FREE_MB)
        paused = self.view is not None and self.config.host in self.view.paused
        running = sorted(vm.record.name for vm in list(self.context.vms().values())
                         if vm.worker is not None)
        return HostRecord(self.config.host, HostState.PAUSED if paused else HostState.UP,
                          load.memory_mb, max(free, 0), tuple(running), self.config.site,
                          service_url(self.context.data_dir),
                          certificate=service_certificate(self.context.data_dir))

    def _publish(self) -> None:
        record = with_facts(self.host_record(), self.context.data_dir)  # for placement
        self.etcd.put(host_key(self.config.name, self.config.host), record.to_json(),
                      self.core.lease)

    def ha_vms(self) -> dict[str, LiveVM]:
        return {i: vm for i, vm in list(self.context.vms().items())
                if vm.record.settings.high_availability.ha}

    def _feed_guard(self) -> None:
        folders = {i: vm.paths.folder for i, vm in self.ha_vms().items()}
        core = self.core
        if core.renewed_at is not None and not core.fenced:
            deadline = core.rule.deadline(core.renewed_at)
            takeover = core.rule.takeover_not_before(core.renewed_at)
        elif core.renewed_at is None and not core.fenced:
            deadline, takeover = self._inherited  # no keepalive yet in this process
        else:
            deadline, takeover = 0.0, 0.0  # the lease is gone: nothing HA may run
        self.feed.feed(deadline, takeover, folders, self.config.watchdog)

    def feed_now(self) -> None:
        """Feed the guard at once (a VM about to start must already be guarded)."""
        self._feed_guard()

    def _ensure_guard(self) -> None:
        if self.guard is not None and self.guard.poll() is None:
            return
        self.guard = spawn_guard(self.folder.guard_file, self.folder.guard_lock) or self.guard

    # --- the plan -----------------------------------------------------------------------

    def _local_running(self, ha: Mapping[str, LiveVM]) -> set[str]:
        return {i for i, vm in ha.items() if vm.worker is not None
                or running_pids(vm.paths.folder)}

    def _remember_placements(self, view: ClusterView, decision: Placement) -> None:
        self._placed_on = remembered(self._placed_on, view.vms, decision)
        self.placed = {i: why for i, (_, why) in self._placed_on.items()}

    def _act(self, view: ClusterView) -> None:
        ha = self.ha_vms()
        running = self._local_running(ha)
        now = time.monotonic()
        plan = self._failbacks(view, self.core.plan(now, view.vms, view.hosts, running,
                                                    time.localtime().tm_hour), ha)
        decision = place(view.vms, view.hosts)
        self.pending = decision.pending
        self._remember_placements(view, decision)
        for vm_id in plan.kill:
            if vm_id in ha and (vm_id not in self.moving or self.core.fenced):
                self._stop_copy(ha[vm_id])
        for vm_id in plan.release:
            release(self.etcd, self.config.name, vm_id, self.core.lease)
        records = {vm.id: vm for vm in view.vms}
        for vm_id in plan.claim:
            if vm_id in self.moving:
                continue
            if claim(self.etcd, self.config.name, vm_id, self.config.host, self.core.lease):
                self._start(records[vm_id])
        paused = self.config.host in view.paused
        for vm_id in plan.start:
            if not paused and vm_id not in self._draining and vm_id not in self.moving:
                self._start(records[vm_id])
        for vm_id in running:
            self._starting.pop(vm_id, None)
        if paused:
            self._drain(view, ha, running)
        else:
            self._draining.clear()

    def _stop_copy(self, vm: LiveVM) -> None:
        """``vm`` has processes here but this host does not own it. Its QEMU runs: a
        second copy, killed at once (marked ``fenced``). Only the storage daemon kept for
        it since it stopped here: kept while nobody owns the VM (its dirty bitmaps live
        there); once another host owns it, ended — gently, through the VM's queue — as it
        holds the images' locks that host's daemon needs (whose start waits for them,
        ``storage.daemons.LOCK_HANDOVER_S``). A fenced host kills it like a QEMU."""
        folder = vm.paths.folder
        if self.core.fenced or vm.worker is not None or qemu_runs(folder):
            fence_vm(vm.record.id, folder, self.folder.handoff)
        elif self.other_owner(vm.record.id) is None:
            return  # nobody else owns it: the daemon (and its dirty bitmaps) stays
        elif vm.record.id not in self._letting_go:
            self._letting_go.add(vm.record.id)
            done = asyncio.run_coroutine_threadsafe(self._let_go(vm.record.id), self.loop)
            done.add_done_callback(lambda _: self._letting_go.discard(vm.record.id))

    async def _let_go(self, vm_id: str) -> None:
        live = self.context.vms().get(vm_id)
        if live is None:
            return
        async with self.context.jobs.queue_for(vm_id):
            if live.worker is not None or qemu_runs(live.paths.folder):
                return  # started here meanwhile: the next tick's plan decides
            log.info("cluster: VM '%s' is owned by another host: the storage daemon kept "
                     "for it here is ended, so that host can open its disks", live.record.name)
            await live.end_storage_daemon()
            kill_vm_processes(live.paths.folder)  # a daemon this service does not know of

    def _failbacks(self, view: ClusterView, plan: Plan, ha: Mapping[str, LiveVM]) -> Plan:
        """Failback (docs/architecture.md, "Failover cluster: failback"): each VM of
        ``plan.failback`` is stopped here and, once its QEMU ended, released still wanted
        running (marked ``drain``); its first preferred host then claims it by placement.
        Never two copies: the claim needs the release, the release follows the stop.
        Until the VM is no longer owned here it is not started again here."""
        owned = {vm.id for vm in view.vms if self.core.owns(vm)}
        self._failing_back &= owned
        if self.config.host in view.paused:
            return plan
        moving: set[str] = getattr(self, "moving", set())  # a VM in a move stays put
        for vm_id in plan.failback:
            if vm_id in ha and vm_id not in self._failing_back and vm_id not in moving:
                self._failing_back.add(vm_id)
                log.info("cluster: failback of VM '%s' to its preferred host",
                         ha[vm_id].record.name)
                self.folder.mark(vm_id, "drain")
                asyncio.run_coroutine_threadsafe(self._turn_off(vm_id), self.loop)
        return replace(plan, start=tuple(i for i in plan.start if i not in self._failing_back))

    def _start(self, vm: ClusterVM) -> None:
        if time.monotonic() - self._starting.get(vm.id, -START_RETRY_S) < START_RETRY_S:
            return
        self._starting[vm.id] = time.monotonic()
        asyncio.run_coroutine_threadsafe(self._start_here(vm, self._view_exits), self.loop)

    async def _start_here(self, vm: ClusterVM, view_exits: Mapping[str, int]) -> None:
        """Register ``vm`` from the shared folder if this host does not know it, then start
        it through the normal start path; a failed start gives the VM back to the cluster.
        A VM already running or busy here is left alone, and so is one whose QEMU ended
        here after the view this start was planned from (``view_exits``): the next tick
        plans with its exit written (an admin's stop stays a stop)."""
        if self.exits.stale(vm.id, view_exits):
            self._starting.pop(vm.id, None)
            return
        registered_now = vm.id not in self.context.vms()
        winner: str | None = None
        try:
            if registered_now:
                await self.context.register_in_place(str(vm.settings.get("folder", "")))
            live = self.context.vms()[vm.id]
            if live.state not in (VMState.OFF, VMState.SAVED) or self.context.jobs.busy(vm.id):
                return
            job = self.context.request(vm.id, Request.START.value, timeout_s=None)
            done = await self.context.jobs.wait(job["id"], 300)
            if done.get("state") == "completed" or live.worker is not None:
                return
            error = done.get("error") or {}
            reason = str(error.get("message", done.get("state")))
            winner = (error.get("details") or {}).get("owner")
        except ViridianError as err:
            reason = str(err)
            known = self.context.vms().get(vm.id)
            if known is not None and known.worker is not None:
                return
        if registered_now and winner is not None:
            await self._unregister_lost(vm.id, winner)
        log.warning("cluster: cannot start VM '%s' here: %s", vm.name, reason)
        self.pending[vm.id] = f"start failed on {self.config.host}: {reason}"
        lease = self.core.lease
        self.submit(lambda: self._release(vm.id, lease))

    async def _unregister_lost(self, vm_id: str, winner: str) -> None:
        """Another host won the start of a VM this host registered for it: the copy goes
        again (record only: its files on the shared storage are the winner's), so that
        this host does not list an Off copy of a VM that runs elsewhere."""
        live = self.context.vms().get(vm_id)
        if live is None or live.worker is not None or live.state is not VMState.OFF or \
                self.context.jobs.busy(vm_id):
            return
        log.info("cluster: VM '%s' runs on host '%s': this host's registration for the start "
                 "it lost is removed again", live.record.name, winner)
        await live.end_storage_daemon()
        self.context.unregister_older_copy(live)

    def other_owner(self, vm_id: str) -> str | None:
        """The host that owns ``vm_id`` when it is not this one, as the last view saw it
        (one tick old at most); None when this host owns it, nobody does, or there is no
        view yet (:attr:`view` None)."""
        record = next((v for v in self.view.vms if v.id == vm_id), None) if self.view else None
        if record is None or record.owner is None or record.owner == self.config.host:
            return None
        return record.owner

    def other_owner_now(self, vm_id: str) -> str | None:
        """The host that owns ``vm_id`` when it is not this one, read from etcd now: the
        last view can be a tick behind a move that just handed the VM over. One range
        read (milliseconds); when the last tick could not reach etcd it is not tried (the
        caller runs on the event loop and must not wait on a dead endpoint).

        :raises ClusterUnavailable: etcd did not answer (now, or at the last tick).
        """
        if self.unreachable is not None:
            raise ClusterUnavailable(self.unreachable, endpoints=list(self.config.endpoints))
        kv = owner(self.etcd, self.config.name, vm_id)
        return None if kv is None or kv.value == self.config.host else kv.value

    def starting(self, vm_id: str) -> None:
        """A start of ``vm_id`` was asked here (not by the agent): no second start."""
        self._starting[vm_id] = time.monotonic()

    def _release(self, vm_id: str, lease: int) -> None:
        release(self.etcd, self.config.name, vm_id, lease)

    def _drain(self, view: ClusterView, ha: Mapping[str, LiveVM], running: set[str]) -> None:
        """Paused host: its HA VMs go elsewhere: moved by the drain job of the migration
        capability (:attr:`drainer`; what it cannot move it turns off), else each is
        turned off here and released with "wanted running" kept: the other hosts restart
        it by the normal failover path."""
        if self.drainer is not None:
            if any(vm.id in running and self.core.owns(vm) and vm.id not in self.moving
                   for vm in view.vms):
                self.loop.call_soon_threadsafe(self.drainer)
            return
        for vm in view.vms:
            if vm.id in running and self.core.owns(vm) and vm.id not in self._draining:
                self._draining.add(vm.id)
                self.folder.mark(vm.id, "drain")
                asyncio.run_coroutine_threadsafe(self._turn_off(vm.id), self.loop)

    async def _turn_off(self, vm_id: str) -> None:
        try:
            self.context.request(vm_id, Request.STOP.value, timeout_s=None)
        except ViridianError as err:
            self._draining.discard(vm_id)  # tried again next tick
            self._failing_back.discard(vm_id)
            log.warning("cluster drain: %s", err)

    # --- what hooks ask (called on the agent thread through submit, or via to_thread) ---

    def claim_for_start(self, vm: LiveVM) -> None:
        """Own ``vm`` and mark it wanted running before it starts here; refused when
        another host owns it or this host's lease is not fresh."""
        if not self.core.rule.may_start(time.monotonic(), self.core.renewed_at) or \
                self.core.fenced or not self.core.lease:
            raise ClusterConflict(
                f"cannot start HA VM '{vm.record.name}': this host's cluster lease is not "
                "renewed (etcd unreachable or the host is fenced); nothing was changed",
                vm=vm.record.name)
        where = self._own(vm)
        if where is not None:
            raise ClusterConflict(
                f"cannot start HA VM '{vm.record.name}': host '{where}' owns it in cluster "
                f"'{self.config.name}' (it runs there); nothing was changed",
                vm=vm.record.name, owner=where)

    def _own(self, vm: LiveVM) -> str | None:
        """Own ``vm`` (a transaction) and mark it wanted running; None on success, else
        the name of the host that owns it."""
        okey, record = owner_key(self.config.name, vm.record.id), cluster_record(vm, True)
        put = Op("put", vm_key(self.config.name, vm.record.id), record.to_json())
        lease = self.core.lease
        if self.etcd.txn([Compare(okey, "CREATE", 0)],
                         [Op("put", okey, self.config.host, lease), put]).succeeded:
            return None
        if self.etcd.txn([Compare(okey, "LEASE", lease)], [put]).succeeded:
            return None
        held = owner(self.etcd, self.config.name, vm.record.id)
        return held.value if held else "another host"

    def ended(self, vm: LiveVM, why: str | None) -> None:
        """``vm``'s QEMU ended here (called on the event loop as it ends): counted at once
        in :attr:`exits`, written to etcd by :meth:`exited` on the agent thread."""
        vm_id = vm.record.id
        count = self.exits.ended(vm_id)

        def write() -> None:
            try:
                self.exited(vm, why)
            finally:  # a failed write (etcd unreachable) must not block starts for good
                self.exits.written(vm_id, count)

        self.submit(write)

    def exited(self, vm: LiveVM, why: str | None) -> None:
        """``vm``'s QEMU ended here: fenced → nothing (the cluster restarts it elsewhere);
        drained → released, still wanted running; otherwise (a stop) → not wanted running
        and released, only while this host's lease owns it."""
        if why in ("fenced", "move"):  # a move hands the owner key over itself
            return
        if why == "drain":
            release(self.etcd, self.config.name, vm.record.id, self.core.lease)
            return
        stop_and_release(self.etcd, self.config.name, cluster_record(vm, False),
                         self.core.lease)

    def publish(self, vm: LiveVM) -> None:
        """Settings changed: the cluster-wide record follows (HA on), or goes (HA off) unless
        another host owns the VM."""
        key = vm_key(self.config.name, vm.record.id)
        okey = owner_key(self.config.name, vm.record.id)
        mine_or_free = [Compare(okey, "CREATE", 0)]
        if vm.record.settings.high_availability.ha and vm.worker is not None:
            where = self._own(vm)  # HA turned on while it runs here: own it, or else
            if where is not None:  # the plan turns this copy off (another host owns it)
                log.warning("cluster: VM '%s' runs here but host '%s' owns it",
                            vm.record.name, where)
            return
        if vm.record.settings.high_availability.ha:
            current = self.etcd.get(key)
            desired = ClusterVM.from_json(current.value).desired_running if current else False
            self.etcd.put(key, cluster_record(vm, desired).to_json())
            return
        if not self.etcd.txn(mine_or_free, [Op("delete", key)]).succeeded:
            self.etcd.txn([Compare(okey, "LEASE", self.core.lease)],
                          [Op("delete", key), Op("delete", okey)])

    def forget(self, vm_id: str) -> None:
        """``vm`` was removed here: its cluster record goes unless another host owns it."""
        okey = owner_key(self.config.name, vm_id)
        for guard in (Compare(okey, "CREATE", 0), Compare(okey, "LEASE", self.core.lease)):
            if self.etcd.txn([guard], [Op("delete", vm_key(self.config.name, vm_id)),
                                       Op("delete", okey)]).succeeded:
                return

    def leave(self) -> None:
        """Stop, give the lease back (its owner keys and host record go with it)."""
        self.stop()
        try:
            if self.core.lease:
                self.etcd.revoke(self.core.lease)
        except ClusterUnavailable as err:
            log.warning("cluster leave: %s", err)


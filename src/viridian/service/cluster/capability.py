"""The cluster capability (docs/architecture.md, "Failover cluster"): membership of this
host, the host agent, ownership before an HA VM starts, release when it stops.

Not in a cluster (no ``<data>/cluster/config.json``) it does nothing. In a cluster:

- ``prepare_start``: an HA VM is claimed (an etcd transaction) and marked wanted running
  before QEMU starts; refused, naming the owner, when another host owns it, or when this
  host's lease is not fresh (a fenced host starts nothing);
- ``exited``: an HA VM stopped here is released (fenced or drained VMs stay wanted);
- ``settings_changed`` / ``removed``: the cluster-wide record of an HA VM follows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from viridian.cluster.errors import ClusterConflict, ClusterUnavailable
from viridian.model import VMState
from viridian.service.capability import Capability, SettingsChange
from viridian.service.cluster.agent import ClusterHost, HostAgent
from viridian.service.cluster.config import ClusterConfig, ClusterFolder
from viridian.service.cluster.shared_check import check_on_shared_storage

if TYPE_CHECKING:
    from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)


class ClusterCapability(Capability):
    name = "cluster"

    def __init__(self, context: ClusterHost) -> None:
        self.context = context
        self.folder = ClusterFolder(context.data_dir)
        self.agent: HostAgent | None = None
        self.drainer: Callable[[], dict[str, Any] | None] | None = None
        """Set by the migration capability: starts this host's drain job (moves its HA
        VMs away) and returns it."""

    def start(self) -> None:
        config = self.folder.load()
        if config is not None:
            self.run(config)

    def run(self, config: ClusterConfig) -> HostAgent:
        """Start the agent for ``config`` (a join, or the service's start)."""
        self.agent = HostAgent(self.context, self.folder, config, asyncio.get_running_loop())
        self.agent.drainer = self.drainer
        self.agent.start()
        return self.agent

    def install_routes(self, app: FastAPI) -> None:
        from viridian.service.cluster.routes import install_cluster_routes
        install_cluster_routes(app, self)

    async def prepare_start(self, vm: LiveVM) -> None:
        if self.agent is not None and vm.record.settings.high_availability.ha:
            self._refuse_a_cold_start_over_a_saved_state(vm)
            self.folder.take_mark(vm.record.id)  # a mark left from before names no exit of
            self.agent.starting(vm.record.id)   # the QEMU starting now
            await asyncio.to_thread(self.agent.claim_for_start, vm)
            await asyncio.to_thread(self.agent.feed_now)

    def _refuse_a_cold_start_over_a_saved_state(self, vm: LiveVM) -> None:
        """An HA VM Off here whose folder on the shared storage holds a saved memory state:
        another host saved it (a save here leaves it Saved here; docs/architecture.md,
        "Failover cluster"). A cold start here would boot over disks that state was taken
        with, and a later restore there would run that stale memory over the disks this
        run changed. Refused before anything is claimed."""
        if vm.state is VMState.OFF and vm.saved_state.exists():
            raise ClusterConflict(
                f"cannot start VM '{vm.record.name}' here: it is Off on this host, but its "
                f"folder on the shared storage holds a saved memory state "
                f"({vm.saved_state.name}) that another cluster host made. Starting it cold "
                "would throw that state away, and a restore there later would run stale "
                "memory over the disks. Start (restore) it on the host where it is Saved, "
                "or delete its saved state there first; nothing was changed",
                vm=vm.record.name)

    def exited(self, vm: LiveVM) -> None:
        agent = self.agent
        if agent is None or not vm.record.settings.high_availability.ha:
            return
        agent.ended(vm, self.folder.take_mark(vm.record.id))

    def settings_changed(self, vm: LiveVM) -> None:
        agent = self.agent
        if agent is not None:
            agent.submit(lambda: agent.publish(vm))

    def removed(self, vm: LiveVM, delete_files: bool) -> None:
        agent, vm_id = self.agent, vm.record.id
        if agent is not None and vm.record.settings.high_availability.ha and \
                vm_id not in agent.moving:  # a moved VM's record is the cluster's still
            agent.submit(lambda: agent.forget(vm_id))

    def _owner_of_copy(self, vm: LiveVM | None, doing: str) -> str | None:
        """The host that owns the HA VM ``vm`` when what is here is only a copy (QEMU not
        running here, another host owning it in etcd now — not in the agent's last view,
        which can be a tick behind a move that just handed the VM over); else None. A VM
        running here is this host's.

        :raises ClusterUnavailable: etcd does not answer, so whether another host runs
            the VM on its files is not known (``doing`` says what was asked).
        """
        agent = self.agent
        if agent is None or vm is None or vm.worker is not None or \
                not vm.record.settings.high_availability.ha:
            return None
        try:
            return agent.other_owner_now(vm.record.id)
        except ClusterUnavailable as err:
            raise ClusterUnavailable(
                f"cannot {doing} VM '{vm.record.name}' on this host now: the etcd of cluster "
                f"'{agent.config.name}' does not answer ({err}), so whether another host "
                "owns the VM and runs it on its files on the shared storage is not known; "
                "try again once etcd answers; nothing was changed",
                vm=vm.record.name, endpoints=list(agent.config.endpoints)) from err

    @property
    def _name(self) -> str:
        return self.agent.config.name if self.agent is not None else ""

    def check_removal(self, vm: LiveVM, delete_files: bool) -> None:
        """This host's copy of an HA VM that another host owns (it runs there) may lose
        its registration here, never its files: they are on the shared storage, in use
        by the owner."""
        agent = self.agent
        if agent is None or not delete_files:
            return
        owner = self._owner_of_copy(vm, "delete the files of")
        if owner is not None:
            raise ClusterConflict(
                f"cannot delete the files of VM '{vm.record.name}' (cluster "
                f"'{agent.config.name}'): host '{owner}' owns it, and its files are on the "
                "shared storage. Remove only this host's registration (without "
                "--delete-files), or remove the VM on the host that owns it; nothing was "
                "changed", vm=vm.record.name, owner=owner)

    def check_disk_work(self, vm: LiveVM, action: str) -> None:
        """The disk files of an HA VM that another host owns are in use there: this
        host's copy may not open or rewrite them (a backup's storage daemon opens them
        read-write; an in-place restore, a storage move, a disk edit would change the
        disks under the running VM)."""
        owner = self._owner_of_copy(vm, action + " of")
        if owner is not None:
            raise ClusterConflict(
                f"cannot {action} of VM '{vm.record.name}' on this host: host '{owner}' "
                f"owns it in cluster '{self._name}' and runs it on these disks; do it on "
                f"'{owner}'; nothing was changed", vm=vm.record.name, owner=owner)

    def check_settings(self, change: SettingsChange) -> None:
        """A copy of an HA VM that another host owns is not the VM's definition (the
        owner's is, in vm.json and the cluster's record, which a change here would
        overwrite with this copy's older settings): refused, naming the owner (read from
        etcd now; a VM running here is this host's). HA on: the VM's folder and hard disks
        must be on the cluster's shared storage."""
        owner = self._owner_of_copy(change.vm, "change")
        if owner is not None:
            raise ClusterConflict(
                f"cannot change VM '{change.vm_name}' on this host: host '{owner}' owns it "
                f"in cluster '{self._name}' (it runs there) and this host's copy is older "
                f"than the VM's definition; change it on '{owner}'; nothing was changed",
                vm=change.vm_name, owner=owner)
        if self.agent is not None:
            check_on_shared_storage(self.agent.config, change.vm_name,
                                    change.vm.record.folder if change.vm else None,
                                    change.new)

    def describe(self, vm: LiveVM) -> dict[str, Any]:
        agent = self.agent
        if agent is None or not vm.record.settings.high_availability.ha or agent.view is None:
            return {}
        record = next((v for v in agent.view.vms if v.id == vm.record.id), None)
        if record is None:
            return {"cluster": {"owner": None, "desired_running": False}}
        extra: dict[str, Any] = {"owner": record.owner,
                                 "desired_running": record.desired_running}
        if record.id in agent.pending:
            extra["pending"] = agent.pending[record.id]
        if record.id in agent.placed:
            extra["placed"] = agent.placed[record.id]
        return {"cluster": extra}

    async def close(self) -> None:
        if self.agent is not None:
            await asyncio.to_thread(self.agent.stop)

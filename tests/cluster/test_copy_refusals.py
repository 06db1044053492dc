"""The refusals that keep a host's copy of an HA VM off the owner's files
(``ClusterCapability.check_settings`` / ``check_disk_work`` / ``check_removal``) read the
owner from etcd at the request, not from the agent's last view: that view can be a tick
behind a move that just handed the VM to another host (a CI run let a copy overwrite the
owner's settings that way). A real etcd; the agent has no thread, its view is set by hand
to the stale one. The same rules with two real hosts: tests/migration/test_cluster_move.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from tests.cluster.etcd_members import EtcdCluster
from viridian.cluster.errors import ClusterConflict, ClusterUnavailable
from viridian.cluster.etcd import Etcd
from viridian.cluster.model import ClusterVM, HAPolicy
from viridian.cluster.ownership import ClusterView, owner_key
from viridian.model import VMSettings
from viridian.service.capability import SettingsChange
from viridian.service.cluster.agent import HostAgent
from viridian.service.cluster.capability import ClusterCapability

CLUSTER = "refusals"
VM_ID = "0f6f2a52-6a43-4b8e-9d1c-3f1f5c2f7a10"


def _vm(running: bool = False) -> Any:
    """A registered HA VM, Off here (no QEMU) or running here."""
    settings = SimpleNamespace(high_availability=SimpleNamespace(ha=True))
    return SimpleNamespace(record=SimpleNamespace(id=VM_ID, name="ha1", settings=settings),
                           worker=object() if running else None)


@pytest.fixture
def here(etcd: EtcdCluster) -> Iterator[tuple[ClusterCapability, Etcd]]:
    """h2's capability whose agent's last view still names h2 the owner of the VM."""
    client = Etcd(etcd.endpoints)
    agent = HostAgent.__new__(HostAgent)  # no thread, no guard: only the reads run
    agent.etcd = client
    agent.config = SimpleNamespace(  # type: ignore[assignment]
        host="h2", name=CLUSTER, endpoints=tuple(etcd.endpoints))
    agent.unreachable = None
    agent.view = ClusterView(1, vms=[ClusterVM(VM_ID, "ha1", 192, HAPolicy(ha=True), True,
                                               owner="h2")])
    capability = ClusterCapability.__new__(ClusterCapability)
    capability.agent = agent
    try:
        yield capability, client
    finally:
        client.delete(owner_key(CLUSTER, VM_ID))


def test_a_copy_is_refused_by_the_owner_in_etcd_though_the_view_names_this_host(
        here: tuple[ClusterCapability, Etcd]) -> None:
    capability, client = here
    client.put(owner_key(CLUSTER, VM_ID), "h1")  # the move handed it to h1 a moment ago
    vm = _vm()
    change = SettingsChange(VM_ID, "ha1", vm, None, VMSettings(name="ha1"))
    with pytest.raises(ClusterConflict, match="host 'h1' owns it"):
        capability.check_settings(change)
    with pytest.raises(ClusterConflict, match="host 'h1' owns it"):
        capability.check_disk_work(vm, "back up the disks")
    with pytest.raises(ClusterConflict, match="host 'h1' owns it"):
        capability.check_removal(vm, delete_files=True)
    capability.check_removal(vm, delete_files=False)  # the registration alone may go
    capability.check_disk_work(_vm(running=True), "back up the disks")  # it runs here


def test_a_copy_nobody_else_owns_may_be_worked_on(
        here: tuple[ClusterCapability, Etcd]) -> None:
    capability, client = here
    vm = _vm()
    capability.check_disk_work(vm, "back up the disks")  # nobody owns it
    client.put(owner_key(CLUSTER, VM_ID), "h2")
    capability.check_removal(vm, delete_files=True)  # this host owns it


def test_an_unreachable_etcd_refuses_saying_the_owner_is_not_known(
        here: tuple[ClusterCapability, Etcd]) -> None:
    capability, _ = here
    assert capability.agent is not None
    capability.agent.unreachable = "no etcd endpoint answered"
    with pytest.raises(ClusterUnavailable) as caught:
        capability.check_disk_work(_vm(), "back up the disks")
    assert "cannot back up the disks of VM 'ha1'" in str(caught.value)
    assert "is not known" in str(caught.value) and "nothing was changed" in str(caught.value)
    assert caught.value.http_status == 503

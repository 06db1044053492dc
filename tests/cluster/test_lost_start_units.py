"""The agent's start of an HA VM it registered for that start (``HostAgent._start_here``):
when another host won the start, this host's registration goes again; on any other
failure, or for a VM registered before, it stays (unit test: fakes for the core and its
jobs; the removal rule it protects is tested with real hosts in
tests/migration/test_cluster_move.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from viridian.model.states import VMState
from viridian.service.cluster.agent import ExitLedger, HostAgent

VM_ID = "5a21f905-4812-4eaa-a499-44696ef8b27e"


@dataclass
class FakeVM:
    record: Any = field(default_factory=lambda: SimpleNamespace(id=VM_ID, name="ha1"))
    state: VMState = VMState.OFF
    worker: object | None = None
    daemon_ended: bool = False

    async def end_storage_daemon(self) -> None:
        self.daemon_ended = True


@dataclass
class FakeJobs:
    outcome: dict[str, Any]

    def busy(self, vm_id: str) -> bool:
        return False

    async def wait(self, job_id: str, timeout: float) -> dict[str, Any]:
        return self.outcome


@dataclass
class FakeCore:
    jobs: FakeJobs
    registered: dict[str, FakeVM] = field(default_factory=dict)
    unregistered: list[FakeVM] = field(default_factory=list)

    def vms(self) -> dict[str, FakeVM]:
        return self.registered

    async def register_in_place(self, folder: str) -> dict[str, Any]:
        self.registered[VM_ID] = FakeVM()
        return {}

    def request(self, ref: str, action: str, *, timeout_s: float | None) -> dict[str, Any]:
        return {"id": "job-1"}

    def unregister_older_copy(self, live: FakeVM) -> None:
        self.unregistered.append(live)
        del self.registered[live.record.id]


LOST = {"state": "failed", "error": {
    "code": "cluster_conflict", "message": "cannot start HA VM 'ha1': host 'h1' owns it",
    "details": {"vm": "ha1", "owner": "h1"}}}
NO_MEMORY = {"state": "failed", "error": {
    "code": "admission_refused", "message": "cannot start VM 'ha1': not enough memory",
    "details": {"vm": "ha1"}}}


def _agent(core: FakeCore) -> HostAgent:
    agent = HostAgent.__new__(HostAgent)  # no etcd, no thread: only _start_here runs
    agent.context = core  # type: ignore[assignment]
    agent.exits = ExitLedger()
    agent.pending = {}
    agent.config = SimpleNamespace(host="h2")  # type: ignore[assignment]
    agent.core = SimpleNamespace(lease=7)  # type: ignore[assignment]
    agent.submit = lambda work: None  # type: ignore[method-assign]
    agent._starting = {}
    return agent


def _start(core: FakeCore) -> HostAgent:
    agent = _agent(core)
    vm = SimpleNamespace(id=VM_ID, name="ha1", settings={"folder": "/shared/ha1"})
    asyncio.run(agent._start_here(vm, {}))  # type: ignore[arg-type]
    return agent


def test_a_start_lost_to_another_host_unregisters_the_copy_made_for_it() -> None:
    core = FakeCore(FakeJobs(LOST))
    agent = _start(core)
    assert VM_ID not in core.registered
    assert [vm.daemon_ended for vm in core.unregistered] == [True]
    assert "host 'h1' owns it" in agent.pending[VM_ID]


@pytest.mark.parametrize("registered_before", [False, True])
def test_a_copy_stays_when_the_start_failed_otherwise_or_it_was_registered_before(
    registered_before: bool,
) -> None:
    core = FakeCore(FakeJobs(NO_MEMORY if not registered_before else LOST))
    if registered_before:
        core.registered[VM_ID] = FakeVM()
    agent = _start(core)
    assert VM_ID in core.registered and core.unregistered == []
    assert VM_ID in agent.pending

"""The provisioning watch (``Provisioner.watch``): a guest that takes longer than any fixed
number of polls to write its ready file (20 guests booting on 2 loaded cores) is still
shown "provisioned: ready"; the watch ends with the QEMU process it watched, and a guest
agent that is not up yet (errors) only delays it. Fakes for the VM and its agent; the
real guests are in ``test_provision_guest.py`` and ``test_count20_guest.py``."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from viridian.qemu.guest_agent import GuestExecResult
from viridian.service.library import provisioning
from viridian.service.library.provisioning import READY, Provisioner


class SlowAgent:
    """Fails (not up) ``failures`` times, then answers "not yet" ``pending`` times, then
    "ready"."""

    def __init__(self, failures: int, pending: int) -> None:
        self.failures, self.pending, self.calls = failures, pending, 0

    async def exec(self, argv: list[str], timeout: float) -> GuestExecResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("guest agent not up")
        if self.calls <= self.failures + self.pending:
            return GuestExecResult(1, b"", b"cat: no such file")
        return GuestExecResult(0, b"ready\n", b"")


@dataclass
class FakeWorker:
    guest_agent: SlowAgent


@dataclass
class FakeVM:
    worker: FakeWorker | None
    changes: int = 0

    def view_changed(self) -> None:
        self.changes += 1


@dataclass
class FakeContext:
    data_dir: Path
    live: dict[str, FakeVM] = field(default_factory=dict)

    def vms(self) -> dict[str, FakeVM]:
        return self.live


def _provisioner(tmp_path: Path, vm: FakeVM) -> tuple[Provisioner, FakeContext]:
    context = FakeContext(tmp_path, {"vm-1": vm})
    made = Provisioner(context, templates=None)  # type: ignore[arg-type]
    made.status.set("vm-1", "provisioning", tmp_path / "provisioned" / "p1")
    return made, context


@pytest.fixture(autouse=True)
def instant_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, *args: Any) -> None:
        slept.append(delay)
        await real_sleep(0)

    monkeypatch.setattr(provisioning.asyncio, "sleep", sleep)
    return slept


def test_a_guest_ready_after_a_thousand_polls_is_shown_ready(
        tmp_path: Path, instant_sleep: list[float]) -> None:
    (tmp_path / "provisioned" / "p1").mkdir(parents=True)
    agent = SlowAgent(failures=600, pending=400)
    vm = FakeVM(FakeWorker(agent))
    made, _ = _provisioner(tmp_path, vm)
    asyncio.run(made.watch("vm-1"))
    assert made.status.get("vm-1") == READY and vm.changes == 1
    assert agent.calls == 1001
    assert (tmp_path / "provisioned" / "p1" / "status").read_text() == READY + "\n"
    assert instant_sleep[0] == 1.0 and max(instant_sleep) == provisioning.WATCH_MAX_INTERVAL_S


def test_the_watch_ends_with_its_qemu_process(tmp_path: Path) -> None:
    (tmp_path / "provisioned" / "p1").mkdir(parents=True)
    agent = SlowAgent(failures=10**9, pending=0)
    vm = FakeVM(FakeWorker(agent))
    made, context = _provisioner(tmp_path, vm)

    async def run() -> None:
        watch = asyncio.get_running_loop().create_task(made.watch("vm-1"))
        while agent.calls < 50:
            await asyncio.sleep(0)
        vm.worker = FakeWorker(SlowAgent(0, 0))  # QEMU restarted: its own watch follows
        await asyncio.wait_for(watch, timeout=30)

    asyncio.run(run())
    assert made.status.get("vm-1") == "provisioning"
    context.live.clear()
    asyncio.run(asyncio.wait_for(made.watch("vm-1"), timeout=30))  # VM removed: ends
    assert made.status.get("vm-1") == "provisioning"

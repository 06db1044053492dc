"""What every stack of the lifecycle benchmark shares: the guest, the operations, waiting.

A *stack* is one way to run the same guest (bare QEMU over QMP, viridian over HTTP,
libvirt). The runner times each operation coroutine of a stack from call to return; an
operation returns only when the state it names is reached (see :data:`OPERATIONS`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

READY = b"VIRIDIAN-GUEST READY"
BOOT_TIMEOUT_S = 120.0

# name → what "done" means; the order is the order of one cycle.
OPERATIONS: dict[str, str] = {
    "define": "the VM exists (is known to the stack), not running",
    "start": "QEMU runs the guest's CPU",
    "pause": "the CPU is stopped",
    "resume": "the CPU runs again",
    "save": "the memory is in a file and QEMU is gone",
    "restore": "QEMU runs the guest again from the saved file",
    "turn_off": "QEMU is gone, the VM is Off",
}


@dataclass(frozen=True)
class Guest:
    """The one guest every stack runs: the guest kit's ISO in the IDE DVD drive (1:0)."""

    iso: Path
    memory_mb: int = 256
    processors: int = 1


class Stack(Protocol):
    """One way to run the guest. Operations raise on failure; they never return early."""

    name: str

    async def define(self, index: int) -> None: ...
    async def start(self) -> None: ...
    async def wait_ready(self) -> None: ...
    async def pause(self) -> None: ...
    async def resume(self) -> None: ...
    async def save(self) -> None: ...
    async def restore(self) -> None: ...
    async def turn_off(self) -> None: ...
    async def after_save(self) -> float | None:
        """Untimed work right after a timed save; may return a duration to report apart."""

    async def forget(self) -> None:
        """Undefine the VM of this cycle and remove its files (not timed)."""

    async def close(self) -> None:
        """Leave nothing running (not timed)."""


class BenchError(Exception):
    """A stack could not do what the benchmark asked; the message says which and why."""


async def wait_for_marker(
    log: Path, marker: bytes = READY, timeout: float = BOOT_TIMEOUT_S
) -> None:
    """Return once ``marker`` appears in the file ``log``; BenchError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if marker in log.read_bytes():
                return
        except FileNotFoundError:
            pass
        await asyncio.sleep(0.1)
    raise BenchError(f"{marker.decode()} not seen in {log} within {timeout:g} s")


def exit_of(pid: int) -> Awaitable[None]:
    """A future done when the process ``pid`` has exited (pidfd; never polls for the pid).

    Must be called while the process may still be running; the caller reaps it.
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    fd = os.pidfd_open(pid)

    def readable() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        if not done.done():
            done.set_result(None)

    loop.add_reader(fd, readable)
    return done

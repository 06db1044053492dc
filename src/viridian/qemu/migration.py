"""Live migration between two QEMUs over TCP (docs/architecture.md, "Migration").

QEMU 7.2 ``qapi/migration.json``: the target QEMU is started with ``-incoming defer``
and ``-S`` and told where to listen (``migrate-incoming``); the source is given the
tuning (``migrate-set-capabilities``, ``migrate-set-parameters``) and the target's URI
(``migrate``); pre-copy rounds run while the guest runs, then the source stops the guest,
sends the rest and ends in run state ``postmigrate``. The target stays paused (``-S``)
until the caller resumes it — the hand-over of ownership happens in between. With
post-copy (capability ``postcopy-ram`` on both sides), the source switches over after its
first pass (``migrate-start-postcopy``); the target then runs and pulls missing pages.

Pure parts (what QEMU is told) are :func:`capabilities_for` and :func:`parameters_for`;
the rest are small verbs on a :class:`~viridian.qemu.monitor.Monitor`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import MonitorError, QemuTimeout
from .monitor import MIGRATION_MAX_BANDWIDTH, Monitor

__all__ = ["LiveResult", "LiveTuning", "capabilities_for", "listen", "parameters_for",
           "read_result", "send", "wait_arrived",
           "wait_completed"]

MIB = 1024 * 1024
FINAL = frozenset({"completed", "failed", "cancelled"})
SWITCHED = frozenset({"postcopy-active", "completed"})
"""Source states after which the guest no longer runs on the source."""
_POLL_S = 0.02
_PROGRESS_S = 0.1
"""Between MIGRATION events, how often the source's progress is read."""


@dataclass(frozen=True)
class LiveTuning:
    """How a live migration runs. ``bandwidth_mib_s`` None: unlimited; ``downtime_limit_ms``
    None: QEMU's default (300 ms); ``auto_converge`` throttles a guest that dirties memory
    faster than it is sent; ``postcopy`` switches over after the first pass."""

    auto_converge: bool = True
    bandwidth_mib_s: int | None = None
    downtime_limit_ms: int | None = None
    postcopy: bool = False


@dataclass(frozen=True)
class LiveResult:
    """What QEMU reports of a finished outgoing migration (``query-migrate``)."""

    total_ms: int
    downtime_ms: int
    transferred_bytes: int
    postcopy: bool

    def to_dict(self) -> dict[str, Any]:
        return {"total_ms": self.total_ms, "downtime_ms": self.downtime_ms,
                "transferred_bytes": self.transferred_bytes, "postcopy": self.postcopy}


def capabilities_for(tuning: LiveTuning, incoming: bool) -> list[dict[str, Any]]:
    """Pure: the ``migrate-set-capabilities`` list for one side. ``postcopy-ram`` must be
    set on both; ``auto-converge`` only matters on the source."""
    caps = {"events": True, "postcopy-ram": tuning.postcopy}
    if not incoming:
        caps["auto-converge"] = tuning.auto_converge
    return [{"capability": name, "state": state} for name, state in caps.items()]


def parameters_for(tuning: LiveTuning) -> dict[str, Any]:
    """Pure: the source's ``migrate-set-parameters`` arguments."""
    bandwidth = MIGRATION_MAX_BANDWIDTH if tuning.bandwidth_mib_s is None \
        else tuning.bandwidth_mib_s * MIB
    params: dict[str, Any] = {"max-bandwidth": bandwidth}
    if tuning.downtime_limit_ms is not None:
        params["downtime-limit"] = tuning.downtime_limit_ms
    return params


async def listen(monitor: Monitor, uri: str, tuning: LiveTuning) -> None:
    """Target: accept one migration on ``uri`` (``tcp:HOST:PORT``). QEMU must have been
    started with ``-incoming defer``.

    :raises MonitorError: QEMU refused (e.g. the port is taken).
    """
    await monitor.execute("migrate-set-capabilities",
                          {"capabilities": capabilities_for(tuning, incoming=True)})
    await monitor.execute("migrate-incoming", {"uri": uri})


async def wait_arrived(monitor: Monitor, timeout: float) -> str:
    """Target: wait until the incoming migration completed (or switched to post-copy);
    returns that state. The guest stays paused.

    :raises MonitorError: the incoming migration failed.
    :raises QemuTimeout: neither happened within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        status = await _status(monitor)
        if status in SWITCHED:
            return status
        if status in ("failed", "cancelled"):
            raise MonitorError(f"the incoming migration ended {status}",
                               command="migrate-incoming")
        if time.monotonic() > deadline:
            raise QemuTimeout(f"the incoming migration did not arrive within {timeout:g} s")
        await asyncio.sleep(_POLL_S)


async def send(monitor: Monitor, uri: str, tuning: LiveTuning,
               progress: Callable[[float, str], None] | None = None,
               timeout: float | None = None) -> str:
    """Source: migrate the running guest to ``uri`` and wait until it switched over;
    returns ``completed`` or (post-copy) ``postcopy-active``. On ``completed`` the source
    is paused in ``postmigrate``; on failure or cancel the guest runs on here. The
    figures come after: :func:`read_result`.

    :raises MonitorError: QEMU refused or the migration failed or was cancelled (QEMU's
        ``error-desc`` quoted).
    :raises QemuTimeout: not switched over within ``timeout`` s (the migration goes on:
        cancel it with :meth:`Monitor.cancel_migration`).
    """
    await monitor.execute("migrate-set-capabilities",
                          {"capabilities": capabilities_for(tuning, incoming=False)})
    await monitor.execute("migrate-set-parameters", parameters_for(tuning))
    deadline = None if timeout is None else time.monotonic() + timeout
    postcopy_asked = False
    with monitor.event_waiter("MIGRATION") as waiter:  # a state change wakes us at once
        await monitor.execute("migrate", {"uri": uri})
        while True:
            info = await _query(monitor)
            status = str(info.get("status", "none"))
            if status in SWITCHED:
                return status
            if status in FINAL:
                raise MonitorError(f"the migration to {uri} ended {status}: "
                                   f"{info.get('error-desc', 'QEMU gave no reason')}",
                                   command="migrate", received=info)
            if tuning.postcopy and not postcopy_asked and _first_pass_done(info):
                await monitor.execute("migrate-start-postcopy")
                postcopy_asked = True
            if progress is not None:
                progress(_fraction(info), status)
            if deadline is not None and time.monotonic() > deadline:
                raise QemuTimeout(f"the migration to {uri} did not switch over within "
                                  f"{timeout:g} s")
            await waiter.next_or_none(_PROGRESS_S)


async def read_result(monitor: Monitor, postcopy: bool, timeout: float = 2.0) -> LiveResult:
    """Source, after ``completed``: QEMU's figures. QEMU sets the state before it computes
    ``total-time`` and ``downtime`` (``migration_iteration_finish``), so they are read
    until present (at most ``timeout`` s; zeros then)."""
    deadline = time.monotonic() + timeout
    info = await _query(monitor)
    while not info.get("total-time") and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
        info = await _query(monitor)
    return _result(info, postcopy)


async def wait_completed(monitor: Monitor, timeout: float) -> None:
    """Source: after a post-copy switch-over, wait until every page was sent.

    :raises MonitorError: the post-copy phase failed (the guest is lost on both sides).
    """
    deadline = time.monotonic() + timeout
    while True:
        info = await _query(monitor)
        status = str(info.get("status", "none"))
        if status == "completed":
            return
        if status in FINAL:
            raise MonitorError(f"post-copy ended {status}: {info.get('error-desc', '')}",
                               command="migrate", received=info)
        if time.monotonic() > deadline:
            raise QemuTimeout(f"post-copy did not complete within {timeout:g} s")
        await asyncio.sleep(_POLL_S)


async def _query(monitor: Monitor) -> dict[str, Any]:
    reply = await monitor.execute("query-migrate")
    return reply if isinstance(reply, dict) else {}


async def _status(monitor: Monitor) -> str:
    return str((await _query(monitor)).get("status", "none"))


def _first_pass_done(info: dict[str, Any]) -> bool:
    return int(info.get("ram", {}).get("dirty-sync-count", 0)) >= 2


def _fraction(info: dict[str, Any]) -> float:
    ram = info.get("ram", {})
    total, remaining = int(ram.get("total", 0)), int(ram.get("remaining", 0))
    return 0.0 if total <= 0 else max(0.0, min(1.0, 1 - remaining / total))


def _result(info: dict[str, Any], postcopy: bool) -> LiveResult:
    return LiveResult(total_ms=int(info.get("total-time", 0)),
                      downtime_ms=int(info.get("downtime", 0)),
                      transferred_bytes=int(info.get("ram", {}).get("transferred", 0)),
                      postcopy=postcopy)

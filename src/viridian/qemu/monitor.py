"""A typed monitor of domain verbs on one QEMU's QMP socket.

``qemu.qmp`` speaks the protocol (greeting, negotiation, ids, events); this module adds
the vocabulary viridian needs — ``pause()``, ``save_to_file()``, ``wait_event()`` — with
typed returns, and translates every ``qemu.qmp`` exception into :mod:`.errors` exactly
once, in :meth:`Monitor._execute`.

Events are handed from ``qemu.qmp``'s reader task straight to the waiters registered
here, synchronously and in arrival order: an event that QEMU emits before a command's
reply (``STOP`` before the reply to ``stop``, ``SHUTDOWN`` before the socket closes) is
always delivered before the command's caller resumes. Nothing accumulates for events
nobody waits for (``qemu.qmp``'s default listener would keep every event forever).
Both use ``qemu.qmp``'s public event API: a listener whose ``accept`` hook (documented
as the one to override) hands each event on and keeps none, and an ``event_filter``
that turns the default listener's queue off.

The only private names relied on are the logging hooks ``_cb_inbound``/``_cb_outbound``
(see :class:`_Client`), which is why ``pyproject.toml`` pins ``qemu.qmp`` exactly.

Command reference: QEMU 7.2 ``qapi/run-state.json``, ``qapi/migration.json``,
``qapi/misc.json`` (``getfd``/``closefd``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from qemu.qmp import (
    EventListener,
    ExecInterruptedError,
    ExecuteError,
    Message,
    QMPClient,
    QMPError,
    Runstate,
)
from qemu.qmp import StateError as QmpStateError

from .confinement import grant_for_command
from .errors import MonitorClosed, MonitorError, QemuError, QemuTimeout

__all__ = [
    "MIGRATION_MAX_BANDWIDTH",
    "EventWaiter",
    "MigrationStats",
    "Monitor",
    "QmpEvent",
]

logger = logging.getLogger(__name__)

#: ``max-bandwidth`` for saves, in bytes/s: "unlimited" (INT64_MAX rounded down to a MiB,
#: the value libvirt sends). QEMU's default, 128 MiB/s, would stretch a 256 MiB save.
MIGRATION_MAX_BANDWIDTH = (2**63 - 1) // 2**20 * 2**20

#: Migration states after which nothing more happens (``MigrationStatus`` in migration.json).
_MIGRATION_FINAL = frozenset({"completed", "failed", "cancelled"})

#: How long QEMU may take to answer one command before it counts as hung. Commands answer
#: in milliseconds, but QEMU's main loop runs late on an overloaded or stalled host (a CI
#: run saw ``getfd`` unanswered for 10 s while launching a bare QEMU took ~15 s); libvirt
#: puts no bound on a monitor command at all. Turning a hung QEMU off has its own, short
#: bound (:meth:`Worker.turn_off`), so this one only delays the error of a hung command.
_DEFAULT_COMMAND_TIMEOUT = 30.0
_PROGRESS_INTERVAL = 0.1
_fd_names = itertools.count(1)


@dataclass(frozen=True)
class QmpEvent:
    """One QMP event: its name, its ``data`` member, and QEMU's timestamp (Unix seconds)."""

    name: str
    data: Mapping[str, Any]
    timestamp: float

    @classmethod
    def from_message(cls, msg: Mapping[str, object]) -> QmpEvent:
        data = msg.get("data")
        stamp = msg.get("timestamp")
        seconds = 0.0
        if isinstance(stamp, Mapping):
            seconds = float(stamp.get("seconds", 0)) + float(stamp.get("microseconds", 0)) / 1e6
        return cls(str(msg["event"]), dict(data) if isinstance(data, Mapping) else {}, seconds)


@dataclass(frozen=True)
class MigrationStats:
    """What one save or restore moved: wall time and the size of the state file."""

    seconds: float
    size_bytes: int


EventPredicate = Callable[[QmpEvent], bool]


@dataclass(eq=False)
class EventWaiter:
    """Collects the events named in ``names`` (all if empty) that pass ``predicate``.

    Create it with :meth:`Monitor.event_waiter` *before* issuing the command whose event
    you want, so the event cannot slip by; use it as a context manager to unregister.
    """

    names: frozenset[str]
    predicate: EventPredicate | None
    _monitor: Monitor
    _queue: asyncio.Queue[QmpEvent] = field(default_factory=asyncio.Queue)

    def accepts(self, event: QmpEvent) -> bool:
        if self.names and event.name not in self.names:
            return False
        return self.predicate is None or self.predicate(event)

    async def wait(self, timeout: float | None) -> QmpEvent:
        """The next accepted event.

        :raises QemuTimeout: none arrived within ``timeout`` seconds.
        :raises MonitorClosed: the connection ended first (no more events can come).
        """
        event = await self.next_or_none(timeout)
        if event is None:
            wanted = ", ".join(sorted(self.names)) or "any event"
            raise QemuTimeout(f"QEMU sent no {wanted} event within {timeout} s", events=wanted)
        return event

    async def next_or_none(self, timeout: float | None) -> QmpEvent | None:
        """Like :meth:`wait` but returns ``None`` on timeout."""
        if not self._queue.empty():
            return self._queue.get_nowait()
        getter = asyncio.ensure_future(self._queue.get())
        closed = asyncio.ensure_future(self._monitor.wait_closed())
        try:
            done, _ = await asyncio.wait(
                {getter, closed}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            closed.cancel()
            if not getter.done():
                getter.cancel()
        if getter in done:
            return getter.result()
        if closed in done:
            raise MonitorClosed("the QMP connection closed while waiting for an event")
        return None

    def __enter__(self) -> EventWaiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._monitor.remove_waiter(self)


class _Dispatcher(EventListener):
    """An event listener that passes each event to one callback as it arrives (from the
    reader task, before any later reply is delivered) and queues nothing."""

    def __init__(self, on_event: Callable[[Message], None]) -> None:
        super().__init__()
        self._on_event = on_event

    def accept(self, event: Message) -> bool:
        self._on_event(event)
        return False


def _keep_none(event: Message) -> bool:
    return False


class _Client(QMPClient):
    """``QMPClient`` whose events go to one callback and whose default listener (which
    cannot be unregistered) keeps nothing."""

    def __init__(self, name: str, on_event: Callable[[Message], None]) -> None:
        super().__init__(name)
        self.events.event_filter = _keep_none
        self.register_listener(_Dispatcher(on_event))

    # qemu.qmp's hooks log ``str(msg)`` — the message pretty-printed as JSON — for every
    # message sent and received, even when debug logging is off: for the counter sampler's
    # ``query-blockstats`` replies that formatting was most of the client's CPU. Format
    # only when the line will really be logged. These two hooks are private names of
    # qemu.qmp's ``AsyncProtocol`` (its docstring offers them to subclasses), hence the
    # exact pin in pyproject.toml; tests/qemu/test_monitor.py checks that they still exist.
    def _cb_inbound(self, msg: Message) -> Message:
        return super()._cb_inbound(msg) if self.logger.isEnabledFor(logging.DEBUG) else msg

    def _cb_outbound(self, msg: Message) -> Message:
        return super()._cb_outbound(msg) if self.logger.isEnabledFor(logging.DEBUG) else msg


class Monitor:
    """One QMP connection to one QEMU, speaking in domain verbs.

    Every method that talks to QEMU raises :class:`MonitorError` when QEMU refuses the
    command (with what was sent and received), :class:`MonitorClosed` when there is no
    connection, and :class:`QemuTimeout` when QEMU does not answer within
    ``command_timeout`` seconds. :meth:`close` only drops the connection: QEMU keeps running.
    """

    def __init__(self, name: str = "qemu", command_timeout: float = _DEFAULT_COMMAND_TIMEOUT):
        self.name = name
        self.command_timeout = command_timeout
        self._qmp = _Client(name, self._on_event_message)
        self._waiters: list[EventWaiter] = []
        self._subscribers: list[Callable[[QmpEvent], None]] = []
        self._closed = asyncio.Event()
        self._closed.set()
        self._watcher: asyncio.Task[None] | None = None
        self._disconnecting: asyncio.Task[None] | None = None
        self._fd_lock = asyncio.Lock()
        self._migration_ready = False
        self.last_shutdown: QmpEvent | None = None
        """The last ``SHUTDOWN`` event seen: why QEMU is about to stop (or ``None``)."""
        self.peer_uid = 0
        """The uid QEMU runs as (``SO_PEERCRED``); not 0 when it is confined (.confinement)."""

    # -- connection ------------------------------------------------------------------

    async def connect(self, address: Path | socket.socket, timeout: float = 5.0) -> None:
        """Connect to QEMU's QMP socket (a path, or an already connected UNIX socket).

        :raises MonitorClosed: the socket refused, or no QMP greeting came in ``timeout`` s.
        """
        where = address if isinstance(address, Path) else "socket"
        target: str | socket.socket = str(address) if isinstance(address, Path) else address
        try:
            async with asyncio.timeout(timeout):
                await self._qmp.connect(target)
        except (QMPError, OSError, TimeoutError) as err:
            raise MonitorClosed(f"cannot connect to QMP at {where}: {err}") from err
        self.peer_uid = self._read_peer_uid()
        self._closed.clear()
        self._disconnecting = None
        self._watcher = asyncio.create_task(self._watch_connection(), name=f"qmp-{self.name}")

    def _read_peer_uid(self) -> int:
        writer = self._qmp._writer  # qemu.qmp keeps the stream private; only read here
        sock = None if writer is None else writer.get_extra_info("socket")
        if sock is None or sock.family != socket.AF_UNIX:
            return 0
        try:
            creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        except OSError:
            return 0
        return int(struct.unpack("3i", creds)[1])

    @property
    def connected(self) -> bool:
        return not self._closed.is_set()

    async def wait_closed(self) -> None:
        """Return once the connection has ended (QEMU exited, or :meth:`close` was called)."""
        await self._closed.wait()

    async def close(self) -> None:
        """Drop the connection without touching QEMU. Idempotent; never raises."""
        if self._qmp.runstate != Runstate.IDLE:
            await self._disconnect_once()
        self._closed.set()
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def _watch_connection(self) -> None:
        while self._qmp.runstate == Runstate.RUNNING:
            await self._qmp.runstate_changed()
        self._closed.set()
        await self._disconnect_once()

    async def _disconnect_once(self) -> None:
        if self._disconnecting is None:
            self._disconnecting = asyncio.create_task(self._disconnect())
        await asyncio.shield(self._disconnecting)

    async def _disconnect(self) -> None:
        try:
            await self._qmp.disconnect()
        except (EOFError, OSError, QMPError) as err:
            # The peer hung up (QEMU exited): that is how a QMP session usually ends.
            logger.debug("QMP %s: connection ended: %r", self.name, err)

    # -- events ----------------------------------------------------------------------

    def _on_event_message(self, msg: Message) -> None:
        event = QmpEvent.from_message(msg)
        if event.name == "SHUTDOWN":
            self.last_shutdown = event
        for waiter in self._waiters:
            if waiter.accepts(event):
                waiter._queue.put_nowait(event)
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                logger.exception("QMP %s: event subscriber failed on %s", self.name, event.name)

    def event_waiter(self, *names: str, predicate: EventPredicate | None = None) -> EventWaiter:
        """Start collecting events now; see :class:`EventWaiter`."""
        waiter = EventWaiter(frozenset(names), predicate, self)
        self._waiters.append(waiter)
        return waiter

    def remove_waiter(self, waiter: EventWaiter) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)

    async def wait_event(
        self, name: str, timeout: float | None, predicate: EventPredicate | None = None
    ) -> QmpEvent:
        """Wait for the next ``name`` event from now on. Raises like :meth:`EventWaiter.wait`."""
        with self.event_waiter(name, predicate=predicate) as waiter:
            return await waiter.wait(timeout)

    def subscribe(self, callback: Callable[[QmpEvent], None]) -> Callable[[], None]:
        """Call ``callback`` for every event (from the reader task; it must not block).

        Returns a function that unsubscribes.
        """
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    # -- the one translation boundary -----------------------------------------------

    async def _execute(self, command: str, arguments: Mapping[str, object] | None = None) -> object:
        if self._qmp.runstate != Runstate.RUNNING:
            raise MonitorClosed(
                f"cannot send {command}: no QMP connection", command=command, arguments=arguments
            )
        self._grant_files(command, arguments)
        try:
            async with asyncio.timeout(self.command_timeout):
                return await self._qmp.execute(command, arguments)
        except ExecuteError as err:
            raise MonitorError(
                f"QEMU refused {command}: {err.error_class}: {err}",
                command=command,
                arguments=arguments,
                received=dict(err.received),
            ) from err
        except (ExecInterruptedError, QmpStateError) as err:
            raise MonitorClosed(
                f"the QMP connection closed before QEMU answered {command}",
                command=command,
                arguments=arguments,
            ) from err
        except TimeoutError as err:
            raise QemuTimeout(
                f"QEMU did not answer {command} within {self.command_timeout} s",
                command=command,
                arguments=arguments,
            ) from err
        except QMPError as err:
            raise MonitorError(
                f"QMP failure on {command}: {err}", command=command, arguments=arguments
            ) from err

    def _grant_files(self, command: str, arguments: Mapping[str, object] | None) -> None:
        """A confined QEMU gets the files ``command`` names first (.confinement)."""
        try:
            grant_for_command(self.peer_uid, command, arguments)
        except OSError as err:
            raise MonitorError(
                f"cannot give the confined process (uid {self.peer_uid}) the files {command} "
                f"names: {err}", command=command, arguments=arguments) from err

    async def execute(self, command: str, arguments: Mapping[str, object] | None = None) -> object:
        """Run any QMP command and return its ``return`` value, for verb modules built on
        this monitor (:mod:`.hotplug`, :mod:`.screen`). Raises like every verb."""
        return await self._execute(command, arguments)

    async def _query(self, command: str, arguments: Mapping[str, object] | None = None) -> Any:
        """Run a command whose reply must be a JSON object; returns it."""
        reply = await self._execute(command, arguments)
        if not isinstance(reply, dict):
            raise MonitorError(
                f"QEMU answered {command} with {type(reply).__name__}, expected an object",
                command=command,
                arguments=arguments,
                received=reply,
            )
        return reply

    # -- domain verbs ----------------------------------------------------------------

    async def status(self) -> str:
        """QEMU's run state: ``running``, ``paused``, ``prelaunch``, ``inmigrate``,
        ``postmigrate``, ``shutdown``, ``guest-panicked``, ... (``RunState``)."""
        reply = await self._query("query-status")
        return str(reply["status"])

    async def version(self) -> tuple[int, int, int]:
        """QEMU's version (major, minor, micro)."""
        reply = await self._query("query-version")
        q = reply["qemu"]
        return int(q["major"]), int(q["minor"]), int(q["micro"])

    async def block_stats(self) -> dict[str, dict[str, int]]:
        """I/O statistics of every disk attached to a guest device (``query-blockstats``;
        ``BlockDeviceStats`` in qapi/block-core.json), keyed by the device's id (``ide0-0``,
        ``scsi1-3``); values are the integer members (``rd_bytes``, ``wr_operations``,
        ``rd_total_time_ns``, ...). QEMU's built-in slots without an id are left out."""
        reply = await self._execute("query-blockstats")
        if not isinstance(reply, list):
            raise MonitorError("query-blockstats did not return a list", received=reply)
        result: dict[str, dict[str, int]] = {}
        for entry in reply:
            qdev = str(entry.get("qdev", ""))
            if qdev.startswith("/machine/peripheral/"):
                qdev = qdev.split("/")[3]
            if qdev and not qdev.startswith("/"):
                stats = entry.get("stats", {})
                result[qdev] = {k: v for k, v in stats.items() if type(v) is int}
        return result

    async def machine_aliases(self) -> dict[str, str]:
        """Machine type aliases (``pc`` → ``pc-i440fx-7.2``) from ``query-machines``."""
        reply = await self._execute("query-machines")
        if not isinstance(reply, list):
            raise MonitorError("query-machines did not return a list", received=reply)
        return {str(m["alias"]): str(m["name"]) for m in reply if "alias" in m}

    async def pause(self) -> None:
        """Stop the vCPUs (``stop``). Returns once they are stopped."""
        await self._execute("stop")

    async def resume(self) -> None:
        """Run the vCPUs (``cont``); also starts a VM launched with ``-S``."""
        await self._execute("cont")

    async def reset(self) -> None:
        """Hard reset, like the reset button (``system_reset``)."""
        await self._execute("system_reset")

    async def power_button(self) -> None:
        """Press the ACPI power button (``system_powerdown``); the guest decides what to do."""
        await self._execute("system_powerdown")

    async def quit(self) -> None:
        """Ask QEMU to exit now (``quit``). A connection lost before the reply is success;
        no connection at all raises :class:`MonitorClosed`."""
        if not self.connected:
            raise MonitorClosed("cannot send quit: no QMP connection", command="quit")
        with contextlib.suppress(MonitorClosed):
            await self._execute("quit")

    async def migration_status(self) -> str:
        """The current (or last) migration's state: ``none``, ``active``, ``completed``,
        ``failed``, ``cancelled``, ... (``query-migrate``)."""
        return str((await self._query("query-migrate")).get("status", "none"))

    async def cancel_migration(self, timeout: float = 10.0) -> str:
        """Stop a save that is still writing (``migrate_cancel``) and wait until it has
        stopped; a no-op when none runs. Returns the migration's final state (``none``,
        ``cancelled``, or ``completed``/``failed`` if it ended first). The VM keeps its
        run state (paused, for a save by viridian): resume it to run again."""
        with self.event_waiter("MIGRATION") as waiter:
            status = await self.migration_status()
            if status in _MIGRATION_FINAL or status == "none":
                return status
            await self._execute("migrate_cancel")
            status = await self.migration_status()  # events only come when enabled
            deadline = time.monotonic() + timeout
            while status not in _MIGRATION_FINAL:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QemuTimeout(f"the migration was not cancelled within {timeout} s")
                await waiter.next_or_none(min(left, _PROGRESS_INTERVAL))
                status = await self.migration_status()
            return status

    # -- save and restore --------------------------------------------------------------

    async def save_to_file(
        self,
        path: Path,
        progress: Callable[[float], None] | None = None,
        timeout: float | None = None,
        fsync: bool = True,
    ) -> MigrationStats:
        """Write the VM's state (RAM and devices) to ``path``, created or truncated, 0600.

        The file is opened here and handed to QEMU as a file descriptor (``getfd`` +
        ``migrate fd:``), so a sandboxed QEMU needs no file access of its own. The VM
        should be paused first (a running VM is migrated live, then stopped by QEMU).
        ``progress`` receives fractions in [0, 1]. With ``fsync`` the data is on disk
        when this returns; writeback is started while QEMU still writes, so the final
        fsync waits for little (99 MB: ~60 ms → ~5 ms here).

        :raises MonitorError: QEMU refused or the migration failed (``error-desc`` quoted).
        :raises QemuTimeout: it did not finish within ``timeout`` seconds.
        :raises QemuError: the file cannot be created.
        """
        started = time.monotonic()
        fd = _open_state_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            await self._prepare_outgoing_migration()
            with _early_writeback(fd) if fsync else contextlib.nullcontext():
                await self._migrate_fd(fd, "migrate", progress, timeout, path)
            if fsync:
                await asyncio.to_thread(os.fsync, fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        return MigrationStats(time.monotonic() - started, size)

    async def restore_from_file(self, path: Path, timeout: float | None = None) -> MigrationStats:
        """Load a state written by :meth:`save_to_file` into a QEMU started with
        ``-incoming defer``. Afterwards the VM is in the run state it was saved in
        (paused, when saved by viridian): call :meth:`resume` to run it.

        :raises MonitorError: QEMU was not started with ``-incoming defer``, or loading
            failed (e.g. the state does not match the VM's devices).
        :raises QemuError: the file cannot be opened.
        """
        started = time.monotonic()
        fd = _open_state_file(path, os.O_RDONLY)
        try:
            await self._set_migration_events()
            await self._migrate_fd(fd, "migrate-incoming", None, timeout, path)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        return MigrationStats(time.monotonic() - started, size)

    async def _set_migration_events(self) -> None:
        capabilities = [{"capability": "events", "state": True}]
        await self._execute("migrate-set-capabilities", {"capabilities": capabilities})

    async def _prepare_outgoing_migration(self) -> None:
        if self._migration_ready:
            return
        await self._set_migration_events()
        await self._execute("migrate-set-parameters", {"max-bandwidth": MIGRATION_MAX_BANDWIDTH})
        self._migration_ready = True

    async def _migrate_fd(
        self,
        fd: int,
        command: str,
        progress: Callable[[float], None] | None,
        timeout: float | None,
        path: Path,
    ) -> None:
        fdname = f"viridian-migration-{next(_fd_names)}"
        await self._pass_fd(fd, fdname)
        with self.event_waiter("MIGRATION") as waiter:
            try:
                await self._execute(command, {"uri": f"fd:{fdname}"})
            except MonitorError:
                await self._close_fd_quietly(fdname)
                raise
            status = await self._await_migration_end(waiter, progress, timeout, command)
        if status != "completed":
            detail = await self._migration_error()
            raise MonitorError(
                f"{command} with {path} ended {status}: {detail}",
                command=command,
                arguments={"uri": f"fd:{fdname}"},
                received={"status": status, "error-desc": detail},
            )
        if progress is not None:
            progress(1.0)

    async def _pass_fd(self, fd: int, fdname: str) -> None:
        """Send ``fd`` by SCM_RIGHTS and name it in QEMU (``getfd``)."""
        async with self._fd_lock:
            try:
                self._qmp.send_fd_scm(fd)
            except (QMPError, OSError) as err:
                raise MonitorClosed(
                    f"cannot pass a file descriptor to QEMU: {err}", command="getfd"
                ) from err
            await self._execute("getfd", {"fdname": fdname})

    async def _close_fd_quietly(self, fdname: str) -> None:
        with contextlib.suppress(MonitorError, QemuTimeout):
            await self._execute("closefd", {"fdname": fdname})

    async def _await_migration_end(
        self,
        waiter: EventWaiter,
        progress: Callable[[float], None] | None,
        timeout: float | None,
        command: str,
    ) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            interval = _PROGRESS_INTERVAL if progress is not None else None
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QemuTimeout(f"{command} did not finish within {timeout} s")
                interval = left if interval is None else min(interval, left)
            event = await waiter.next_or_none(interval)
            if event is not None and event.data.get("status") in _MIGRATION_FINAL:
                return str(event.data["status"])
            if event is None and progress is not None:
                progress(await self._migration_fraction())

    async def _migration_fraction(self) -> float:
        ram = (await self._query("query-migrate")).get("ram", {})
        total, remaining = int(ram.get("total", 0)), int(ram.get("remaining", 0))
        return 0.0 if total <= 0 else max(0.0, min(1.0, 1 - remaining / total))

    async def _migration_error(self) -> str:
        try:
            info = await self._query("query-migrate")
        except (MonitorError, QemuTimeout) as err:
            return f"(query-migrate failed: {err})"
        return str(info.get("error-desc", "QEMU gave no reason"))


def _open_state_file(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise QemuError(
            f"cannot open the state file {path}: {err.strerror}", path=str(path)
        ) from err


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        function = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], function)


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2  # <fcntl.h>: start writeback of dirty pages, do not wait
_WRITEBACK_INTERVAL = 0.01


@contextlib.contextmanager
def _early_writeback(fd: int) -> Iterator[None]:
    """While the block runs, a thread starts writeback of ``fd``'s dirty pages every 10 ms
    (``sync_file_range(SYNC_FILE_RANGE_WRITE)``), so disk writes overlap QEMU's."""
    function = _sync_file_range
    if function is None:
        yield
        return
    stop = threading.Event()

    def nudge() -> None:
        while not stop.wait(_WRITEBACK_INTERVAL):
            function(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)

    thread = threading.Thread(target=nudge, name="state-writeback", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()

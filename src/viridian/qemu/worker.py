"""One running VM's QEMU: launch or re-attach, verbs, save, turn off, and how it ended.

A :class:`Worker` ties together the detached process (``process``), its QMP monitor
(``monitor``), its runtime record (``runtime_record``) and its guest agent. It does not
serialise requests: the service queues requests per VM and calls one verb at a time.

Launch sequence (each step's failure kills QEMU, removes the runtime folder and raises
:class:`QemuStartError` with the end of ``qemu.log``):

1. runtime folder created 0700 (leftovers of a dead QEMU removed; a live one refuses);
   the VM's storage daemon, when it has one, is started by its owner beforehand and
   handed in (``storage``; :mod:`storage_daemon`): it outlives QEMU;
2. QEMU spawned with ``-S`` (added when missing), so no guest code runs before the
   service is connected; its runtime record and pid file written at once;
3. QMP connected as soon as the socket listens;
4. with ``incoming_state``: the saved state loaded (``-incoming defer`` must be in argv);
5. ``cont`` unless ``start_paused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .capabilities import Accelerator
from .errors import (
    MonitorClosed,
    MonitorError,
    QemuError,
    QemuStartError,
    QemuTimeout,
    RuntimeRecordError,
    WorkerGone,
)
from .guest_agent import GuestAgent
from .monitor import MigrationStats, Monitor, QmpEvent
from .process import (
    START_LIMIT_S,
    START_TIMEOUT_S,
    ExitStatus,
    QemuProcess,
    StartPatience,
    connect_when_listening,
    log_tail,
    patiently,
    read_boot_id,
    read_start_time,
)
from .runtime_paths import RuntimePaths
from .runtime_record import RuntimeRecord, load_record, write_pid_file, write_record
from .storage_daemon import StorageDaemon

log = logging.getLogger(__name__)

__all__ = [
    "ExitInfo",
    "ExitReason",
    "SaveResult",
    "Worker",
    "classify_exit",
    "remove_runtime_folder",
]

#: After QEMU's process ended, how long to wait for its QMP socket's last bytes (the
#: SHUTDOWN event) to be read. They are already in the socket buffer: this is a bound.
_EVENT_DRAIN_TIMEOUT = 0.5
_EXIT_AFTER_QUIT_TIMEOUT = 10.0
_IO_ERROR_WATCH_S = 30.0  # a loaded host reports in-flight errors late


class ExitReason(enum.StrEnum):
    """Why a VM's QEMU ended, in words an admin reads."""

    GUEST_POWERED_OFF = "guest powered off"
    RESET = "reset"  # a reset ends QEMU when it runs with -no-reboot
    GUEST_PANICKED = "guest panicked"
    QUIT = "quit"
    KILLED = "killed"
    CRASHED = "crashed"
    UNKNOWN = "ended for an unknown reason"


# SHUTDOWN event ``reason`` (QEMU 7.2 qapi/run-state.json ShutdownCause) → ExitReason.
_SHUTDOWN_CAUSES = {
    "guest-shutdown": ExitReason.GUEST_POWERED_OFF,
    "guest-reset": ExitReason.RESET,
    "host-qmp-system-reset": ExitReason.RESET,
    "subsystem-reset": ExitReason.RESET,
    "guest-panic": ExitReason.GUEST_PANICKED,
    "host-qmp-quit": ExitReason.QUIT,
    "host-ui": ExitReason.QUIT,
    "host-signal": ExitReason.KILLED,
    "host-error": ExitReason.CRASHED,
}
_KILL_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


@dataclass(frozen=True)
class ExitInfo:
    """How a VM's QEMU ended: a reason, a sentence for the admin, and the raw facts."""

    reason: ExitReason
    detail: str
    status: ExitStatus
    shutdown_cause: str | None = None
    """``reason`` of QEMU's last SHUTDOWN event, if one was seen."""


@dataclass(frozen=True)
class SaveResult:
    migration: MigrationStats
    exit: ExitInfo


def classify_exit(shutdown: QmpEvent | None, status: ExitStatus, log: str = "") -> ExitInfo:
    """Pure: decide why QEMU ended from its last SHUTDOWN event and its exit status.

    The event, when there is one, is the better witness (it survives a service restart,
    the exit status does not); a process killed by a signal sends no event.
    """
    seen = f"; last lines of qemu.log: {log}" if log else ""
    if shutdown is not None:
        cause = str(shutdown.data.get("reason", ""))
        reason = _SHUTDOWN_CAUSES.get(cause, ExitReason.QUIT)
        return ExitInfo(reason, f"QEMU shut down ({cause}); {status.describe()}", status, cause)
    if status.signal is not None:
        reason = ExitReason.KILLED if status.signal in _KILL_SIGNALS else ExitReason.CRASHED
        return ExitInfo(reason, f"QEMU was {status.describe()}{seen}", status)
    if status.code is not None and status.code != 0:
        return ExitInfo(ExitReason.CRASHED, f"QEMU ended with {status.describe()}{seen}", status)
    why = "exit code 0" if status.code == 0 else "exit status unknown (not our child)"
    detail = f"QEMU ended without a shutdown event, {why}{seen}"
    return ExitInfo(ExitReason.UNKNOWN, detail, status)


class Worker:
    """A running VM's QEMU. Create with :meth:`launch` or :meth:`attach`, not directly."""

    def __init__(
        self,
        paths: RuntimePaths,
        record: RuntimeRecord,
        process: QemuProcess,
        monitor: Monitor,
        storage: StorageDaemon | None = None,
    ) -> None:
        self.paths = paths
        self.record = record
        self.process = process
        self.monitor = monitor
        self.storage = storage
        """The VM's storage daemon serving QEMU's disks (owned by the caller: QEMU's end
        leaves it running; docs/architecture.md, "The storage daemon")."""
        self.guest_agent = GuestAgent(paths.guest_agent_socket)
        self._exit_task = asyncio.create_task(self._watch_exit(), name=f"exit-{record.vm_name}")

    @property
    def pid(self) -> int:
        return self.process.pid

    # -- creation ------------------------------------------------------------------

    @classmethod
    async def launch(
        cls,
        argv: Sequence[str],
        paths: RuntimePaths,
        *,
        vm_id: str,
        vm_name: str,
        accelerator: Accelerator = "tcg",
        settings: Mapping[str, Any] | None = None,
        start_paused: bool = False,
        incoming_state: Path | None = None,
        ready_timeout: float = START_TIMEOUT_S,
        restore_timeout: float | None = 300.0,
        storage: StorageDaemon | None = None,
        incoming_live: bool = False,
    ) -> Worker:
        """Start QEMU for a VM (see the module docs for the steps).

        ``argv`` is the full command line (binary first). It must open QMP on
        ``paths.qmp_socket`` as a server that does not wait (``-qmp
        unix:PATH,server=on,wait=off`` or ``-chardev socket,...`` + ``-mon``), and contain
        ``-incoming defer`` exactly when ``incoming_state`` is given. The VM ends
        running, or paused with ``start_paused``. ``storage`` is the VM's running storage
        daemon (QEMU's argv then opens its disks over NBD): recorded, never ended here.
        ``incoming_live``:
        ``-incoming defer`` without a state file — QEMU is left paused, waiting to be told
        where a live migration comes from (:mod:`.migration`).

        :raises QemuStartError: QEMU could not be started, connected or restored.
        """
        argv = _with_paused_start(argv)
        _check_incoming(argv, incoming_state, incoming_live)
        _prepare_folder(paths)
        try:
            process = await QemuProcess.launch(argv, paths.qemu_log)
        except BaseException:
            shutil.rmtree(paths.folder, ignore_errors=True)
            raise
        monitor = Monitor(vm_name)
        try:
            record = _launch_record(argv, process, vm_id, vm_name, accelerator, settings)
            if storage is not None:
                record = replace(record, storage_daemon=storage.record)
            write_record(paths, record)
            write_pid_file(paths, process.pid)
            patience = StartPatience(process, quiet_s=ready_timeout)
            sock = await connect_when_listening(
                paths.qmp_socket, process, patience, paths.qemu_log
            )
            await patiently(monitor.connect(sock, timeout=START_LIMIT_S), patience,
                            "QEMU sent no QMP greeting")
            if incoming_state is not None:
                await monitor.restore_from_file(incoming_state, timeout=restore_timeout)
            if not (start_paused or incoming_live):
                await monitor.resume()
        except BaseException as err:
            tail = log_tail(paths.qemu_log)
            await _abandon(process, monitor, paths)
            if isinstance(err, QemuStartError) or not isinstance(err, Exception):
                raise
            raise QemuStartError(
                f"QEMU for VM {vm_name!r} failed to start: {err}"
                + (f"; last lines of qemu.log: {tail}" if tail else "")
            ) from err
        return cls(paths, record, process, monitor, storage)

    @classmethod
    async def attach(cls, paths: RuntimePaths, connect_timeout: float = 5.0) -> Worker:
        """Take over the QEMU described by the runtime folder, e.g. after a service restart.

        :raises WorkerGone: QEMU is not running any more (record missing or unreadable,
            host rebooted, process exited, pid reused); ``reason`` says which.
        :raises MonitorError: QEMU runs but its QMP socket does not answer.
        """
        try:
            record = load_record(paths)
        except RuntimeRecordError as err:
            raise WorkerGone(f"no usable runtime record: {err}") from err
        if record.boot_id != read_boot_id():
            raise WorkerGone(
                f"QEMU process {record.pid} is gone: the host restarted since it was started",
                pid=record.pid,
            )
        process = QemuProcess.find(record.pid, record.pid_start_time, paths.qemu_log)
        monitor = Monitor(record.vm_name)
        try:
            await monitor.connect(paths.qmp_socket, timeout=connect_timeout)
        except MonitorClosed as err:
            process.close()
            if read_start_time(record.pid) != record.pid_start_time:
                tail = log_tail(paths.qemu_log)
                seen = f" (last lines of qemu.log: {tail})" if tail else ""
                raise WorkerGone(
                    f"QEMU process {record.pid} is gone: it exited{seen}", pid=record.pid
                ) from err
            raise MonitorError(
                f"QEMU process {record.pid} runs but its QMP socket does not answer: {err}"
            ) from err
        return cls(paths, record, process, monitor)

    async def block_monitor(self) -> Monitor:
        """Where the VM's hard disk images are open, for block jobs: the storage daemon's
        QMP when it serves them (QEMU then holds only NBD nodes), else QEMU's.

        :raises MonitorClosed: the daemon's QMP socket does not answer."""
        if self.storage is not None:
            return await self.storage.monitor()
        return self.monitor

    async def reconnect_storage(self) -> None:
        """After a new storage daemon took over the sockets: make each of QEMU's NBD nodes
        reconnect now, with two small reads through its device (``qemu-io``; with 7.2's
        ``reconnect-delay=0`` the first request on a dead connection fails and the next
        reconnects), so that the next real request — a guest's, or a save's flush —
        finds a live connection. Errors are ignored: a guest request would retry."""
        if self.storage is None:
            return
        with contextlib.suppress(QemuError):
            exports = await (await self.storage.monitor()).execute("query-block-exports")
            for export in exports if isinstance(exports, list) else []:
                for _ in range(2):
                    await self.monitor.execute("human-monitor-command", {
                        "command-line": f"qemu-io -d {export['id']} \"read 0 512\""})

    async def resume_after_io_error(self, watch_s: float = _IO_ERROR_WATCH_S) -> None:
        """Resume QEMU when a storage daemon's end paused it (run state ``io-error``): requests
        issued before the restart may report their error a moment after it, so the run
        state is watched for ``watch_s`` seconds (checked once when 0). A pause by the admin
        is never undone."""
        deadline = time.monotonic() + watch_s
        while not self.process.exited():
            with contextlib.suppress(QemuError):
                if await self.monitor.status() == "io-error":
                    log.warning("VM %s: resuming the guest its storage I/O errors paused",
                                self.record.vm_name)
                    await self.monitor.resume()
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.2)

    # -- verbs -----------------------------------------------------------------------

    async def status(self) -> str:
        """QEMU's run state (see :meth:`Monitor.status`)."""
        return await self.monitor.status()

    async def pause(self) -> None:
        await self.monitor.pause()

    async def resume(self) -> None:
        await self.monitor.resume()

    async def reset(self) -> None:
        await self.monitor.reset()

    async def power_button(self) -> None:
        """ACPI power button: a graceful shutdown request the guest may ignore."""
        await self.monitor.power_button()

    async def save(
        self,
        state_file: Path,
        progress: Callable[[float], None] | None = None,
        timeout: float | None = None,
    ) -> SaveResult:
        """Pause, write memory and device state to ``state_file``, then end QEMU.

        The state goes to ``<state_file>.partial``, is fsynced, and is renamed into place
        only when complete: ``state_file`` is either absent or a whole saved state. On
        failure or cancellation before that point the partial file is removed and a VM
        that was running runs again; once the file is in place the save has happened,
        and QEMU is ended even if the caller is cancelled meanwhile.

        :raises MonitorError: the save failed (QEMU keeps running).
        """
        partial = state_file.with_name(state_file.name + ".partial")
        was_running = await self.monitor.status() == "running"
        await self.monitor.pause()
        try:
            stats = await self.monitor.save_to_file(partial, progress, timeout)
            os.replace(partial, state_file)
        except BaseException:
            partial.unlink(missing_ok=True)
            if self.monitor.connected:
                await asyncio.shield(self._undo_save(was_running))
            raise
        ending = asyncio.gather(
            asyncio.to_thread(_fsync_dir, state_file.parent), self._quit_and_wait()
        )
        _, exit_info = await asyncio.shield(ending)
        return SaveResult(stats, exit_info)

    async def _undo_save(self, was_running: bool) -> None:
        with contextlib.suppress(QemuError):
            await self.monitor.cancel_migration()
            if was_running:
                await self.monitor.resume()

    async def turn_off(self, quit_timeout: float = 1.0) -> ExitInfo:
        """End QEMU now, like pulling the plug: QMP ``quit``, or SIGKILL when QEMU does not
        answer within ``quit_timeout`` seconds (or does not exit soon after)."""
        if self.process.exited():
            return await self.wait_exit()
        try:
            async with asyncio.timeout(quit_timeout):
                await self.monitor.quit()
        except (TimeoutError, QemuError):
            self.process.kill(signal.SIGKILL)
        return await self._wait_or_kill(_EXIT_AFTER_QUIT_TIMEOUT)

    async def _quit_and_wait(self) -> ExitInfo:
        await self.monitor.quit()
        return await self._wait_or_kill(_EXIT_AFTER_QUIT_TIMEOUT)

    async def _wait_or_kill(self, timeout: float) -> ExitInfo:
        try:
            return await self.wait_exit(timeout)
        except QemuTimeout:
            self.process.kill(signal.SIGKILL)
            return await self.wait_exit(timeout)

    # -- exit ------------------------------------------------------------------------

    def has_exited(self) -> bool:
        return self.process.exited()

    async def wait_exit(self, timeout: float | None = None) -> ExitInfo:
        """Wait until QEMU has ended; say why. Raises :class:`QemuTimeout`."""
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._exit_task)
        except TimeoutError as err:
            raise QemuTimeout(f"QEMU process {self.pid} did not exit within {timeout} s") from err

    async def _watch_exit(self) -> ExitInfo:
        closed = asyncio.ensure_future(self.monitor.wait_closed())
        exited = asyncio.ensure_future(self.process.wait())
        await asyncio.wait({closed, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not exited.done():
            self.process.notify_gone()  # only takes effect when there is no pidfd
        status = await exited
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_EVENT_DRAIN_TIMEOUT):
                await closed
        closed.cancel()
        await self.monitor.close()
        self.process.close()
        return classify_exit(self.monitor.last_shutdown, status, log_tail(self.paths.qemu_log))

    async def close(self) -> None:
        """Let go of QEMU without touching it (service shutdown): it keeps running."""
        self._exit_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._exit_task
        await self.monitor.close()
        await self.guest_agent.close()
        self.process.close()

    async def cleanup(self) -> None:
        """Remove the runtime folder once QEMU has ended. Raises :class:`QemuError` if it runs."""
        if not self.process.exited():
            raise QemuError(
                f"cannot remove the runtime folder of VM {self.record.vm_name!r}: "
                f"its QEMU process {self.pid} still runs"
            )
        await self.guest_agent.close()
        shutil.rmtree(self.paths.folder, ignore_errors=True)


def remove_runtime_folder(paths: RuntimePaths) -> None:
    """Remove a VM's runtime folder (e.g. after :class:`WorkerGone`), unless the QEMU its
    record names still runs, which raises :class:`QemuError`."""
    if _live_pid(paths) is not None:
        raise QemuError(f"cannot remove {paths.folder}: the QEMU process it describes still runs")
    shutil.rmtree(paths.folder, ignore_errors=True)


# -- helpers -----------------------------------------------------------------------------


def _with_paused_start(argv: Sequence[str]) -> list[str]:
    argv = list(argv)
    if argv and "-S" not in argv:
        argv.insert(1, "-S")
    return argv


def _check_incoming(argv: Sequence[str], incoming_state: Path | None,
                    incoming_live: bool = False) -> None:
    has_defer = any(a == "-incoming" and b == "defer" for a, b in itertools.pairwise(argv))
    if incoming_live:
        if not has_defer or incoming_state is not None:
            raise QemuStartError("a live incoming migration needs '-incoming defer' and no "
                                 "saved state file")
        return
    if incoming_state is None:
        if "-incoming" in argv:
            raise QemuStartError("argv has -incoming but no saved state file was given")
        return
    if not has_defer:
        raise QemuStartError(
            f"restoring {incoming_state} needs '-incoming defer' in the QEMU command line"
        )
    if not os.access(incoming_state, os.R_OK):
        raise QemuStartError(f"the saved state file {incoming_state} cannot be read")


def _live_pid(paths: RuntimePaths) -> int | None:
    try:
        record = load_record(paths)
    except RuntimeRecordError:
        return None
    if record.boot_id != read_boot_id():
        return None
    alive = read_start_time(record.pid) == record.pid_start_time
    return record.pid if alive else None


def _prepare_folder(paths: RuntimePaths) -> None:
    pid = _live_pid(paths)
    if pid is not None:
        raise QemuStartError(f"QEMU process {pid} already runs from {paths.folder}")
    if paths.folder.exists():
        shutil.rmtree(paths.folder)
    paths.folder.parent.mkdir(parents=True, exist_ok=True)
    paths.folder.mkdir(mode=0o700)


def _launch_record(
    argv: Sequence[str],
    process: QemuProcess,
    vm_id: str,
    vm_name: str,
    accelerator: Accelerator,
    settings: Mapping[str, Any] | None,
) -> RuntimeRecord:
    return RuntimeRecord(
        vm_id=vm_id,
        vm_name=vm_name,
        argv=tuple(argv),
        qemu_binary=shutil.which(argv[0]) or argv[0],
        pid=process.pid,
        pid_start_time=process.start_time,
        started_at=time.time(),
        accelerator=accelerator,
        boot_id=read_boot_id(),
        settings=dict(settings or {}),
    )


async def _abandon(process: QemuProcess, monitor: Monitor, paths: RuntimePaths) -> None:
    """Undo a failed launch: kill QEMU, drop the connection, remove the runtime folder
    (the storage daemon is its owner's)."""
    process.kill(signal.SIGKILL)
    with contextlib.suppress(QemuTimeout):
        await process.wait(5.0)
    await monitor.close()
    process.close()
    shutil.rmtree(paths.folder, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

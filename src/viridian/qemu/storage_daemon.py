"""A VM's ``qemu-storage-daemon``: started before QEMU, ended after it.

The daemon serves the VM's hard disks over NBD on a UNIX socket in the VM's runtime
folder (argv: :func:`viridian.qemu.render.storage.render_storage_daemon`), one export per
drive named by its device id (``ide0-0``), so the name stays when a checkpoint puts an
overlay on top or the daemon is started again. It is spawned detached like QEMU
(:meth:`QemuProcess.spawn`: own session, stderr to ``storage.log``), recorded in the
runtime record (:class:`DaemonRecord`), found again by a restarted service, and ended
with SIGTERM — on which it flushes and closes its images — once the VM's QEMU has ended
(lifetime rule: docs/architecture.md, "The storage path"). Block jobs on the served
images (checkpoint overlays, merges) run in the daemon, through :attr:`monitor`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
from collections.abc import Sequence

from .errors import MonitorClosed, QemuStartError, QemuTimeout
from .monitor import Monitor
from .process import ExitStatus, QemuProcess, connect_when_listening, log_tail
from .runtime_paths import RuntimePaths
from .runtime_record import DaemonRecord

__all__ = ["StorageDaemon", "end_leftover_daemon"]

log = logging.getLogger(__name__)

_STOP_TIMEOUT = 10.0


class StorageDaemon:
    """One running storage daemon. Create with :meth:`start` or :meth:`find`."""

    def __init__(self, process: QemuProcess, argv: Sequence[str], paths: RuntimePaths,
                 monitor: Monitor | None = None) -> None:
        self.process = process
        self.argv = tuple(argv)
        self.paths = paths
        self._monitor = monitor

    async def monitor(self) -> Monitor:
        """The daemon's QMP connection (made on first use after :meth:`find`; it accepts
        one client at a time, the service). Raises :class:`MonitorClosed`."""
        if self._monitor is None or not self._monitor.connected:
            monitor = Monitor(f"storage-{self.paths.folder.name}")
            await monitor.connect(self.paths.storage_qmp_socket)
            self._monitor = monitor
        return self._monitor

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def record(self) -> DaemonRecord:
        return DaemonRecord(self.process.pid, self.process.start_time, self.argv)

    @classmethod
    async def start(cls, argv: Sequence[str], paths: RuntimePaths,
                    timeout: float = 10.0) -> StorageDaemon:
        """Spawn the daemon and return once its QMP socket listens (its NBD exports exist
        by then: they come first in ``argv``).

        :raises QemuStartError: it could not be started or ended during start-up (with
            the end of ``storage.log``: e.g. an image that cannot be opened).
        """
        process = QemuProcess.spawn(argv, paths.storage_log)
        monitor = Monitor(f"storage-{paths.folder.name}")
        try:
            sock = await connect_when_listening(paths.storage_qmp_socket, process, timeout)
            await monitor.connect(sock, timeout)
        except BaseException as err:
            await monitor.close()
            await _kill(process)
            tail = log_tail(paths.storage_log)
            if not isinstance(err, Exception):
                raise
            raise QemuStartError(f"the storage daemon did not start: {err}"
                                 + (f"; last lines of storage.log: {tail}" if tail else "")
                                 ) from err
        return cls(process, argv, paths, monitor)

    @classmethod
    def find(cls, record: DaemonRecord, paths: RuntimePaths) -> StorageDaemon:
        """Take hold of the daemon ``record`` describes. Raises :class:`WorkerGone`."""
        process = QemuProcess.find(record.pid, record.pid_start_time, paths.storage_log)
        return cls(process, record.argv, paths)

    async def stop(self, timeout: float = _STOP_TIMEOUT) -> ExitStatus:
        """End the daemon: SIGTERM (it flushes and closes its images), SIGKILL when it has
        not ended within ``timeout`` seconds. Returns how it ended."""
        await self._close_monitor()
        self.process.kill(signal.SIGTERM)
        try:
            status = await self.process.wait(timeout)
        except QemuTimeout:
            log.warning("storage daemon %d ignored SIGTERM; killing it", self.pid)
            status = await _kill(self.process)
        self.process.close()
        return status

    async def close(self) -> None:
        """Stop watching the daemon (service shutdown): it keeps serving."""
        await self._close_monitor()
        self.process.close()

    async def _close_monitor(self) -> None:
        if self._monitor is not None:
            with contextlib.suppress(MonitorClosed):
                await self._monitor.close()
            self._monitor = None


async def _kill(process: QemuProcess) -> ExitStatus:
    process.kill(signal.SIGKILL)
    status = ExitStatus()
    with contextlib.suppress(QemuTimeout):
        status = await process.wait(_STOP_TIMEOUT)
    process.close()
    return status


def end_leftover_daemon(paths: RuntimePaths) -> None:
    """SIGKILL a storage daemon still serving from ``paths`` after its VM's QEMU ended
    (e.g. the service was killed between the two), found by its pid file and recognised
    by the runtime folder's NBD socket on its command line, and wait (≤ 10 s) until it is
    gone, so its image locks are free. Nothing when there is none."""
    try:
        pid = int(paths.storage_pid_file.read_text().strip())
        pidfd = os.pidfd_open(pid)  # pins the pid: the command line read next is its own
    except (OSError, ValueError):
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            ours = str(paths.nbd_socket).encode() in f.read()
        if ours:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            select.select([pidfd], [], [], _STOP_TIMEOUT)
    except OSError:
        pass
    finally:
        os.close(pidfd)

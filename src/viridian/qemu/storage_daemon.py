"""A VM's ``qemu-storage-daemon``: started before QEMU, living while the VM is registered.

The daemon serves the VM's hard disks over NBD on a UNIX socket in its own folder beside
the VM's runtime folder (:attr:`RuntimePaths.storage_folder`; argv:
:func:`viridian.qemu.render.storage.render_storage_daemon`), one export per drive named
by its device id (``ide0-0``), so the name stays when a checkpoint puts an overlay on top
or the daemon is started again. It is spawned detached like QEMU (:meth:`QemuProcess.spawn`:
own session, stderr to ``storage.log``), recorded in ``storage.json`` (:class:`DaemonRecord`
plus the boot id), found again by a restarted service (:meth:`StorageDaemon.find`), and
ended with SIGTERM — on which it flushes and closes its images — when the VM is removed,
its disks are changed offline, or the host shuts down (lifetime rule: docs/architecture.md,
"The storage daemon"). QEMU's end does not end it, so dirty bitmaps on its nodes survive
stops and starts. Block jobs on the served images (checkpoint overlays, merges, backups)
run in the daemon, through :meth:`StorageDaemon.monitor`.

Its environment adds glibc malloc tunables (:func:`daemon_environment`): the NBD server
allocates a buffer per request, and with glibc's defaults every 1 MiB buffer is a fresh
``mmap`` (or heap growth trimmed again on free) whose pages fault in and are zeroed for
each request — half the daemon's CPU per MiB and twice its NBD throughput at queue depth 1
(docs/architecture.md, "Guest-level cost"). Buffers up to 4 MiB then come from the heap,
and up to 32 MiB of freed heap is kept for the next requests. Data paths and flushes are
unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import shutil
import signal
from collections.abc import Mapping, Sequence

from .errors import MonitorClosed, QemuStartError, QemuTimeout, WorkerGone
from .monitor import Monitor
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
)
from .runtime_paths import RuntimePaths
from .runtime_record import DaemonRecord

__all__ = ["MALLOC_TUNABLES", "StorageDaemon", "daemon_environment", "end_leftover_daemon",
           "remove_storage_folder"]

log = logging.getLogger(__name__)

_STOP_TIMEOUT = 10.0

MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=4194304:glibc.malloc.trim_threshold=33554432"
"""Request buffers (≤ 4 MiB) from the heap, keeping up to 32 MiB of it free (module docs)."""


def daemon_environment(base: Mapping[str, str]) -> dict[str, str]:
    """``base`` with :data:`MALLOC_TUNABLES` put before any ``GLIBC_TUNABLES`` it has
    (glibc applies them in order, so an admin's own setting of the same tunable wins)."""
    own = base.get("GLIBC_TUNABLES")
    return {**base, "GLIBC_TUNABLES": f"{MALLOC_TUNABLES}:{own}" if own else MALLOC_TUNABLES}


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
    def alive(self) -> bool:
        return not self.process.exited()

    @property
    def record(self) -> DaemonRecord:
        return DaemonRecord(self.process.pid, self.process.start_time, self.argv)

    @classmethod
    async def start(cls, argv: Sequence[str], paths: RuntimePaths,
                    timeout: float = START_TIMEOUT_S) -> StorageDaemon:
        """Spawn the daemon and return once its QMP socket listens (its NBD exports exist
        by then: they come first in ``argv``).

        :raises QemuStartError: it could not be started or ended during start-up (with
            the end of ``storage.log``: e.g. an image that cannot be opened).
        """
        _prepare_folder(paths)
        process = await QemuProcess.launch(argv, paths.storage_log,
                                           daemon_environment(os.environ))
        monitor = Monitor(f"storage-{paths.folder.name}")
        try:
            patience = StartPatience(process, quiet_s=timeout)
            sock = await connect_when_listening(paths.storage_qmp_socket, process, patience)
            await patiently(monitor.connect(sock, START_LIMIT_S), patience,
                            "it sent no QMP greeting")
        except BaseException as err:
            await monitor.close()
            await _kill(process)
            tail = log_tail(paths.storage_log)
            shutil.rmtree(paths.storage_folder, ignore_errors=True)
            if not isinstance(err, Exception):
                raise
            raise QemuStartError(f"the storage daemon did not start: {err}"
                                 + (f"; last lines of storage.log: {tail}" if tail else "")
                                 ) from err
        daemon = cls(process, argv, paths, monitor)
        _write_record(paths, daemon.record)
        return daemon

    @classmethod
    def find(cls, paths: RuntimePaths) -> StorageDaemon:
        """Take hold of the daemon ``paths``' record describes (e.g. after a service
        restart). Raises :class:`WorkerGone`: no record, the host rebooted since, or the
        process is gone."""
        record = _read_record(paths)
        process = QemuProcess.find(record.pid, record.pid_start_time, paths.storage_log)
        return cls(process, record.argv, paths)

    async def stop(self, timeout: float = _STOP_TIMEOUT) -> ExitStatus:
        """End the daemon: SIGTERM (it flushes and closes its images), SIGKILL when it has
        not ended within ``timeout`` seconds; then remove its folder. Returns how it ended."""
        await self._close_monitor()
        self.process.kill(signal.SIGTERM)
        try:
            status = await self.process.wait(timeout)
        except QemuTimeout:
            log.warning("storage daemon %d ignored SIGTERM; killing it", self.pid)
            status = await _kill(self.process)
        self.process.close()
        shutil.rmtree(self.paths.storage_folder, ignore_errors=True)
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


def _prepare_folder(paths: RuntimePaths) -> None:
    """A fresh 0700 storage folder (a leftover daemon in it ended, its files removed)."""
    remove_storage_folder(paths)
    paths.storage_folder.parent.mkdir(parents=True, exist_ok=True)
    paths.storage_folder.mkdir(mode=0o700)


def remove_storage_folder(paths: RuntimePaths) -> None:
    """End a daemon no one holds (:func:`end_leftover_daemon`) and remove its folder."""
    if paths.storage_folder.exists():
        end_leftover_daemon(paths)
        shutil.rmtree(paths.storage_folder, ignore_errors=True)


def _write_record(paths: RuntimePaths, record: DaemonRecord) -> None:
    data = {"version": 1, "boot_id": read_boot_id(), "pid": record.pid,
            "pid_start_time": record.pid_start_time, "argv": list(record.argv)}
    partial = paths.storage_record_file.with_suffix(".partial")
    partial.write_text(json.dumps(data, indent=1))
    os.replace(partial, paths.storage_record_file)


def _read_record(paths: RuntimePaths) -> DaemonRecord:
    try:
        data = json.loads(paths.storage_record_file.read_text())
        record = DaemonRecord(int(data["pid"]), int(data["pid_start_time"]),
                              tuple(str(a) for a in data["argv"]))
        boot_id = str(data["boot_id"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise WorkerGone(f"no usable storage daemon record: {err}") from err
    if boot_id != read_boot_id():
        raise WorkerGone(f"storage daemon {record.pid} is gone: the host restarted since",
                         pid=record.pid)
    return record


def end_leftover_daemon(paths: RuntimePaths) -> None:
    """SIGKILL a storage daemon still serving from ``paths`` that no one holds (e.g. the
    service was killed while starting it, or its record is unusable), found by its pid file
    and recognised by the folder's NBD socket on its command line, and wait (≤ 10 s) until
    it is gone, so its image locks are free. Nothing when there is none."""
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

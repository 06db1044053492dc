"""A VM's storage daemon kept for as long as the VM is registered (docs/architecture.md,
"The storage daemon").

:class:`DaemonKeeper` owns one VM's daemon: started when the VM first needs it (its start,
a restore, a block job or a backup asking for it), kept across QEMU's stops and starts and
guest reboots — so dirty bitmaps on its nodes survive them — found again after a service
restart (``storage.json``), started again when it dies while QEMU runs (the guest its I/O
errors paused is resumed), and ended when the VM is removed, when its disks are changed
offline (never two writers: the caller ends it before touching the files), or at host
shutdown. A daemon serving other disks than the VM's now (settings edited, a checkpoint
applied) is replaced at the next start: its argv is the proof of what it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence

from viridian.qemu.errors import QemuStartError, WorkerGone
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.storage_daemon import StorageDaemon, remove_storage_folder
from viridian.qemu.worker import Worker

__all__ = ["LOCK_HANDOVER_S", "DaemonKeeper"]

log = logging.getLogger(__name__)

RESTART_RETRY_S = 2.0

#: How long the start of an HA VM's daemon waits for its images' locks (``ensure``'s
#: ``lock_wait_s``): another cluster host may still keep a daemon for the VM from when it
#: was Off there; that host's agent ends it within a tick of seeing this host own the VM
#: (docs/architecture.md, "Failover cluster: the agent loop").
LOCK_HANDOVER_S = 30.0
_LOCK_RETRY_S = 0.5
#: How QEMU's file locking (``raw_check_lock_bytes`` in block/file-posix.c) words a lock
#: another process holds: ``Failed to get "write" lock`` / ``"consistent read" lock``.
_LOCK_HELD = re.compile(r'Failed to get "[a-z ]+" lock')


def _still_locked(vm: str, waited_s: float, err: QemuStartError) -> str:
    """The refusal of a start whose images another process holds, with QEMU's words."""
    waited = (f" after waiting {waited_s:.0f} s for another cluster host to let go of it"
              if waited_s > 0 else "")
    return (f"VM {vm}: an image is still in use by another process{waited}; the storage "
            f"daemon was not started and nothing was changed (QEMU: {err})")


class DaemonKeeper:
    """One VM's storage daemon (see the module docs). ``render`` gives the daemon's argv
    for the VM's disks as QEMU must see them now; ``worker`` the VM's running QEMU, if any.
    Callers hold the VM's queue, except the supervisor, which only acts while QEMU runs."""

    __slots__ = ("_render", "_supervisor", "_worker", "daemon", "name", "paths")

    def __init__(self, paths: RuntimePaths, name: str, render: Callable[[], Sequence[str]],
                 worker: Callable[[], Worker | None]) -> None:
        self.paths, self.name = paths, name
        self._render, self._worker = render, worker
        self.daemon: StorageDaemon | None = None
        self._supervisor: asyncio.Task[None] | None = None

    async def ensure(self, qemu_runs: bool = False, lock_wait_s: float = 0.0) -> StorageDaemon:
        """The running daemon serving the VM's disks, started when there is none or the
        one there serves other disks — unless ``qemu_runs`` (or a worker is known): a
        running QEMU's daemon is kept whatever hot plug or checkpoints changed. An image
        locked by another process is tried again for up to ``lock_wait_s`` seconds.

        :raises QemuStartError: it could not be started (e.g. an image is locked)."""
        argv = tuple(self._render())
        daemon = self.daemon
        if daemon is not None and daemon.alive and (
                daemon.argv == argv or qemu_runs or self._worker() is not None):
            return daemon
        await self.end()
        self.daemon = await self._start_when_unlocked(argv, lock_wait_s)
        self._supervise()
        return self.daemon

    async def _start_when_unlocked(self, argv: Sequence[str],
                                   lock_wait_s: float) -> StorageDaemon:
        deadline = time.monotonic() + lock_wait_s
        while True:
            try:
                return await StorageDaemon.start(argv, self.paths)
            except QemuStartError as err:
                if not _LOCK_HELD.search(str(err)):
                    raise
                if time.monotonic() >= deadline:
                    raise QemuStartError(_still_locked(self.name, lock_wait_s, err)) from err
                log.info("VM %s: an image is locked by another process, trying again "
                         "(another cluster host may be letting go of it): %s", self.name, err)
            await asyncio.sleep(_LOCK_RETRY_S)

    def adopt(self) -> StorageDaemon | None:
        """Find the daemon a previous service left running (``storage.json``); a daemon
        that cannot be identified is ended and its folder removed."""
        try:
            self.daemon = StorageDaemon.find(self.paths)
        except WorkerGone as gone:
            if self.paths.storage_folder.exists():
                log.info("VM %s: no storage daemon to adopt (%s)", self.name, gone)
                remove_storage_folder(self.paths)
            return None
        self._supervise()
        return self.daemon

    async def end(self) -> None:
        """End the daemon (SIGTERM: it flushes and closes the images) and remove its
        folder; nothing when there is none. Never while QEMU runs on it: callers check."""
        await self._stop_supervising()
        daemon, self.daemon = self.daemon, None
        if daemon is not None:
            await asyncio.shield(daemon.stop())

    async def close(self) -> None:
        """Let go of the daemon (service shutdown): it keeps serving."""
        await self._stop_supervising()
        if self.daemon is not None:
            await self.daemon.close()

    # --- supervision --------------------------------------------------------------------

    def _supervise(self) -> None:
        if self._supervisor is None or self._supervisor.done():
            self._supervisor = asyncio.get_running_loop().create_task(
                self._watch(), name=f"storage-{self.name}")

    async def _stop_supervising(self) -> None:
        task, self._supervisor = self._supervisor, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _watch(self) -> None:
        """When the daemon ends on its own: while QEMU runs, a new one on the same sockets
        (QEMU's NBD nodes reconnect at their retried requests) and the guest its I/O
        errors paused (``werror=stop``) resumed; otherwise it is forgotten (the next
        start makes a new one)."""
        while (daemon := self.daemon) is not None:
            status = await daemon.process.wait()
            await daemon.close()
            worker = self._worker()
            if worker is None or worker.has_exited():
                log.warning("VM %s: its storage daemon %d ended (%s) while QEMU is not "
                            "running; a new one starts when needed", self.name, daemon.pid,
                            status.describe())
                self.daemon = None
                remove_storage_folder(self.paths)
                return
            log.warning("VM %s: its storage daemon %d ended (%s) while QEMU runs; starting "
                        "it again", self.name, daemon.pid, status.describe())
            self.daemon = await self._restart()
            worker.storage = self.daemon
            # No reconnect_storage() here: its HMP qemu-io reads on a node whose connection
            # died hung the guest's resume (test_storage_daemon_guest); the guest's own
            # retried requests reconnect, and the I/O errors they pause on are resumed.
            await worker.resume_after_io_error()

    async def _restart(self) -> StorageDaemon:
        """A new daemon on the same sockets; retried every few seconds while it fails
        (e.g. an image that cannot be opened: the guest stays paused meanwhile)."""
        while True:
            try:
                return await StorageDaemon.start(self._render(), self.paths)
            except QemuStartError as err:
                log.error("VM %s: the storage daemon could not be started again: %s",
                          self.name, err)
                await asyncio.sleep(RESTART_RETRY_S)

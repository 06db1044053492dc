"""Running QEMU as a detached process, and learning the moment it ends.

Spawning. QEMU is started with ``posix_spawn`` in a session of its own (``setsid``), with
stdin and stdout on ``/dev/null``, stderr appended to the VM's ``qemu.log``, every other
inheritable descriptor closed (Python's own descriptors are close-on-exec already), and
the signals Python ignores (SIGPIPE, SIGXFSZ) back at their defaults. It is not killed
when the service stops or dies. QEMU's ``-daemonize`` is not used: it costs a second
fork and makes QEMU the child of PID 1 at once, so its exit status would be lost.

Exit detection. A pidfd (``pidfd_open``, Linux ≥ 5.3) registered with the asyncio loop
becomes readable the moment the process exits, whoever its parent is; it never waits
for the pid to vanish (PID 1 may reap orphans seconds later). While QEMU is our own
child, the pidfd is also how we reap it (``waitid(P_PIDFD)``), so no zombie lingers and
the exit status is known. After a service restart QEMU is no longer our child: the
pidfd still reports the exit, PID 1 reaps it, and the status is unknown — the QMP
``SHUTDOWN`` event tells why it ended (see ``worker``). Without pidfd support (old
kernels) a child is reaped by a thread blocked in ``waitpid`` and a non-child's end is
learned when its QMP socket closes (:meth:`QemuProcess.notify_gone`).

Why not ``PR_SET_CHILD_SUBREAPER``: QEMU is spawned directly, so it already is our child
while we run; after a restart, being a subreaper would not make earlier QEMUs our
children again, and it would turn every orphaned grandchild of anything the service
runs into our zombie. It buys nothing here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from .confinement import active
from .errors import QemuStartError, QemuTimeout, WorkerGone

__all__ = [
    "START_LIMIT_S",
    "START_TIMEOUT_S",
    "ExitStatus",
    "QemuProcess",
    "StartPatience",
    "connect_when_listening",
    "log_tail",
    "patiently",
    "read_boot_id",
    "read_start_time",
]

T = TypeVar("T")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
_SIGNALS_PYTHON_IGNORES = (signal.SIGPIPE, signal.SIGXFSZ)


@dataclass(frozen=True)
class ExitStatus:
    """How a process ended: an exit code, a signal, or neither when it was not our child."""

    code: int | None = None
    signal: int | None = None

    @property
    def known(self) -> bool:
        return self.code is not None or self.signal is not None

    def describe(self) -> str:
        if self.signal is not None:
            return f"killed by {signal.Signals(self.signal).name}"
        if self.code is not None:
            return f"exit code {self.code}"
        return "exit status unknown"


def read_boot_id() -> str:
    """The kernel's boot id: changes at every host boot."""
    return _BOOT_ID.read_text().strip()


def _stat_fields(pid: int) -> list[str] | None:
    """``/proc/<pid>/stat`` from field 3 on (index 0 is field 3), or None when ``pid`` is
    gone. Per proc(5) the command name (field 2) may contain spaces and parentheses, so
    fields are counted after the last ``)``."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _read_stat(pid: int) -> tuple[str, int, int] | None:
    """(state letter, parent pid, start time in clock ticks since boot) of ``pid``, or None:
    fields 3, 4 and 22."""
    rest = _stat_fields(pid)
    return None if rest is None else (rest[0], int(rest[1]), int(rest[19]))


def read_start_time(pid: int) -> int | None:
    """When ``pid`` started (ticks since boot), to tell it from a later process with the same
    pid; ``None`` if there is no such process or it already exited (zombie)."""
    stat = _read_stat(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return None
    return stat[2]


def log_tail(path: Path, lines: int = 6, max_bytes: int = 4096) -> str:
    """The last ``lines`` non-empty lines of a log, joined by `` | ``; "" if none."""
    try:
        with path.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def _inheritable_fds() -> list[int]:
    fds = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2:
            with contextlib.suppress(OSError):
                if os.get_inheritable(fd):
                    fds.append(fd)
    return fds


def _confined(argv: Sequence[str], log_path: Path) -> Sequence[str]:
    """``argv`` as the host's confinement (host setting confine_qemu) runs it from the
    runtime folder of ``log_path``, its files handed over (blocking file work)."""
    if not argv:
        raise QemuStartError("cannot start QEMU: the command line is empty")
    confinement = active()
    return argv if confinement is None else confinement.prepare(argv, log_path.parent)


def _resolve_binary(program: str) -> str:
    found = program if os.sep in program else shutil.which(program)
    if found is None or not os.access(found, os.X_OK):
        raise QemuStartError(f"QEMU binary {program!r} not found or not executable")
    return found


def _pidfd_open(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise
    except OSError:  # ENOSYS: kernel older than 5.3
        return None


class QemuProcess:
    """A QEMU process: its pid, its start time, and a future that completes when it exits.

    Must be created inside the running event loop that will watch it.
    """

    def __init__(self, pid: int, start_time: int, is_child: bool, pidfd: int | None) -> None:
        self.pid = pid
        self.start_time = start_time
        self.is_child = is_child
        self._pidfd = pidfd
        self._loop = asyncio.get_running_loop()
        self._exit: asyncio.Future[ExitStatus] = self._loop.create_future()
        if pidfd is not None:
            self._loop.add_reader(pidfd, self._on_pidfd_readable)
        elif is_child:
            self._loop.run_in_executor(None, self._wait_child_blocking)

    # -- creation ------------------------------------------------------------------

    @classmethod
    async def launch(cls, argv: Sequence[str], log_path: Path,
                     env: Mapping[str, str] | None = None) -> QemuProcess:
        """:meth:`spawn`, with the confinement's file work (ACLs on the VM's files, qemu-img
        reading their backing chains: a second or more per VM on a loaded host) done in
        a thread, so that starting many VMs at once never stalls the event loop (the
        API, QMP, every other VM's jobs). Raises :class:`QemuStartError`."""
        confined = await asyncio.to_thread(_confined, argv, log_path)
        return cls._spawn_prepared(confined, log_path, env)

    @classmethod
    def spawn(cls, argv: Sequence[str], log_path: Path,
              env: Mapping[str, str] | None = None) -> QemuProcess:
        """Start ``argv`` detached (see module docs) with ``env`` (default: this process's
        environment), confined when the host confines QEMU (blocking: the service starts
        VMs with :meth:`launch`). Raises :class:`QemuStartError`."""
        return cls._spawn_prepared(_confined(argv, log_path), log_path, env)

    @classmethod
    def _spawn_prepared(cls, argv: Sequence[str], log_path: Path,
                        env: Mapping[str, str] | None) -> QemuProcess:
        binary = _resolve_binary(argv[0])
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600),
            *((os.POSIX_SPAWN_CLOSE, fd) for fd in _inheritable_fds()),
        ]
        try:
            pid = os.posix_spawn(
                binary,
                list(argv),
                os.environ if env is None else env,
                file_actions=actions,
                setsid=True,
                setsigdef=_SIGNALS_PYTHON_IGNORES,
                setsigmask=(),
            )
        except OSError as err:
            raise QemuStartError(f"cannot start {binary}: {err}") from err
        stat = _read_stat(pid)
        return cls(pid, stat[2] if stat else 0, True, _pidfd_open(pid))

    @classmethod
    def find(cls, pid: int, start_time: int, log_path: Path | None = None) -> QemuProcess:
        """Take hold of a QEMU started earlier (maybe by a previous service instance).
        If this process is its parent it is reaped and its exit status known, as after
        :meth:`spawn`.

        :raises WorkerGone: no such process, it already exited, or the pid now belongs to
            another process (its start time differs).
        """
        try:
            pidfd = _pidfd_open(pid)
        except ProcessLookupError:
            raise WorkerGone(_gone_reason(pid, "it no longer exists", log_path), pid=pid) from None
        # The pidfd pins the process: from here on, a matching start time proves identity.
        stat = _read_stat(pid)
        now = read_start_time(pid)
        if stat is None or now != start_time:
            if pidfd is not None:
                os.close(pidfd)
            why = "it already exited" if now is None else "its pid now belongs to another process"
            raise WorkerGone(_gone_reason(pid, why, log_path), pid=pid)
        # Still our child when this service process spawned it: then we reap it too.
        return cls(pid, start_time, stat[1] == os.getpid(), pidfd)

    # -- exit ------------------------------------------------------------------------

    def _on_pidfd_readable(self) -> None:
        assert self._pidfd is not None
        self._loop.remove_reader(self._pidfd)
        self._reap()

    def _reap(self) -> None:
        if self._exit.done():
            return
        if not self.is_child or self._pidfd is None:
            self._exit.set_result(ExitStatus())
            return
        try:
            result = os.waitid(os.P_PIDFD, self._pidfd, os.WEXITED | os.WNOHANG)
        except ChildProcessError:
            self._exit.set_result(ExitStatus())
            return
        if result is None:  # readable a hair before the zombie is waitable
            self._loop.call_later(0.001, self._reap)
            return
        self._exit.set_result(_status_from_siginfo(result.si_code, result.si_status))

    def _wait_child_blocking(self) -> None:
        _, raw = os.waitpid(self.pid, 0)
        status = (
            ExitStatus(signal=os.WTERMSIG(raw))
            if os.WIFSIGNALED(raw)
            else ExitStatus(code=os.waitstatus_to_exitcode(raw))
        )
        self._loop.call_soon_threadsafe(self._set_exit, status)

    def _set_exit(self, status: ExitStatus) -> None:
        if not self._exit.done():
            self._exit.set_result(status)

    def notify_gone(self) -> None:
        """Declare the process ended (used when no pidfd exists and its QMP socket closed)."""
        if self._pidfd is None and not self.is_child:
            self._set_exit(ExitStatus())

    def exited(self) -> bool:
        return self._exit.done()

    async def wait(self, timeout: float | None = None) -> ExitStatus:
        """How the process ended; waits for it. Raises :class:`QemuTimeout`."""
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._exit)
        except TimeoutError as err:
            raise QemuTimeout(f"QEMU process {self.pid} did not exit within {timeout} s") from err

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` (through the pidfd: never to a process that reused the pid)."""
        if self._exit.done():
            return
        with contextlib.suppress(ProcessLookupError):
            if self._pidfd is not None:
                signal.pidfd_send_signal(self._pidfd, sig)
            elif read_start_time(self.pid) == self.start_time:
                os.kill(self.pid, sig)

    def close(self) -> None:
        """Stop watching (the process itself is left alone)."""
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        if not self._exit.done():
            self._exit.cancel()


def _status_from_siginfo(code: int, status: int) -> ExitStatus:
    if code == os.CLD_EXITED:
        return ExitStatus(code=status)
    return ExitStatus(signal=status)


def _gone_reason(pid: int, why: str, log_path: Path | None) -> str:
    tail = log_tail(log_path) if log_path else ""
    seen = f" (last lines of qemu.log: {tail})" if tail else ""
    return f"QEMU process {pid} is gone: {why}{seen}"


START_TIMEOUT_S = 30.0
"""How long a starting QEMU or storage daemon may go without using any CPU before it has
listened on its QMP socket and greeted there (:class:`StartPatience`). libvirt waits 30 s for a
new QEMU's monitor; 10 s proved too short for a storage daemon started while both cores
were busy with guests."""

START_LIMIT_S = 300.0
"""The most listening and greeting may take while the process keeps using CPU: on a busy host
(twenty guests started at once on two cores, each new QEMU's set-up sharing the cores with
the others' guests) a QEMU can take more than :data:`START_TIMEOUT_S` to greet, and is
still starting, not hung."""


def _cpu_ticks(pid: int) -> int | None:
    """utime + stime of ``pid`` in clock ticks (fields 14 and 15), or None when it is gone."""
    rest = _stat_fields(pid)
    return None if rest is None else int(rest[11]) + int(rest[12])


class StartPatience:
    """How long a start step of ``process`` is waited for: until it has used no CPU for
    ``quiet_s`` seconds (hung: waiting on nothing that will come), or for ``limit_s``
    seconds in all. A process that keeps working on a busy host is waited for; one that
    hangs is given up after ``quiet_s``. :meth:`fixed` gives a plain timeout (a probe that
    may spin in a hung accelerator)."""

    def __init__(self, process: QemuProcess, quiet_s: float = START_TIMEOUT_S,
                 limit_s: float = START_LIMIT_S) -> None:
        self.process, self.quiet_s, self.limit_s = process, quiet_s, max(limit_s, quiet_s)
        self.began = self._busy_at = time.monotonic()
        self._ticks = _cpu_ticks(process.pid)

    @classmethod
    def fixed(cls, process: QemuProcess, timeout: float) -> StartPatience:
        return cls(process, quiet_s=timeout, limit_s=timeout)

    def exhausted(self) -> str | None:
        """Why the step is given up now, or None while it may go on."""
        now = time.monotonic()
        ticks = _cpu_ticks(self.process.pid)
        if ticks != self._ticks:
            self._ticks, self._busy_at = ticks, now
        if now - self.began >= self.limit_s:
            return f"within {self.limit_s:g} s"
        if now - self._busy_at >= self.quiet_s:
            return f"within {now - self.began:.0f} s (it used no CPU for the last " \
                   f"{self.quiet_s:g} s)"
        return None


async def patiently(step: Awaitable[T], patience: StartPatience, what: str) -> T:
    """The result of ``step``, waited for as ``patience`` allows.

    :raises QemuStartError: ``what`` did not happen in time (the step is cancelled).
    """
    task = asyncio.ensure_future(step)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_PATIENCE_POLL_S)
            if done:
                return task.result()
            why = patience.exhausted()
            if why is not None:
                raise QemuStartError(f"{what} {why}")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


_PATIENCE_POLL_S = 0.25


async def connect_when_listening(
    path: Path, process: QemuProcess, patience: StartPatience, log_path: Path | None = None
) -> socket.socket:
    """Connect to the UNIX socket QEMU is about to create at ``path``, as soon as it listens.

    Polls every millisecond (a connect attempt costs microseconds), then every 10 ms after
    half a second. Returns a connected non-blocking socket.

    :raises QemuStartError: QEMU exited first (with the end of its log), or ``patience``
        ran out.
    """
    started = time.monotonic()
    while True:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
        else:
            sock.setblocking(False)
            return sock
        waited = time.monotonic() - started
        if process.exited():
            status = await process.wait()
            tail = log_tail(log_path) if log_path else ""
            seen = f"; last lines of qemu.log: {tail}" if tail else ""
            raise QemuStartError(f"QEMU exited during start-up ({status.describe()}){seen}")
        why = patience.exhausted() if waited >= _PATIENCE_POLL_S else None
        if why is not None:
            raise QemuStartError(f"QEMU did not open its QMP socket {path} {why}")
        await asyncio.sleep(0.001 if waited < 0.5 else 0.01)

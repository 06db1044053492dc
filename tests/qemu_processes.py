"""Finding and ending the QEMU processes that tests started.

Every test run tags itself with :data:`RUN_TAG` in the environment (``tests/conftest.py``);
QEMU inherits it from the test, from a ``Worker`` or from a ``viridian serve`` the test
started, so a leaked QEMU can be told apart from other people's QEMUs on the host.
Fixtures end the QEMUs of one folder with :func:`end_qemu_under`; the session's safety
net ends whatever is left with :func:`end_qemu_of_run`, and the libvirt daemons a
benchmark's smoke run started as its peer (``scripts/libvirt-setup.sh`` leaves them
running for the next benchmark) with :func:`peer_daemons_of_run` and :func:`end`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

RUN_TAG = "VIRIDIAN_TEST_RUN"
_QEMU_NAMES = ("qemu-system-", "qemu-storage-d")  # /proc/PID/comm is cut at 15 characters
_PEER_DAEMONS = ("libvirtd", "virtlogd")


@dataclass(frozen=True)
class QemuProcess:
    pid: int
    cmdline: str


def _read(pid: str, what: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{what}").read_bytes()
    except OSError:  # gone meanwhile, or another user's
        return b""


def _qemu_processes() -> list[tuple[QemuProcess, bytes]]:
    """Our user's live QEMU processes and their environments."""
    return _processes(lambda comm: comm.startswith(_QEMU_NAMES))


def _processes(named: Callable[[str], bool]) -> list[tuple[QemuProcess, bytes]]:
    """Our user's live processes whose ``comm`` is ``named``, and their environments."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if not named(_read(pid, "comm").decode(errors="replace").strip()):
            continue
        if b") Z " in _read(pid, "stat"):
            continue  # already dead, waiting to be reaped
        cmdline = _read(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace")
        found.append((QemuProcess(int(pid), cmdline.strip()), _read(pid, "environ")))
    return found


def qemu_of_run(run_id: str) -> list[QemuProcess]:
    """Live QEMU processes whose environment carries this run's tag."""
    return _of_run(_qemu_processes(), run_id)


def peer_daemons_of_run(run_id: str) -> list[QemuProcess]:
    """Live ``libvirtd``/``virtlogd`` processes this run started (they carry its tag)."""
    return _of_run(_processes(lambda comm: comm in _PEER_DAEMONS), run_id)


def _of_run(found: list[tuple[QemuProcess, bytes]], run_id: str) -> list[QemuProcess]:
    tag = f"{RUN_TAG}={run_id}".encode()
    return [proc for proc, env in found if tag in env.split(b"\0")]


def qemu_under(folder: Path) -> list[QemuProcess]:
    """Live QEMU processes whose command line names a path inside ``folder``."""
    prefix = str(folder.resolve()) + "/"
    raw = str(folder) + "/"
    return [proc for proc, _ in _qemu_processes() if prefix in proc.cmdline or raw in proc.cmdline]


def end(processes: list[QemuProcess], limit: float = 30.0) -> None:
    """SIGTERM each process (a daemon cleans up), then :func:`kill` those still there
    after ``limit`` seconds."""
    for proc in processes:
        with contextlib.suppress(OSError):
            os.kill(proc.pid, signal.SIGTERM)
    left = _wait_gone({proc.pid for proc in processes}, limit)
    kill([proc for proc in processes if proc.pid in left])


def _wait_gone(pids: set[int], limit: float) -> set[int]:
    """Wait up to ``limit`` seconds until every pid ended (reaped when it is our child, or
    a zombie); returns those still there."""
    deadline = time.monotonic() + limit
    pids = set(pids)
    while pids and time.monotonic() < deadline:
        for pid in list(pids):
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
            stat = _read(str(pid), "stat")
            if not stat or b") Z " in stat:
                pids.discard(pid)
        time.sleep(0.02)
    return pids


def kill(processes: list[QemuProcess], limit: float = 10.0) -> None:
    """SIGKILL each process (and its process group when it leads one); wait until gone."""
    for proc in processes:
        with contextlib.suppress(OSError):
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                os.kill(proc.pid, signal.SIGKILL)
    _wait_gone({proc.pid for proc in processes}, limit)


def end_qemu_under(folder: Path) -> list[QemuProcess]:
    """Kill every QEMU still using ``folder``; returns what was killed (for a report)."""
    leftovers = qemu_under(folder)
    kill(leftovers)
    return leftovers

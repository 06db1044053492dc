"""The fence guard: a small process beside the service that turns this host's HA VMs off
(hard) once the service's fence deadline passed without renewal, also when the service
itself is frozen (SIGSTOP) or killed (docs/architecture.md, "Failover cluster: fencing").

The service feeds it through ``<data>/cluster/fence.json`` (written atomically after
every keepalive): the deadline on the system-wide monotonic clock (``CLOCK_MONOTONIC``,
the same in every process), the earliest takeover time, the runtime folders of the
host's HA VMs and the service's pid. Every 100 ms the guard reads it; from the deadline
on it SIGKILLs every QEMU and storage daemon whose pid file lies in one of those folders
(checked against ``/proc/<pid>/cmdline``, so a reused pid is never hit), marking the VM
``fenced`` first. It keeps enforcing until a newer deadline arrives. It exits when the
state file is removed (the host left the cluster), or when the service is gone and none
of its HA VMs runs any more. One guard per data folder (an ``flock``).

``/dev/watchdog`` is used only when the host's config asks for it AND a watchdog
character device really exists (:func:`watchdog_present`); it is fed only while the
timing rule allows (:meth:`viridian.cluster.fencing.FenceRule.may_feed_watchdog`) and
closed with the magic 'V' when the guard ends normally.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import time
from pathlib import Path

from viridian.qemu.runtime_paths import RuntimePaths

__all__ = ["GuardFeed", "fence_vm", "guard_pid_file", "kill_vm_processes", "main",
           "qemu_runs", "running_pids", "spawn_guard", "watchdog_present"]

WATCHDOG = Path("/dev/watchdog")
_WDIOC_GETTIMEOUT = 0x80045707
POLL_S = 0.1


def watchdog_present(device: Path = WATCHDOG) -> bool:
    """Whether a watchdog character device really exists (probed, never assumed)."""
    try:
        return stat.S_ISCHR(device.stat().st_mode)
    except OSError:
        return False


def _pid_files(folder: Path) -> list[Path]:
    """QEMU's pid file and the VM's storage daemon's (docs/architecture.md, "The storage
    daemon"), as :class:`~viridian.qemu.runtime_paths.RuntimePaths` names them."""
    paths = RuntimePaths(folder)
    return [paths.pid_file, paths.storage_pid_file]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(
            errors="replace")
    except OSError:
        return ""


def running_pids(folder: Path) -> list[int]:
    """Live QEMU / storage daemon processes of the VM whose runtime folder is ``folder``
    (a pid counts only while its command line names that folder)."""
    return _live_pids(folder, _pid_files(folder))


def qemu_runs(folder: Path) -> bool:
    """Whether the VM whose runtime folder is ``folder`` has a live QEMU (its storage
    daemon alone does not count: it runs no guest)."""
    return bool(_live_pids(folder, [RuntimePaths(folder).pid_file]))


def _live_pids(folder: Path, pid_files: list[Path]) -> list[int]:
    pids = []
    for file in pid_files:
        try:
            pid = int(file.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid > 0 and str(folder) in _cmdline(pid) and not _zombie(pid):
            pids.append(pid)
    return pids


def fence_vm(vm_id: str, folder: Path, handoff: Path) -> list[int]:
    """SIGKILL the VM's QEMU and storage daemon (:func:`kill_vm_processes`); when a QEMU
    is among them, mark the VM ``fenced`` in ``handoff`` first — the reason the exit hook
    takes when QEMU's end is seen. A daemon alone has no exit to explain, and a mark left
    for it would be taken by the VM's next stop, which would then count as a fence."""
    if qemu_runs(folder):
        handoff.mkdir(mode=0o700, parents=True, exist_ok=True)
        (handoff / vm_id).write_text("fenced")
    return kill_vm_processes(folder)


def kill_vm_processes(folder: Path) -> list[int]:
    """SIGKILL the VM's QEMU and storage daemon; the pids signalled."""
    pids = running_pids(folder)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _alive(pid: int) -> bool:
    return pid > 0 and Path(f"/proc/{pid}").exists() and not _zombie(pid)


class GuardFeed:
    """The service's side: write what the guard enforces."""

    def __init__(self, state_file: Path, handoff: Path) -> None:
        self.state_file = state_file
        self.handoff = handoff

    def last_deadline(self) -> tuple[float, float]:
        """(deadline, takeover) the previous feed wrote; (0, 0) when none."""
        try:
            data = json.loads(self.state_file.read_text())
            return float(data.get("deadline", 0)), float(data.get("takeover", 0))
        except (OSError, ValueError):
            return 0.0, 0.0

    def feed(self, deadline: float, takeover: float, folders: dict[str, Path],
             watchdog: bool) -> None:
        """``folders``: HA VM id → its runtime folder. ``deadline`` 0: fence now."""
        data = {"deadline": deadline, "takeover": takeover, "service_pid": os.getpid(),
                "vms": {vm_id: str(path) for vm_id, path in folders.items()},
                "handoff": str(self.handoff), "watchdog": watchdog}
        temp = self.state_file.with_name(f".{self.state_file.name}.tmp")
        temp.write_text(json.dumps(data))
        os.replace(temp, self.state_file)


def guard_pid_file(lock_file: Path) -> Path:
    """Where the running guard writes its pid (after taking the lock)."""
    return lock_file.with_name(lock_file.name + ".pid")


def spawn_guard(state_file: Path, lock_file: Path) -> subprocess.Popen[bytes] | None:
    """Start the guard unless one already holds ``lock_file``; the new process or None."""
    lock_file.touch(mode=0o600, exist_ok=True)
    with open(lock_file, "rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # a guard runs
        fcntl.flock(handle, fcntl.LOCK_UN)
    return subprocess.Popen(
        [sys.executable, "-m", "viridian.service.cluster.fence_guard", str(state_file),
         str(lock_file)], stdin=subprocess.DEVNULL, start_new_session=True)


class _Watchdog:
    def __init__(self) -> None:
        self.fd = os.open(WATCHDOG, os.O_WRONLY)
        raw = fcntl.ioctl(self.fd, _WDIOC_GETTIMEOUT, struct.pack("i", 0))
        self.timeout = float(struct.unpack("i", raw)[0])

    def feed(self) -> None:
        os.write(self.fd, b"\0")

    def close(self) -> None:
        os.write(self.fd, b"V")  # magic close: a clean end does not reset the host
        os.close(self.fd)


def _enforce(state: dict[str, object], now: float) -> bool:
    """Kill what the deadline says must be off; whether any HA VM still runs."""
    vms = state.get("vms", {})
    assert isinstance(vms, dict)
    deadline = float(str(state.get("deadline", 0)))
    running = False
    for vm_id, folder in vms.items():
        if not running_pids(Path(folder)):
            continue
        if now >= deadline:
            fence_vm(vm_id, Path(folder), Path(str(state["handoff"])))
        else:
            running = True
    return running


def main(argv: list[str]) -> int:
    state_file, lock_file = Path(argv[0]), Path(argv[1])
    lock = open(lock_file, "rb")  # noqa: SIM115 - held for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    guard_pid_file(lock_file).write_text(f"{os.getpid()}\n")
    dog: _Watchdog | None = None
    try:
        while True:
            try:
                state = json.loads(state_file.read_text())
            except FileNotFoundError:
                return 0  # the host left the cluster
            except ValueError:
                time.sleep(POLL_S)
                continue
            now = time.monotonic()
            running = _enforce(state, now)
            if state.get("watchdog") and dog is None and watchdog_present():
                dog = _Watchdog()
            if dog is not None and now + dog.timeout + 1.0 <= float(state.get("takeover", 0)):
                dog.feed()
            if not _alive(int(state.get("service_pid", 0))) and not running:
                return 0
            time.sleep(POLL_S)
    finally:
        if dog is not None:
            dog.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

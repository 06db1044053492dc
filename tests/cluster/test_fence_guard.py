"""The fence guard as a real process: it kills a VM's processes (found by pid file and
command line) once the fed deadline passed, not before; it keeps enforcing after the
service is gone, leaves other processes alone and ends when the host leaves."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from viridian.qemu.runtime_paths import RuntimePaths
from viridian.service.cluster.fence_guard import (
    GuardFeed,
    guard_pid_file,
    qemu_runs,
    running_pids,
    spawn_guard,
    watchdog_present,
)


def _fake_vm(folder: Path) -> subprocess.Popen[bytes]:
    """A process standing in for QEMU: its command line names the runtime folder."""
    folder.mkdir(parents=True)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", str(folder)])
    (folder / "qemu.pid").write_text(f"{proc.pid}\n")
    return proc


def _wait(condition: object, timeout: float = 20.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            proc.kill()
            proc.wait()


def test_guard_kills_only_after_the_deadline_and_only_listed_vms(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    ha, other = tmp_path / "run" / "vm-ha", tmp_path / "run" / "vm-plain"
    procs += [_fake_vm(ha), _fake_vm(other)]
    feed = GuardFeed(tmp_path / "fence.json", tmp_path / "handoff")
    feed.feed(time.monotonic() + 3.0, time.monotonic() + 5.0, {"vm-ha": ha}, False)
    guard = spawn_guard(tmp_path / "fence.json", tmp_path / "guard.lock")
    assert guard is not None
    procs.append(guard)
    assert _wait(lambda: guard_pid_file(tmp_path / "guard.lock").exists())
    assert spawn_guard(tmp_path / "fence.json", tmp_path / "guard.lock") is None  # one guard
    assert running_pids(ha) == [procs[0].pid]
    time.sleep(1.0)
    assert procs[0].poll() is None, "killed before its deadline"
    assert _wait(lambda: procs[0].poll() is not None), "not killed after its deadline"
    assert (tmp_path / "handoff" / "vm-ha").read_text() == "fenced"
    assert procs[1].poll() is None, "a VM the guard was not given was killed"
    assert running_pids(ha) == []
    (tmp_path / "fence.json").unlink()  # the host left the cluster
    assert _wait(lambda: guard.poll() is not None)


def test_guard_outlives_a_killed_service_and_then_ends(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    ha = tmp_path / "run" / "vm-ha"
    procs.append(_fake_vm(ha))
    # the "service": a process that feeds the guard once and is then killed
    code = ("import sys,time; from pathlib import Path; "
            "from viridian.service.cluster.fence_guard import GuardFeed, spawn_guard; "
            f"d=Path({str(tmp_path)!r}); "
            "GuardFeed(d/'fence.json', d/'handoff').feed(time.monotonic()+2, "
            "time.monotonic()+4, {'vm-ha': d/'run'/'vm-ha'}, False); "
            "g=spawn_guard(d/'fence.json', d/'guard.lock'); print(g.pid, flush=True); "
            "time.sleep(120)")
    service = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    procs.append(service)
    assert service.stdout is not None
    guard_pid = int(service.stdout.readline())
    service.kill()
    service.wait()
    assert _wait(lambda: procs[0].poll() is not None), "the VM outlived its deadline"
    assert _wait(lambda: not Path(f"/proc/{guard_pid}").exists()
                 or "Z" in Path(f"/proc/{guard_pid}/stat").read_text().split()[2]), \
        "the guard did not end after its service and VMs were gone"


def test_watchdog_is_probed_not_assumed(tmp_path: Path) -> None:
    assert watchdog_present(tmp_path / "watchdog") is False
    (tmp_path / "watchdog").write_text("")
    assert watchdog_present(tmp_path / "watchdog") is False  # a file is no device
    assert watchdog_present(Path("/dev/null")) is True  # a character device is


def test_a_storage_daemon_alone_is_killed_without_a_fenced_mark(
        tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """The daemon kept for a stopped HA VM goes with the fence too (its image locks), but
    no ``fenced`` mark is left: no QEMU ends, and the VM's next exit would take the mark
    and count an admin's stop as a fence (docs/architecture.md, "Storage daemons of
    stopped HA VMs")."""
    folder = tmp_path / "run" / "vm-ha"
    paths = RuntimePaths(folder)
    paths.storage_folder.mkdir(parents=True)
    daemon = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                               str(paths.nbd_socket)])
    procs.append(daemon)
    paths.storage_pid_file.write_text(f"{daemon.pid}\n")
    # /proc/PID/cmdline can read empty for a moment after Popen returns (seen here: the
    # exec is not finished setting the new process up): wait until it names the folder
    assert _wait(lambda: running_pids(folder) == [daemon.pid])
    assert not qemu_runs(folder)
    feed = GuardFeed(tmp_path / "fence.json", tmp_path / "handoff")
    feed.feed(time.monotonic() - 1.0, time.monotonic(), {"vm-ha": folder}, False)
    guard = spawn_guard(tmp_path / "fence.json", tmp_path / "guard.lock")
    assert guard is not None
    procs.append(guard)
    assert _wait(lambda: daemon.poll() is not None), "the daemon was not killed"
    assert not (tmp_path / "handoff" / "vm-ha").exists()
    (tmp_path / "fence.json").unlink()
    assert _wait(lambda: guard.poll() is not None)

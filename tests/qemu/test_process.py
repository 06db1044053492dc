"""The detached process runner with real processes: detachment, fds, exit detection,
reaping, and recognising a process again after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from viridian.qemu.errors import QemuStartError, WorkerGone
from viridian.qemu.process import (
    ExitStatus,
    QemuProcess,
    StartPatience,
    connect_when_listening,
    log_tail,
    patiently,
    read_boot_id,
    read_start_time,
)


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vq-") as tmp:
        yield Path(tmp)


def _sh(script: str) -> list[str]:
    return ["/bin/sh", "-c", script]


def test_spawned_process_is_detached_with_its_stdio_redirected(folder: Path) -> None:
    log = folder / "qemu.log"
    leaked_r, leaked_w = os.pipe()
    os.set_inheritable(leaked_w, True)

    async def scenario() -> None:
        # The shell writes both lines, then becomes ``sleep``: its fds are read only then,
        # because while the shell runs ``echo >&2`` its own fd 1 points at the log.
        process = QemuProcess.spawn(_sh("echo to-stderr >&2; echo to-stdout; exec sleep 30"), log)
        try:
            assert process.is_child and process.start_time == read_start_time(process.pid)
            assert os.getsid(process.pid) == process.pid  # its own session
            fd_dir = Path(f"/proc/{process.pid}/fd")
            comm = Path(f"/proc/{process.pid}/comm")
            deadline = time.monotonic() + 60
            while comm.read_text().strip() != "sleep" and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            assert comm.read_text().strip() == "sleep"
            assert os.readlink(fd_dir / "0") == os.devnull
            assert os.readlink(fd_dir / "1") == os.devnull
            assert os.readlink(fd_dir / "2") == str(log)
            assert not (fd_dir / str(leaked_w)).exists(), "an inheritable fd leaked into QEMU"
        finally:
            process.kill()
            await process.wait(5)
            process.close()

    try:
        asyncio.run(scenario())
    finally:
        os.close(leaked_r)
        os.close(leaked_w)
    assert log.read_text() == "to-stderr\n"
    assert os.stat(log).st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("script", "expected"),
    [("exit 3", ExitStatus(code=3)), ("kill -SEGV $$", ExitStatus(signal=signal.SIGSEGV))],
)
def test_exit_status_of_a_child_is_known_and_it_is_reaped(
    folder: Path, script: str, expected: ExitStatus
) -> None:
    async def scenario() -> ExitStatus:
        process = QemuProcess.spawn(_sh(script), folder / "log")
        status = await process.wait(10)
        assert process.exited()
        with pytest.raises(ChildProcessError):  # reaped: no zombie left behind
            os.waitpid(process.pid, os.WNOHANG)
        process.close()
        return status

    assert asyncio.run(scenario()) == expected


def test_kill_is_detected_at_once_and_described(folder: Path) -> None:
    async def scenario() -> tuple[ExitStatus, float]:
        process = QemuProcess.spawn(["sleep", "30"], folder / "log")
        await asyncio.sleep(0.05)
        started = time.monotonic()
        process.kill()
        status = await process.wait(10)
        process.close()
        return status, time.monotonic() - started

    status, latency = asyncio.run(scenario())
    print(f"\nexit detection after SIGKILL of a child: {latency * 1000:.2f} ms")
    assert status == ExitStatus(signal=signal.SIGKILL)
    assert status.describe() == "killed by SIGKILL"


def _orphan(seconds: int) -> int:
    """Start ``sleep`` through a shell that exits at once: the sleep is not our child."""
    out = subprocess.run(
        _sh(f"sleep {seconds} >/dev/null 2>&1 & echo $!"),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout)


def test_find_takes_hold_of_a_process_that_is_not_our_child() -> None:
    pid = _orphan(30)
    start_time = read_start_time(pid)
    assert start_time is not None

    async def scenario() -> tuple[ExitStatus, float]:
        process = QemuProcess.find(pid, start_time)
        assert not process.is_child and not process.exited()
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)  # from outside, as an admin would
        status = await process.wait(10)
        process.close()
        return status, time.monotonic() - started

    status, latency = asyncio.run(scenario())
    print(f"\nexit detection of a non-child (pidfd): {latency * 1000:.2f} ms")
    assert status == ExitStatus() and not status.known
    assert status.describe() == "exit status unknown"


def test_find_refuses_a_reused_pid_and_a_dead_one(folder: Path) -> None:
    pid = _orphan(30)
    start_time = read_start_time(pid)
    assert start_time is not None
    log = folder / "qemu.log"
    log.write_text("qemu-system-x86_64: something went wrong\n")

    async def scenario() -> None:
        with pytest.raises(WorkerGone, match=f"QEMU process {pid} is gone: its pid now belongs"):
            QemuProcess.find(pid, start_time + 1, log)
        os.kill(pid, signal.SIGKILL)
        for _ in range(500):  # PID 1 reaps orphans late; a zombie counts as gone too
            try:
                QemuProcess.find(pid, start_time, log).close()
            except WorkerGone as err:
                assert f"QEMU process {pid} is gone" in err.reason
                assert "last lines of qemu.log: qemu-system-x86_64: something went wrong" in (
                    err.reason
                )
                return
            await asyncio.sleep(0.01)
        pytest.fail("a killed process was still found")

    asyncio.run(scenario())


def test_connect_when_listening_reports_an_early_exit_with_the_log(folder: Path) -> None:
    log = folder / "qemu.log"

    async def scenario() -> None:
        process = QemuProcess.spawn(_sh("echo 'qemu: -foo: invalid option' >&2; exit 1"), log)
        with pytest.raises(QemuStartError) as caught:
            await connect_when_listening(folder / "qmp.sock", process,
                                         StartPatience.fixed(process, 10), log)
        process.close()
        assert "exit code 1" in str(caught.value)
        assert "qemu: -foo: invalid option" in str(caught.value)

    asyncio.run(scenario())


def test_connect_when_listening_connects_as_soon_as_the_socket_listens(folder: Path) -> None:
    sock_path = folder / "qmp.sock"
    server = (
        "import socket,sys,time; time.sleep(0.2); s=socket.socket(socket.AF_UNIX);"
        f"s.bind({str(sock_path)!r}); s.listen(1); c,_=s.accept(); c.sendall(b'hi'); time.sleep(5)"
    )

    async def scenario() -> bytes:
        process = QemuProcess.spawn([sys.executable, "-c", server], folder / "log")
        try:
            sock = await connect_when_listening(sock_path, process,
                                                StartPatience.fixed(process, 10))
            with sock:
                loop = asyncio.get_running_loop()
                return await asyncio.wait_for(loop.sock_recv(sock, 2), 5)
        finally:
            process.kill()
            await process.wait(5)
            process.close()

    assert asyncio.run(scenario()) == b"hi"


def test_connect_when_listening_gives_up_after_its_timeout(folder: Path) -> None:
    async def scenario() -> None:
        process = QemuProcess.spawn(["sleep", "30"], folder / "log")
        try:
            with pytest.raises(
                QemuStartError, match=r"did not open its QMP socket .* within 0.1 s"
            ):
                await connect_when_listening(folder / "qmp.sock", process,
                                             StartPatience.fixed(process, 0.1))
        finally:
            process.kill()
            await process.wait(5)
            process.close()

    asyncio.run(scenario())


def _given_up(folder: Path, argv: list[str]) -> str:
    """What a start step of a process running ``argv`` that never listens is given up with
    (1 s without CPU, 3 s in all)."""
    async def scenario() -> str:
        process = QemuProcess.spawn(argv, folder / "log")
        try:
            with pytest.raises(QemuStartError) as caught:
                await connect_when_listening(folder / "qmp.sock", process,
                                             StartPatience(process, quiet_s=1, limit_s=3))
            return str(caught.value)
        finally:
            process.kill()
            await process.wait(5)
            process.close()

    return asyncio.run(scenario())


def test_a_start_that_keeps_using_cpu_is_waited_for_past_the_quiet_limit(folder: Path) -> None:
    """A QEMU still setting up on a busy host (using CPU) is not given up after the quiet
    limit, only after the overall one; one that does nothing is given up early."""
    busy = _given_up(folder, [sys.executable, "-c", "while True: pass"])
    assert busy.endswith("within 3 s"), busy
    idle = _given_up(folder, ["sleep", "30"])
    assert "it used no CPU for the last 1 s" in idle, idle


def test_patiently_returns_the_step_or_cancels_it_when_patience_runs_out(
        folder: Path) -> None:
    async def scenario() -> tuple[str, str, bool]:
        process = QemuProcess.spawn(["sleep", "30"], folder / "log")
        cancelled = asyncio.Event()

        async def never() -> str:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "unreachable"

        async def soon() -> str:
            await asyncio.sleep(0.01)
            return "greeted"

        try:
            done = await patiently(soon(), StartPatience(process, quiet_s=1), "no greeting")
            with pytest.raises(QemuStartError) as caught:
                await patiently(never(), StartPatience(process, quiet_s=1), "no greeting")
            return done, str(caught.value), cancelled.is_set()
        finally:
            process.kill()
            await process.wait(5)
            process.close()

    done, error, cancelled = asyncio.run(scenario())
    assert done == "greeted"
    assert error.startswith("no greeting within") and "used no CPU" in error, error
    assert cancelled


def test_spawn_of_a_missing_binary_is_a_start_error(folder: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(QemuStartError, match="'/nonexistent/qemu' not found"):
            QemuProcess.spawn(["/nonexistent/qemu"], folder / "log")
        with pytest.raises(QemuStartError, match="command line is empty"):
            QemuProcess.spawn([], folder / "log")

    asyncio.run(scenario())


def test_log_tail_and_boot_id(folder: Path) -> None:
    log = folder / "qemu.log"
    log.write_text("".join(f"line {i}\n\n" for i in range(20)))
    assert log_tail(log, lines=3) == "line 17 | line 18 | line 19"
    assert log_tail(folder / "absent.log") == ""
    boot_id = read_boot_id()
    assert len(boot_id) == 36 and boot_id == read_boot_id()
    assert read_start_time(os.getpid()) is not None


class SlowConfinement:
    """Stands in for the host's confinement: its file work blocks (as qemu-img reading a
    backing chain does on a loaded host) until released."""

    def __init__(self) -> None:
        import threading

        self.release = threading.Event()
        self.threads: list[int] = []

    def prepare(self, argv: list[str], folder: Path) -> list[str]:
        import threading

        self.threads.append(threading.get_ident())
        assert self.release.wait(10), "prepare blocked the event loop"
        return ["/bin/sh", "-c", 'exec "$@"', "confined", *argv]


def test_launch_prepares_the_confinement_off_the_event_loop(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from viridian.qemu import process as process_module

    slow = SlowConfinement()
    monkeypatch.setattr(process_module, "active", lambda: slow)

    async def scenario() -> None:
        launching = asyncio.get_running_loop().create_task(
            QemuProcess.launch(["sleep", "30"], folder / "log")
        )
        while not slow.threads:  # the loop goes on while prepare works (else: stuck)
            await asyncio.sleep(0.01)
        assert not launching.done()
        slow.release.set()
        process = await launching
        try:
            assert process.pid > 0 and process.is_child
        finally:
            process.kill()
            await process.wait(5)
            process.close()

    asyncio.run(scenario())
    assert slow.threads[0] != threading.get_ident()

"""Worker with real QEMU (TCG, guest-less VM: SeaBIOS finds nothing to boot, which is fine)
and the runtime record it writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.qemu_processes import end_qemu_under

from viridian.qemu.errors import (
    MonitorError,
    QemuError,
    QemuStartError,
    RuntimeRecordError,
    WorkerGone,
)
from viridian.qemu.monitor import QmpEvent
from viridian.qemu.process import ExitStatus, read_boot_id, read_start_time
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.runtime_record import (
    RECORD_VERSION,
    RuntimeRecord,
    load_record,
    upgrade_record_data,
    write_record,
)
from viridian.qemu.worker import ExitReason, Worker, classify_exit, remove_runtime_folder

SANDBOX = "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"


@pytest.fixture
def paths() -> Iterator[RuntimePaths]:
    """A runtime folder; any QEMU still using it when the test ends (passed, failed or
    errored) is killed, and its folder removed."""
    with tempfile.TemporaryDirectory(prefix="vq-") as tmp:  # short: UNIX socket paths
        try:
            yield RuntimePaths(Path(tmp) / "run" / "vm")
        finally:
            end_qemu_under(Path(tmp))


def qemu_argv(
    paths: RuntimePaths, memory: int = 64, incoming: bool = False, extra: Sequence[str] = ()
) -> list[str]:
    argv = [
        "qemu-system-x86_64",
        *("-machine", "pc,accel=tcg", "-nodefaults", "-no-user-config"),
        *("-m", str(memory), "-display", "none", "-sandbox", SANDBOX),
        *("-qmp", f"unix:{paths.qmp_socket},server=on,wait=off"),
        *extra,
    ]
    return [*argv, "-incoming", "defer"] if incoming else argv


async def launch(paths: RuntimePaths, **kwargs: Any) -> Worker:
    argv = kwargs.pop("argv", None) or qemu_argv(paths, incoming="incoming_state" in kwargs)
    return await Worker.launch(argv, paths, vm_id="vm-1", vm_name="test-vm", **kwargs)


def assert_no_process(pid: int) -> None:
    assert read_start_time(pid) is None, f"QEMU {pid} still runs"
    with pytest.raises(ChildProcessError):  # reaped: no zombie of ours left behind
        os.waitpid(pid, os.WNOHANG)


# -- lifecycle with real QEMU --------------------------------------------------------


def test_launch_pause_resume_turn_off(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths, settings={"memory_mb": 64})
        assert await worker.status() == "running"
        await worker.pause()
        assert await worker.status() == "paused"
        await worker.resume()
        assert await worker.status() == "running"

        record = load_record(paths)
        assert record.pid == worker.pid and record.pid_start_time == read_start_time(worker.pid)
        assert record.argv[:2] == ("qemu-system-x86_64", "-S")  # nothing runs before we connect
        assert record.qemu_binary.endswith("/qemu-system-x86_64")
        assert record.boot_id == read_boot_id() and record.accelerator == "tcg"
        assert (record.vm_id, record.vm_name, record.settings) == (
            "vm-1",
            "test-vm",
            {"memory_mb": 64},
        )
        assert abs(record.started_at - time.time()) < 60
        assert paths.pid_file.read_text() == f"{worker.pid}\n"
        assert paths.folder.stat().st_mode & 0o777 == 0o700

        exit_info = await worker.turn_off()
        assert exit_info.reason is ExitReason.QUIT and exit_info.shutdown_cause == "host-qmp-quit"
        assert exit_info.status == ExitStatus(code=0)
        assert_no_process(worker.pid)
        await worker.cleanup()
        assert not paths.folder.exists()

    asyncio.run(scenario())


def test_launch_paused_stays_paused_until_resumed(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths, start_paused=True)
        try:
            assert await worker.status() == "prelaunch"
            await worker.resume()
            assert await worker.status() == "running"
        finally:
            await worker.turn_off()

    asyncio.run(scenario())


@pytest.mark.parametrize("memory", [64, 256])
def test_save_ends_qemu_and_restore_continues_from_the_file(
    paths: RuntimePaths, memory: int
) -> None:
    state = paths.folder.parent / "saved.state"
    fractions: list[float] = []

    async def scenario() -> None:
        argv = qemu_argv(paths, memory)
        worker = await launch(paths, argv=argv)
        result = await worker.save(state, progress=fractions.append)
        assert result.exit.reason is ExitReason.QUIT
        assert result.migration.size_bytes == state.stat().st_size > 0
        assert not state.with_name("saved.state.partial").exists()
        assert fractions and fractions[-1] == 1.0
        assert_no_process(worker.pid)
        await worker.cleanup()

        restored = await launch(
            paths, argv=qemu_argv(paths, memory, incoming=True), incoming_state=state,
            start_paused=True,
        )  # fmt: skip
        assert await restored.status() == "paused"
        await restored.resume()
        assert await restored.status() == "running"
        await restored.turn_off()

        running = await launch(
            paths, argv=qemu_argv(paths, memory, incoming=True), incoming_state=state
        )
        assert await running.status() == "running"
        await running.turn_off()

    asyncio.run(scenario())


def test_attach_after_a_service_restart_finds_the_running_qemu(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        first = await launch(paths)
        pid = first.pid
        await first.close()  # the service stops: QEMU keeps running
        assert read_start_time(pid) is not None
        del first

        again = await Worker.attach(paths)
        assert again.pid == pid and again.record.vm_name == "test-vm"
        assert await again.status() == "running"
        await again.pause()
        assert await again.status() == "paused"
        exit_info = await again.turn_off()
        assert exit_info.reason is ExitReason.QUIT
        assert_no_process(pid)

    asyncio.run(scenario())


def test_attach_to_a_qemu_that_died_meanwhile_says_why(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths)
        pid = worker.pid
        await worker.close()
        os.kill(pid, signal.SIGKILL)  # dies while the service is away
        for _ in range(500):
            if read_start_time(pid) is None:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(WorkerGone) as caught:
            await Worker.attach(paths)
        assert f"QEMU process {pid} is gone" in caught.value.reason
        assert caught.value.details["pid"] == pid
        os.waitpid(pid, 0)  # this test process is its parent: reap it
        remove_runtime_folder(paths)
        assert not paths.folder.exists()

    asyncio.run(scenario())


def test_attach_refuses_records_from_before_a_reboot_or_missing(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths)
        try:
            data = json.loads(paths.record_file.read_text())
            data["boot_id"] = "00000000-0000-0000-0000-000000000000"
            paths.record_file.write_text(json.dumps(data))
            with pytest.raises(WorkerGone, match="the host restarted since it was started"):
                await Worker.attach(paths)
            paths.record_file.unlink()
            with pytest.raises(WorkerGone, match="no usable runtime record: no runtime record at"):
                await Worker.attach(paths)
        finally:
            await worker.turn_off()

    asyncio.run(scenario())


def test_exit_detection_when_qemu_is_killed_from_outside(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths)
        started = time.monotonic()
        os.kill(worker.pid, signal.SIGKILL)
        exit_info = await worker.wait_exit(10)
        print(f"\nexit detected {(time.monotonic() - started) * 1000:.2f} ms after SIGKILL")
        assert exit_info.reason is ExitReason.KILLED
        assert exit_info.detail == "QEMU was killed by SIGKILL"
        assert_no_process(worker.pid)

        worker = await launch(paths)
        os.kill(worker.pid, signal.SIGTERM)  # QEMU sends SHUTDOWN host-signal, then exits
        exit_info = await worker.wait_exit(10)
        assert exit_info.reason is ExitReason.KILLED and exit_info.shutdown_cause == "host-signal"

    asyncio.run(scenario())


def test_a_reset_ends_qemu_under_no_reboot(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths, argv=qemu_argv(paths, extra=["-no-reboot"]))
        await worker.reset()
        exit_info = await worker.wait_exit(10)
        assert exit_info.reason is ExitReason.RESET
        assert exit_info.shutdown_cause == "host-qmp-system-reset"

    asyncio.run(scenario())


def test_turn_off_kills_a_qemu_that_does_not_answer(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths)
        os.kill(worker.pid, signal.SIGSTOP)  # hung: QMP never answers
        exit_info = await worker.turn_off(quit_timeout=0.3)
        assert exit_info.reason is ExitReason.KILLED
        assert exit_info.status == ExitStatus(signal=signal.SIGKILL)
        assert_no_process(worker.pid)

    asyncio.run(scenario())


def test_failed_save_leaves_the_vm_running(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths)
        try:
            with pytest.raises(QemuError, match="cannot open the state file"):
                await worker.save(paths.folder / "no-such-dir" / "state")
            assert await worker.status() == "running"
        finally:
            await worker.turn_off()

    asyncio.run(scenario())


def test_cancelled_save_leaves_the_vm_running_and_no_file(paths: RuntimePaths) -> None:
    """A save cancelled while QEMU writes either is cancelled (the VM runs, no file) or
    had already completed (a whole state file that restores, QEMU ended) — which one is a
    race the caller cannot win on a loaded host; never a partial file or a lost VM."""
    state = paths.folder.parent / "saved.state"
    partial = state.with_name("saved.state.partial")

    async def scenario() -> None:
        worker = await launch(paths, argv=qemu_argv(paths, 256))
        saving = asyncio.create_task(worker.save(state))

        def cancel_when_writing(event: QmpEvent) -> None:
            if event.name == "MIGRATION" and event.data["status"] == "active":
                saving.cancel()  # e.g. the job is cancelled while QEMU writes the state

        worker.monitor.subscribe(cancel_when_writing)
        with contextlib.suppress(asyncio.CancelledError):
            await saving
        assert not partial.exists()
        if state.exists():  # the save completed before the cancel landed
            await _assert_saved_and_restorable(worker, state, 256)
            return
        assert await worker.status() == "running"
        assert await worker.monitor.migration_status() in ("cancelled", "completed")
        result = await worker.save(state)  # a later save works
        assert result.exit.reason is ExitReason.QUIT and state.exists()

    asyncio.run(scenario())


def test_a_save_cancelled_once_its_file_is_complete_still_ends_qemu(paths: RuntimePaths) -> None:
    state = paths.folder.parent / "saved.state"

    async def scenario() -> None:
        worker = await launch(paths)
        saving = asyncio.create_task(worker.save(state))

        def cancel_when_quitting(event: QmpEvent) -> None:
            if event.name == "SHUTDOWN":  # QEMU was told to quit: the file is in place
                saving.cancel()

        worker.monitor.subscribe(cancel_when_quitting)
        with pytest.raises(asyncio.CancelledError):
            await saving
        assert not state.with_name("saved.state.partial").exists()
        await _assert_saved_and_restorable(worker, state, 64)

    asyncio.run(scenario())


async def _assert_saved_and_restorable(worker: Worker, state: Path, memory: int) -> None:
    """QEMU ended by the save, and ``state`` is whole: a new QEMU loads it."""
    exit_info = await worker.wait_exit(60)
    assert exit_info.reason is ExitReason.QUIT
    await worker.cleanup()
    restored = await launch(
        worker.paths, argv=qemu_argv(worker.paths, memory, incoming=True), incoming_state=state,
        start_paused=True,
    )  # fmt: skip
    try:
        assert await restored.status() == "paused"
    finally:
        await restored.turn_off()


def test_launch_failure_reports_qemus_complaint_and_leaves_nothing(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        with pytest.raises(QemuStartError) as caught:
            await launch(paths, argv=qemu_argv(paths, extra=["-no-such-option"]))
        assert "exit code 1" in str(caught.value)
        assert "-no-such-option: invalid option" in str(caught.value)
        assert not paths.folder.exists()

    asyncio.run(scenario())


def test_restore_of_a_bad_state_file_fails_cleanly(paths: RuntimePaths) -> None:
    bad = paths.folder.parent / "bad.state"

    async def scenario() -> None:
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(b"this is not a QEMU migration stream" * 100)
        with pytest.raises(QemuStartError, match="failed to start") as caught:
            await launch(paths, incoming_state=bad)
        assert isinstance(caught.value.__cause__, MonitorError | QemuError)
        assert not paths.folder.exists()

    asyncio.run(scenario())


def test_launch_checks_its_arguments_before_spawning(paths: RuntimePaths) -> None:
    state = paths.folder.parent / "s.state"

    async def scenario() -> None:
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_bytes(b"x")
        with pytest.raises(QemuStartError, match="needs '-incoming defer'"):
            await launch(paths, argv=qemu_argv(paths), incoming_state=state)
        with pytest.raises(QemuStartError, match="-incoming but no saved state"):
            await launch(paths, argv=qemu_argv(paths, incoming=True))
        with pytest.raises(QemuStartError, match="cannot be read"):
            await launch(paths, incoming_state=state.with_name("absent"))
        assert not paths.folder.exists()

    asyncio.run(scenario())


def test_launch_refuses_a_runtime_folder_whose_qemu_runs(paths: RuntimePaths) -> None:
    async def scenario() -> None:
        worker = await launch(paths)
        try:
            with pytest.raises(QemuStartError, match=rf"QEMU process {worker.pid} already runs"):
                await launch(paths)
            with pytest.raises(QemuError, match="still runs"):
                remove_runtime_folder(paths)
            with pytest.raises(QemuError, match="still runs"):
                await worker.cleanup()
            assert await worker.status() == "running"
        finally:
            await worker.turn_off()

    asyncio.run(scenario())


# -- exit classification (pure) ----------------------------------------------------


def _shutdown(reason: str, guest: bool) -> QmpEvent:
    return QmpEvent("SHUTDOWN", {"guest": guest, "reason": reason}, 0.0)


@pytest.mark.parametrize(
    ("event", "status", "reason"),
    [
        (_shutdown("guest-shutdown", True), ExitStatus(code=0), ExitReason.GUEST_POWERED_OFF),
        (_shutdown("guest-shutdown", True), ExitStatus(), ExitReason.GUEST_POWERED_OFF),
        (_shutdown("guest-reset", True), ExitStatus(code=0), ExitReason.RESET),
        (_shutdown("guest-panic", True), ExitStatus(code=0), ExitReason.GUEST_PANICKED),
        (_shutdown("host-qmp-quit", False), ExitStatus(code=0), ExitReason.QUIT),
        (_shutdown("host-signal", False), ExitStatus(code=0), ExitReason.KILLED),
        (_shutdown("host-error", False), ExitStatus(code=1), ExitReason.CRASHED),
        (None, ExitStatus(signal=signal.SIGKILL), ExitReason.KILLED),
        (None, ExitStatus(signal=signal.SIGSEGV), ExitReason.CRASHED),
        (None, ExitStatus(signal=signal.SIGABRT), ExitReason.CRASHED),
        (None, ExitStatus(code=1), ExitReason.CRASHED),
        (None, ExitStatus(code=0), ExitReason.UNKNOWN),
        (None, ExitStatus(), ExitReason.UNKNOWN),
    ],
)
def test_classify_exit(event: QmpEvent | None, status: ExitStatus, reason: ExitReason) -> None:
    assert classify_exit(event, status).reason is reason


def test_classify_exit_quotes_the_log_when_qemu_crashed() -> None:
    info = classify_exit(None, ExitStatus(signal=signal.SIGSEGV), "qemu: fatal: oops")
    assert info.detail == "QEMU was killed by SIGSEGV; last lines of qemu.log: qemu: fatal: oops"
    assert str(ExitReason.GUEST_POWERED_OFF) == "guest powered off"


# -- runtime record --------------------------------------------------------------------

#: A version-1 record exactly as viridian 0.1 writes it. Keep it forever: every later
#: version must still load it (through UPGRADES) — a VM launched by 0.1 may still run.
RECORD_V1 = """{
 "accelerator": "tcg",
 "argv": ["qemu-system-x86_64", "-S", "-m", "64"],
 "boot_id": "729bc726-7878-4f43-bc00-9aea0a0ee88d",
 "pid": 4242,
 "pid_start_time": 123456,
 "qemu_binary": "/usr/bin/qemu-system-x86_64",
 "settings": {"memory_mb": 64, "notes": "hand-written"},
 "started_at": 1700000000.5,
 "version": 1,
 "vm_id": "0b7a",
 "vm_name": "old"
}
"""


def test_hand_written_version_1_record_loads(paths: RuntimePaths) -> None:
    paths.folder.mkdir(parents=True)
    paths.record_file.write_text(RECORD_V1)
    record = load_record(paths)
    assert record == RuntimeRecord(
        vm_id="0b7a",
        vm_name="old",
        argv=("qemu-system-x86_64", "-S", "-m", "64"),
        qemu_binary="/usr/bin/qemu-system-x86_64",
        pid=4242,
        pid_start_time=123456,
        started_at=1700000000.5,
        accelerator="tcg",
        boot_id="729bc726-7878-4f43-bc00-9aea0a0ee88d",
        settings={"memory_mb": 64, "notes": "hand-written"},
        version=RECORD_VERSION,
    )


def test_record_round_trips_and_is_written_atomically(paths: RuntimePaths) -> None:
    paths.folder.mkdir(parents=True)
    record = RuntimeRecord.from_dict(upgrade_record_data(json.loads(RECORD_V1)))
    write_record(paths, record)
    assert load_record(paths) == record
    assert [p.name for p in paths.folder.iterdir()] == ["runtime.json"]  # no temporary left
    assert paths.record_file.stat().st_mode & 0o777 == 0o600


def test_upgrades_run_one_step_per_version_in_order() -> None:
    def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "machine": "pc"}

    def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        data["name"] = data.pop("vm_name")
        return data

    table = {1: v1_to_v2, 2: v2_to_v3}
    v1 = json.loads(RECORD_V1)
    v3 = upgrade_record_data(v1, table, current=3)
    assert v3["version"] == 3 and v3["machine"] == "pc" and v3["name"] == "old"
    assert "vm_name" not in v3 and v1["vm_name"] == "old"  # the input is left alone
    assert upgrade_record_data({**v1, "version": 2, "machine": "q35"}, table, 3)["machine"] == "q35"
    current = upgrade_record_data(v1)
    assert current["storage_daemon"] is None  # version 2: a version-1 VM has no daemon
    assert upgrade_record_data(current) == current  # current version: nothing to do
    with pytest.raises(RuntimeRecordError, match="no upgrade from runtime record version 1"):
        upgrade_record_data(v1, {}, current=2)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 99}, "version 99 is newer than this viridian understands"),
        ({"version": "1"}, "has no valid version"),
        ({"pid": "4242"}, "field 'pid' has the wrong type"),
        ({"accelerator": "hvf"}, "'accelerator' is 'hvf'; allowed: kvm, tcg"),
        ({"argv": ["qemu", 3]}, "'argv' must be a list of strings"),
    ],
)
def test_bad_records_are_refused_with_the_field_named(
    paths: RuntimePaths, change: dict[str, Any], message: str
) -> None:
    paths.folder.mkdir(parents=True)
    paths.record_file.write_text(json.dumps({**json.loads(RECORD_V1), **change}))
    with pytest.raises(RuntimeRecordError, match=message):
        load_record(paths)


def test_missing_field_and_garbage_are_refused(paths: RuntimePaths) -> None:
    paths.folder.mkdir(parents=True)
    data = json.loads(RECORD_V1)
    del data["boot_id"]
    paths.record_file.write_text(json.dumps(data))
    with pytest.raises(RuntimeRecordError, match="no field 'boot_id'"):
        load_record(paths)
    paths.record_file.write_text("{not json")
    with pytest.raises(RuntimeRecordError, match="is not JSON"):
        load_record(paths)

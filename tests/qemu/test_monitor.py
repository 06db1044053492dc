"""Monitor against a fake QMP server on a real UNIX socket: exact commands sent, typed
answers, and every failure translated into the QEMU layer's errors."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import HANG_UP, NO_REPLY, FakeQmpServer, QmpErrorReply
from qemu.qmp import ExecuteError

from viridian.errors import HostError
from viridian.qemu.errors import MonitorClosed, MonitorError, QemuError, QemuTimeout
from viridian.qemu.monitor import MIGRATION_MAX_BANDWIDTH, Monitor, QmpEvent


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vq-") as tmp:  # short: UNIX socket paths
        yield Path(tmp)


async def _connected(server: FakeQmpServer, **kwargs: Any) -> Monitor:
    monitor = Monitor("test", **kwargs)
    await monitor.connect(server.path)
    return monitor


def test_verbs_send_exactly_their_commands(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server)
        await monitor.pause()
        await monitor.resume()
        await monitor.reset()
        await monitor.power_button()
        assert await monitor.status() == "running"
        await monitor.quit()
        await monitor.close()

    with FakeQmpServer(folder / "qmp.sock") as server:
        asyncio.run(scenario())
    assert server.received[0].command == "qmp_capabilities"
    assert server.commands == [
        "stop",
        "cont",
        "system_reset",
        "system_powerdown",
        "query-status",
        "quit",
    ]
    assert all(r.arguments is None for r in server.received[1:])


def test_version_and_machine_aliases_are_typed(folder: Path) -> None:
    replies = {
        "query-version": {"qemu": {"major": 7, "minor": 2, "micro": 22}, "package": "x"},
        "query-machines": [
            {"name": "pc-i440fx-7.2", "alias": "pc", "is-default": True},
            {"name": "pc-q35-7.2", "alias": "q35"},
            {"name": "none"},
        ],
    }

    async def scenario() -> tuple[tuple[int, int, int], dict[str, str]]:
        monitor = await _connected(server)
        try:
            return await monitor.version(), await monitor.machine_aliases()
        finally:
            await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", replies) as server:
        version, aliases = asyncio.run(scenario())
    assert version == (7, 2, 22)
    assert aliases == {"pc": "pc-i440fx-7.2", "q35": "pc-q35-7.2"}


def test_refused_command_says_what_was_sent_and_received(folder: Path) -> None:
    replies = {"cont": QmpErrorReply("GenericError", "Resetting the Virtual Machine is required")}

    async def scenario() -> MonitorError:
        monitor = await _connected(server)
        try:
            with pytest.raises(MonitorError) as caught:
                await monitor.resume()
            return caught.value
        finally:
            await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", replies) as server:
        err = asyncio.run(scenario())
    assert "cont" in str(err) and "Resetting the Virtual Machine is required" in str(err)
    assert "GenericError" in str(err)
    assert err.command == "cont"
    assert err.received["error"]["class"] == "GenericError"
    assert isinstance(err.__cause__, ExecuteError)
    assert isinstance(err, QemuError) and isinstance(err, HostError)


def test_unanswered_command_times_out(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server, command_timeout=0.2)
        try:
            with pytest.raises(QemuTimeout, match=r"did not answer stop within 0.2 s"):
                await monitor.pause()
        finally:
            await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", {"stop": lambda _: NO_REPLY}) as server:
        asyncio.run(scenario())


def test_connection_lost_during_command_is_monitor_closed(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server)
        with pytest.raises(MonitorClosed, match="closed before QEMU answered stop"):
            await monitor.pause()
        await asyncio.wait_for(monitor.wait_closed(), 5)
        assert not monitor.connected
        with pytest.raises(MonitorClosed, match="no QMP connection"):
            await monitor.status()
        with pytest.raises(MonitorClosed):
            await monitor.quit()
        await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", {"stop": lambda _: HANG_UP}) as server:
        asyncio.run(scenario())


def test_quit_answered_by_hang_up_is_success(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server)
        await monitor.quit()
        await asyncio.wait_for(monitor.wait_closed(), 5)
        await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", {"quit": lambda _: HANG_UP}) as server:
        asyncio.run(scenario())
    assert server.commands == ["quit"]


def test_connect_to_missing_socket_fails_clearly(folder: Path) -> None:
    async def scenario() -> None:
        with pytest.raises(MonitorClosed, match="cannot connect to QMP at"):
            await Monitor("x").connect(folder / "absent.sock", timeout=1)

    asyncio.run(scenario())


def test_close_sends_nothing_and_leaves_the_server_alone(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server)
        await monitor.close()
        await monitor.close()  # idempotent
        assert not monitor.connected
        second = await _connected(server)  # QEMU accepts the next client
        assert await second.status() == "running"
        await second.close()

    with FakeQmpServer(folder / "qmp.sock") as server:
        asyncio.run(scenario())
    assert server.commands == ["query-status"]
    assert server.connections == 2


def test_event_emitted_before_the_reply_reaches_a_waiter_registered_before(folder: Path) -> None:
    def stop(_: Any) -> dict[str, Any]:
        server.emit("STOP")
        return {}

    async def scenario() -> QmpEvent:
        monitor = await _connected(server)
        try:
            with monitor.event_waiter("STOP") as waiter:
                await monitor.pause()
                return await waiter.wait(timeout=0)
        finally:
            await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", {"stop": stop}) as server:
        event = asyncio.run(scenario())
    assert event.name == "STOP" and event.timestamp > 0


def test_wait_event_filters_and_times_out(folder: Path) -> None:
    def powerdown(_: Any) -> dict[str, Any]:
        server.emit_after_reply("RTC_CHANGE", {"offset": 1})
        server.emit_after_reply("SHUTDOWN", {"guest": True, "reason": "guest-shutdown"})
        return {}

    async def scenario() -> tuple[QmpEvent, list[str]]:
        monitor = await _connected(server)
        seen: list[str] = []
        unsubscribe = monitor.subscribe(lambda e: seen.append(e.name))
        try:
            waiting = asyncio.ensure_future(
                monitor.wait_event("SHUTDOWN", 5, lambda e: bool(e.data.get("guest")))
            )
            await asyncio.sleep(0)
            await monitor.power_button()
            event = await waiting
            with pytest.raises(QemuTimeout, match=r"no RESUME event within 0.05 s"):
                await monitor.wait_event("RESUME", 0.05)
            unsubscribe()
            assert monitor.last_shutdown == event
            return event, seen
        finally:
            await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", {"system_powerdown": powerdown}) as server:
        event, seen = asyncio.run(scenario())
    assert event.data == {"guest": True, "reason": "guest-shutdown"}
    assert seen == ["RTC_CHANGE", "SHUTDOWN"]


def test_waiter_is_woken_by_connection_loss(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server)
        with monitor.event_waiter("SHUTDOWN") as waiter:
            server.hang_up()
            with pytest.raises(MonitorClosed, match="closed while waiting"):
                await waiter.wait(timeout=5)
        await monitor.close()

    with FakeQmpServer(folder / "qmp.sock") as server:
        asyncio.run(scenario())


def _migration_server(
    path: Path, written: bytes, final: str = "completed", extra: dict[str, Any] | None = None
) -> FakeQmpServer:
    server: FakeQmpServer

    def migrate(arguments: dict[str, Any] | None) -> dict[str, Any]:
        assert arguments is not None
        fd = server.named_fds[arguments["uri"].removeprefix("fd:")]
        if written:
            os.write(fd, written)
        os.close(fd)  # QEMU closes a migration fd when done with it
        for status in ("setup", "active", final):
            server.emit_after_reply("MIGRATION", {"status": status})
        return {}

    replies: dict[str, Any] = {
        "migrate-set-capabilities": {},
        "migrate-set-parameters": {},
        "migrate": migrate,
        "migrate-incoming": migrate,
        "query-migrate": {"status": final, "error-desc": "Unable to write to file"},
    }
    replies.update(extra or {})
    server = FakeQmpServer(path, replies)
    return server


def test_save_to_file_passes_an_fd_and_waits_for_the_migration_event(folder: Path) -> None:
    target = folder / "state.bin"
    fractions: list[float] = []

    async def scenario() -> int:
        monitor = await _connected(server)
        try:
            stats = await monitor.save_to_file(target, progress=fractions.append)
            return stats.size_bytes
        finally:
            await monitor.close()

    with _migration_server(folder / "qmp.sock", b"QEVM" + b"\0" * 60) as server:
        size = asyncio.run(scenario())
    assert server.commands == [
        "migrate-set-capabilities",
        "migrate-set-parameters",
        "getfd",
        "migrate",
    ]
    by_name = {r.command: r for r in server.received}
    assert by_name["migrate-set-capabilities"].arguments == {
        "capabilities": [{"capability": "events", "state": True}]
    }
    assert by_name["migrate-set-parameters"].arguments == {"max-bandwidth": MIGRATION_MAX_BANDWIDTH}
    fdname = by_name["getfd"].arguments["fdname"]  # type: ignore[index]
    assert len(by_name["getfd"].fds) == 1
    assert by_name["migrate"].arguments == {"uri": f"fd:{fdname}"}
    assert target.read_bytes() == b"QEVM" + b"\0" * 60 and size == 64
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert fractions[-1] == 1.0


def test_second_save_on_one_connection_skips_the_tuning(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server)
        try:
            await monitor.save_to_file(folder / "a.bin", fsync=False)
            await monitor.save_to_file(folder / "b.bin", fsync=False)
        finally:
            await monitor.close()

    with _migration_server(folder / "qmp.sock", b"x") as server:
        asyncio.run(scenario())
    assert server.commands == [
        "migrate-set-capabilities",
        "migrate-set-parameters",
        "getfd",
        "migrate",
        "getfd",
        "migrate",
    ]


def test_failed_migration_quotes_qemus_reason(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server)
        try:
            with pytest.raises(MonitorError, match="ended failed: Unable to write to file"):
                await monitor.save_to_file(folder / "state.bin")
        finally:
            await monitor.close()

    with _migration_server(folder / "qmp.sock", b"", final="failed") as server:
        asyncio.run(scenario())
    assert server.commands[-1] == "query-migrate"


def test_refused_migrate_closes_the_passed_fd_in_qemu(folder: Path) -> None:
    refusal = QmpErrorReply("GenericError", "There's a migration process in progress")

    async def scenario() -> None:
        monitor = await _connected(server)
        try:
            with pytest.raises(MonitorError, match="migration process in progress"):
                await monitor.save_to_file(folder / "state.bin")
        finally:
            await monitor.close()

    extra = {"migrate": refusal, "closefd": {}}
    with _migration_server(folder / "qmp.sock", b"", extra=extra) as server:
        asyncio.run(scenario())
    getfd = next(r for r in server.received if r.command == "getfd")
    assert server.commands[-2:] == ["migrate", "closefd"]
    assert server.received[-1].arguments == getfd.arguments


def test_restore_from_file_uses_migrate_incoming(folder: Path) -> None:
    state = folder / "state.bin"
    state.write_bytes(b"QEVM")

    async def scenario() -> None:
        monitor = await _connected(server)
        try:
            stats = await monitor.restore_from_file(state)
            assert stats.size_bytes == 4
        finally:
            await monitor.close()

    with _migration_server(folder / "qmp.sock", b"") as server:
        asyncio.run(scenario())
    assert server.commands == ["migrate-set-capabilities", "getfd", "migrate-incoming"]
    assert len(server.received[2].fds) == 1


def test_restore_of_a_missing_file_sends_nothing(folder: Path) -> None:
    async def scenario() -> None:
        monitor = await _connected(server)
        try:
            with pytest.raises(QemuError, match=r"cannot open the state file .*absent.bin"):
                await monitor.restore_from_file(folder / "absent.bin")
        finally:
            await monitor.close()

    with _migration_server(folder / "qmp.sock", b"") as server:
        asyncio.run(scenario())
    assert server.commands == []


def test_cancel_migration_cancels_an_active_save_and_waits_for_its_end(folder: Path) -> None:
    states = iter(["active", "cancelling", "cancelled"])

    def query_migrate(_: Any) -> dict[str, Any]:
        return {"status": next(states)}

    def migrate_cancel(_: Any) -> dict[str, Any]:
        server.emit_after_reply("MIGRATION", {"status": "cancelled"})
        return {}

    async def scenario() -> str:
        monitor = await _connected(server)
        try:
            return await monitor.cancel_migration()
        finally:
            await monitor.close()

    replies = {"query-migrate": query_migrate, "migrate_cancel": migrate_cancel}
    with FakeQmpServer(folder / "qmp.sock", replies) as server:
        assert asyncio.run(scenario()) == "cancelled"
    assert server.commands == ["query-migrate", "migrate_cancel", "query-migrate", "query-migrate"]


def test_cancel_migration_without_a_migration_sends_only_a_query(folder: Path) -> None:
    async def scenario() -> str:
        monitor = await _connected(server)
        try:
            return await monitor.cancel_migration()
        finally:
            await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", {"query-migrate": {}}) as server:
        assert asyncio.run(scenario()) == "none"
    assert server.commands == ["query-migrate"]


def test_qemu_qmp_is_pinned_to_the_version_whose_private_hooks_the_monitor_overrides() -> None:
    """monitor.py overrides qemu.qmp's private ``_cb_inbound``/``_cb_outbound``: the pin
    in pyproject.toml must be exact and match what is installed, and the hooks must exist."""
    import importlib.metadata
    import re
    import tomllib

    from qemu.qmp import QMPClient

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = [d for d in dependencies if d.startswith("qemu.qmp")]
    assert len(pins) == 1 and re.fullmatch(r"qemu\.qmp==\d+\.\d+\.\d+", pins[0]), pins
    assert pins[0] == f"qemu.qmp=={importlib.metadata.version('qemu.qmp')}"
    assert callable(QMPClient._cb_inbound) and callable(QMPClient._cb_outbound)


def test_many_events_nobody_waits_for_are_not_kept(folder: Path) -> None:
    def stop(_: Any) -> dict[str, Any]:
        for offset in range(500):
            server.emit("RTC_CHANGE", {"offset": offset})
        server.emit("STOP")
        return {}

    async def scenario() -> tuple[QmpEvent, int]:
        monitor = await _connected(server)
        try:
            with monitor.event_waiter("STOP") as waiter:
                await monitor.pause()
                event = await waiter.wait(timeout=0)
            kept = len(monitor._qmp.events.history) + monitor._qmp.events._queue.qsize()
            return event, kept
        finally:
            await monitor.close()

    with FakeQmpServer(folder / "qmp.sock", {"stop": stop}) as server:
        event, kept = asyncio.run(scenario())
    assert event.name == "STOP" and kept == 0

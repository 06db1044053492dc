"""The guest-agent client: against a fake agent on a real socket (protocol details and
failures), and against qemu-ga in a real guest booted by a Worker (the whole path)."""

from __future__ import annotations

import asyncio
import base64
import re
import time
from pathlib import Path
from typing import Any

import pytest
from fakes import NO_REPLY, FakeGuestAgent, QmpErrorReply, RawReply

from viridian.qemu import guest_agent
from viridian.qemu.errors import GuestAgentError, GuestAgentTimeout
from viridian.qemu.guest_agent import TRUNCATION_MARKER, GuestAgent, GuestExecResult
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.worker import ExitReason, Worker


def _exec_replies() -> dict[str, Any]:
    polls = iter([{"exited": False}, {"exited": False}])

    def status(arguments: dict[str, Any]) -> dict[str, Any]:
        assert arguments == {"pid": 77}
        return next(
            polls,
            {
                "exited": True,
                "exitcode": 3,
                "out-data": base64.b64encode(b"out\n").decode(),
                "err-data": base64.b64encode(b"err\n").decode(),
            },
        )

    return {"guest-exec": {"pid": 77}, "guest-exec-status": status}


def test_every_connection_starts_with_a_sentinel_sync_and_drops_stale_answers(
    folder: Path,
) -> None:
    async def scenario() -> bool:
        agent = GuestAgent(folder / "qga.sock")
        try:
            return await agent.ping()
        finally:
            await agent.close()

    with FakeGuestAgent(folder / "qga.sock") as fake:
        fake.stale_before_sync = b'{"return": {"stale": 1}}\n{"return": 12345}\n'
        assert asyncio.run(scenario()) is True
    assert fake.commands == ["guest-sync-delimited", "guest-ping"]
    assert isinstance(fake.received[0]["arguments"]["id"], int)


def test_exec_polls_until_exit_and_decodes_output(folder: Path) -> None:
    async def scenario() -> GuestExecResult:
        agent = GuestAgent(folder / "qga.sock")
        try:
            return await agent.exec(["sh", "-c", "echo out; echo err >&2; exit 3"], stdin=b"in")
        finally:
            await agent.close()

    with FakeGuestAgent(folder / "qga.sock", _exec_replies()) as fake:
        exit_code, stdout, stderr, *truncated = asyncio.run(scenario())
    assert (exit_code, stdout, stderr) == (3, b"out\n", b"err\n")
    assert truncated == [False, False]
    assert fake.commands == ["guest-sync-delimited", "guest-exec", *["guest-exec-status"] * 3]
    assert fake.received[1]["arguments"] == {
        "path": "sh",
        "arg": ["-c", "echo out; echo err >&2; exit 3"],
        "capture-output": True,
        "input-data": base64.b64encode(b"in").decode(),
    }


def test_info_lists_enabled_commands(folder: Path) -> None:
    info_reply = {
        "version": "7.2.22",
        "supported_commands": [
            {"name": "guest-ping", "enabled": True, "success-response": True},
            {"name": "guest-exec", "enabled": False, "success-response": True},
        ],
    }

    async def scenario() -> Any:
        agent = GuestAgent(folder / "qga.sock")
        try:
            return await agent.info()
        finally:
            await agent.close()

    with FakeGuestAgent(folder / "qga.sock", {"guest-info": info_reply}):
        info = asyncio.run(scenario())
    assert info.version == "7.2.22" and info.commands == frozenset({"guest-ping"})


def test_shutdown_waits_for_no_reply_and_resyncs_afterwards(folder: Path) -> None:
    async def scenario() -> None:
        agent = GuestAgent(folder / "qga.sock")
        try:
            await agent.shutdown("reboot")
            assert await agent.ping()
            with pytest.raises(GuestAgentError, match=r"invalid shutdown mode 'sleep'.*powerdown"):
                await agent.shutdown("sleep")  # type: ignore[arg-type]
        finally:
            await agent.close()

    with FakeGuestAgent(folder / "qga.sock") as fake:
        asyncio.run(scenario())
    assert fake.commands == [
        "guest-sync-delimited",
        "guest-shutdown",
        "guest-sync-delimited",
        "guest-ping",
    ]
    assert fake.received[1]["arguments"] == {"mode": "reboot"}


def test_refusal_is_an_error_with_the_agents_words(folder: Path) -> None:
    refusal = QmpErrorReply("GenericError", "Guest agent command failed, error was 'denied'")

    async def scenario() -> None:
        agent = GuestAgent(folder / "qga.sock")
        try:
            with pytest.raises(
                GuestAgentError, match=r"refused guest-exec: GenericError: .*denied"
            ):
                await agent.exec(["true"])
        finally:
            await agent.close()

    with FakeGuestAgent(folder / "qga.sock", {"guest-exec": refusal}):
        asyncio.run(scenario())


def test_silent_agent_times_out_and_ping_says_false(folder: Path) -> None:
    async def scenario() -> None:
        agent = GuestAgent(folder / "qga.sock")
        try:
            assert await agent.ping(timeout=0.1) is False
            with pytest.raises(GuestAgentTimeout, match=r"did not answer guest-info within 0.1 s"):
                await agent.info(timeout=0.1)
        finally:
            await agent.close()

    with FakeGuestAgent(folder / "qga.sock") as fake:
        fake.silent = True
        asyncio.run(scenario())
    assert fake.commands == ["guest-sync-delimited", "guest-sync-delimited"]  # one per attempt


def test_missing_socket_is_an_error_and_ping_false(folder: Path) -> None:
    async def scenario() -> None:
        agent = GuestAgent(folder / "absent.sock")
        assert await agent.ping() is False
        with pytest.raises(GuestAgentError, match=r"no guest agent channel at .*absent.sock"):
            await agent.info()

    asyncio.run(scenario())


def _run(socket: Path, steps: Any) -> Any:
    async def scenario() -> Any:
        agent = GuestAgent(socket)
        try:
            return await steps(agent)
        finally:
            await agent.close()

    return asyncio.run(scenario())


def test_exec_output_cut_by_the_agent_or_by_max_output_is_marked(folder: Path) -> None:
    status = {
        "exited": True,
        "exitcode": 0,
        "out-data": base64.b64encode(b"o" * 100).decode(),
        "err-data": base64.b64encode(b"e" * 10).decode(),
        "err-truncated": True,  # qemu-ga kept only the first bytes
    }
    replies = {"guest-exec": {"pid": 5}, "guest-exec-status": status}
    with FakeGuestAgent(folder / "qga.sock", replies):
        result = _run(folder / "qga.sock", lambda a: a.exec(["yes"], max_output=64))
    assert result.stdout == b"o" * 64 + TRUNCATION_MARKER % 64
    assert result.stderr == b"e" * 10 + TRUNCATION_MARKER % 64
    assert result.stdout_truncated and result.stderr_truncated
    assert b"output truncated" in result.stdout


def test_a_reply_longer_than_the_limit_fails_clearly_and_the_next_request_resyncs(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guest_agent, "REPLY_LIMIT", 4096)
    endless = b'{"return": {"exited": true, "out-data": "' + b"A" * 200_000 + b'"}}\n'
    replies = {"guest-exec": {"pid": 5}, "guest-exec-status": RawReply(endless)}

    async def steps(agent: GuestAgent) -> None:
        with pytest.raises(GuestAgentError, match="reply to guest-exec-status is longer than 4096"):
            await agent.exec(["od", "-v", "/dev/zero"])
        assert await agent.ping()

    with FakeGuestAgent(folder / "qga.sock", replies) as fake:
        _run(fake.path, steps)
    assert fake.commands == [
        "guest-sync-delimited", "guest-exec", "guest-exec-status",
        "guest-sync-delimited", "guest-ping",
    ]  # fmt: skip


def test_stale_output_longer_than_the_limit_is_skipped_by_the_resync(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(guest_agent, "REPLY_LIMIT", 4096)
    with FakeGuestAgent(folder / "qga.sock", {"guest-get-time": 42}) as fake:
        fake.stale_before_sync = b'{"return": {"out-data": "' + b"A" * 100_000 + b'"}}\n'
        assert _run(fake.path, lambda a: a.get_time()) == 42


def test_invalid_json_is_an_error_and_the_next_request_resyncs(folder: Path) -> None:
    replies = {"guest-info": RawReply(b'{"return": {"version": \n'), "guest-get-time": 7}

    async def steps(agent: GuestAgent) -> int:
        with pytest.raises(GuestAgentError, match="invalid JSON after guest-info"):
            await agent.info()
        return await agent.get_time()

    with FakeGuestAgent(folder / "qga.sock", replies) as fake:
        assert _run(fake.path, steps) == 7
    assert fake.commands == [
        "guest-sync-delimited", "guest-info", "guest-sync-delimited", "guest-get-time"
    ]


def test_a_cancelled_request_resyncs_before_the_next(folder: Path) -> None:
    replies = {"guest-info": NO_REPLY, "guest-get-time": 7}

    async def steps(agent: GuestAgent) -> int:
        asking = asyncio.create_task(agent.info(timeout=60))
        while "guest-info" not in fake.commands:
            await asyncio.sleep(0.01)
        asking.cancel()  # e.g. the API request was abandoned
        with pytest.raises(asyncio.CancelledError):
            await asking
        return await agent.get_time()

    with FakeGuestAgent(folder / "qga.sock", replies) as fake:
        assert _run(fake.path, steps) == 7
    assert fake.commands == [
        "guest-sync-delimited", "guest-info", "guest-sync-delimited", "guest-get-time"
    ]


# -- a real guest ---------------------------------------------------------------------


def _guest_argv(paths: RuntimePaths, incoming: bool = False) -> list[str]:
    from viridian.guestkit import build

    return [
        "qemu-system-x86_64",
        *("-machine", "pc,accel=tcg", "-nodefaults", "-m", "256", "-display", "none"),
        *("-qmp", f"unix:{paths.qmp_socket},server=on,wait=off"),
        *("-serial", f"file:{paths.com_log(1)}"),
        *("-device", "virtio-serial-pci"),
        *("-chardev", f"socket,id=qga,path={paths.guest_agent_socket},server=on,wait=off"),
        *("-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0"),
        *build().direct_boot_args(),
        *(("-incoming", "defer") if incoming else ()),
    ]


def _serial(paths: RuntimePaths) -> str:
    try:
        return paths.com_log(1).read_text(errors="replace")
    except FileNotFoundError:
        return ""


async def _wait_serial(paths: RuntimePaths, pattern: str, limit: float = 240) -> re.Match[str]:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        match = re.search(pattern, _serial(paths), re.M)
        if match:
            return match
        await asyncio.sleep(0.1)
    raise AssertionError(f"{pattern!r} not seen on COM1:\n{_serial(paths)}")


@pytest.mark.guest
def test_real_guest_agent_exec_save_restore_and_shutdown(folder: Path) -> None:
    paths = RuntimePaths(folder / "vm")

    async def scenario() -> None:
        worker = await Worker.launch(_guest_argv(paths), paths, vm_id="g", vm_name="guest")
        await _wait_serial(paths, r"^VIRIDIAN-GUEST READY")
        agent = worker.guest_agent
        assert await agent.ping(timeout=30)
        info = await agent.info()
        assert {"guest-exec", "guest-shutdown"} <= info.commands
        result = await agent.exec(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=60)
        assert result == (3, b"out\n", b"err\n", False, False)  # nothing truncated

        await _wait_serial(paths, r"^VIRIDIAN-GUEST TICK 2 ")
        ticks = re.findall(r"^VIRIDIAN-GUEST TICK (\d+)", _serial(paths), re.M)
        before = max(int(n) for n in ticks)
        state = folder / "guest.state"
        saved = await worker.save(state)
        assert saved.exit.reason is ExitReason.QUIT
        await worker.cleanup()  # the runtime folder goes, COM1's log with it
        restored = await Worker.launch(
            _guest_argv(paths, incoming=True), paths, vm_id="g", vm_name="guest",
            incoming_state=state,
        )  # fmt: skip
        tick = await _wait_serial(paths, r"^VIRIDIAN-GUEST TICK (\d+)")  # the restored log
        assert int(tick.group(1)) > before  # continues where it was, not rebooted
        assert "VIRIDIAN-GUEST BOOT" not in _serial(paths)

        await restored.guest_agent.shutdown()
        exit_info = await restored.wait_exit(120)
        assert exit_info.reason is ExitReason.GUEST_POWERED_OFF, exit_info
        await restored.cleanup()

    asyncio.run(scenario())


LARGE_OUTPUT = "dd if=/dev/zero bs=1M count=20 2>/dev/null | od -v | head -c 20000000"


@pytest.mark.guest
def test_real_guest_20_mb_of_output_is_cut_and_marked_and_the_next_exec_works(
    folder: Path,
) -> None:
    paths = RuntimePaths(folder / "vm")

    async def scenario() -> None:
        worker = await Worker.launch(_guest_argv(paths), paths, vm_id="g", vm_name="guest")
        await _wait_serial(paths, r"^VIRIDIAN-GUEST READY")
        agent = worker.guest_agent
        assert await agent.ping(timeout=60)
        big = await agent.exec(["sh", "-c", LARGE_OUTPUT], timeout=600)
        assert big.exit_code == 0 and big.stdout_truncated and not big.stderr_truncated
        kept = big.stdout[: -len(TRUNCATION_MARKER % guest_agent.MAX_EXEC_OUTPUT)]
        assert big.stdout.endswith(TRUNCATION_MARKER % guest_agent.MAX_EXEC_OUTPUT)
        assert len(kept) == guest_agent.MAX_EXEC_OUTPUT  # qemu-ga's 16 MiB, not 20 MB
        assert kept.startswith(b"0000000 000000 000000 000000 000000 000000 000000")
        after = await agent.exec(["sh", "-c", "echo still here"], timeout=120)
        assert after == (0, b"still here\n", b"", False, False)
        await worker.turn_off()
        await worker.cleanup()

    asyncio.run(scenario())

"""The guest-agent client: against a fake agent on a real socket (protocol details and
failures), and against qemu-ga in a real guest booted by a Worker (the whole path)."""

from __future__ import annotations

import asyncio
import base64
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import FakeGuestAgent, QmpErrorReply

from viridian.qemu.errors import GuestAgentError, GuestAgentTimeout
from viridian.qemu.guest_agent import GuestAgent, GuestExecResult
from viridian.qemu.runtime_paths import RuntimePaths
from viridian.qemu.worker import ExitReason, Worker


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vq-") as tmp:
        yield Path(tmp)


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
        exit_code, stdout, stderr = asyncio.run(scenario())
    assert (exit_code, stdout, stderr) == (3, b"out\n", b"err\n")
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


# -- a real guest ---------------------------------------------------------------------


@pytest.mark.guest
def test_real_guest_agent_exec_save_restore_and_shutdown(folder: Path) -> None:
    from viridian.guestkit import build

    images = build()
    paths = RuntimePaths(folder / "vm")

    def argv(incoming: bool = False) -> list[str]:
        return [
            "qemu-system-x86_64",
            *("-machine", "pc,accel=tcg", "-nodefaults", "-m", "256", "-display", "none"),
            *("-qmp", f"unix:{paths.qmp_socket},server=on,wait=off"),
            *("-serial", f"file:{paths.com_log(1)}"),
            *("-device", "virtio-serial-pci"),
            *("-chardev", f"socket,id=qga,path={paths.guest_agent_socket},server=on,wait=off"),
            *("-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0"),
            *images.direct_boot_args(),
            *(("-incoming", "defer") if incoming else ()),
        ]

    def serial() -> str:
        try:
            return paths.com_log(1).read_text(errors="replace")
        except FileNotFoundError:
            return ""

    async def wait_serial(pattern: str, limit: float = 240) -> re.Match[str]:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            match = re.search(pattern, serial(), re.M)
            if match:
                return match
            await asyncio.sleep(0.1)
        raise AssertionError(f"{pattern!r} not seen on COM1:\n{serial()}")

    async def scenario() -> None:
        worker = await Worker.launch(argv(), paths, vm_id="g", vm_name="guest")
        await wait_serial(r"^VIRIDIAN-GUEST READY")
        agent = worker.guest_agent
        assert await agent.ping(timeout=30)
        info = await agent.info()
        assert {"guest-exec", "guest-shutdown"} <= info.commands
        result = await agent.exec(["sh", "-c", "echo out; echo err >&2; exit 3"], timeout=60)
        assert result == (3, b"out\n", b"err\n")

        await wait_serial(r"^VIRIDIAN-GUEST TICK 2 ")
        before = max(int(n) for n in re.findall(r"^VIRIDIAN-GUEST TICK (\d+)", serial(), re.M))
        state = folder / "guest.state"
        saved = await worker.save(state)
        assert saved.exit.reason is ExitReason.QUIT
        await worker.cleanup()  # the runtime folder goes, COM1's log with it
        restored = await Worker.launch(
            argv(incoming=True), paths, vm_id="g", vm_name="guest", incoming_state=state
        )
        tick = await wait_serial(r"^VIRIDIAN-GUEST TICK (\d+)")  # the restored QEMU's log
        assert int(tick.group(1)) > before  # continues where it was, not rebooted
        assert "VIRIDIAN-GUEST BOOT" not in serial()

        await restored.guest_agent.shutdown()
        exit_info = await restored.wait_exit(120)
        assert exit_info.reason is ExitReason.GUEST_POWERED_OFF, exit_info
        await restored.cleanup()

    asyncio.run(scenario())

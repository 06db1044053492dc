"""The guest-agent verbs behind the integration services, against the fake agent:
the exact commands and arguments sent, and how the answers are decoded."""

from __future__ import annotations

import asyncio
import base64
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fakes import FakeGuestAgent

from viridian.qemu.guest_agent import GuestAgent

T = TypeVar("T")


@pytest.fixture
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vq-") as tmp:
        yield Path(tmp)


def run(socket: Path, verb: Callable[[GuestAgent], Awaitable[T]]) -> T:
    async def scenario() -> T:
        agent = GuestAgent(socket)
        try:
            return await verb(agent)
        finally:
            await agent.close()

    return asyncio.run(scenario())


def test_set_time_sends_nanoseconds(folder: Path) -> None:
    with FakeGuestAgent(folder / "qga.sock", {"guest-set-time": {}}) as fake:
        run(fake.path, lambda a: a.set_time(1_700_000_000_123_456_789))
    assert fake.received[-1] == {"execute": "guest-set-time",
                                 "arguments": {"time": 1_700_000_000_123_456_789}}


def test_identity_verbs_decode_the_answers(folder: Path) -> None:
    replies = {
        "guest-get-host-name": {"host-name": "kit"},
        "guest-get-osinfo": {"id": "debian", "pretty-name": "Kit", "kernel-release": "6.1"},
        "guest-network-get-interfaces": [
            {"name": "eth0", "hardware-address": "00:15:5d:00:00:01",
             "ip-addresses": [{"ip-address": "10.0.2.15", "ip-address-type": "ipv4",
                               "prefix": 24}]}],
        "guest-get-time": 1_700_000_000_000_000_000,
    }
    with FakeGuestAgent(folder / "qga.sock", replies) as fake:
        assert run(fake.path, lambda a: a.host_name()) == "kit"
        assert run(fake.path, lambda a: a.os_info())["pretty-name"] == "Kit"
        nics = run(fake.path, lambda a: a.network_interfaces())
        assert nics[0]["ip-addresses"][0]["ip-address"] == "10.0.2.15"
        assert run(fake.path, lambda a: a.get_time()) == 1_700_000_000_000_000_000


def test_freeze_thaw_and_status(folder: Path) -> None:
    replies = {"guest-fsfreeze-freeze": 2, "guest-fsfreeze-thaw": 2,
               "guest-fsfreeze-status": "frozen"}
    with FakeGuestAgent(folder / "qga.sock", replies) as fake:
        assert run(fake.path, lambda a: a.fsfreeze()) == 2
        assert run(fake.path, lambda a: a.fsfreeze_status()) == "frozen"
        assert run(fake.path, lambda a: a.fsthaw()) == 2
    assert [c for c in fake.commands if c != "guest-sync-delimited"] == [
        "guest-fsfreeze-freeze", "guest-fsfreeze-status", "guest-fsfreeze-thaw"]


def test_write_file_is_chunked_and_always_closed(folder: Path) -> None:
    chunks: list[bytes] = []

    def write(arguments: dict[str, Any]) -> dict[str, Any]:
        assert arguments["handle"] == 9
        chunks.append(base64.b64decode(arguments["buf-b64"]))
        return {"count": len(chunks[-1]), "eof": False}

    replies = {"guest-file-open": 9, "guest-file-write": write, "guest-file-close": {}}
    data = bytes(range(256)) * 5
    with FakeGuestAgent(folder / "qga.sock", replies) as fake:
        written = run(fake.path, lambda a: a.write_file("/tmp/x", data, chunk=500))
    assert written == len(data) and b"".join(chunks) == data
    assert [len(c) for c in chunks] == [500, 500, 280]
    sent = [m for m in fake.received if m["execute"] != "guest-sync-delimited"]
    assert sent[0] == {"execute": "guest-file-open", "arguments": {"path": "/tmp/x", "mode": "w"}}
    assert sent[-1] == {"execute": "guest-file-close", "arguments": {"handle": 9}}

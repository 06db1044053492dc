"""A small asyncio client for qemu-guest-agent on the VM's guest-agent socket.

Protocol (QEMU 7.2 ``qga/qapi-schema.json``): JSON commands, one reply line each, in
order; no greeting. The agent cannot tell clients apart and may still hold answers for
an earlier client, so every new connection — and every connection after a timeout —
is resynchronised first: the client sends a 0xFF byte (which resets the agent's JSON
parser) and ``guest-sync-delimited`` with a random id; the agent answers with a 0xFF
byte before ``{"return": id}``; everything before that byte is stale and dropped.

Requests are serialised on one connection. Any failure other than a well-formed refusal
— a timeout, a reply that is not JSON, a reply longer than :data:`REPLY_LIMIT`, a
cancelled request — closes the connection, so the next request resynchronises and a late
or half-read answer can never be mistaken for the answer to the next one.

Output of ``guest-exec`` is bounded: qemu-ga keeps at most 16 MiB per stream
(``GUEST_EXEC_MAX_OUTPUT`` in ``qga/commands.c``) and says ``out-truncated``; this client
cuts each stream at ``max_output`` bytes too, and a cut stream ends with
:data:`TRUNCATION_MARKER` and sets ``stdout_truncated``/``stderr_truncated`` in the result.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

from .errors import GuestAgentError, GuestAgentTimeout

__all__ = [
    "MAX_EXEC_OUTPUT",
    "REPLY_LIMIT",
    "TRUNCATION_MARKER",
    "GuestAgent",
    "GuestAgentInfo",
    "GuestExecResult",
    "ShutdownMode",
]

ShutdownMode = Literal["powerdown", "reboot", "halt"]
_SHUTDOWN_MODES = ("powerdown", "reboot", "halt")
_SENTINEL = b"\xff"
_CHUNK = 2**20

#: The most output of one stream that :meth:`GuestAgent.exec` returns (qemu-ga's own cap).
MAX_EXEC_OUTPUT = 16 * 2**20
#: The longest reply line accepted: two capped streams, base64-encoded, plus the JSON.
REPLY_LIMIT = 2 * (MAX_EXEC_OUTPUT * 4 // 3) + 2**20
#: Appended to a stream that was cut (by qemu-ga or by ``max_output``).
TRUNCATION_MARKER = b"\n[viridian: output truncated; at most %d bytes of each stream are kept]\n"


class GuestExecResult(NamedTuple):
    """A finished guest process. ``exit_code`` is 128 + N when signal N killed it.

    A ``*_truncated`` stream holds its first bytes followed by :data:`TRUNCATION_MARKER`.
    """

    exit_code: int
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@dataclass(frozen=True)
class GuestAgentInfo:
    """The agent's version and the commands it has enabled."""

    version: str
    commands: frozenset[str]


class GuestAgent:
    """Client of the guest agent behind ``socket_path`` (a QEMU chardev socket server).

    Methods raise :class:`GuestAgentTimeout` when the agent does not answer in time
    (also when no agent runs in the guest: QEMU accepts the connection regardless), and
    :class:`GuestAgentError` when it refuses a command or the socket is not there.
    """

    def __init__(self, socket_path: Path) -> None:
        self.socket_path = socket_path
        self._reader: _ReplyReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._synced = False
        self._lock = asyncio.Lock()

    # -- verbs -----------------------------------------------------------------------

    async def ping(self, timeout: float = 1.0) -> bool:
        """Whether the agent answers ``guest-ping`` within ``timeout``. Never raises."""
        try:
            await self._request("guest-ping", None, timeout)
        except GuestAgentError:
            return False
        return True

    async def info(self, timeout: float = 5.0) -> GuestAgentInfo:
        reply = _object(await self._request("guest-info", None, timeout), "guest-info")
        enabled = frozenset(
            str(c["name"]) for c in reply.get("supported_commands", []) if c.get("enabled")
        )
        return GuestAgentInfo(str(reply.get("version", "")), enabled)

    async def interface_statistics(self, timeout: float = 1.0) -> dict[str, dict[str, int]]:
        """Traffic counters of the guest's interfaces, keyed by lower-case MAC address:
        ``rx-bytes``, ``tx-bytes``, ``rx-packets``, ``tx-packets``, ... as the guest counts
        them (``guest-network-get-interfaces``, ``GuestNetworkInterfaceStat``, agent ≥ 7.1).
        Interfaces without a MAC or without statistics are left out."""
        reply = await self._request("guest-network-get-interfaces", None, timeout)
        result: dict[str, dict[str, int]] = {}
        for iface in reply if isinstance(reply, list) else []:
            mac, stats = iface.get("hardware-address"), iface.get("statistics")
            if isinstance(mac, str) and isinstance(stats, dict):
                result[mac.lower()] = {k: int(v) for k, v in stats.items()}
        return result

    async def shutdown(self, mode: ShutdownMode = "powerdown", timeout: float = 5.0) -> None:
        """Ask the guest OS to shut down. Returns once the agent proved alive and received
        the request: ``guest-shutdown`` sends no reply on success. Watch QEMU's exit (or
        ``SHUTDOWN`` event) to learn that the guest really powered off."""
        if mode not in _SHUTDOWN_MODES:
            raise GuestAgentError(
                f"invalid shutdown mode {mode!r}; allowed: {', '.join(_SHUTDOWN_MODES)}"
            )
        await self._request("guest-shutdown", {"mode": mode}, timeout, expect_reply=False)

    async def exec(
        self,
        argv: Sequence[str],
        timeout: float = 30.0,
        stdin: bytes | None = None,
        max_output: int = MAX_EXEC_OUTPUT,
    ) -> GuestExecResult:
        """Run ``argv`` in the guest (``guest-exec``), wait until it exits
        (``guest-exec-status``), return its exit code and captured output, each stream
        cut at ``max_output`` bytes (and at qemu-ga's 16 MiB) and then marked.

        :raises GuestAgentTimeout: it did not finish within ``timeout`` (it keeps running).
        """
        if not argv:
            raise GuestAgentError("guest exec needs a program to run; the argv is empty")
        deadline = time.monotonic() + timeout
        arguments: dict[str, Any] = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if stdin is not None:
            arguments["input-data"] = base64.b64encode(stdin).decode()
        started = _object(await self._request("guest-exec", arguments, timeout), "guest-exec")
        pid = started["pid"]
        delay = 0.005
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestAgentTimeout(f"{argv[0]} (guest pid {pid}) still runs after {timeout} s")
            status = _object(
                await self._request("guest-exec-status", {"pid": pid}, left), "guest-exec-status"
            )
            if status.get("exited"):
                return _exec_result(status, max_output)
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.1)

    async def set_time(self, time_ns: int | None = None, timeout: float = 10.0) -> None:
        """Set the guest's clock to ``time_ns`` (ns since the epoch; default: the host's
        clock now) with ``guest-set-time``. The agent sets the system time, then runs
        ``hwclock -w`` to copy it to the RTC."""
        when = time.time_ns() if time_ns is None else time_ns
        await self._request("guest-set-time", {"time": when}, timeout)

    async def get_time(self, timeout: float = 5.0) -> int:
        """The guest's clock, ns since the epoch (``guest-get-time``)."""
        return int(await self._request("guest-get-time", None, timeout))

    async def host_name(self, timeout: float = 5.0) -> str:
        reply = _object(await self._request("guest-get-host-name", None, timeout), "host-name")
        return str(reply.get("host-name", ""))

    async def os_info(self, timeout: float = 5.0) -> dict[str, str]:
        """``guest-get-osinfo``: id, name, pretty-name, version, kernel-release, machine…"""
        reply = _object(await self._request("guest-get-osinfo", None, timeout), "osinfo")
        return {str(k): str(v) for k, v in reply.items()}

    async def network_interfaces(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """``guest-network-get-interfaces``: name, hardware-address, ip-addresses[]."""
        reply = await self._request("guest-network-get-interfaces", None, timeout)
        return [dict(item) for item in reply or [] if isinstance(item, dict)]

    async def fsfreeze(self, timeout: float = 60.0) -> int:
        """Freeze the guest's file systems (``guest-fsfreeze-freeze``); returns how many."""
        return int(await self._request("guest-fsfreeze-freeze", None, timeout))

    async def fsthaw(self, timeout: float = 60.0) -> int:
        """Thaw them (``guest-fsfreeze-thaw``); returns how many were thawed."""
        return int(await self._request("guest-fsfreeze-thaw", None, timeout))

    async def fsfreeze_status(self, timeout: float = 5.0) -> str:
        """``"thawed"`` or ``"frozen"``."""
        return str(await self._request("guest-fsfreeze-status", None, timeout))

    async def write_file(
        self, path: str, data: bytes, mode: str = "w", chunk: int = 48 * 1024,
        timeout: float = 30.0,
    ) -> int:
        """Write ``data`` to ``path`` in the guest (``guest-file-open``/``-write``/``-close``,
        ``chunk`` bytes per request); returns the bytes written. ``mode`` is fopen's."""
        handle = await self.open_file(path, mode, timeout)
        written = 0
        try:
            for start in range(0, len(data), chunk):
                piece = base64.b64encode(data[start : start + chunk]).decode()
                reply = _object(await self._request(
                    "guest-file-write", {"handle": handle, "buf-b64": piece}, timeout),
                    "guest-file-write")
                written += int(reply.get("count", 0))
        finally:
            await self.close_file(handle, timeout)
        return written

    async def open_file(self, path: str, mode: str = "r", timeout: float = 10.0) -> int:
        """``guest-file-open``: a handle for :meth:`write_file`-style verbs."""
        return int(await self._request("guest-file-open", {"path": path, "mode": mode}, timeout))

    async def close_file(self, handle: int, timeout: float = 10.0) -> None:
        await self._request("guest-file-close", {"handle": handle}, timeout)

    async def close(self) -> None:
        """Drop the connection (the agent does not notice)."""
        writer, self._reader, self._writer, self._synced = self._writer, None, None, False
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    # -- protocol --------------------------------------------------------------------

    async def _request(
        self,
        command: str,
        arguments: Mapping[str, Any] | None,
        timeout: float,
        expect_reply: bool = True,
    ) -> Any:
        async with self._lock:
            in_sync = False
            try:
                async with asyncio.timeout(timeout):
                    reply = await self._exchange(command, arguments, expect_reply)
                in_sync = True
                return _returned(reply, command, arguments)
            except TimeoutError as err:
                raise GuestAgentTimeout(
                    f"the guest agent did not answer {command} within {timeout} s",
                    command=command,
                ) from err
            except (OSError, EOFError) as err:
                raise GuestAgentError(
                    f"guest agent connection failed during {command}: {err!r}", command=command
                ) from err
            finally:
                if not in_sync:  # whatever went wrong, the next request resynchronises
                    await self.close()

    async def _exchange(
        self, command: str, arguments: Mapping[str, Any] | None, expect_reply: bool
    ) -> dict[str, Any]:
        """Send one command; its reply, or ``{}`` when none is expected."""
        await self._connect_synced()
        message: dict[str, Any] = {"execute": command}
        if arguments is not None:
            message["arguments"] = dict(arguments)
        writer, reader = self._writer, self._reader
        assert writer is not None and reader is not None
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        if not expect_reply:
            self._synced = False  # an error reply may still come: resync next time
            return {}
        return _parse(await reader.line(command), command)

    async def _connect_synced(self) -> None:
        if self._writer is None:
            try:
                reader, self._writer = await asyncio.open_unix_connection(str(self.socket_path))
            except (FileNotFoundError, ConnectionRefusedError) as err:
                raise GuestAgentError(
                    f"no guest agent channel at {self.socket_path} ({err.strerror})"
                ) from err
            self._reader = _ReplyReader(reader, REPLY_LIMIT)
        if not self._synced:
            await self._resync()
            self._synced = True

    async def _resync(self) -> None:
        """Send the 0xFF sentinel and ``guest-sync-delimited``; drop everything up to the
        agent's 0xFF and its answer with our id (stale replies never contain 0xFF)."""
        assert self._reader is not None and self._writer is not None
        token = random.randrange(1, 2**31)
        request = {"execute": "guest-sync-delimited", "arguments": {"id": token}}
        self._writer.write(_SENTINEL + json.dumps(request).encode() + b"\n")
        await self._writer.drain()
        while True:
            await self._reader.skip_past(_SENTINEL)
            line = await self._reader.line("guest-sync-delimited")
            with contextlib.suppress(GuestAgentError):
                if _parse(line, "guest-sync-delimited").get("return") == token:
                    return


class _ReplyReader:
    """Reply lines from the agent's socket, each at most ``limit`` bytes; stale data of
    any length can be skipped up to a sentinel without holding it in memory."""

    def __init__(self, reader: asyncio.StreamReader, limit: int) -> None:
        self._reader = reader
        self._limit = limit
        self._buffer = bytearray()

    async def line(self, command: str) -> bytes:
        """The next line, newline included.

        :raises GuestAgentError: it is longer than the limit (the rest stays unread).
        :raises EOFError: the socket closed first.
        """
        searched = 0
        while (end := self._buffer.find(b"\n", searched)) < 0 and searched <= self._limit:
            searched = len(self._buffer)
            await self._fill()
        if not 0 <= end < self._limit:
            raise GuestAgentError(
                f"the guest agent's reply to {command} is longer than {self._limit} bytes;"
                " the connection was reset",
                command=command,
            )
        line = bytes(self._buffer[: end + 1])
        del self._buffer[: end + 1]
        return line

    async def skip_past(self, sentinel: bytes) -> None:
        """Drop everything up to and including the next ``sentinel`` byte."""
        while (found := self._buffer.find(sentinel)) < 0:
            self._buffer.clear()
            await self._fill()
        del self._buffer[: found + 1]

    async def _fill(self) -> None:
        chunk = await self._reader.read(_CHUNK)
        if not chunk:
            raise EOFError("the guest agent socket closed")
        self._buffer += chunk


def _returned(reply: dict[str, Any], command: str, arguments: Mapping[str, Any] | None) -> Any:
    """The ``return`` member of a reply; an ``error`` reply raises (the channel stays in
    sync: a refusal is a whole, well-formed answer)."""
    if "error" in reply:
        error = reply["error"]
        raise GuestAgentError(
            f"the guest agent refused {command}: {error.get('class')}: {error.get('desc')}",
            command=command,
            arguments=None if arguments is None else dict(arguments),
            received=reply,
        )
    return reply.get("return")


def _parse(line: bytes, command: str) -> dict[str, Any]:
    if not line:
        raise EOFError("the guest agent socket closed")
    try:
        value = json.loads(line.lstrip(_SENTINEL))
    except ValueError as err:
        raise GuestAgentError(
            f"the guest agent sent invalid JSON after {command}: {line!r}"
        ) from err
    return _object(value, command)


def _object(value: Any, command: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GuestAgentError(f"the guest agent answered {command} with {value!r}")
    return value


def _exec_result(status: Mapping[str, Any], max_output: int) -> GuestExecResult:
    code = status.get("exitcode")
    if code is None:
        code = 128 + int(status.get("signal", 0))
    stdout, out_cut = _stream(status, "out", max_output)
    stderr, err_cut = _stream(status, "err", max_output)
    return GuestExecResult(int(code), stdout, stderr, out_cut, err_cut)


def _stream(status: Mapping[str, Any], name: str, max_output: int) -> tuple[bytes, bool]:
    """One captured stream, cut at ``max_output`` and marked when it (or qemu-ga) cut it."""
    data = base64.b64decode(status.get(f"{name}-data", ""))
    truncated = bool(status.get(f"{name}-truncated")) or len(data) > max_output
    if not truncated:
        return data, False
    return data[:max_output] + TRUNCATION_MARKER % max_output, True

"""Fakes for unit tests of the QEMU layer, on real UNIX sockets.

``FakeQmpServer`` speaks QMP like QEMU does (greeting, ``qmp_capabilities``, concatenated
JSON objects, file descriptors received by SCM_RIGHTS) from a thread with blocking
sockets, so it is independent of the event loop under test. It records every command
in order and answers from a script. ``FakeGuestAgent`` does the same for the guest
agent's line protocol (including ``guest-sync-delimited``'s 0xFF sentinel).
"""

from __future__ import annotations

import array
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GREETING = {
    "QMP": {
        "version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": "fake"},
        "capabilities": ["oob"],
    }
}


@dataclass
class QmpErrorReply:
    """Answer a command with a QMP error."""

    error_class: str
    desc: str


@dataclass
class RawReply:
    """Answer a command with these bytes exactly (broken JSON, an endless line...)."""

    data: bytes


NO_REPLY = object()  #: a handler returning this leaves the command unanswered
HANG_UP = object()  #: a handler returning this closes the connection instead of answering

Handler = Callable[[dict[str, Any] | None], Any]


@dataclass
class Received:
    command: str
    arguments: dict[str, Any] | None
    fds: list[int] = field(default_factory=list)


class FakeQmpServer:
    """A scripted QMP server. ``replies`` maps a command to a value or a handler."""

    def __init__(self, path: Path, replies: dict[str, Any] | None = None) -> None:
        self.path = path
        self.replies: dict[str, Any] = {"query-status": {"status": "running", "running": True}}
        self.replies.update(replies or {})
        self.received: list[Received] = []
        self.connections = 0
        self.named_fds: dict[str, int] = {}  #: fds received with getfd, by name
        self._pending_fds: list[int] = []
        self._after_reply: list[dict[str, Any]] = []
        self._conn: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._stopping = False
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._thread = threading.Thread(target=self._run, daemon=True)

    # -- script helpers ------------------------------------------------------------

    @property
    def commands(self) -> list[str]:
        """Commands received so far, in order, without the negotiation."""
        return [r.command for r in self.received if r.command != "qmp_capabilities"]

    def emit(self, event: str, data: dict[str, Any] | None = None) -> None:
        """Send an event now."""
        self._send({"event": event, "data": data or {}, "timestamp": _timestamp()})

    def emit_after_reply(self, event: str, data: dict[str, Any] | None = None) -> None:
        """From inside a handler: send this event right after the reply."""
        self._after_reply.append({"event": event, "data": data or {}, "timestamp": _timestamp()})

    def hang_up(self) -> None:
        """Close the client's connection, as QEMU does when it exits."""
        conn = self._conn
        if conn is not None:
            conn.shutdown(socket.SHUT_RDWR)

    # -- lifecycle -----------------------------------------------------------------

    def __enter__(self) -> FakeQmpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        self.hang_up()
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._conn = conn
            try:
                self._serve(conn)
            except OSError:
                pass
            finally:
                self._conn = None
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        self._send(GREETING)
        decoder = json.JSONDecoder()
        buffer = ""
        while True:
            fds = array.array("i")
            data, ancdata, _, _ = conn.recvmsg(65536, socket.CMSG_SPACE(16 * fds.itemsize))
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    usable = len(payload) - len(payload) % fds.itemsize
                    fds.frombytes(payload[:usable])
            self._pending_fds.extend(fds)
            if not data:
                return
            buffer += data.decode()
            while buffer.strip():
                buffer = buffer.lstrip()
                try:
                    message, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError:
                    break  # incomplete: wait for more bytes
                buffer = buffer[end:]
                if not self._answer(message):
                    conn.shutdown(socket.SHUT_RDWR)
                    return

    def _answer(self, message: dict[str, Any]) -> bool:
        command, arguments = message["execute"], message.get("arguments")
        fds, self._pending_fds = (self._pending_fds, []) if command == "getfd" else ([], [])
        self.received.append(Received(command, arguments, fds))
        if command == "getfd" and fds and arguments:
            self.named_fds[arguments["fdname"]] = fds[0]
        if command == "qmp_capabilities":
            reply: Any = {}
        elif command in self.replies:
            reply = self.replies[command]
            reply = reply(arguments) if callable(reply) else reply
        elif command in ("stop", "cont", "system_reset", "system_powerdown", "quit", "getfd"):
            reply = {}
        else:
            reply = QmpErrorReply("CommandNotFound", f"The command {command} has not been found")
        if reply is HANG_UP:
            return False
        if reply is not NO_REPLY:
            self._reply(message, reply)
        after, self._after_reply = self._after_reply, []
        for event in after:
            self._send(event)
        return True

    def _reply(self, message: dict[str, Any], reply: Any) -> None:
        answer: dict[str, Any]
        if isinstance(reply, QmpErrorReply):
            answer = {"error": {"class": reply.error_class, "desc": reply.desc}}
        else:
            answer = {"return": reply}
        if "id" in message:
            answer["id"] = message["id"]
        self._send(answer)

    def _send(self, message: dict[str, Any]) -> None:
        conn = self._conn
        if conn is None:
            return
        with self._send_lock:
            conn.sendall(json.dumps(message).encode() + b"\r\n")


def _timestamp() -> dict[str, int]:
    now = time.time()
    return {"seconds": int(now), "microseconds": int(now % 1 * 1e6)}


class FakeGuestAgent:
    """A scripted qemu-guest-agent on a UNIX socket (JSON lines, 0xFF-delimited sync)."""

    def __init__(self, path: Path, replies: dict[str, Any] | None = None) -> None:
        self.path = path
        self.replies = replies or {}
        self.received: list[dict[str, Any]] = []
        self.stale_before_sync = b""  #: bytes to send before each sync answer
        self.silent = False  #: never answer anything (no agent running in the guest)
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(1)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stopping = False

    @property
    def commands(self) -> list[str]:
        return [m["execute"] for m in self.received]

    def __enter__(self) -> FakeGuestAgent:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with conn, contextlib.suppress(OSError):
                self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                line = line.replace(b"\xff", b"").strip()
                if line:
                    self._answer(conn, json.loads(line))

    def _answer(self, conn: socket.socket, message: dict[str, Any]) -> None:
        self.received.append(message)
        if self.silent:
            return
        command, arguments = message["execute"], message.get("arguments") or {}
        if command == "guest-sync-delimited":
            conn.sendall(self.stale_before_sync + b"\xff" + _line({"return": arguments["id"]}))
            return
        if command == "guest-shutdown" and "guest-shutdown" not in self.replies:
            return  # the real agent sends nothing on success
        reply = self.replies.get(command, {})
        reply = reply(arguments) if callable(reply) else reply
        if reply is NO_REPLY:
            return
        if isinstance(reply, RawReply):
            conn.sendall(reply.data)
        elif isinstance(reply, QmpErrorReply):
            conn.sendall(_line({"error": {"class": reply.error_class, "desc": reply.desc}}))
        else:
            conn.sendall(_line({"return": reply}))


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode() + b"\n"

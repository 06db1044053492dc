"""A plain QEMU guest for the guest kit's own tests: process, serial log, QMP and agent.

Deliberately independent of viridian's QEMU layer, so the kit is proven on a bare
``qemu-system-x86_64`` command line.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

BOOT_LIMIT = 240.0  # generous: TCG on a loaded 2-core machine; a bound, not an assertion


class Guest:
    """A QEMU process whose COM1 is written to ``<dir>/serial.log``."""

    def __init__(
        self, workdir: Path, name: str, args: Sequence[str], serial_input: bool = False
    ) -> None:
        """Start QEMU. With ``serial_input`` COM1 is also a socket server
        (:attr:`serial_socket`) through which tests can type on the guest's ttyS0."""
        self.name = name
        self.workdir = workdir
        self.serial = workdir / "serial.log"
        self.serial_socket = workdir / "com1.sock"
        self.agent_socket = workdir / "qga.sock"
        self.qmp_socket = workdir / "qmp.sock"
        com1 = ["-serial", f"file:{self.serial}"]
        if serial_input:
            com1 = [
                "-chardev", f"socket,id=com1,path={self.serial_socket},server=on,wait=off,"
                f"logfile={self.serial}",
                "-serial", "chardev:com1",
            ]  # fmt: skip
        self.argv = [
            "qemu-system-x86_64",
            "-accel", "tcg",
            "-m", "256",
            "-nodefaults",
            "-display", "none",
            *com1,
            "-qmp", f"unix:{self.qmp_socket},server=on,wait=off",
            "-device", "virtio-serial-pci",
            "-chardev", f"socket,id=qga,path={self.agent_socket},server=on,wait=off",
            "-device", "virtserialport,chardev=qga,name=org.qemu.guest_agent.0",
            *args,
        ]  # fmt: skip
        with open(workdir / "qemu.err", "wb") as stderr:
            self.process = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stderr=stderr)

    def log(self) -> str:
        try:
            return self.serial.read_text(errors="replace").replace("\r", "")
        except FileNotFoundError:
            return ""

    def markers(self, word: str) -> list[list[str]]:
        """Fields after ``VIRIDIAN-GUEST <word>`` of every such line seen so far."""
        found = []
        for line in self.log().splitlines():
            fields = line.split(" ")
            if len(fields) >= 2 and fields[0] == "VIRIDIAN-GUEST" and fields[1] == word:
                found.append(fields[2:])
        return found

    def wait_for(self, pattern: str, limit: float = BOOT_LIMIT) -> re.Match[str]:
        """The first match of ``pattern`` (multiline regex) in the serial log."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log(), re.M)
            if match:
                return match
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        err = (self.workdir / "qemu.err").read_text(errors="replace")
        raise AssertionError(
            f"{self.name}: {pattern!r} not seen (qemu exit {self.process.poll()})\n"
            f"serial log:\n{self.log()}\nqemu stderr:\n{err}"
        )

    def wait_exit(self, limit: float = BOOT_LIMIT) -> int:
        return self.process.wait(limit)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class LineClient:
    """JSON-lines over a UNIX socket: QMP (after negotiation) or the guest agent."""

    def __init__(self, path: Path, limit: float = 60.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(limit)
        deadline = time.monotonic() + limit
        while True:  # QEMU creates its sockets a moment after it starts
            try:
                self.sock.connect(str(path))
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        self.buffer = b""

    def send(self, command: str, **arguments: object) -> None:
        message: dict[str, object] = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def receive(self) -> dict[str, object]:
        while b"\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("peer closed the connection")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        reply: dict[str, object] = json.loads(line)
        return reply

    def close(self) -> None:
        self.sock.close()


class Agent(LineClient):
    """qemu-ga through the virtio-serial chardev socket."""

    def sync(self) -> None:
        """guest-sync with a fresh id, skipping anything stale before its answer."""
        token = int(time.monotonic() * 1000) % 2**31
        self.send("guest-sync", id=token)
        while self.receive().get("return") != token:
            pass

    def call(self, command: str, **arguments: object) -> object:
        self.send(command, **arguments)
        reply = self.receive()
        if "error" in reply:
            raise AssertionError(f"{command}: {reply['error']}")
        return reply["return"]

    def exec_shell(self, script: str) -> tuple[int, str]:
        """Run ``sh -c script`` through guest-exec; (exit code, stdout)."""
        started = self.call("guest-exec", path="sh", arg=["-c", script], **{"capture-output": True})
        assert isinstance(started, dict)
        while True:
            status = self.call("guest-exec-status", pid=started["pid"])
            assert isinstance(status, dict)
            if status["exited"]:
                out = base64.b64decode(str(status.get("out-data", ""))).decode()
                return int(status["exitcode"]), out
            time.sleep(0.1)


class Qmp(LineClient):
    """QEMU's monitor, negotiated; events are skipped by :meth:`call`."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.receive()  # greeting
        self.call("qmp_capabilities")

    def call(self, command: str, **arguments: object) -> object:
        self.send(command, **arguments)
        while True:
            reply = self.receive()
            if "event" in reply:
                continue
            if "error" in reply:
                raise AssertionError(f"{command}: {reply['error']}")
            return reply["return"]

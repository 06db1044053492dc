"""The floor: the same guest driven directly through QMP, nothing else in between.

The command line is exactly the one viridian renders for the VM (``render_argv`` on the
same settings) plus ``-S``, so both stacks start the same QEMU. Every operation does the
least QEMU needs:

- define: write the argv to a file;
- start: spawn with ``-S``, connect QMP as soon as the socket exists, ``cont``;
- pause / resume: ``stop`` / ``cont``;
- save: ``stop``, raise ``max-bandwidth``, pass a file descriptor (``getfd``),
  ``migrate fd:``, wait for the MIGRATION event ``completed``, ``quit``, wait for exit
  (no fsync: :meth:`BareQemu.after_save` measures that apart, untimed);
- restore: spawn with ``-S -incoming defer``, ``getfd`` + ``migrate-incoming fd:``,
  wait for ``completed``, ``cont``;
- turn off: ``quit``, wait for the process to exit (pidfd on our own child).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from qemu.qmp import QMPClient
from qemu.qmp.protocol import ConnectError
from qemu.qmp.qmp_client import ExecInterruptedError

from lifecycle_common import BenchError, Guest, exit_of, wait_for_marker
from viridian.model import default_settings, settings_from_dict, to_dict
from viridian.qemu.capabilities import HostCapabilities
from viridian.qemu.render import render_argv
from viridian.qemu.runtime_paths import RuntimePaths

MAX_BANDWIDTH = 1 << 40  # bytes/s: never the limit (QEMU's default is 32 MiB/s)
SOCKET_POLL_S = 0.001
SPAWN_TIMEOUT_S = 10.0

logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)


def guest_argv(
    guest: Guest, name: str, vm_id: str, paths: RuntimePaths, *, incoming: bool = False
) -> list[str]:
    """viridian's command line for ``guest`` (DVD at IDE 1:0, TCG), stopped at start (-S)."""
    settings = to_dict(default_settings(name))
    settings["memory"]["startup_mb"] = guest.memory_mb
    settings["processor"]["count"] = guest.processors
    settings["ide"] = [
        {"controller": 1, "location": 0, "kind": "dvd", "path": str(guest.iso), "format": "raw"}
    ]
    argv = render_argv(
        vm_id,
        settings_from_dict(settings),
        HostCapabilities(accelerator="tcg"),
        paths,
        incoming=incoming,
    )
    return [*argv, "-S"]


class QemuProcess:
    """One QEMU child with its QMP connection."""

    def __init__(self, argv: list[str], paths: RuntimePaths) -> None:
        self.paths = paths
        paths.qmp_socket.unlink(missing_ok=True)
        log = open(paths.qemu_log, "ab")  # noqa: SIM115 - owned by the child from now on
        self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        self.exited: Awaitable[None] = exit_of(self.process.pid)
        self.qmp = QMPClient(f"bench-{self.process.pid}")

    async def connect(self) -> None:
        """Connect QMP as soon as QEMU listens; BenchError if QEMU ends first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SPAWN_TIMEOUT_S
        while not self.paths.qmp_socket.exists():
            if self.process.poll() is not None or loop.time() > deadline:
                raise BenchError(f"QEMU did not open its QMP socket: {self._log_tail()}")
            await asyncio.sleep(SOCKET_POLL_S)
        while True:  # the socket file exists from bind(); connections work after listen()
            try:
                await self.qmp.connect(str(self.paths.qmp_socket))
                return
            except ConnectError as err:
                if self.process.poll() is not None or loop.time() > deadline:
                    raise BenchError(f"QEMU did not accept QMP: {err}; {self._log_tail()}") from err
                await asyncio.sleep(SOCKET_POLL_S)

    async def run(self, command: str, **arguments: Any) -> object:
        return await self.qmp.execute(command, arguments or None)

    async def pass_file(self, name: str, path: Path, mode: str) -> None:
        """Hand QEMU an open file descriptor under ``name`` (SCM_RIGHTS + ``getfd``)."""
        with open(path, mode) as handle:
            self.qmp.send_fd_scm(handle.fileno())
            await self.run("getfd", fdname=name)

    async def migrate_and_wait(self, command: str, uri: str) -> None:
        """Run ``migrate`` or ``migrate-incoming`` and wait for the MIGRATION outcome."""
        await self.run(
            "migrate-set-capabilities", capabilities=[{"capability": "events", "state": True}]
        )
        with self.qmp.listener("MIGRATION") as listener:
            await self.run(command, uri=uri)
            async for event in listener:
                message: Any = event
                status = message["data"]["status"]
                if status == "completed":
                    return
                if status in ("failed", "cancelled"):
                    raise BenchError(f"{command} ended {status}: {self._log_tail()}")

    async def quit(self) -> None:
        """``quit`` and wait until the process has exited (then reap it)."""
        with contextlib.suppress(ExecInterruptedError):
            await self.run("quit")
        await self.exited
        self.process.wait()
        with contextlib.suppress(EOFError):  # QEMU closed the socket: the expected end
            await self.qmp.disconnect()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def _log_tail(self) -> str:
        try:
            return self.paths.qemu_log.read_text(errors="replace")[-1500:]
        except FileNotFoundError:
            return "(no QEMU log)"


class BareQemu:
    """The floor stack (see the module docstring). One VM per cycle in ``workdir/q<n>``."""

    name = "bare QEMU"

    def __init__(self, guest: Guest, workdir: Path) -> None:
        self.guest = guest
        self.workdir = workdir
        self.paths = RuntimePaths(workdir)
        self.vm_id = ""
        self.qemu: QemuProcess | None = None

    @property
    def _saved(self) -> Path:
        return self.paths.folder / "saved.state"

    def _argv(self, *, incoming: bool) -> list[str]:
        return guest_argv(
            self.guest, self.paths.folder.name, self.vm_id, self.paths, incoming=incoming
        )

    async def define(self, index: int) -> None:
        self.paths = RuntimePaths(self.workdir / f"q{index}")
        self.paths.folder.mkdir(parents=True)
        self.vm_id = str(uuid.uuid4())
        (self.paths.folder / "argv.json").write_text(json.dumps(self._argv(incoming=False)))

    async def start(self) -> None:
        self.qemu = QemuProcess(self._argv(incoming=False), self.paths)
        await self.qemu.connect()
        await self.qemu.run("cont")

    async def wait_ready(self) -> None:
        await wait_for_marker(self.paths.com_log(1))

    async def pause(self) -> None:
        await self._running().run("stop")

    async def resume(self) -> None:
        await self._running().run("cont")

    async def save(self) -> None:
        qemu = self._running()
        await qemu.run("stop")
        await qemu.run("migrate-set-parameters", **{"max-bandwidth": MAX_BANDWIDTH})
        await qemu.pass_file("save", self._saved, "wb")
        await qemu.migrate_and_wait("migrate", "fd:save")
        await qemu.quit()
        self.qemu = None

    async def after_save(self) -> float:
        """How long an fsync of the state file takes: viridian's save includes one."""
        begin = time.perf_counter()
        fd = os.open(self._saved, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return time.perf_counter() - begin

    async def restore(self) -> None:
        self.qemu = QemuProcess(self._argv(incoming=True), self.paths)
        await self.qemu.connect()
        await self.qemu.pass_file("restore", self._saved, "rb")
        await self.qemu.migrate_and_wait("migrate-incoming", "fd:restore")
        await self.qemu.run("cont")

    async def turn_off(self) -> None:
        await self._running().quit()
        self.qemu = None

    async def forget(self) -> None:
        shutil.rmtree(self.paths.folder, ignore_errors=True)

    async def close(self) -> None:
        if self.qemu is not None:
            self.qemu.kill()
            self.qemu = None

    def _running(self) -> QemuProcess:
        if self.qemu is None:
            raise BenchError("bare QEMU: no QEMU process for this operation")
        return self.qemu

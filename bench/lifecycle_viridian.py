"""viridian: the same guest through the service's HTTP API, as a client would drive it.

:class:`ViridianService` runs a real ``viridian serve`` on a private data folder and a
free port (``VIRIDIAN_ACCELERATOR=tcg``). :class:`Viridian` times, for each operation,
the request until the job it started reports ``completed``:

- define: ``POST /api/v1/vms {"name", "memory_mb", "processors", "dvd"}`` (201);
- start, pause, resume, save, turn off (``stop``), restore (``start`` from Saved):
  ``POST /api/v1/vms/{name}/{action}?wait=30`` (202, answered when the job ended; a
  longer job is followed with ``GET /api/v1/jobs/{id}?wait=30``)
  until the job finished. One keep-alive HTTP connection is reused throughout.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from lifecycle_common import BenchError, Guest, wait_for_marker

SERVICE_START_TIMEOUT_S = 30.0
JOB_TIMEOUT_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ViridianService:
    """``viridian serve`` as a child process on a temporary data folder under /tmp.

    The folder path is short on purpose: UNIX socket paths in runtime folders must stay
    under 108 bytes.
    """

    def __init__(self) -> None:
        self.data_dir = Path(tempfile.mkdtemp(prefix="vir-bench-", dir="/tmp"))
        self.url = f"http://127.0.0.1:{_free_port()}"
        self.log = self.data_dir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the service; BenchError when it exits or does not answer in time."""
        env = {**os.environ, "VIRIDIAN_ACCELERATOR": "tcg", "VIRIDIAN_DATA_DIR": str(self.data_dir)}
        listen = self.url.removeprefix("http://")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "viridian.cli.main",
                    "serve",
                    "--data-dir",
                    str(self.data_dir),
                    "--listen",
                    listen,
                ],
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        self._wait_answering()

    def _wait_answering(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"viridian serve exited: {self.log_tail()}")
            try:
                httpx.get(self.url + "/api/v1/host", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise BenchError(f"viridian serve did not answer: {self.log_tail()}")

    def client(self) -> httpx.AsyncClient:
        token = (self.data_dir / "token").read_text().strip()
        return httpx.AsyncClient(
            base_url=self.url + "/api/v1",
            timeout=JOB_TIMEOUT_S,
            headers={"Authorization": f"Bearer {token}"},
        )

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except FileNotFoundError:
            return "(no log)"

    def stop(self) -> None:
        """Terminate the service, then kill any QEMU or storage daemon it left behind.

        Both are found by their pid files: a registered VM's storage daemon outlives the
        service by design (docs/architecture.md, "The storage daemon").
        """
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        run = self.data_dir / "run"
        pid_files = [*run.glob("*/qemu.pid"), *run.glob("*/storage.pid")]
        for pid_file in pid_files:
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


class Viridian:
    """The viridian stack: VM ``bench-<n>`` per cycle, in one service for the whole run."""

    name = "viridian"

    def __init__(self, guest: Guest, service: ViridianService) -> None:
        self.guest = guest
        self.service = service
        self.api = service.client()
        self.vm = ""
        self.vm_id = ""

    async def define(self, index: int) -> None:
        spec = {
            "name": f"bench-{index}",
            "memory_mb": self.guest.memory_mb,
            "processors": self.guest.processors,
            "dvd": str(self.guest.iso),
        }
        response = await self.api.post("/vms", json=spec)
        vm = self._body(response, 201, "create VM")
        self.vm, self.vm_id = vm["name"], vm["id"]

    async def start(self) -> None:
        await self._act("start")

    async def wait_ready(self) -> None:
        await wait_for_marker(self.service.data_dir / "run" / self.vm_id / "com1.log")

    async def pause(self) -> None:
        await self._act("pause")

    async def resume(self) -> None:
        await self._act("resume")

    async def save(self) -> None:
        await self._act("save")

    async def after_save(self) -> None:
        return None

    async def restore(self) -> None:
        await self._act("start")

    async def turn_off(self) -> None:
        await self._act("stop")

    async def forget(self) -> None:
        response = await self.api.delete(f"/vms/{self.vm}", params={"delete_files": "true"})
        self._body(response, 200, "remove VM")
        self.vm = ""

    async def close(self) -> None:
        with contextlib.suppress(httpx.HTTPError, BenchError):
            if self.vm:
                await self.api.post(f"/vms/{self.vm}/stop")
        await self.api.aclose()

    async def _act(self, action: str) -> dict[str, Any]:
        """POST the action and wait until its job finished; BenchError unless completed."""
        response = await self.api.post(f"/vms/{self.vm}/{action}", params={"wait": 30})
        job = self._body(response, 202, action)
        deadline = asyncio.get_running_loop().time() + JOB_TIMEOUT_S
        while job["state"] in ("queued", "running"):
            if asyncio.get_running_loop().time() > deadline:
                raise BenchError(f"viridian {action} job did not finish: {job}")
            response = await self.api.get(f"/jobs/{job['id']}", params={"wait": 30})
            job = self._body(response, 200, f"wait for {action}")
        if job["state"] != "completed":
            raise BenchError(
                f"viridian {action} job ended {job['state']}: {job.get('error')}\n"
                f"{self.service.log_tail()}"
            )
        return job

    def _body(self, response: httpx.Response, status: int, what: str) -> dict[str, Any]:
        if response.status_code != status:
            raise BenchError(f"viridian {what}: HTTP {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body

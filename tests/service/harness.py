"""Runs the real service (`viridian serve`) as a subprocess on a private data folder."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.qemu_processes import RUN_TAG, end_qemu_under

REPO = Path(__file__).resolve().parents[2]
SHARED_TLS = httpx.create_ssl_context()
"""One TLS context for every test client: httpx builds (and loads the CA bundle into) a new
one per ``Client`` otherwise — 30 ms quiet, 300 ms on a loaded host, per client."""


def http_client(base_url: str, **options: Any) -> httpx.Client:
    """``httpx.Client`` sharing :data:`SHARED_TLS`."""
    return httpx.Client(base_url=base_url, verify=SHARED_TLS, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Service:
    """A `viridian serve` process; kill() and start() again to simulate crashes."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "VIRIDIAN_ACCELERATOR": "tcg", **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "serve.log"

    def start(self, timeout: float = 120) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "viridian.cli.main", "serve", "--data-dir",
                 str(self.data_dir), "--listen", f"127.0.0.1:{self.port}"],
                stdout=log, stderr=log, env=self.env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log.read_text()[-3000:]}")
            try:
                httpx.get(self.url + "/api/v1/host", timeout=1)
                return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError(f"service did not answer: {self.log.read_text()[-3000:]}")

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    def client(self) -> httpx.Client:
        return http_client(self.url + "/api/v1", timeout=120,
                           headers={"Authorization": f"Bearer {self.token}"})

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def turn_off_everything(api: httpx.Client) -> None:
    """Leave no QEMU behind: turn off every VM that still has a process."""
    for vm in api.get("/vms").json()["vms"]:
        if vm["pid"]:
            act(api, vm["name"], "stop", check=False)


@contextmanager
def running_service(env: dict[str, str] | None = None,
                    host_settings: dict[str, Any] | None = None) -> Iterator[Service]:
    """A service on a fresh data folder (``host_settings`` written as its host.json);
    every QEMU and storage daemon it started is ended on every path, and the folder is
    removed (kept with ``VIRIDIAN_TEST_KEEP`` set, to read the service's log)."""
    # Short path: UNIX socket paths of runtime folders must stay under 108 bytes.
    data_dir = Path(tempfile.mkdtemp(prefix="vir-", dir="/tmp"))
    if host_settings is not None:
        (data_dir / "host.json").write_text(json.dumps(host_settings))
    service = Service(data_dir, env)
    try:
        service.start()  # inside: a service that starts but never answers is stopped too
        yield service
    finally:
        try:
            if service.process and service.process.poll() is None:
                with service.client() as api:
                    turn_off_everything(api)
        finally:
            service.stop()
            _kill_leftover_qemu(data_dir)
            end_qemu_under(data_dir)  # also QEMUs whose pid file is gone or never written
            keep_service_log(service)
            if not kept_for_reading():
                shutil.rmtree(data_dir, ignore_errors=True)


SERVICE_LOGS = Path("/tmp/viridian-test-logs")
"""Where each run keeps its services' logs (``<run tag>/<data folder>-serve.log``) after
their data folders are removed, to read why a test failed; ``tests/conftest.py`` keeps
the last runs' only."""


def kept_for_reading() -> bool:
    """Whether test folders stay after their test (``VIRIDIAN_TEST_KEEP`` set)."""
    return bool(os.environ.get("VIRIDIAN_TEST_KEEP"))


@contextmanager
def temp_folder(prefix: str) -> Iterator[Path]:
    """A fresh folder ``/tmp/<prefix>…``, removed when the block ends, on every path
    (kept with ``VIRIDIAN_TEST_KEEP`` set); whatever runs in it must have ended by then."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield folder
    finally:
        if not kept_for_reading():
            shutil.rmtree(folder, ignore_errors=True)


def keep_service_log(service: Service) -> None:
    """Copy the service's log out of its data folder before the folder goes."""
    kept = SERVICE_LOGS / os.environ.get(RUN_TAG, "manual")
    with contextlib.suppress(OSError):
        kept.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(service.log, kept / f"{service.data_dir.name}-serve.log")


def _kill_leftover_qemu(data_dir: Path) -> None:
    for pid_file in data_dir.glob("run/*/qemu.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)


def wait_for(what: str, condition: Any, timeout: float = 120.0) -> Any:
    """Poll ``condition()`` every 0.1 s until it returns something truthy; return that.

    :raises AssertionError: "timed out waiting for <what>" after ``timeout`` seconds.
    """
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wait_job(api: httpx.Client, job: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while job["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job did not finish: {job}"
        job = api.get(f"/jobs/{job['id']}", params={"wait": 30}).json()
    return job


def act(api: httpx.Client, vm: str, action: str, check: bool = True,
        **body: Any) -> dict[str, Any]:
    response = api.post(f"/vms/{vm}/{action}", json=body or None)
    if not check and response.status_code != 202:
        return response.json()
    assert response.status_code == 202, response.text
    job = wait_job(api, response.json())
    if check:
        assert job["state"] == "completed", job
    return job


def refused_start(api: httpx.Client, vm: str) -> str:
    """The message of a start the service refuses, whether it answers 409 at once or
    accepts the start job and the job fails before QEMU runs (e.g. a cluster refusal)."""
    response = api.post(f"/vms/{vm}/start")
    if response.status_code == 202:
        job = wait_job(api, response.json())
        assert job["state"] == "failed", job
        return str(job["error"]["message"])
    assert response.status_code == 409, response.text
    return str(response.json()["error"]["message"])


def state(api: httpx.Client, vm: str) -> str:
    return str(api.get(f"/vms/{vm}").json()["state"])


class Console:
    """The guest's COM1 output, as captured in the VM's runtime folder (one QEMU run)."""

    TICK = re.compile(rb"VIRIDIAN-GUEST TICK (\d+) (\d+)")

    def __init__(self, data_dir: Path, vm_id: str) -> None:
        self.path = data_dir / "run" / vm_id / "com1.log"

    def read(self) -> bytes:
        try:
            return self.path.read_bytes()
        except FileNotFoundError:
            return b""

    def wait_for(self, marker: bytes, timeout: float = 180) -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            data = self.read()
            if marker in data:
                return data
            time.sleep(0.2)
        raise AssertionError(f"{marker!r} not seen in {self.path}: ...{self.read()[-1500:]!r}")

    def ticks(self) -> list[tuple[int, int]]:
        return [(int(n), int(ms)) for n, ms in self.TICK.findall(self.read())]

    def wait_ticks(self, count: int, timeout: float = 60) -> list[tuple[int, int]]:
        start = len(self.ticks())
        deadline = time.monotonic() + timeout
        while len(self.ticks()) < start + count:
            assert time.monotonic() < deadline, f"no new ticks in {self.path}"
            time.sleep(0.2)
        return self.ticks()


def tiny_templates(api: httpx.Client, folder: Path, source: str, *names: str) -> None:
    """VM ``source`` on a 1 MiB blank raw disk in ``folder`` (no OS: VMs made from it run
    firmware only) and a template of it under each of ``names``."""
    disk = folder / "tiny.img"
    disk.write_bytes(b"\0" * (1 << 20))
    created = api.post("/vms", json={"name": source, "memory_mb": 64, "vhd": str(disk)})
    assert created.status_code == 201, created.text
    for name in names:
        job = wait_job(api, api.post("/templates", json={"name": name, "vm": source}).json(),
                       timeout=300)
        assert job["state"] == "completed", job

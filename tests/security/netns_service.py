"""A `viridian serve` on a non-loopback address: 10.77.0.1, inside a network namespace of
its own (on that namespace's ``lo``: this kernel has no dummy interfaces; the address is
still outside 127.0.0.0/8), so the host's interfaces are never touched. Every
client in these tests runs inside the namespace too (``NetnsService.run``)."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.service.harness import kept_for_reading

ADDRESS = "10.77.0.1"
_NAMESPACES = itertools.count()
PORT = 8443


class NetnsService:
    """The service process (in ``namespace``) and how to run clients beside it."""

    def __init__(self, namespace: str, data_dir: Path, flags: tuple[str, ...],
                 port: int) -> None:
        self.namespace, self.data_dir, self.flags, self.port = namespace, data_dir, flags, port
        self.url = f"https://{ADDRESS}:{port}"
        self.log = data_dir / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def token(self) -> str:
        return (self.data_dir / "token").read_text().strip()

    def run(self, argv: list[str], env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """``argv`` inside the namespace (stdin not a terminal), output captured."""
        return subprocess.run(["ip", "netns", "exec", self.namespace, *argv],
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})})

    def start(self, timeout: float = 300) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["ip", "netns", "exec", self.namespace, sys.executable, "-m",
                 "viridian.cli.main", "serve", "--data-dir", str(self.data_dir),
                 "--listen", f"{ADDRESS}:{self.port}", *self.flags],
                stdout=log, stderr=log, start_new_session=True,
                env={**os.environ, "VIRIDIAN_ACCELERATOR": "tcg"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log.read_text()[-3000:]}")
            if self._listening():
                return
            time.sleep(0.2)
        raise RuntimeError(f"service did not listen: {self.log.read_text()[-3000:]}")

    def _listening(self) -> bool:
        probe = ("import socket,sys\ntry:\n socket.create_connection(sys.argv[1:3], 1).close()\n"
                 "except OSError: sys.exit(1)")
        return self.run([sys.executable, "-c", probe, ADDRESS, str(self.port)]).returncode == 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def requests_seen(self, path: str) -> int:
        """How many requests for ``path`` the service's access log shows."""
        return sum(f"path={path} " in line for line in self.log.read_text().splitlines())


@contextmanager
def network_namespace() -> Iterator[str]:
    """A namespace whose ``lo`` also holds 10.77.0.1/24; removed after."""
    name = f"vtls-{os.getpid()}-{next(_NAMESPACES)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for command in (["ip", "link", "set", "lo", "up"],
                        ["ip", "addr", "add", f"{ADDRESS}/24", "dev", "lo"]):
            subprocess.run(["ip", "netns", "exec", name, *command], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@contextmanager
def service_in(namespace: str, *flags: str, port: int = PORT,
               data_dir: Path | None = None) -> Iterator[NetnsService]:
    """A service listening on 10.77.0.1:``port`` in ``namespace``; stopped on every path.
    Without ``data_dir`` it runs on a fresh folder of its own, removed once it stopped
    (kept with ``VIRIDIAN_TEST_KEEP`` set, to read the service's log); a given
    ``data_dir`` is the caller's to remove."""
    folder = data_dir or Path(tempfile.mkdtemp(prefix="vir-tls-", dir="/tmp"))
    service = NetnsService(namespace, folder, flags, port)
    try:
        service.start()
        yield service
    finally:
        with contextlib.suppress(OSError):
            service.stop()
        if data_dir is None and not kept_for_reading():
            shutil.rmtree(folder, ignore_errors=True)

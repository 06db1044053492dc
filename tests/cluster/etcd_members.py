"""A real 3-member etcd cluster for tests and benchmarks, ended on every path.

Each member has its own data folder and free loopback ports; ``etcd_cluster`` is a
context manager, so whatever happens inside, every member process is killed and waited
for. Members can be frozen (SIGSTOP) and thawed, or killed and restarted, to inject
faults.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from viridian.cluster.etcd import Etcd


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Member:
    name: str
    client_port: int
    peer_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    members: list[Member]
    initial: str
    token: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        return [m.client_url for m in self.members]

    def start(self, member: Member, state: str = "new") -> None:
        member.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(member.data_dir.with_suffix(".log"), "ab")  # noqa: SIM115 (kept by Popen)
        argv = [shutil.which("etcd") or "etcd", "--name", member.name,
                "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.client_url,
                "--advertise-client-urls", member.client_url,
                "--listen-peer-urls", member.peer_url,
                "--initial-advertise-peer-urls", member.peer_url,
                "--initial-cluster", self.initial, "--initial-cluster-state", state,
                "--initial-cluster-token", self.token,
                # a loaded 2-core machine: slower heartbeats than the default 100/1000 ms
                "--heartbeat-interval", "200", "--election-timeout", "2000",
                "--log-level", "warn"]
        member.process = subprocess.Popen(argv, stdout=log, stderr=log,
                                          start_new_session=True)
        log.close()
        self.processes.append(member.process)

    def kill(self, member: Member) -> None:
        if member.process is not None and member.process.poll() is None:
            os.kill(member.process.pid, signal.SIGCONT)
            member.process.kill()
            member.process.wait(timeout=30)

    def freeze(self, member: Member) -> None:
        assert member.process is not None
        os.kill(member.process.pid, signal.SIGSTOP)

    def thaw(self, member: Member) -> None:
        assert member.process is not None
        os.kill(member.process.pid, signal.SIGCONT)

    def leader(self) -> Member:
        for member, health in zip(self.members, Etcd(self.endpoints).member_health(),
                                  strict=True):
            if health.get("is_leader"):
                return member
        raise AssertionError("no etcd leader")

    def wait_healthy(self, timeout: float = 60.0) -> None:
        client = Etcd(self.endpoints, request_timeout=2.0)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.put("/health-probe", "ok")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def end(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)
                process.kill()
            process.wait(timeout=30)


@contextlib.contextmanager
def etcd_cluster(folder: Path, size: int = 3) -> Iterator[EtcdCluster]:
    """``size`` etcd members under ``folder``, healthy on entry, all ended on exit."""
    members = [Member(f"m{i}", free_port(), free_port(), folder / f"m{i}") for i in range(size)]
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    cluster = EtcdCluster(members, initial, token=f"viridian-test-{os.getpid()}-{time.time()}")
    try:
        for member in members:
            cluster.start(member)
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.end()

"""A real 3-member etcd cluster for tests and benchmarks, ended on every path.

Each member has its own data folder; ``etcd_cluster`` puts them on free loopback ports,
``etcd_cluster_in`` one per network namespace (``tests/cluster/netns.py``: client and peer
URLs on the namespace's address, ports 2379/2380; the test process reaches each member
through a loopback ``Forwarder``: ``reachable``). Both are context managers, so whatever
happens inside, every member process is killed and waited for. Members can be frozen
(SIGSTOP) and thawed, or killed and restarted, to inject faults.
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

from tests.cluster.netns import Forwarder, NetnsHost, in_namespace
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
    address: str = "127.0.0.1"
    namespace: str | None = None  # runs inside this network namespace
    forwarder: Forwarder | None = None  # how the test process reaches its client URL

    @property
    def client_url(self) -> str:
        return f"http://{self.address}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.address}:{self.peer_port}"

    @property
    def reachable_url(self) -> str:
        """The client URL as the test process (root namespace) reaches it."""
        return self.client_url if self.forwarder is None else self.forwarder.url


@dataclass
class EtcdCluster:
    members: list[Member]
    initial: str
    token: str
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def endpoints(self) -> list[str]:
        """Client URLs as the members advertise them (what hosts are given)."""
        return [m.client_url for m in self.members]

    @property
    def reachable(self) -> list[str]:
        """Client URLs the test process can use (same as ``endpoints`` on loopback)."""
        return [m.reachable_url for m in self.members]

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
        if member.namespace is not None:
            argv = in_namespace(member.namespace, argv)
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
        for member, health in zip(self.members, Etcd(self.reachable).member_health(),
                                  strict=True):
            if health.get("is_leader"):
                return member
        raise AssertionError("no etcd leader")

    def wait_leader(self, timeout: float = 120.0) -> Member:
        """The leader, once there is one (a loaded machine may be between elections)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.leader()
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def wait_healthy(self, timeout: float = 60.0) -> None:
        client = Etcd(self.reachable, request_timeout=2.0)
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
        for member in self.members:
            if member.forwarder is not None:
                member.forwarder.close()
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
    with _running(members) as cluster:
        yield cluster


@contextlib.contextmanager
def etcd_cluster_in(hosts: list[NetnsHost], folder: Path) -> Iterator[EtcdCluster]:
    """One member per host namespace (client ``http://<address>:2379``, peer ``:2380``)
    under ``folder``, healthy on entry, all ended on exit."""
    members = [Member(f"m{i}", 2379, 2380, folder / f"m{i}", address=host.address,
                      namespace=host.namespace,
                      forwarder=Forwarder(host.namespace, host.address, 2379))
               for i, host in enumerate(hosts)]
    with _running(members) as cluster:
        yield cluster


@contextlib.contextmanager
def _running(members: list[Member]) -> Iterator[EtcdCluster]:
    initial = ",".join(f"{m.name}={m.peer_url}" for m in members)
    cluster = EtcdCluster(members, initial, token=f"viridian-test-{os.getpid()}-{time.time()}")
    try:
        for member in members:
            cluster.start(member)
        cluster.wait_healthy()
        yield cluster
    finally:
        cluster.end()

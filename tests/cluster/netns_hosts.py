"""Three viridian hosts on this machine, each in a network namespace of its own
(``tests/cluster/netns.py``) with its own data folder, service and etcd member, plus a
shared folder as cluster storage (docs/architecture.md, "Failover cluster").

Host ``hN`` is the namespace ``vcl-<pid>-<n>-hN`` with address 10.78.0.N; its etcd member
listens on 10.78.0.N:2379/2380 and its service on 127.0.0.1:8080 *inside* the namespace
(loopback: plain HTTP, as a default service; the other hosts cannot reach it) or, with
``https``, on 10.78.0.N:8443 (HTTPS, reachable from the other namespaces). The test
process reaches each service through a ``Forwarder`` (``Host.service.url``). The hosts are not
clustered on entry: the test creates and joins the cluster through the API.

``viridian_hosts`` ends every service, fence guard, QEMU, storage daemon and etcd member,
then removes the namespaces, on every path (and the folders, unless ``VIRIDIAN_TEST_KEEP``
is set: then the hosts' logs stay in ``/tmp/vir-ns-*``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.cluster.agent_ticks import takeover
from tests.cluster.etcd_members import EtcdCluster, Member, etcd_cluster_in
from tests.cluster.netns import Forwarder, NetnsHost, in_namespace, kill_inside, netns_hosts
from tests.qemu_processes import _qemu_processes, end_qemu_under
from tests.service.harness import Console, Service
from viridian.cli.trust import fingerprint_of_der

SERVICE_PORT = 8080  # on each namespace's loopback
HTTPS_PORT = 8443  # on each namespace's address (``https``)


class HostService(Service):
    """``viridian serve`` inside the namespace of ``net``; ``url`` forwards to it.

    By default it listens on the namespace's loopback (plain HTTP; other hosts cannot
    reach it). ``https``: on ``net.address``:8443, so the other namespaces reach it at
    ``peer_url``; off loopback it serves HTTPS with its own self-signed certificate
    (docs/architecture.md, "Security"), which ``client`` and ``cli_args`` pin."""

    def __init__(self, data_dir: Path, net: NetnsHost, https: bool = False) -> None:
        super().__init__(data_dir)
        self.namespace = net.namespace
        self.listen = (net.address, HTTPS_PORT) if https else ("127.0.0.1", SERVICE_PORT)
        self.forwarder = Forwarder(net.namespace, *self.listen)
        self.https = https
        scheme = "https" if https else "http"
        self.url = f"{scheme}://127.0.0.1:{self.forwarder.port}"
        self.peer_url = f"{scheme}://{self.listen[0]}:{self.listen[1]}"

    @property
    def certificate(self) -> Path:
        return self.data_dir / "tls" / "cert.pem"

    def fingerprint(self) -> str:
        return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(self.certificate.read_text()))

    def verify(self) -> ssl.SSLContext | bool:
        """Trust exactly this service's certificate (HTTPS), as the CLI's pin does."""
        if not self.https:
            return True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        context.load_verify_locations(cadata=self.certificate.read_text())
        return context

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", timeout=120, verify=self.verify(),
                            headers={"Authorization": f"Bearer {self.token}"})

    def cli_args(self) -> list[str]:
        """Global options of a CLI run against this service (its certificate pinned)."""
        pin = ["--trust-fingerprint", self.fingerprint()] if self.https else []
        return ["--url", self.url, "--token", self.token, *pin]

    def cli_env(self) -> dict[str, str | None]:
        """A config folder of the lab's own: pins never reach the user's."""
        return {"XDG_CONFIG_HOME": str(self.data_dir.parent / "client-config")}

    def start(self, timeout: float = 300) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process; ``wait_ready`` waits until it answers."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "viridian.cli.main", "serve", "--data-dir",
                str(self.data_dir), "--listen", f"{self.listen[0]}:{self.listen[1]}"]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(in_namespace(self.namespace, argv), stdout=log,
                                            stderr=log, env=self.env, start_new_session=True)

    def wait_ready(self, timeout: float = 300) -> None:
        assert self.process is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited: {self.log.read_text()[-3000:]}")
            try:
                httpx.get(self.url + "/api/v1/host", timeout=2, verify=False)  # any answer
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"service did not answer: {self.log.read_text()[-3000:]}")


@dataclass
class Host:
    name: str
    net: NetnsHost
    service: HostService
    member: Member  # the etcd member in this host's namespace

    @property
    def data(self) -> Path:
        return self.service.data_dir

    def api(self) -> httpx.Client:
        return self.service.client()

    def copies(self, vm_id: str) -> list[int]:
        """This host's QEMU processes of ``vm_id`` (a VM's runtime folder is on the host)."""
        folder = str(self.data / "run" / vm_id)
        return [p.pid for p, _ in _qemu_processes()
                if p.cmdline.split(" ")[0].rsplit("/", 1)[-1].startswith("qemu-system")
                and folder in p.cmdline]

    def ticks(self, vm_id: str) -> list[int]:
        """The tick numbers ``vm_id``'s guest printed on this host (its COM1 log here)."""
        return [n for n, _ in Console(self.data, vm_id).ticks()]

    def guard_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int((self.data / "cluster" / "guard.lock.pid").read_text())
        return None

    def takeover(self) -> float:
        """The fence feed's takeover time (``tests/cluster/agent_ticks.py``)."""
        return takeover(self.data)

    def die(self) -> None:
        """The whole host dies at once: SIGKILL of every process in its namespace
        (service, fence guard, QEMUs, storage daemons, etcd member)."""
        kill_inside(self.net.namespace)
        for process in (self.service.process, self.member.process):
            if process is not None:
                process.wait(timeout=30)

    def end(self) -> None:
        proc = self.service.process
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError):
                os.kill(proc.pid, signal.SIGCONT)
        self.service.stop()
        guard = self.guard_pid()
        if guard:
            with contextlib.suppress(OSError):
                os.kill(guard, signal.SIGKILL)
        end_qemu_under(self.data)
        self.service.forwarder.close()


@dataclass
class Lab:
    hosts: list[Host]
    etcd: EtcdCluster
    shared: Path  # the cluster storage every host sees


@contextlib.contextmanager
def viridian_hosts(count: int = 3, https: bool = False) -> Iterator[Lab]:
    """``count`` hosts with services started and an etcd member each (healthy);
    ``https``: the services listen on their namespace's address (see ``HostService``)."""
    root = Path(tempfile.mkdtemp(prefix="vir-ns-", dir="/tmp"))  # short: socket paths
    shared = root / "shared"
    shared.mkdir()
    hosts: list[Host] = []
    try:
        with netns_hosts(count) as topology, \
                etcd_cluster_in(topology.hosts, root / "etcd") as etcd:
            hosts.extend(Host(net.name, net, HostService(root / net.name, net, https),
                              member) for net, member in zip(topology.hosts, etcd.members,
                                                              strict=True))
            try:
                for host in hosts:  # side by side: a start is mostly imports
                    host.service.launch()
                for host in hosts:
                    host.service.wait_ready()
                yield Lab(hosts, etcd, shared)
            finally:
                for host in hosts:
                    host.end()
    finally:
        if not os.environ.get("VIRIDIAN_TEST_KEEP"):  # kept to read the hosts' logs
            shutil.rmtree(root, ignore_errors=True)

"""Hosts on one machine, each in a network namespace of its own (docs/architecture.md,
"Failover cluster": how it is tested).

``netns_hosts`` builds ``vcl-<pid>-<n>-br`` (a bridge, in a namespace of its own: the root
namespace's interfaces and routes are never touched, so concurrent runs cannot clash) and
``vcl-<pid>-<n>-h1`` … ``-hN``, each with ``lo`` up and ``eth0`` (10.78.0.N/24), a veth whose
peer is a port of the bridge. On exit every process still in those namespaces is killed
and the namespaces are deleted (their veths, bridge and nftables tables go with them);
at entry, namespaces left by an earlier run whose process is gone are removed the same way.

The test process stays in the root namespace. ``Forwarder`` gives it a loopback port that
reaches an address inside a namespace (each connection is made by a thread that entered
the namespace with ``setns(2)``); ``entered`` runs a block of the calling thread inside one.
``NetnsHost.partitioned`` drops all traffic on the host's ``eth0`` (an nftables table inside
its namespace): the host keeps its own loopback, so the test still reaches its service.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import os
import re
import selectors
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SUBNET = "10.78.0"
PREFIX = "vcl-"
CLONE_NEWNET = 0x40000000
_RUNS = itertools.count()
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


@contextlib.contextmanager
def entered(namespace: str) -> Iterator[None]:
    """The calling thread (only it) runs inside ``namespace`` until exit; sockets made
    there stay in it afterwards."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
        try:
            _setns(target)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until both sides have ended their sending."""
    peers = {a: b, b: a}
    open_ = {a, b}
    with selectors.DefaultSelector() as sel:
        for sock in peers:
            sel.register(sock, selectors.EVENT_READ)
        while open_:
            for key, _ in sel.select(timeout=5):
                ready = a if key.fileobj is a else b
                try:
                    data = ready.recv(65536)
                    if data:
                        peers[ready].sendall(data)
                        continue
                    peers[ready].shutdown(socket.SHUT_WR)
                except OSError:
                    return
                sel.unregister(ready)
                open_.discard(ready)


class Forwarder:
    """127.0.0.1:``port`` in the root namespace → ``address``:``target`` in ``namespace``."""

    def __init__(self, namespace: str, address: str, target: int) -> None:
        self.namespace, self.address, self.target = namespace, address, target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.5)
        self.port = int(self._listener.getsockname()[1])
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name=f"fwd-{self.port}").start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            try:
                with entered(self.namespace):
                    upstream = socket.create_connection((self.address, self.target),
                                                        timeout=5)
            except OSError:
                return  # nothing listens there (a killed member): the client sees EOF
            upstream.settimeout(None)
            conn.settimeout(None)
            with upstream:
                _pipe(conn, upstream)

    def close(self) -> None:
        self._closed.set()
        self._listener.close()


def ip(*args: str, namespace: str | None = None, check: bool = True) -> str:
    argv = ["ip", *args] if namespace is None else in_namespace(namespace, ["ip", *args])
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip()}")
    return done.stdout


def in_namespace(namespace: str, argv: list[str]) -> list[str]:
    """``argv`` run inside ``namespace`` (``ip netns exec`` execs it: same pid)."""
    return ["ip", "netns", "exec", namespace, *argv]


def sleeper_inside(namespace: str) -> subprocess.Popen[bytes]:
    """A ``sleep 600`` started in ``namespace``, returned once it runs there: ``ip netns
    exec`` enters the namespace after it started, so a check in between (``ip netns
    pids``, a removal) would miss it. The shell prints once it is inside, then becomes
    the sleep (same pid)."""
    process = subprocess.Popen(in_namespace(namespace, ["sh", "-c", "echo in; exec sleep 600"]),
                               stdout=subprocess.PIPE)
    assert process.stdout is not None
    if process.stdout.readline() != b"in\n":
        process.kill()
        raise RuntimeError(f"sleep did not start in {namespace}")
    process.stdout.close()
    return process


@dataclass
class NetnsHost:
    name: str          # h1, h2, …
    namespace: str
    address: str       # on eth0, 10.78.0.N

    @contextlib.contextmanager
    def partitioned(self) -> Iterator[None]:
        """Every packet in or out of this host's eth0 is dropped until exit (an nftables
        table in its namespace, deleted on every path); its loopback still works."""
        script = ("table inet viridian_partition {\n"
                  " chain in { type filter hook input priority -10; iifname \"eth0\" drop; }\n"
                  " chain out { type filter hook output priority -10; oifname \"eth0\" drop; }\n"
                  "}\n")
        subprocess.run(in_namespace(self.namespace, ["nft", "-f", "-"]), input=script,
                       text=True, check=True)
        try:
            yield
        finally:
            subprocess.run(in_namespace(self.namespace, ["nft", "delete", "table", "inet",
                                                         "viridian_partition"]), check=True)


@dataclass
class NetnsTopology:
    bridge: str
    hosts: list[NetnsHost]


def kill_inside(namespace: str) -> None:
    for pid in ip("netns", "pids", namespace, check=False).split():
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid), signal.SIGCONT)
            os.kill(int(pid), signal.SIGKILL)


def remove_namespace(namespace: str) -> None:
    """Kill every process inside ``namespace``, then delete it (and its links)."""
    kill_inside(namespace)
    if Path(f"/run/netns/{namespace}").exists():
        ip("netns", "del", namespace, check=False)


def remove_leftovers() -> list[str]:
    """Namespaces of earlier runs (``vcl-<pid>-…``) whose process is gone: removed."""
    removed = []
    for line in ip("netns", "list").splitlines():
        name = line.split(" ", 1)[0]
        found = re.fullmatch(rf"{PREFIX}(\d+)-.+", name)
        if found and not Path(f"/proc/{found.group(1)}").exists():
            remove_namespace(name)
            removed.append(name)
    return removed


def _add_host(bridge: str, host: NetnsHost) -> None:
    ip("netns", "add", host.namespace)
    ip("link", "set", "lo", "up", namespace=host.namespace)
    ip("link", "add", "eth0", "type", "veth", "peer", "name", host.name, "netns", bridge,
       namespace=host.namespace)
    ip("link", "set", host.name, "master", "br0", "up", namespace=bridge)
    ip("addr", "add", f"{host.address}/24", "dev", "eth0", namespace=host.namespace)
    ip("link", "set", "eth0", "up", namespace=host.namespace)


@contextlib.contextmanager
def netns_hosts(count: int = 3) -> Iterator[NetnsTopology]:
    """``count`` host namespaces on one bridge; everything removed on every path."""
    remove_leftovers()
    base = f"{PREFIX}{os.getpid()}-{next(_RUNS)}"
    topology = NetnsTopology(f"{base}-br", [NetnsHost(f"h{i}", f"{base}-h{i}",
                                                      f"{SUBNET}.{i}")
                                            for i in range(1, count + 1)])
    made = [topology.bridge]
    try:
        ip("netns", "add", topology.bridge)
        ip("link", "add", "br0", "type", "bridge", namespace=topology.bridge)
        ip("link", "set", "br0", "up", namespace=topology.bridge)
        for host in topology.hosts:
            made.append(host.namespace)
            _add_host(topology.bridge, host)
        yield topology
    finally:
        for namespace in reversed(made):
            remove_namespace(namespace)

"""The network-namespace hosts the cluster tests run on (``tests/cluster/netns.py``,
``netns_hosts.py``): hosts reach each other over the bridge, a partition cuts a host's
eth0 (not its loopback) until healed, the forwarder reaches a namespace from the root
one, the root namespace is never touched, and everything — processes inside included —
is gone after exit; namespaces of a dead earlier run are removed, a live run's are left
alone. A service in HTTPS mode is reached by another host at its own address and by the
test and the CLI through the forwarder, its certificate pinned."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.cli.cli_harness import invoke
from tests.cluster.agent_ticks import wait_agent_ticks
from tests.cluster.netns import (
    PREFIX,
    Forwarder,
    NetnsHost,
    entered,
    ip,
    netns_hosts,
    remove_leftovers,
    remove_namespace,
    sleeper_inside,
)
from tests.cluster.netns_hosts import viridian_hosts
from tests.service.harness import wait_for, wait_job


def _listener(host: NetnsHost, address: str | None = None) -> socket.socket:
    with entered(host.namespace):
        server = socket.create_server((address or host.address, 0))
    server.settimeout(10)
    return server


def _exchange(server: socket.socket, client_namespace: str, address: str) -> bytes:
    """Connect from ``client_namespace`` to ``server`` and read what it sends."""
    with entered(client_namespace):
        client = socket.create_connection((address, server.getsockname()[1]), timeout=2)
    with client:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"hello")
        return client.recv(16)


def test_hosts_talk_over_the_bridge_a_partition_cuts_eth0_only_and_all_is_removed() -> None:
    with netns_hosts(2) as topology:
        h1, h2 = topology.hosts
        assert (h1.address, h2.address) == ("10.78.0.1", "10.78.0.2")
        assert "10.78.0." not in ip("-o", "addr")  # the root namespace is untouched
        inside = sleeper_inside(h1.namespace)
        with _listener(h2) as server:
            assert _exchange(server, h1.namespace, h2.address) == b"hello"
            with h1.partitioned():
                with pytest.raises(OSError), entered(h1.namespace):
                    socket.create_connection((h2.address, server.getsockname()[1]),
                                             timeout=1).close()
                with _listener(h1, "127.0.0.1") as local:  # its loopback still works
                    assert _exchange(local, h1.namespace, "127.0.0.1") == b"hello"
            assert _exchange(server, h1.namespace, h2.address) == b"hello"  # healed
            forwarder = Forwarder(h2.namespace, h2.address, server.getsockname()[1])
            try:
                with socket.create_connection(("127.0.0.1", forwarder.port), timeout=5) as c:
                    conn, _ = server.accept()
                    with conn:
                        conn.sendall(b"through")
                        assert c.recv(16) == b"through"
            finally:
                forwarder.close()
        names = [topology.bridge, h1.namespace, h2.namespace]
    assert inside.wait(timeout=10) != 0  # killed with its namespace
    assert not any(Path(f"/run/netns/{name}").exists() for name in names)


def test_leftovers_of_a_dead_run_are_removed_and_a_live_runs_kept() -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = f"{PREFIX}{gone.pid}-0-h1"
    live = f"{PREFIX}{os.getpid()}-999-h1"
    for name in (dead, live):
        ip("netns", "add", name)
    try:
        orphan = sleeper_inside(dead)
        assert dead in remove_leftovers()
        assert orphan.wait(timeout=10) != 0
        assert not Path(f"/run/netns/{dead}").exists()
        assert Path(f"/run/netns/{live}").exists()
    finally:
        remove_namespace(dead)
        remove_namespace(live)


def test_an_https_host_serves_the_other_hosts_at_its_address_and_the_cli_pins_it() -> None:
    with viridian_hosts(2, https=True) as lab:
        h1, h2 = lab.hosts
        with h1.api() as api:  # the test, through the forwarder, the certificate pinned
            shown = api.get("/host")
            assert shown.status_code == 200, shown.text
        with entered(h2.net.namespace):  # another host, at h1's own address
            peer = httpx.get(h1.service.peer_url + "/api/v1/host", verify=h1.service.verify(),
                             headers={"Authorization": f"Bearer {h1.service.token}"})
        assert h1.service.peer_url == "https://10.78.0.1:8443" and peer.status_code == 200
        cli = invoke([*h1.service.cli_args(), "host", "show"], env=h1.service.cli_env())
        assert cli.exit_code == 0, cli.output
        config = Path(str(h1.service.cli_env()["XDG_CONFIG_HOME"]))
        assert (config / "viridian" / "known_services.json").exists()  # not the user's


def test_cluster_peers_pin_each_others_self_signed_certificates() -> None:
    """Two HTTPS hosts in one cluster: each publishes its self-signed certificate with its
    URL, and a move by host name reaches the other host with that certificate pinned
    (never the system CAs, which do not know it; nothing else is trusted)."""
    with viridian_hosts(2, https=True) as lab:
        h1, h2 = lab.hosts
        body = {"etcd": ",".join(lab.etcd.endpoints), "name": "pins", "lease_ttl": 6}
        with h1.api() as api:
            created = api.post("/cluster", json={**body, "host": "h1",
                                                 "shared": [str(lab.shared)]})
            assert created.status_code == 201, created.text
        with h2.api() as api:
            joined = api.post("/cluster/join", json={**body, "host": "h2"})
            assert joined.status_code == 200, joined.text
        with h1.api() as api:
            wait_for("both hosts Up with their certificates", lambda: {
                h["name"] for h in api.get("/cluster").json()["hosts"] if h["state"] == "Up"
            } == {"h1", "h2"}, timeout=300)
            wait_agent_ticks({"h1": h1.data}, 2)  # h1's agent view has h2 too
            records = {h["name"]: h for h in api.get("/cluster").json()["hosts"]}
            assert records["h2"]["api"] == h2.service.peer_url
            assert api.post("/vms", json={"name": "pinned", "memory_mb": 64}).status_code \
                == 201
            moved = api.post("/vms/pinned/move", json={"to": "h2", "mode": "quick"})
            assert moved.status_code == 202, moved.text
            job = wait_job(api, moved.json(), timeout=300)
            assert job["state"] == "completed", job
        with h2.api() as api:
            assert api.get("/vms/pinned").status_code == 200
        with h1.api() as api:
            assert api.get("/vms/pinned").status_code == 404

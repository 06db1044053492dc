"""Virtual switches with real guests (TCG), through the service, the API and the CLI.

Two guests share the work: A (synthetic adapters on a private, an internal and an
external switch) and B (a *legacy* adapter on the private switch, a synthetic one on a
NAT switch). The "physical network" of the external switch and the "outside" of the NAT
switch are network namespaces built here (veth pairs); the host's real uplink is only
used to check a refusal. Everything created is removed at the end, also on failure.
Guest commands run through the guest agent (``POST /vms/{ref}/integration/exec``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.harness import Console, Service, act, running_service
from viridian.network.features import VLAN_FILTERING_FEATURE
from viridian.network.host import has_net_admin
from viridian.network.probe import probe_features

pytestmark = [
    pytest.mark.guest,
    pytest.mark.xdist_group("switches_guest"),  # one lab, one service, two guests
    pytest.mark.skipif(not has_net_admin(), reason="virtual switches need CAP_NET_ADMIN"),
]

FEATURES = probe_features()
INTERNAL_SUBNET = "192.168.213.0/24"


# --- host side: namespaces standing in for networks ---------------------------------------


@dataclass(frozen=True)
class Lab:
    """``phys``: the external switch's physical network (host 10.77.0.1, peer 10.77.0.2,
    a routed 10.78.0.1 behind it); ``outside``: beyond the NAT switch (10.201.0.2, with
    no route back to the NAT subnet: replies reach guests only when masqueraded)."""

    suffix: str
    uplink: str  # host end of the phys veth (the external switch's adapter)
    phys_ns: str
    outside_ns: str


def sh(command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=60)
    assert not check or done.returncode == 0, (command, done.stdout, done.stderr)
    return done


def host_ping(address: str, extra: str = "") -> bool:
    """busybox's ping (busybox-static is installed for the guest kit; the host may have
    no other): True when a reply came. Exit status 1 = no reply; anything else is a
    failure of the test itself."""
    done = sh(f"busybox ping -c 2 -W 2 {extra} {address}", check=False)
    assert done.returncode in (0, 1), done.stderr
    return done.returncode == 0


@contextlib.contextmanager
def lab_networks() -> Iterator[Lab]:
    s = secrets.token_hex(2)
    lab = Lab(s, f"vpa{s}", f"vphys{s}", f"vout{s}")
    try:
        sh(f"ip netns add {lab.phys_ns}; ip netns add {lab.outside_ns}")
        sh(f"ip link add vpa{s} type veth peer name vpb{s} netns {lab.phys_ns}; "
           f"ip addr add 10.77.0.1/24 dev vpa{s}; ip link set vpa{s} up; "
           f"ip route add 10.78.0.0/24 via 10.77.0.2 dev vpa{s}")
        sh(f"ip -n {lab.phys_ns} link set lo up; ip -n {lab.phys_ns} addr add 10.77.0.2/24 "
           f"dev vpb{s}; ip -n {lab.phys_ns} addr add 10.78.0.1/32 dev lo; "
           f"ip -n {lab.phys_ns} link set vpb{s} up")
        sh(f"ip link add voa{s} type veth peer name vob{s} netns {lab.outside_ns}; "
           f"ip addr add 10.201.0.1/24 dev voa{s}; ip link set voa{s} up; "
           f"ip -n {lab.outside_ns} addr add 10.201.0.2/24 dev vob{s}; "
           f"ip -n {lab.outside_ns} link set vob{s} up; ip -n {lab.outside_ns} link set lo up")
        yield lab
    finally:
        sh(f"ip netns del {lab.phys_ns}; ip netns del {lab.outside_ns}", check=False)
        sh(f"ip link del vpa{s}; ip link del voa{s}", check=False)


def remove_leftovers(data_dir: Path) -> None:
    """Safety net after the service stopped: interfaces, NAT table and dnsmasq of this
    data folder only (found by its network tag)."""
    with contextlib.closing(sqlite3.connect(data_dir / "catalog.sqlite")) as db:
        row = db.execute("SELECT value FROM meta WHERE key='network_tag'").fetchone()
    if not row:
        return
    tag = row[0]
    links = json.loads(sh("ip -j link show").stdout)
    for link in links:
        if str(link.get("ifalias", "")).startswith(f"viridian:{tag}:"):
            sh(f"ip link del dev {link['ifname']}", check=False)
    sh(f"nft delete table ip viridian_{tag}", check=False)
    for pid_file in data_dir.glob("switches/*/dnsmasq.pid"):
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), 15)


# --- guest side ------------------------------------------------------------------------------


def guest_sh(api: httpx.Client, vm: str, script: str, timeout_s: float = 40) -> tuple[int, str]:
    reply = api.post(f"/vms/{vm}/integration/exec",
                     json={"argv": ["/bin/sh", "-c", script], "timeout_s": timeout_s})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    out = base64.b64decode(body["stdout_b64"]) + base64.b64decode(body["stderr_b64"])
    return body["exit_code"], out.decode(errors="replace")


IFNAME = ('ifname() { for i in /sys/class/net/*; do '
          '[ "$(cat $i/address)" = "$1" ] && echo ${i##*/}; done; }; ')


def mac_of(api: httpx.Client, vm: str, nic: int) -> str:
    return str(api.get(f"/vms/{vm}").json()["settings"]["network_adapters"][nic - 1]["mac"])


def configure(api: httpx.Client, vm: str, nic: int, cidr: str) -> str:
    """Give adapter ``nic`` of ``vm`` a static address; returns the guest's interface."""
    mac = mac_of(api, vm, nic).lower()
    code, out = guest_sh(api, vm, f"{IFNAME} d=$(ifname {mac}); ip link set $d up; "
                                  f"ip addr add {cidr} dev $d; echo $d")
    assert code == 0, out
    return out.strip().splitlines()[-1]


def guest_ping(api: httpx.Client, vm: str, address: str, tries: int = 3) -> bool:
    code, _ = guest_sh(api, vm, f"ping -c {tries} -W 2 {address}")
    return code == 0


def cli(service: Service, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "VIRIDIAN_URL": service.url, "VIRIDIAN_TOKEN": service.token}
    return subprocess.run([sys.executable, "-m", "viridian.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def cli_ok(service: Service, *args: str) -> str:
    done = cli(service, *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


def tap_index(name: str) -> int | None:
    done = sh(f"ip -j link show {name}", check=False)
    return int(json.loads(done.stdout)[0]["ifindex"]) if done.returncode == 0 else None


# --- the shared setup: switches, two guests ----------------------------------------------


@dataclass
class Setup:
    service: Service
    api: httpx.Client
    lab: Lab
    switches: dict[str, dict[str, Any]]
    ifaces: dict[tuple[str, int], str]


@pytest.fixture(scope="module")
def net(guest_iso: Path) -> Iterator[Setup]:
    with lab_networks() as lab, running_service() as service:
        try:
            with service.client() as api:
                try:
                    yield _build(service, api, lab, guest_iso)
                finally:
                    _remove_all(api)
        finally:
            service.stop()
            remove_leftovers(service.data_dir)


def _remove_all(api: httpx.Client) -> None:
    for vm in api.get("/vms").json()["vms"]:
        if vm["pid"]:
            act(api, vm["name"], "stop", check=False)
        api.delete(f"/vms/{vm['name']}")
    for switch in api.get("/switches").json()["switches"]:
        api.delete(f"/switches/{switch['name']}")


def _build(service: Service, api: httpx.Client, lab: Lab, iso: Path) -> Setup:
    cli_ok(service, "switch", "new", "Priv", "--type", "private")
    cli_ok(service, "switch", "new", "Int", "--type", "internal", "--subnet", INTERNAL_SUBNET)
    cli_ok(service, "switch", "new", "Nat", "--type", "nat")
    cli_ok(service, "switch", "new", "Ext", "--type", "external", "--adapter", lab.uplink)
    switches = {s["name"]: s for s in api.get("/switches").json()["switches"]}
    for name in ("A", "B"):
        assert api.post("/vms", json={"name": name, "memory_mb": 256, "dvd": str(iso)}
                        ).status_code == 201
    for vm, args in (("A", ["--switch", "Priv", "--vlan", "10"]), ("A", ["--switch", "Int"]),
                     ("A", ["--switch", "Ext"]),
                     ("B", ["--legacy", "--switch", "Priv", "--vlan", "10"]),
                     ("B", ["--switch", "Nat"])):
        cli_ok(service, "vm", "nic", "add", vm, *args)
    jobs = [api.post(f"/vms/{vm}/start").json() for vm in ("A", "B")]  # boot in parallel
    for vm, job in zip(("A", "B"), jobs, strict=True):
        done = api.get(f"/jobs/{job['id']}", params={"wait": 60}).json()
        assert done["state"] == "completed", done
        Console(service.data_dir, api.get(f"/vms/{vm}").json()["id"]).wait_for(
            b"VIRIDIAN-GUEST READY", timeout=180)
    ifaces = {("A", 1): configure(api, "A", 1, "10.10.0.11/24"),
              ("A", 2): configure(api, "A", 2, "192.168.213.11/24"),
              ("A", 3): configure(api, "A", 3, "10.77.0.11/24"),
              ("B", 1): configure(api, "B", 1, "10.10.0.12/24")}
    return Setup(service, api, lab, switches, ifaces)


# --- tests -----------------------------------------------------------------------------------


def test_private_switch_connects_guests_only(net: Setup) -> None:
    api = net.api
    assert guest_ping(api, "A", "10.10.0.12")  # synthetic → legacy adapter
    assert guest_ping(api, "B", "10.10.0.11")  # legacy → synthetic adapter
    # The host has no address there and answers nothing: a guest routing to the host's
    # own addresses over the private switch gets no reply.
    priv = net.api.get("/switches/Priv").json()
    assert priv["host_address"] is None
    assert "inet " not in sh(f"ip -4 addr show dev {priv['interface']}").stdout
    code, out = guest_sh(api, "B", f"ip route add 192.168.213.1/32 dev {net.ifaces[('B', 1)]}; "
                                   "ping -c 2 -W 1 192.168.213.1; r=$?; "
                                   "ip route del 192.168.213.1/32; exit $r")
    assert code != 0, out
    assert not host_ping("10.10.0.11", f"-I {priv['interface']}")


def test_internal_switch_connects_guest_and_host(net: Setup) -> None:
    assert net.switches["Int"]["host_address"] == "192.168.213.1/24"
    assert guest_ping(net.api, "A", "192.168.213.1")
    assert host_ping("192.168.213.11")


def test_vlans_isolate_and_change_while_running(net: Setup) -> None:
    api = net.api
    assert guest_ping(api, "A", "10.10.0.12")  # both on VLAN 10
    cli_ok(net.service, "vm", "nic", "set", "B", "--nic", "1", "--vlan", "20")
    assert not guest_ping(api, "A", "10.10.0.12", tries=2)  # 10 vs 20: isolated at once
    cli_ok(net.service, "vm", "nic", "set", "B", "--nic", "1", "--vlan", "10")
    assert guest_ping(api, "A", "10.10.0.12")
    shown = cli_ok(net.service, "switch", "show", "Priv")
    assert shown.count("access 10") == 2 and "legacy" in shown


def test_trunk_ports_follow_the_kernel(net: Setup) -> None:
    done = cli(net.service, "vm", "nic", "set", "A", "--nic", "1", "--trunk", "10,20",
               "--native", "10")
    if FEATURES.bridge_vlan_filtering:
        assert done.returncode == 0, done.stderr
        cli_ok(net.service, "vm", "nic", "set", "A", "--nic", "1", "--vlan", "10")
        return
    assert done.returncode == 4, done.stderr
    assert "trunk mode (VLANs 10,20 tagged) needs " + VLAN_FILTERING_FEATURE in done.stderr
    assert guest_ping(net.api, "A", "10.10.0.12")  # nothing was changed


def test_trunk_port_receives_only_its_tagged_vlans(net: Setup) -> None:
    if not FEATURES.bridge_vlan_filtering:
        pytest.skip(f"tagging needs {VLAN_FILTERING_FEATURE}; this kernel lacks it "
                    f"({'; '.join(FEATURES.errors)}); trunks are refused instead (tested)")
    pytest.skip("tagged-frame check needs 8021q in the guest kit; not built for this kernel")


def test_external_switch_reaches_the_physical_network(net: Setup) -> None:
    api, lab = net.api, net.lab
    ext = net.switches["Ext"]
    assert ext["host_address"] == "10.77.0.1/24"  # the host's address moved to the switch
    assert "10.77.0.1/24" in sh(f"ip -4 addr show dev {ext['interface']}").stdout
    assert "10.77.0.1" not in sh(f"ip -4 addr show dev {lab.uplink}").stdout
    assert guest_ping(api, "A", "10.77.0.2")  # the peer on the "physical network"
    assert host_ping("10.77.0.2") and host_ping("10.78.0.1")  # host address + route work


def test_nat_switch_gives_dhcp_and_outbound_access(net: Setup) -> None:
    api = net.api
    mac = mac_of(api, "B", 2).lower()
    # -s: Debian's busybox looks for /etc/udhcpc/default.script; the kit has its own
    code, out = guest_sh(api, "B", f"{IFNAME} d=$(ifname {mac}); ip link set $d up; "
                                   "udhcpc -i $d -n -q -t 10 -T 2 "
                                   "-s /usr/share/udhcpc/default.script >/dev/null 2>&1; "
                                   "ip -4 addr show dev $d; ip route", timeout_s=60)
    assert code == 0, out
    gateway = net.switches["Nat"]["host_address"].split("/")[0]
    assert f"default via {gateway}" in out, out
    assert guest_ping(api, "B", "10.201.0.2")  # beyond the host, masqueraded
    leases = api.get("/switches/Nat").json()["dhcp"]["leases"]
    assert [lease["mac"] for lease in leases] == [mac.upper()]


def test_refusals(net: Setup) -> None:
    api, service = net.api, net.service
    management = json.loads(sh("ip -j route show default").stdout)[0]["dev"]
    before = sh(f"ip -j addr show dev {management}").stdout
    reply = api.post("/switches", json={"name": "Bad", "type": "external",
                                        "adapter": management})
    assert reply.status_code == 409
    assert "--allow-management-os" in reply.json()["error"]["message"]
    assert sh(f"ip -j addr show dev {management}").stdout == before  # untouched

    done = cli(service, "switch", "remove", "Priv")
    assert done.returncode == 4
    assert "in use by network adapter 1 of VM 'A', network adapter 1 of VM 'B'" in done.stderr

    assert api.post("/vms", json={"name": "Dup"}).status_code == 201
    reply = api.post("/vms/Dup/nics", json={"switch": "Priv", "mac": mac_of(api, "A", 1)})
    assert reply.status_code == 409
    assert "is already used by VM 'A' (network adapter 1)" in reply.json()["error"]["message"]
    api.delete("/vms/Dup")

    for bad in ("4095", "0"):
        done = cli(service, "vm", "nic", "set", "A", "--nic", "1", "--vlan", bad)
        assert done.returncode == 2 and "allowed: 1..4094 or none" in done.stderr
    done = cli(service, "vm", "nic", "set", "A", "--nic", "1", "--switch", "Nope")
    assert done.returncode == 3 and "virtual switch 'Nope' does not exist" in done.stderr


def test_taps_survive_a_service_restart_and_follow_save_restore(net: Setup) -> None:
    api, service = net.api, net.service
    vm_id = api.get("/vms/A").json()["id"]
    from viridian.network.names import tap_name

    taps = [tap_name(vm_id, i) for i in range(3)]
    before = [tap_index(t) for t in taps]
    assert None not in before
    service.kill()  # SIGKILL: no clean-up
    service.start()
    assert [tap_index(t) for t in taps] == before  # kept, not re-created
    with service.client() as fresh:
        assert guest_ping(fresh, "A", "10.10.0.12")
        act(fresh, "A", "save")
        assert [tap_index(t) for t in taps] == [None, None, None]  # removed with QEMU
        act(fresh, "A", "start")  # restore: taps re-created before QEMU opens them
        assert None not in [tap_index(t) for t in taps]
        assert guest_ping(fresh, "A", "10.10.0.12")


def test_removing_the_external_switch_gives_the_address_back(net: Setup) -> None:
    api, lab = net.api, net.lab
    cli_ok(net.service, "vm", "nic", "set", "A", "--nic", "3", "--switch", "none")  # live
    cli_ok(net.service, "switch", "remove", "Ext")
    assert "10.77.0.1/24" in sh(f"ip -4 addr show dev {lab.uplink}").stdout
    assert json.loads(sh(f"ip -j link show {lab.uplink}").stdout)[0].get("master") is None
    assert host_ping("10.77.0.2") and host_ping("10.78.0.1")
    assert not guest_ping(api, "A", "10.77.0.2", tries=2)  # disconnected

"""Pure pieces: iproute2 JSON parsing (captured from iproute2 6.1), subnets, the external
adapter checks, and the service's rules for adapters of running VMs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from viridian.errors import Conflict, InvalidSetting, NotFound
from viridian.model import AdapterKind, MacMode, NetworkAdapter
from viridian.network.desired import Address, BridgeVlan, RouteOn
from viridian.network.model import Route, Switch, SwitchType
from viridian.network.observed import (
    ObservedLink,
    ObservedState,
    parse_addresses,
    parse_bridge_vlans,
    parse_links,
    parse_routes,
)
from viridian.network.subnets import dhcp_range, first_free_subnet, host_interface_address
from viridian.network.uplink import check_adapter, management_adapters, uplink_of
from viridian.service.switches.service import SwitchService, adapters_changeable_live, vm_ports

LINKS = [
    {"ifindex": 2, "ifname": "eth0", "flags": ["BROADCAST", "MULTICAST", "UP", "LOWER_UP"],
     "address": "02:fc:00:00:00:01"},
    {"ifindex": 5, "ifname": "vtab", "flags": ["BROADCAST", "MULTICAST"], "master": "vs1",
     "address": "c2:50:01:ab:50:01", "ifalias": "viridian:ab12:port:x:1",
     "linkinfo": {"info_kind": "tun", "info_data": {"type": "tap", "pi": False}}},
    {"ifindex": 6, "ifname": "vs1", "flags": ["UP"], "address": "aa:bb:cc:dd:ee:ff",
     "linkinfo": {"info_kind": "bridge", "info_data": {"vlan_filtering": 1}}},
    {"ifindex": 7, "ifname": "eth0.10", "link": "eth0", "flags": [],
     "linkinfo": {"info_kind": "vlan", "info_data": {"protocol": "802.1Q", "id": 10}}},
]


def test_links_are_parsed() -> None:
    links = parse_links(LINKS)
    assert links["eth0"] == ObservedLink("eth0", "physical", up=True, mac="02:FC:00:00:00:01")
    assert (links["vtab"].kind, links["vtab"].master, links["vtab"].up) == ("tap", "vs1", False)
    assert links["vs1"].vlan_filtering is True
    assert (links["eth0.10"].kind, links["eth0.10"].parent, links["eth0.10"].vlan_id) == (
        "vlan", "eth0", 10)


def test_bridge_vlans_addresses_and_routes_are_parsed() -> None:
    vlans = parse_bridge_vlans([{"ifname": "vs1", "vlans": [
        {"vlan": 1, "flags": ["PVID", "Egress Untagged"]}]}, {"ifname": "vtab", "vlans": [
            {"vlan": 10, "vlanEnd": 11}]}], ["vs1"])
    assert vlans == {BridgeVlan("vs1", 1, True, True, True), BridgeVlan("vtab", 10),
                     BridgeVlan("vtab", 11)}
    addresses = parse_addresses([{"ifname": "eth0", "addr_info": [
        {"family": "inet", "local": "192.0.2.2", "prefixlen": 24},
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64, "scope": "link"}]}])
    assert addresses == {Address("eth0", "192.0.2.2/24")}
    routes = parse_routes([
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0", "flags": []},
        {"dst": "192.0.2.0/24", "dev": "eth0", "protocol": "kernel", "scope": "link"},
        {"type": "multicast", "dst": "ff00::/8", "dev": "eth0"}], 4)
    assert routes == (RouteOn("eth0", Route("default", "192.0.2.1")),)


def test_subnets() -> None:
    assert host_interface_address("192.168.50.0/24") == "192.168.50.1/24"
    assert dhcp_range("10.0.75.0/28") == ("10.0.75.2", "10.0.75.14")
    assert first_free_subnet(["172.30.0.1/24", "10.0.0.0/8"]) == "172.30.1.0/24"
    for bad in ("192.168.50.1/24", "10.0.0.0/30", "fd00::/64", "nonsense", "10.0.0.0"):
        with pytest.raises(InvalidSetting, match="allowed: an IPv4 network in CIDR form"):
            host_interface_address(bad)


OBSERVED = ObservedState(
    links={"eth0": ObservedLink("eth0", "physical", mac="02:00:00:00:00:01"),
           "eth1": ObservedLink("eth1", "veth", mac="02:00:00:00:00:02"),
           "br9": ObservedLink("br9", "bridge"),
           "eth2": ObservedLink("eth2", "veth", master="br9")},
    addresses=frozenset({Address("eth1", "10.9.0.2/24")}),
    routes=(RouteOn("eth0", Route("default", "192.0.2.1")),
            RouteOn("eth1", Route("10.8.0.0/16", "10.9.0.254"))))


def test_external_adapter_checks() -> None:
    assert management_adapters(OBSERVED) == {"eth0"}
    with pytest.raises(Conflict, match="pass --allow-management-os"):
        check_adapter(OBSERVED, "eth0", False, "viridian:ab12:")
    check_adapter(OBSERVED, "eth0", True, "viridian:ab12:")
    check_adapter(OBSERVED, "eth1", False, "viridian:ab12:")
    with pytest.raises(NotFound, match="no network adapter 'eth9'; adapters: eth0, eth1, eth2"):
        check_adapter(OBSERVED, "eth9", False, "viridian:ab12:")
    with pytest.raises(Conflict, match="'br9' is a bridge interface, not an Ethernet adapter"):
        check_adapter(OBSERVED, "br9", False, "viridian:ab12:")
    with pytest.raises(Conflict, match="already part of 'br9'"):
        check_adapter(OBSERVED, "eth2", False, "viridian:ab12:")
    uplink = uplink_of(OBSERVED, "eth1")
    assert (uplink.mac, uplink.addresses, uplink.routes) == (
        "02:00:00:00:00:02", ("10.9.0.2/24",), (Route("10.8.0.0/16", "10.9.0.254"),))


def nic(switch: str | None, **more: Any) -> NetworkAdapter:
    return replace(NetworkAdapter(AdapterKind.SYNTHETIC, switch, MacMode.DYNAMIC,
                                  "00:15:5D:00:00:01"), **more)


def test_what_may_change_on_a_running_vm() -> None:
    assert adapters_changeable_live([nic("A")], [nic("B", vlan_id=7)])
    assert adapters_changeable_live([nic("A")], [nic(None)])  # disconnect
    assert not adapters_changeable_live([nic("user")], [nic("A")])  # backend differs
    assert not adapters_changeable_live([nic("A")], [nic("A", kind=AdapterKind.LEGACY)])
    assert not adapters_changeable_live([nic("A")], [nic("A"), nic(None)])


def test_ports_follow_the_launched_adapters() -> None:
    vm = "aaaaaaaa-0000-4000-8000-000000000001"
    ports = vm_ports(vm, "A", [nic("S"), nic("user"), nic("S")],
                     [nic("S", trunk_vlans=(10,), native_vlan=5), nic("user"), nic(None)])
    assert [(p.tap, p.nic, p.switch, p.trunk_vlans, p.native_vlan) for p in ports] == [
        ("vtaaaaaaaa00n0", 1, "S", (10,), 5), ("vtaaaaaaaa00n2", 3, None, (), None)]


class _RulesetHost:
    """Records the nft scripts the switch service loads (the dnsmasq calls do nothing)."""

    def __init__(self) -> None:
        self.scripts: list[str] = []

    def apply_ruleset(self, script: str, needed: bool) -> None:
        self.scripts.append(script)

    def ensure_dnsmasq(self, bridge: str, subnet: str, folder: Path) -> None:
        pass


def test_nat_rules_are_asserted_at_every_reconcile_and_their_removal_once(
        tmp_path: Path) -> None:
    """A VM start reconciles the switches; with no NAT switch that used to run `nft`
    each time to remove a table already gone (the largest share of the event loop's
    time in a 20-VM start on a busy host)."""
    service = SwitchService.__new__(SwitchService)
    host = _RulesetHost()
    service.host, service.tag, service.folder = host, "ab12", tmp_path / "switches"  # type: ignore[assignment]
    service._nat_removed = False
    internal = Switch("Lab", SwitchType.INTERNAL, 1, subnet="192.168.215.0/24")
    nat = Switch("Nat", SwitchType.NAT, 2, subnet="192.168.216.0/24")
    service._nat([internal])
    service._nat([internal])
    assert len(host.scripts) == 1 and "masquerade" not in host.scripts[0]
    service._nat([internal, nat])
    service._nat([internal, nat])
    assert len(host.scripts) == 3 and "masquerade" in host.scripts[2]
    service._nat([internal])
    service._nat([internal])
    assert len(host.scripts) == 4 and "masquerade" not in host.scripts[3]

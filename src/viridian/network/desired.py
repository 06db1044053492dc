"""Desired host state of the virtual switches: pure, from switches + ports + features.

:func:`desired_state` says which links (bridges, taps, 802.1Q links, the enslaved
physical adapter), bridge VLAN entries, host addresses, routes and sysctls must exist;
:mod:`.plan` turns the difference to what is on the host into operations.

Isolation rules (both VLAN modes):

- The host takes part only in the default VLAN (1) of internal, NAT and external
  switches. A private switch's bridge, and every per-VLAN bridge, has no address, IPv6
  off, ``arp_ignore=8`` (answers no ARP) and ``forwarding=0`` (routes nothing), so
  guests there can neither reach nor route through the host.
- ``vlan_filtering``: one bridge with ``vlan_default_pvid 0`` (a new port is in no VLAN
  until told), an access port is ``pvid untagged`` in its VLAN, a trunk port is tagged in
  its allowed VLANs plus ``pvid untagged`` in its native VLAN; the host interface
  (``self``) is in VLAN 1 (none on private switches); the external adapter is the
  switch's trunk: VLAN 1 untagged, every other VLAN in use tagged.
- ``bridge_per_vlan``: VLAN v's ports sit on bridge ``…v<v>``; VLAN 1 is the switch's
  own bridge. Trunks are refused; on an external switch, VLAN v reaches the physical
  network tagged through the 802.1Q link ``…u<v>`` if the kernel has them, else refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from viridian.errors import Conflict
from viridian.network import names
from viridian.network.features import (
    VLAN_FILTERING_FEATURE,
    VLAN_LINKS_FEATURE,
    KernelFeatures,
    VlanMode,
)
from viridian.network.model import DEFAULT_VLAN, Port, Route, Switch, SwitchType
from viridian.network.subnets import host_interface_address

__all__ = [
    "Address",
    "BridgeVlan",
    "DesiredState",
    "Link",
    "RouteOn",
    "check_port",
    "desired_state",
]


@dataclass(frozen=True)
class Link:
    """``kind``: bridge, tap, vlan (802.1Q, on ``parent`` with ``vlan_id``) or physical
    (not ours: only enslaved, never created, renamed or removed)."""

    name: str
    kind: str
    alias: str | None
    master: str | None = None
    up: bool = True
    vlan_filtering: bool = False
    parent: str | None = None
    vlan_id: int | None = None
    mac: str | None = None


@dataclass(frozen=True, order=True)
class BridgeVlan:
    """``bridge vlan add dev DEV vid VID [pvid] [untagged] [self]``."""

    dev: str
    vid: int
    pvid: bool = False
    untagged: bool = False
    self_: bool = False


@dataclass(frozen=True, order=True)
class Address:
    dev: str
    cidr: str


@dataclass(frozen=True)
class RouteOn:
    dev: str
    route: Route


@dataclass(frozen=True)
class DesiredState:
    links: tuple[Link, ...]
    vlans: frozenset[BridgeVlan]
    addresses: frozenset[Address]  # on our bridges
    moved_addresses: frozenset[Address]  # to take off external adapters
    routes: tuple[RouteOn, ...]
    sysctls: tuple[tuple[str, str], ...]
    vlan_filtering: bool


ISOLATED_SYSCTLS = (
    ("net/ipv4/conf/{dev}/forwarding", "0"),
    ("net/ipv4/conf/{dev}/arp_ignore", "8"),
    ("net/ipv6/conf/{dev}/disable_ipv6", "1"),
)


def check_port(switch: Switch, port: Port, features: KernelFeatures) -> None:
    """Refuse a port the kernel cannot give its VLANs.

    :raises Conflict: naming the adapter, the switch and the missing kernel feature.
    """
    if features.vlan_mode is VlanMode.VLAN_FILTERING:
        return
    if port.is_trunk:
        raise Conflict(
            f"{port.describe()}: trunk mode (VLANs {_ids(port.trunk_vlans)} tagged) needs "
            f"{VLAN_FILTERING_FEATURE}, which this kernel lacks (probed); switch "
            f"'{switch.name}' runs one bridge per VLAN instead: use access mode "
            "(--vlan ID); nothing was changed",
            switch=switch.name,
            missing=VLAN_FILTERING_FEATURE,
        )
    if (
        switch.type is SwitchType.EXTERNAL
        and port.untagged_vlan != DEFAULT_VLAN
        and not features.vlan_links
    ):
        raise Conflict(
            f"{port.describe()}: VLAN {port.untagged_vlan} on external switch "
            f"'{switch.name}' must be tagged on adapter {switch.adapter}, which needs "
            f"{VLAN_FILTERING_FEATURE} or {VLAN_LINKS_FEATURE}; this kernel has neither "
            "(probed). VLANs work on internal, private and NAT switches; untagged "
            "adapters work on this switch; nothing was changed",
            switch=switch.name,
            missing=[VLAN_FILTERING_FEATURE, VLAN_LINKS_FEATURE],
        )


def desired_state(
    tag: str, switches: Sequence[Switch], ports: Iterable[Port], features: KernelFeatures
) -> DesiredState:
    """Everything the switches and ports need on the host (pure).

    :raises Conflict: a port the kernel cannot serve (see :func:`check_port`).
    """
    by_name = {s.name: s for s in switches}
    ports = sorted(ports, key=lambda p: p.tap)
    filtering = features.vlan_mode is VlanMode.VLAN_FILTERING
    state = _Builder(tag, filtering)
    for switch in sorted(switches, key=lambda s: s.number):
        on_switch = [p for p in ports if p.switch == switch.name]
        for port in on_switch:
            check_port(switch, port, features)
        state.add_switch(switch, on_switch, features)
    for port in ports:
        state.add_port(port, by_name.get(port.switch) if port.switch else None)
    return state.build()


def _ids(vlans: Iterable[int]) -> str:
    return ",".join(str(v) for v in sorted(vlans))


class _Builder:
    def __init__(self, tag: str, filtering: bool) -> None:
        self.tag, self.filtering = tag, filtering
        self.bridges: list[Link] = []
        self.others: list[Link] = []
        self.taps: list[Link] = []
        self.vlans: set[BridgeVlan] = set()
        self.addresses: set[Address] = set()
        self.moved: set[Address] = set()
        self.routes: list[RouteOn] = []
        self.global_sysctls: list[tuple[str, str]] = []
        self.sysctls: list[tuple[str, str]] = []

    def build(self) -> DesiredState:
        return DesiredState(
            links=(*self.bridges, *self.others, *self.taps),
            vlans=frozenset(self.vlans),
            addresses=frozenset(self.addresses),
            moved_addresses=frozenset(self.moved),
            routes=tuple(self.routes),
            sysctls=(*dict.fromkeys(self.global_sysctls), *self.sysctls),
            vlan_filtering=self.filtering,
        )

    # --- switches -------------------------------------------------------------------

    def add_switch(self, switch: Switch, ports: Sequence[Port], features: KernelFeatures) -> None:
        bridge = names.bridge_name(self.tag, switch.number)
        alias = names.switch_alias(self.tag, switch.number)
        mac = switch.uplink.mac if switch.uplink else None
        self.bridges.append(Link(bridge, "bridge", alias, vlan_filtering=self.filtering, mac=mac))
        host_on_switch = switch.type is not SwitchType.PRIVATE
        if not host_on_switch:
            self._isolate(bridge)
        elif self.filtering:
            self.vlans.add(BridgeVlan(bridge, DEFAULT_VLAN, True, True, True))
        self._host_addresses(switch, bridge)
        used = sorted({v for p in ports for v in p.vlans} - {DEFAULT_VLAN})
        if self.filtering:
            self._uplink_trunk(switch, bridge, used)
        else:
            self._vlan_bridges(switch, used, features)

    def _isolate(self, dev: str) -> None:
        self.sysctls += [(key.format(dev=dev), value) for key, value in ISOLATED_SYSCTLS]

    def _host_addresses(self, switch: Switch, bridge: str) -> None:
        if switch.type is SwitchType.NAT:
            self.global_sysctls.append(("net/ipv4/ip_forward", "1"))
        if switch.subnet and switch.type in (SwitchType.INTERNAL, SwitchType.NAT):
            self.addresses.add(Address(bridge, host_interface_address(switch.subnet)))
        if switch.uplink is not None:
            self.addresses.update(Address(bridge, a) for a in switch.uplink.addresses)
            self.moved.update(Address(switch.uplink.adapter, a) for a in switch.uplink.addresses)
            self.routes += [RouteOn(bridge, r) for r in switch.uplink.routes]

    def _uplink_trunk(self, switch: Switch, bridge: str, used: Sequence[int]) -> None:
        if switch.adapter is None:
            return
        self.others.append(Link(switch.adapter, "physical", None, master=bridge))
        self.vlans.add(BridgeVlan(switch.adapter, DEFAULT_VLAN, True, True))
        self.vlans.update(BridgeVlan(switch.adapter, vid) for vid in used)

    def _vlan_bridges(self, switch: Switch, used: Sequence[int], features: KernelFeatures) -> None:
        bridge = names.bridge_name(self.tag, switch.number)
        alias = names.switch_alias(self.tag, switch.number)
        if switch.adapter is not None:
            self.others.append(Link(switch.adapter, "physical", None, master=bridge))
        for vid in used:
            vlan_bridge = names.vlan_bridge_name(self.tag, switch.number, vid)
            self.bridges.append(Link(vlan_bridge, "bridge", alias))
            self._isolate(vlan_bridge)
            if switch.adapter is not None and features.vlan_links:
                link = names.uplink_vlan_name(self.tag, switch.number, vid)
                self.others.append(
                    Link(
                        link, "vlan", alias, master=vlan_bridge, parent=switch.adapter, vlan_id=vid
                    )
                )

    # --- ports ----------------------------------------------------------------------

    def add_port(self, port: Port, switch: Switch | None) -> None:
        alias = names.port_alias(self.tag, port.vm_id, port.nic)
        if switch is None:
            self.taps.append(Link(port.tap, "tap", alias, up=False))
            return
        if self.filtering:
            master = names.bridge_name(self.tag, switch.number)
            self.vlans.add(BridgeVlan(port.tap, port.untagged_vlan, True, True))
            self.vlans.update(
                BridgeVlan(port.tap, vid) for vid in port.trunk_vlans if vid != port.untagged_vlan
            )
        elif port.untagged_vlan == DEFAULT_VLAN:
            master = names.bridge_name(self.tag, switch.number)
        else:
            master = names.vlan_bridge_name(self.tag, switch.number, port.untagged_vlan)
        self.taps.append(Link(port.tap, "tap", alias, master=master))

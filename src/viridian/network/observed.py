"""What is on the host now, parsed from iproute2's JSON output (pure parsers).

The inputs are ``ip -j -d link show``, ``bridge -j vlan show``, ``ip -j addr show`` and
``ip -j [-6] route show table main`` (iproute2 ≥ 5, keys as in its ``print_*`` JSON
writers); the shell (:mod:`.host`) runs them. Unknown keys are ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from viridian.network.desired import Address, BridgeVlan, RouteOn
from viridian.network.model import Route

__all__ = [
    "ObservedLink",
    "ObservedState",
    "parse_addresses",
    "parse_bridge_vlans",
    "parse_links",
    "parse_routes",
]

SKIPPED_ROUTE_PROTOCOLS = frozenset({"kernel", "ra"})


@dataclass(frozen=True)
class ObservedLink:
    name: str
    kind: str  # bridge, tap, vlan, or the kernel's kind (veth, ...) / "physical"
    alias: str | None = None
    master: str | None = None
    up: bool = False
    vlan_filtering: bool = False
    parent: str | None = None
    vlan_id: int | None = None
    mac: str | None = None


@dataclass(frozen=True)
class ObservedState:
    links: Mapping[str, ObservedLink] = field(default_factory=dict)
    vlans: frozenset[BridgeVlan] = frozenset()
    addresses: frozenset[Address] = frozenset()
    routes: tuple[RouteOn, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)


def parse_links(data: Sequence[Mapping[str, Any]]) -> dict[str, ObservedLink]:
    """``ip -j -d link show`` → name → link."""
    return {item["ifname"]: _link(item) for item in data}


def _link(item: Mapping[str, Any]) -> ObservedLink:
    info = item.get("linkinfo") or {}
    data = info.get("info_data") or {}
    kind = str(info.get("info_kind") or "physical")
    if kind == "tun":
        kind = "tap" if data.get("type") == "tap" else "tun"
    return ObservedLink(
        name=item["ifname"],
        kind=kind,
        alias=item.get("ifalias"),
        master=item.get("master"),
        up="UP" in item.get("flags", ()),
        vlan_filtering=bool(data.get("vlan_filtering", 0)) if kind == "bridge" else False,
        parent=item.get("link") if kind == "vlan" else None,
        vlan_id=data.get("id") if kind == "vlan" else None,
        mac=str(item["address"]).upper() if item.get("address") else None,
    )


def parse_bridge_vlans(
    data: Sequence[Mapping[str, Any]], bridges: Iterable[str]
) -> frozenset[BridgeVlan]:
    """``bridge -j vlan show`` → entries; a bridge's own entries are ``self``."""
    bridge_names = set(bridges)
    entries: set[BridgeVlan] = set()
    for item in data:
        dev = item["ifname"]
        for vlan in item.get("vlans", ()):
            flags = set(vlan.get("flags", ()))
            for vid in range(vlan["vlan"], vlan.get("vlanEnd", vlan["vlan"]) + 1):
                entries.add(
                    BridgeVlan(
                        dev, vid, "PVID" in flags, "Egress Untagged" in flags, dev in bridge_names
                    )
                )
    return frozenset(entries)


def parse_addresses(data: Sequence[Mapping[str, Any]]) -> frozenset[Address]:
    """``ip -j addr show`` → (dev, CIDR) of every address but IPv6 link-local ones."""
    return frozenset(
        Address(item["ifname"], f"{a['local']}/{a['prefixlen']}")
        for item in data
        for a in item.get("addr_info", ())
        if "local" in a and not (a.get("family") == "inet6" and a.get("scope") == "link")
    )


def parse_routes(data: Sequence[Mapping[str, Any]], family: int) -> tuple[RouteOn, ...]:
    """``ip -j route show table main`` → the routes an admin or DHCP client added
    (not the kernel's prefix routes, not router-advertised ones)."""
    routes = []
    for item in data:
        if (
            item.get("protocol") in SKIPPED_ROUTE_PROTOCOLS
            or item.get("type") not in (None, "unicast")
            or "dev" not in item
        ):
            continue
        if str(item.get("dst", "")).startswith(("fe80:", "ff00:", "multicast")):
            continue
        routes.append(
            RouteOn(
                item["dev"], Route(item["dst"], item.get("gateway"), item.get("metric"), family)
            )
        )
    return tuple(routes)

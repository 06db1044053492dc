"""The plan: operations turning the observed host state into the desired one (pure).

:func:`plan_changes` compares a :class:`~.desired.DesiredState` with an
:class:`~.observed.ObservedState` and returns :class:`Op` s in a safe order:

1. leftovers removed — only interfaces whose alias starts ``viridian:<tag>:`` (taps,
   then 802.1Q links, then bridges); a tap is never removed while it is desired;
2. global sysctls (``ip_forward`` resets every interface's ``forwarding``: it comes
   before the per-interface ones);
3. missing links created (bridges, then 802.1Q links, then taps), with alias and MAC;
4. link attributes fixed in place (VLAN filtering, MAC, alias) — never by re-creating
   a link that exists, so running VMs' traffic is not interrupted;
5. masters, bridge VLAN entries (deletions first), per-interface sysctls;
6. host addresses on the switches' interfaces;
7. links set up/down;
8. routes (replaced onto an external switch's interface: a gateway needs the link up),
   then the host addresses taken off the external adapter — the host's connectivity
   moves in one batch, without a gap an application would notice.

An empty plan means the host is as desired. Each op renders as the iproute2/sysctl
command an admin would type (:meth:`Op.text`), which the golden tests compare.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from viridian.network.desired import Address, BridgeVlan, DesiredState, Link, RouteOn
from viridian.network.names import alias_prefix
from viridian.network.observed import ObservedLink, ObservedState

__all__ = ["Op", "plan_changes", "plan_text", "release_uplink"]

_DELETE_ORDER = {"tap": 0, "vlan": 1, "bridge": 2}


@dataclass(frozen=True)
class Op:
    """``tool`` is ``ip``, ``bridge`` or ``sysctl`` (args: key path, value)."""

    tool: str
    args: tuple[str, ...]

    def text(self) -> str:
        if self.tool == "sysctl":
            return f"sysctl -w {self.args[0].replace('/', '.')}={self.args[1]}"
        return " ".join((self.tool, *self.args))


def ip(*args: str) -> Op:
    return Op("ip", args)


def plan_text(ops: list[Op]) -> str:
    return "".join(op.text() + "\n" for op in ops)


def plan_changes(desired: DesiredState, observed: ObservedState, tag: str) -> list[Op]:
    """Every operation needed, in the order above (see the module docstring)."""
    wanted = {link.name: link for link in desired.links}
    links = observed.links
    ops = _remove_leftovers(wanted, links, tag)
    present = {n: lk for n, lk in links.items() if n in wanted and _same_kind(wanted[n], lk)}
    ops += _sysctls(desired.sysctls, observed, global_only=True)
    for link in desired.links:
        ops += (
            _create(link, desired.vlan_filtering)
            if link.name not in present
            else _fix(link, present[link.name], desired.vlan_filtering)
        )
    ops += _masters(desired.links, present)
    ops += _bridge_vlans(desired, observed, wanted)
    ops += _sysctls(desired.sysctls, observed, global_only=False)
    ops += _addresses(desired, observed)
    ops += _up_down(desired.links, present)
    ops += _routes(desired.routes, observed.routes)
    return ops + [_addr("del", a) for a in sorted(desired.moved_addresses & observed.addresses)]


def _same_kind(link: Link, seen: ObservedLink) -> bool:
    return link.kind == "physical" or link.kind == seen.kind


def _owned(link: ObservedLink, tag: str) -> bool:
    return bool(link.alias and link.alias.startswith(alias_prefix(tag)))


def _remove_leftovers(
    wanted: dict[str, Link], links: Mapping[str, ObservedLink], tag: str
) -> list[Op]:
    doomed = [
        lk
        for name, lk in links.items()
        if _owned(lk, tag) and (name not in wanted or not _same_kind(wanted[name], lk))
    ]
    doomed.sort(key=lambda lk: (_DELETE_ORDER.get(lk.kind, 3), lk.name))
    return [ip("link", "del", "dev", lk.name) for lk in doomed]


def _create(link: Link, filtering: bool) -> list[Op]:
    if link.kind == "physical":
        return []  # not ours to create; a missing adapter is the caller's refusal
    if link.kind == "bridge":
        extra = ("vlan_filtering", "1", "vlan_default_pvid", "0") if filtering else ()
        ops = [ip("link", "add", link.name, "type", "bridge", *extra)]
    elif link.kind == "vlan":
        assert link.parent is not None and link.vlan_id is not None
        ops = [
            ip(
                "link",
                "add",
                "link",
                link.parent,
                "name",
                link.name,
                "type",
                "vlan",
                "id",
                str(link.vlan_id),
            )
        ]
    else:
        ops = [ip("tuntap", "add", "dev", link.name, "mode", "tap", "vnet_hdr")]
    ops.append(ip("link", "set", "dev", link.name, "alias", str(link.alias)))
    if link.mac:
        ops.append(ip("link", "set", "dev", link.name, "address", link.mac))
    return ops


def _fix(link: Link, seen: ObservedLink, filtering: bool) -> list[Op]:
    ops = []
    if link.kind == "bridge" and seen.vlan_filtering != (link.vlan_filtering and filtering):
        ops.append(
            ip(
                "link",
                "set",
                "dev",
                link.name,
                "type",
                "bridge",
                "vlan_filtering",
                "1" if link.vlan_filtering else "0",
            )
        )
    if link.mac and seen.mac != link.mac.upper():
        ops.append(ip("link", "set", "dev", link.name, "address", link.mac))
    if link.alias is not None and seen.alias != link.alias:
        ops.append(ip("link", "set", "dev", link.name, "alias", link.alias))
    return ops


def _masters(links: tuple[Link, ...], present: dict[str, ObservedLink]) -> list[Op]:
    ops = []
    for link in links:
        current = present[link.name].master if link.name in present else None
        if link.master != current:
            target = ("master", link.master) if link.master else ("nomaster",)
            ops.append(ip("link", "set", "dev", link.name, *target))
    return ops


def _bridge_vlans(
    desired: DesiredState, observed: ObservedState, wanted: dict[str, Link]
) -> list[Op]:
    if not desired.vlan_filtering:
        return []
    seen = {v for v in observed.vlans if v.dev in wanted}
    stale = sorted({(v.dev, v.vid, v.self_) for v in seen - desired.vlans})
    ops = [
        Op("bridge", ("vlan", "del", "dev", dev, "vid", str(vid), *(("self",) if s else ())))
        for dev, vid, s in stale
    ]
    return ops + [_vlan_add(v) for v in sorted(desired.vlans - seen, key=lambda v: (v.dev, v.vid))]


def _vlan_add(v: BridgeVlan) -> Op:
    flags = [f for f, on in (("pvid", v.pvid), ("untagged", v.untagged), ("self", v.self_)) if on]
    return Op("bridge", ("vlan", "add", "dev", v.dev, "vid", str(v.vid), *flags))


def _sysctls(
    sysctls: tuple[tuple[str, str], ...], observed: ObservedState, global_only: bool
) -> list[Op]:
    return [
        Op("sysctl", (key, value))
        for key, value in sysctls
        if ("/conf/" not in key) == global_only and observed.sysctls.get(key) != value
    ]


def _addresses(desired: DesiredState, observed: ObservedState) -> list[Op]:
    ours = {link.name for link in desired.links if link.kind == "bridge"}
    add = sorted(desired.addresses - observed.addresses)
    stale = sorted(a for a in observed.addresses - desired.addresses if a.dev in ours)
    return [*(_addr("add", a) for a in add), *(_addr("del", a) for a in stale)]


def _addr(verb: str, address: Address) -> Op:
    family = ("-6",) if ":" in address.cidr else ()
    return ip(*family, "addr", verb, address.cidr, "dev", address.dev)


def _routes(wanted: tuple[RouteOn, ...], seen: tuple[RouteOn, ...]) -> list[Op]:
    return [route_op("replace", r) for r in wanted if r not in seen]


def route_op(verb: str, on: RouteOn) -> Op:
    r = on.route
    family = ("-6",) if r.family == 6 else ()
    via = ("via", r.gateway) if r.gateway else ()
    metric = ("metric", str(r.metric)) if r.metric is not None else ()
    return ip(*family, "route", verb, r.dst, *via, "dev", on.dev, *metric)


def _up_down(links: tuple[Link, ...], present: dict[str, ObservedLink]) -> list[Op]:
    ops = []
    for link in links:
        is_up = present[link.name].up if link.name in present else False
        if link.up != is_up:
            ops.append(ip("link", "set", "dev", link.name, "up" if link.up else "down"))
    return ops


def release_uplink(
    adapter: str, addresses: tuple[str, ...], routes: tuple[RouteOn, ...]
) -> list[Op]:
    """Give an external switch's adapter back to the host: out of the bridge, its
    addresses and routes back on it (the bridge, with its copies, is removed next)."""
    ops = [ip("link", "set", "dev", adapter, "nomaster")]
    ops += [_addr("add", Address(adapter, a)) for a in addresses]
    return ops + [route_op("replace", RouteOn(adapter, r.route)) for r in routes]

"""External switches and the host's adapters (pure, over an observed state).

Hyper-V's best practice (2008 R2 "Allow management operating system to share this
network adapter"): keep one adapter for managing the host, off the VMs. The management
adapter is the one carrying a default route; binding a switch to it needs
``allow_management_os``. Binding moves the adapter's addresses and routes to the
switch's interface (:class:`~.model.Uplink` records them, to give them back).
"""

from __future__ import annotations

from viridian.errors import Conflict, NotFound
from viridian.network.model import Uplink
from viridian.network.observed import ObservedState

__all__ = ["check_adapter", "management_adapters", "uplink_of"]

BINDABLE_KINDS = frozenset({"physical", "veth", "macvlan", "bond", "team"})


def management_adapters(observed: ObservedState) -> frozenset[str]:
    """Adapters carrying a default route (IPv4 or IPv6): the host is managed over them."""
    return frozenset(r.dev for r in observed.routes if r.route.dst == "default")


def check_adapter(
    observed: ObservedState, adapter: str, allow_management_os: bool, owned_prefix: str
) -> None:
    """Refuse binding an external switch to ``adapter`` when it is missing, not an
    Ethernet adapter, already in a bridge, ours, or the management adapter (unless
    allowed).

    :raises NotFound: no such adapter.
    :raises Conflict: any other refusal, naming why and what to do.
    """
    link = observed.links.get(adapter)
    if link is None:
        names = sorted(n for n, lk in observed.links.items() if lk.kind in BINDABLE_KINDS)
        raise NotFound(
            f"the host has no network adapter '{adapter}'; adapters: "
            f"{', '.join(names) or 'none'}; nothing was changed",
            adapter=adapter,
        )
    if link.alias and link.alias.startswith(owned_prefix):
        raise Conflict(
            f"'{adapter}' belongs to a virtual switch or VM of this service; "
            "bind an external switch to a physical adapter; nothing was changed"
        )
    if link.kind not in BINDABLE_KINDS or adapter == "lo":
        raise Conflict(
            f"'{adapter}' is a {link.kind} interface, not an Ethernet adapter; "
            "an external switch binds to a physical adapter (or a veth/bond); "
            "nothing was changed",
            adapter=adapter,
            kind=link.kind,
        )
    if link.master:
        raise Conflict(
            f"adapter '{adapter}' is already part of '{link.master}'; an adapter "
            "can back one switch only; nothing was changed",
            adapter=adapter,
            master=link.master,
        )
    if adapter in management_adapters(observed) and not allow_management_os:
        raise Conflict(
            f"adapter '{adapter}' carries the host's management traffic (its default "
            "route); binding a virtual switch to it moves the host's addresses onto the "
            "switch and shares the adapter with VMs. Keep a separate management adapter "
            "(recommended), or pass --allow-management-os to do it anyway; nothing was "
            "changed",
            adapter=adapter,
        )


def uplink_of(observed: ObservedState, adapter: str) -> Uplink:
    """What binding takes over from ``adapter``: its MAC, addresses and routes."""
    link = observed.links[adapter]
    addresses = sorted(a.cidr for a in observed.addresses if a.dev == adapter)
    routes = tuple(r.route for r in observed.routes if r.dev == adapter)
    return Uplink(adapter, link.mac or "", tuple(addresses), routes)

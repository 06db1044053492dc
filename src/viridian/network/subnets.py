"""IPv4 subnets of internal and NAT switches (pure; :mod:`ipaddress`).

The host's interface takes the subnet's first host address (``.1`` of a /24), like
Hyper-V's default switch and libvirt's default network; a NAT switch's DHCP service
hands out every other host address (``.2`` .. ``.254`` of a /24).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from viridian.errors import Conflict, InvalidSetting

__all__ = [
    "ALLOWED_SUBNET",
    "dhcp_range",
    "first_free_subnet",
    "gateway",
    "host_interface_address",
    "overlapping",
    "parse_subnet",
]

ALLOWED_SUBNET = "an IPv4 network in CIDR form with a prefix of /8../29, e.g. 192.168.50.0/24"
NAT_DEFAULT_POOL = ipaddress.IPv4Network("172.30.0.0/16")


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """``text`` as a network; host bits set ("192.168.5.1/24") are refused, not masked.

    :raises InvalidSetting: not IPv4 CIDR, host bits set, or a prefix outside /8../29.
    """
    try:
        network = ipaddress.IPv4Network(text, strict=True)
    except ValueError as err:
        raise InvalidSetting("subnet", text, ALLOWED_SUBNET, reason=str(err)) from err
    if not 8 <= network.prefixlen <= 29 or "/" not in text:
        raise InvalidSetting("subnet", text, ALLOWED_SUBNET)
    return network


def gateway(subnet: str) -> str:
    """The host's address on the switch (no prefix)."""
    return str(next(parse_subnet(subnet).hosts()))


def host_interface_address(subnet: str) -> str:
    """The host's address with prefix, e.g. ``192.168.50.1/24``."""
    return f"{gateway(subnet)}/{parse_subnet(subnet).prefixlen}"


def dhcp_range(subnet: str) -> tuple[str, str]:
    """(first, last) address leased to VMs: every host address after the gateway."""
    network = parse_subnet(subnet)
    return str(network.network_address + 2), str(network.broadcast_address - 1)


def overlapping(subnet: str, in_use: Iterable[str]) -> str | None:
    """The first network of ``in_use`` (CIDRs of host routes/addresses) overlapping."""
    network = parse_subnet(subnet)
    for other in in_use:
        try:
            candidate = ipaddress.ip_network(other, strict=False)
        except ValueError:
            continue
        if candidate.version == 4 and candidate.prefixlen > 0 and network.overlaps(candidate):
            return other
    return None


def first_free_subnet(in_use: Iterable[str], prefix: int = 24) -> str:
    """The first /``prefix`` of 172.30.0.0/16 that overlaps nothing in ``in_use``.

    :raises Conflict: all of them are taken.
    """
    taken = list(in_use)
    for candidate in NAT_DEFAULT_POOL.subnets(new_prefix=prefix):
        if overlapping(str(candidate), taken) is None:
            return str(candidate)
    raise Conflict(f"no free /{prefix} left in {NAT_DEFAULT_POOL}; give --subnet CIDR")

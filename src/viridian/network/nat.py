"""NAT switches: the nftables ruleset (masquerading) and the DHCP/DNS service (dnsmasq).

Pure renderers; :mod:`.host` applies them. The ruleset is one table per data folder,
``ip viridian_<tag>``, replaced atomically by one ``nft -f`` transaction (create, delete,
re-create), so established connections keep their NAT mappings (conntrack holds them).
The rule ``ip saddr S ip daddr != S masquerade`` (libvirt's form) leaves traffic inside
the switch alone even when ``br_netfilter`` passes bridged frames through netfilter.

Each NAT switch runs its own dnsmasq (DHCP leases of the subnet, DNS forwarded to the
host's resolvers), bound to the switch's interface only, detached from the service like
QEMU (it outlives a service restart; its pid file says which process is ours).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from viridian.network.subnets import dhcp_range, gateway, parse_subnet

__all__ = ["DNSMASQ", "LEASE_TIME", "dnsmasq_argv", "nat_ruleset", "nat_table"]

DNSMASQ = "dnsmasq"
LEASE_TIME = "1h"


def nat_table(tag: str) -> str:
    return f"viridian_{tag}"


def nat_ruleset(tag: str, nat: Sequence[tuple[str, str]]) -> str:
    """The nft script for ``nat`` = [(bridge, subnet)]; none → the table is removed."""
    table = nat_table(tag)
    lines = [f"table ip {table} {{}}", f"delete table ip {table}"]
    if nat:
        lines += [
            f"table ip {table} {{",
            "\tchain postrouting {",
            "\t\ttype nat hook postrouting priority srcnat; policy accept;",
        ]
        lines += [
            f'\t\tip saddr {subnet} ip daddr != {subnet} masquerade comment "{bridge}"'
            for bridge, subnet in nat
        ]
        lines += ["\t}", "}"]
    return "\n".join(lines) + "\n"


def dnsmasq_argv(bridge: str, subnet: str, folder: Path) -> list[str]:
    """dnsmasq serving ``subnet`` on ``bridge``; pid and lease files in ``folder``."""
    first, last = dhcp_range(subnet)
    gw, mask = gateway(subnet), str(parse_subnet(subnet).netmask)
    return [
        DNSMASQ,
        "--conf-file=/dev/null",
        "--no-hosts",
        "--user=root",
        "--group=root",
        f"--pid-file={folder / 'dnsmasq.pid'}",
        f"--dhcp-leasefile={folder / 'dnsmasq.leases'}",
        f"--interface={bridge}",
        "--bind-interfaces",
        "--except-interface=lo",
        f"--listen-address={gw}",
        f"--dhcp-range={first},{last},{mask},{LEASE_TIME}",
        f"--dhcp-option=option:router,{gw}",
        f"--dhcp-option=option:dns-server,{gw}",
        "--dhcp-authoritative",
        "--strict-order",
    ]

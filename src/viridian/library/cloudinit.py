"""Guest customisation as a cloud-init NoCloud seed: the three files' text, pure.

The seed (cloud-init docs, "Datasources → NoCloud") is a volume labelled ``cidata``
holding ``meta-data`` (instance id, local host name), ``user-data`` (``#cloud-config``:
host name, users with SSH keys, packages, run commands) and ``network-config``
(network config version 2: ``eth0`` with DHCP or a static address). The text is written
in one fixed YAML style — every string a JSON-quoted scalar, which is valid YAML
(YAML 1.2 is a superset of JSON) — so cloud-init reads it and so does the guest kit's
small reader (src/viridian/guestkit/files/seed.sh). The last run command writes
:data:`READY_FILE`, which the service reads through the guest agent: "provisioned: ready".
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from viridian.errors import InvalidSetting

__all__ = [
    "READY_FILE",
    "Customisation",
    "SeedFiles",
    "StaticAddress",
    "User",
    "numbered",
    "seed_files",
]

READY_FILE = "/run/viridian/provisioned"
READY_COMMAND = f"mkdir -p /run/viridian && echo ready > {READY_FILE}"
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_KEY = re.compile(r"(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-\S+)"
                  r" [A-Za-z0-9+/=]+( [^\n\r]*)?")


@dataclass(frozen=True)
class User:
    name: str
    ssh_authorized_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class StaticAddress:
    """``address`` as CIDR (``192.168.213.21/24``); ``gateway`` inside its subnet."""

    address: str
    gateway: str | None = None
    dns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Customisation:
    """What one guest is told; ``static`` None means DHCP on ``eth0``."""

    instance_id: str
    hostname: str
    users: tuple[User, ...] = ()
    static: StaticAddress | None = None
    packages: tuple[str, ...] = ()
    runcmd: tuple[str, ...] = field(default_factory=tuple)

    def checked(self) -> Customisation:
        """Itself when valid; :class:`InvalidSetting` naming the field otherwise."""
        check_hostname(self.hostname)
        for user in self.users:
            _check_user(user)
        if self.static:
            _check_static(self.static)
        for command in (*self.runcmd, *self.packages):
            if "\n" in command or "\r" in command or "\0" in command:
                raise InvalidSetting("runcmd", command, "one line per command or package")
        return self


@dataclass(frozen=True)
class SeedFiles:
    meta_data: str
    user_data: str
    network_config: str

    def as_files(self) -> dict[str, str]:
        return {"meta-data": self.meta_data, "user-data": self.user_data,
                "network-config": self.network_config}


def seed_files(custom: Customisation) -> SeedFiles:
    """The NoCloud seed's files for ``custom`` (checked first)."""
    custom.checked()
    return SeedFiles(_meta_data(custom), _user_data(custom), _network_config(custom.static))


def numbered(base: Customisation, index: int, count: int, instance_id: str) -> Customisation:
    """The customisation of VM ``index`` (1-based) of ``count`` made from ``base``: host
    name ``<base>-<index>`` when ``count`` > 1, and the static address ``index - 1``
    above the base address (same prefix and gateway)."""
    hostname = base.hostname if count == 1 else f"{base.hostname}-{index}"
    static = base.static
    if static is not None:
        iface = ipaddress.ip_interface(static.address)
        address = ipaddress.ip_interface(f"{iface.ip + (index - 1)}/{iface.network.prefixlen}")
        if address.ip not in iface.network or address.ip == iface.network.broadcast_address:
            raise InvalidSetting("ip", static.address, f"a base address with room for {count} "
                                 f"addresses in {iface.network}")
        static = replace(static, address=str(address))
    return replace(base, hostname=hostname, static=static, instance_id=instance_id)


def check_hostname(name: str) -> str:
    """RFC 1123 host name (dot-separated labels of 1..63 letters, digits, hyphens)."""
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in name.split(".")):
        raise InvalidSetting("hostname", name, "RFC 1123 host name: labels of 1..63 "
                             "characters A-Z a-z 0-9 -, not starting or ending with -")
    return name


def _check_user(user: User) -> None:
    if not _USER.fullmatch(user.name):
        raise InvalidSetting("user", user.name, "a user name of 1..32 characters a-z 0-9 _ -")
    for key in user.ssh_authorized_keys:
        if not _KEY.fullmatch(key):
            raise InvalidSetting("ssh_key", key[:40], "one OpenSSH public key line "
                                 "('ssh-ed25519 AAAA… comment')")


def _check_static(static: StaticAddress) -> None:
    try:
        iface = ipaddress.ip_interface(static.address)
        if "/" not in static.address or iface.version != 4:
            raise ValueError(static.address)
        if static.gateway and ipaddress.ip_address(static.gateway) not in iface.network:
            raise ValueError(static.gateway)
        for server in static.dns:
            ipaddress.ip_address(server)
    except ValueError as err:
        raise InvalidSetting("ip", str(err), "an IPv4 address with prefix (10.0.0.5/24), "
                             "a gateway inside its subnet, DNS servers as addresses") from err


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=True)


def _list(indent: str, items: Sequence[str]) -> list[str]:
    return [f"{indent}- {_q(item)}" for item in items]


def _meta_data(custom: Customisation) -> str:
    return f"instance-id: {_q(custom.instance_id)}\nlocal-hostname: {_q(custom.hostname)}\n"


def _user_data(custom: Customisation) -> str:
    lines = ["#cloud-config", f"hostname: {_q(custom.hostname)}",
             "preserve_hostname: false"]
    if custom.users:
        lines.append("users:")
        for user in custom.users:
            lines.append(f"  - name: {_q(user.name)}")
            if user.ssh_authorized_keys:
                lines.append("    ssh_authorized_keys:")
                lines.extend(_list("      ", user.ssh_authorized_keys))
    if custom.packages:
        lines.append("packages:")
        lines.extend(_list("  ", custom.packages))
    lines.append("runcmd:")
    lines.extend(_list("  ", (*custom.runcmd, READY_COMMAND)))
    return "\n".join(lines) + "\n"


def _network_config(static: StaticAddress | None) -> str:
    lines = ["version: 2", "ethernets:", "  eth0:"]
    if static is None:
        return "\n".join([*lines, "    dhcp4: true"]) + "\n"
    lines += ["    dhcp4: false", "    addresses:", *_list("      ", [static.address])]
    if static.gateway:
        lines.append(f"    gateway4: {_q(static.gateway)}")
    if static.dns:
        lines += ["    nameservers:", "      addresses:", *_list("        ", static.dns)]
    return "\n".join(lines) + "\n"

"""MAC addresses of network adapters: the host's dynamic pool and uniqueness on the host.

Dynamic pool (Hyper-V's scheme): ``00:15:5D`` (Microsoft's OUI, as Hyper-V uses), two
octets of this host, then a counter octet ``00``..``FF`` — 256 addresses per host.
The host octets are the last two of the MAC of the host's first physical network adapter
(one with a device behind it in sysfs; virtual bridges, taps and veths come and go), taken
once and kept in the catalog, so the pool never moves after a service restart or when
interfaces appear. A dynamic MAC is assigned when the adapter is defined, stored in the
catalog with the VM, and never handed out again while any VM holds it.

Every MAC — static or dynamic — must be unique on the host: a static MAC that another
adapter of any VM uses is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from viridian.errors import Conflict

if TYPE_CHECKING:
    from viridian.service.catalog import VMRecord


class MetaStore(Protocol):
    """Where the pool's host octets are kept (the catalog's meta table)."""

    def get_meta(self, key: str) -> str | None:
        """The value of ``key``, or None."""

    def set_meta(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (committed)."""

MAC_PREFIX = "00:15:5D"
POOL_SIZE = 256
META_POOL_OCTETS = "mac_pool_host_octets"
SYS_CLASS_NET = Path("/sys/class/net")


def pool_octets(catalog: MetaStore) -> str:
    """``XX:YY``: this host's pool octets (decided once, then read from the catalog)."""
    stored = catalog.get_meta(META_POOL_OCTETS)
    if stored:
        return str(stored)
    octets = host_adapter_octets(SYS_CLASS_NET)
    catalog.set_meta(META_POOL_OCTETS, octets)
    return octets


def host_adapter_octets(sys_class_net: Path) -> str:
    """The last two octets of the first physical adapter's MAC (else any adapter's)."""
    interfaces = sorted(p for p in sys_class_net.iterdir() if p.name != "lo")
    physical = [p for p in interfaces if (p / "device").exists()]
    for iface in [*physical, *interfaces]:
        try:
            mac = (iface / "address").read_text().strip().upper()
        except OSError:
            continue
        if len(mac) == 17 and mac != "00:00:00:00:00:00":
            return mac[-5:]
    return "00:00"


def macs_in_use(vms: Iterable[VMRecord], except_vm: str | None) -> dict[str, str]:
    """MAC → "VM 'name' (network adapter N)" for every adapter of every other VM."""
    used: dict[str, str] = {}
    for vm in vms:
        if vm.id == except_vm:
            continue
        for index, adapter in enumerate(vm.settings.network_adapters, start=1):
            if adapter.mac:
                used[adapter.mac] = f"VM '{vm.name}' (network adapter {index})"
    return used


def assign_macs(settings: dict[str, Any], used: Mapping[str, str], octets: str) -> None:
    """Check the MACs of ``settings``' adapters and give each dynamic one without a MAC
    the lowest free pool address (in place).

    :raises Conflict: a MAC is used twice in the VM or by another VM, or the pool is full.
    """
    taken = _Taken(used)  # no copy of ``used``: it may hold every MAC on the host
    adapters = settings.get("network_adapters", [])
    for index, adapter in enumerate(adapters, start=1):
        mac = adapter.get("mac")
        if mac:
            _check_free(mac, index, taken)
            taken.mine[mac] = f"network adapter {index} of this VM"
    for index, adapter in enumerate(adapters, start=1):
        if adapter.get("mac_mode", "dynamic") == "dynamic" and not adapter.get("mac"):
            adapter["mac"] = next_pool_mac(taken, octets)
            taken.mine[adapter["mac"]] = f"network adapter {index} of this VM"


class _Taken(Mapping[str, str]):
    """The MACs of other VMs (``used``, not copied) plus those of this VM (``mine``)."""

    def __init__(self, used: Mapping[str, str]) -> None:
        self.used = used
        self.mine: dict[str, str] = {}

    def __getitem__(self, mac: str) -> str:
        return self.mine[mac] if mac in self.mine else self.used[mac]

    def __iter__(self) -> Iterator[str]:
        yield from self.mine
        yield from (mac for mac in self.used if mac not in self.mine)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _check_free(mac: str, index: int, taken: Mapping[str, str]) -> None:
    holder = taken.get(mac)
    if holder is not None:
        raise Conflict(
            f"MAC address {mac} of network adapter {index} is already used by {holder}; "
            "a MAC address must be unique on the host (use --mac dynamic or another "
            "static address); nothing was changed",
            mac=mac,
            adapter=index,
            used_by=holder,
        )


def next_pool_mac(taken: Mapping[str, str], octets: str) -> str:
    """The lowest pool address not in ``taken``. Raises :class:`Conflict` when full."""
    for counter in range(POOL_SIZE):
        mac = f"{MAC_PREFIX}:{octets}:{counter:02X}"
        if mac not in taken:
            return mac
    raise Conflict(
        f"the dynamic MAC address pool of this host ({MAC_PREFIX}:{octets}:00-FF, "
        f"{POOL_SIZE} addresses) is exhausted; use static MAC addresses; nothing was changed",
        pool=f"{MAC_PREFIX}:{octets}:00-FF",
    )

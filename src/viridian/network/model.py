"""The virtual network as the service defines it: switches and the ports on them.

Pure data. A :class:`Switch` is Hyper-V's virtual switch (external, internal, private,
plus NAT like later Hyper-V's default switch); a :class:`Port` is one VM network adapter
connected through its tap. VLAN numbers follow IEEE 802.1Q: 1..4094, and the switch's
default VLAN is 1 — untagged adapters, the host's interface and the untagged traffic of
the physical network are in VLAN 1, so an access port on VLAN 1 equals an untagged one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["DEFAULT_VLAN", "Port", "Route", "Switch", "SwitchType", "Uplink"]

DEFAULT_VLAN = 1


class SwitchType(StrEnum):
    EXTERNAL = "external"  # bound to a physical adapter; VMs reach the physical network
    INTERNAL = "internal"  # VMs and the host
    PRIVATE = "private"  # VMs only
    NAT = "nat"  # internal + masquerading + DHCP/DNS for the VMs


@dataclass(frozen=True)
class Route:
    """A route of the host (``ip route``): ``dst`` "default" or a CIDR; ``gateway`` may
    be None (an on-link route)."""

    dst: str
    gateway: str | None = None
    metric: int | None = None
    family: int = 4  # 4 or 6


@dataclass(frozen=True)
class Uplink:
    """What an external switch took over from its physical adapter: the host's addresses
    (CIDR, e.g. "192.0.2.2/24") and routes, given back when the switch is removed, and the
    adapter's MAC (the switch's host interface uses it, so DHCP leases and ARP caches
    stay valid)."""

    adapter: str
    mac: str
    addresses: tuple[str, ...] = ()
    routes: tuple[Route, ...] = ()


@dataclass(frozen=True)
class Switch:
    """``number`` names its bridges on the host (see :mod:`.names`); ``subnet`` (CIDR) is
    the internal/NAT network whose first host address belongs to the host."""

    name: str
    type: SwitchType
    number: int
    adapter: str | None = None
    allow_management_os: bool = False
    subnet: str | None = None
    uplink: Uplink | None = None
    notes: str = ""


@dataclass(frozen=True)
class Port:
    """A VM adapter's tap. ``switch`` None = the tap exists (QEMU holds it) but is not
    connected. Access mode: ``access_vlan`` (None = untagged, VLAN 1). Trunk mode:
    ``trunk_vlans`` non-empty, tagged; untagged frames belong to ``native_vlan`` (None =
    VLAN 1)."""

    tap: str
    vm: str  # the VM's name (for messages)
    vm_id: str
    nic: int  # 1-based, as `vm show` numbers adapters
    switch: str | None
    mac: str = ""
    access_vlan: int | None = None
    trunk_vlans: tuple[int, ...] = ()
    native_vlan: int | None = None

    @property
    def is_trunk(self) -> bool:
        return bool(self.trunk_vlans)

    @property
    def untagged_vlan(self) -> int:
        """The VLAN of the frames the guest sends and receives untagged."""
        vlan = self.native_vlan if self.is_trunk else self.access_vlan
        return DEFAULT_VLAN if vlan is None else vlan

    @property
    def vlans(self) -> frozenset[int]:
        """Every VLAN the port is a member of."""
        return frozenset({self.untagged_vlan, *self.trunk_vlans})

    def describe(self) -> str:
        return f"network adapter {self.nic} of VM '{self.vm}'"

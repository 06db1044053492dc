"""What the running kernel can do for virtual switches, found by probing (never by
version): bridge VLAN filtering (``CONFIG_BRIDGE_VLAN_FILTERING``) and 802.1Q VLAN links
(``CONFIG_VLAN_8021Q``).

Two VLAN modes follow:

- ``vlan_filtering`` — one VLAN-aware bridge per switch; access and trunk ports, tagged
  external uplinks (every stock distribution kernel).
- ``bridge_per_vlan`` — one bridge per VLAN inside the switch: VLAN isolation still
  holds; trunks are refused, and tagged external uplinks need 802.1Q links (else refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["FULL", "MINIMAL", "KernelFeatures", "VlanMode"]

VLAN_FILTERING_FEATURE = "bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)"
VLAN_LINKS_FEATURE = "802.1Q VLAN links (CONFIG_VLAN_8021Q)"


class VlanMode(StrEnum):
    VLAN_FILTERING = "vlan_filtering"
    BRIDGE_PER_VLAN = "bridge_per_vlan"


@dataclass(frozen=True)
class KernelFeatures:
    bridge_vlan_filtering: bool
    vlan_links: bool
    errors: tuple[str, ...] = ()  # what the probe was told, for `switch features`

    @property
    def vlan_mode(self) -> VlanMode:
        if self.bridge_vlan_filtering:
            return VlanMode.VLAN_FILTERING
        return VlanMode.BRIDGE_PER_VLAN

    @property
    def can_tag_uplink(self) -> bool:
        return self.bridge_vlan_filtering or self.vlan_links

    def to_dict(self) -> dict[str, object]:
        return {
            "bridge_vlan_filtering": self.bridge_vlan_filtering,
            "vlan_links": self.vlan_links,
            "vlan_mode": self.vlan_mode.value,
            "probe_errors": list(self.errors),
        }


FULL = KernelFeatures(bridge_vlan_filtering=True, vlan_links=True)
MINIMAL = KernelFeatures(bridge_vlan_filtering=False, vlan_links=False)

"""Virtual networks: Hyper-V's external, internal and private switches (plus NAT) on
Linux bridges and taps, with 802.1Q VLANs.

Pure core, thin shell:

- :mod:`.model` — switches, ports, uplinks (data); :mod:`.codec` — their dict shape
- :mod:`.features` — what the kernel can do; :mod:`.probe` — finding out (shell)
- :mod:`.names` — host interface names and ownership aliases
- :mod:`.desired` — switches + ports + features → the host state they need (pure)
- :mod:`.observed` — iproute2 JSON → the host state now (pure parsers)
- :mod:`.plan` — desired vs observed → ordered iproute2/sysctl operations (pure)
- :mod:`.subnets`, :mod:`.nat`, :mod:`.uplink` — subnets, NAT rules + dnsmasq, external
  adapters (pure)
- :mod:`.host` — the shell: observe, apply plans, nft, dnsmasq

The service (:mod:`viridian.service.switches`) stores switches in the catalog and runs
*reconcile* = observe → plan → apply whenever something changes and at start.
"""

from viridian.network.codec import switch_from_dict, switch_to_dict
from viridian.network.desired import DesiredState, check_port, desired_state
from viridian.network.features import FULL, MINIMAL, KernelFeatures, VlanMode
from viridian.network.model import DEFAULT_VLAN, Port, Route, Switch, SwitchType, Uplink
from viridian.network.observed import ObservedState
from viridian.network.plan import Op, plan_changes, plan_text, release_uplink

__all__ = [
    "DEFAULT_VLAN",
    "FULL",
    "MINIMAL",
    "DesiredState",
    "KernelFeatures",
    "ObservedState",
    "Op",
    "Port",
    "Route",
    "Switch",
    "SwitchType",
    "Uplink",
    "VlanMode",
    "check_port",
    "desired_state",
    "plan_changes",
    "plan_text",
    "release_uplink",
    "switch_from_dict",
    "switch_to_dict",
]

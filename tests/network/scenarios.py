"""Switch/port scenarios shared by the golden plan tests and the kernel test."""

from __future__ import annotations

from viridian.network import Port, Route, Switch, SwitchType, Uplink

TAG = "ab12"
VM_A, VM_B, VM_C = (
    "aaaaaaaa-0000-4000-8000-000000000001",
    "bbbbbbbb-0000-4000-8000-000000000002",
    "cccccccc-0000-4000-8000-000000000003",
)

UPLINK = Uplink(
    "ethlab0",
    "02:00:00:00:00:E1",
    ("10.9.0.2/24",),
    (Route("default", "10.9.0.1", 100), Route("10.8.0.0/16", "10.9.0.254")),
)
SWITCHES = [
    Switch("Lab", SwitchType.PRIVATE, 1),
    Switch("Host only", SwitchType.INTERNAL, 2, subnet="192.168.50.0/24"),
    Switch("Default", SwitchType.NAT, 3, subnet="172.30.0.0/24"),
    Switch("Uplink", SwitchType.EXTERNAL, 4, adapter="ethlab0", uplink=UPLINK),
]


def port(vm: str, nic: int, switch: str | None, **vlans: object) -> Port:
    from viridian.network.names import tap_name

    return Port(tap_name(vm, nic - 1), vm[:1].upper(), vm, nic, switch, **vlans)  # type: ignore[arg-type]


ACCESS_PORTS = [
    port(VM_A, 1, "Lab", access_vlan=10),
    port(VM_B, 1, "Lab", access_vlan=10),
    port(VM_C, 1, "Lab", access_vlan=20),
    port(VM_A, 2, "Host only"),
    port(VM_B, 2, "Default"),
    port(VM_C, 2, "Uplink"),
    port(VM_C, 3, None),
]
TRUNK_PORTS = [port(VM_A, 1, "Lab", trunk_vlans=(10, 20, 30), native_vlan=5)]
EXTERNAL_VLAN_PORTS = [port(VM_A, 1, "Uplink", access_vlan=42)]

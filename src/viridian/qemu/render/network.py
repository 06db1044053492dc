"""Network adapters: synthetic = ``virtio-net-pci``, legacy = ``tulip`` (DEC 21143 family,
standing in for Hyper-V's emulated DEC 21140).

Adapter i is device ``nic<i>``; a connected adapter has netdev ``net<i>``. A switch of
None leaves the adapter unconnected (no netdev; QEMU warns "nic has no peer", which is
expected). The switch ``user`` is user-mode NAT until virtual switches exist; any other
name is refused. ``vlan_id`` belongs to the virtual switch, not to QEMU, and is not
rendered. Legacy adapters take part in the boot order; synthetic ones do not. QEMU 7.2
ships no PXE option ROM for ``tulip``, so until one is supplied (``romfile=``, a later
change) SeaBIOS passes over a legacy adapter in the startup order.
"""

from __future__ import annotations

from collections.abc import Mapping

from viridian.errors import InvalidSetting, NotFound
from viridian.model import AdapterKind, NetworkAdapter, VMSettings
from viridian.qemu.render.naming import netdev_id, nic_id
from viridian.qemu.render.options import opts

USER_SWITCH = "user"
_MODELS = {AdapterKind.SYNTHETIC: "virtio-net-pci", AdapterKind.LEGACY: "tulip"}


def render_network(settings: VMSettings, boot: Mapping[str, int]) -> list[str]:
    """Every adapter with its backend, in list order.

    Raises :class:`InvalidSetting` for an adapter without a MAC (the service assigns
    dynamic MACs before a start) and :class:`NotFound` for an unknown switch.
    """
    args: list[str] = []
    for index, adapter in enumerate(settings.network_adapters):
        args += _render_adapter(index, adapter, boot)
    return args


def _render_adapter(index: int, adapter: NetworkAdapter, boot: Mapping[str, int]) -> list[str]:
    setting = f"network_adapters[{index}]"
    if adapter.mac is None:
        raise InvalidSetting(
            f"{setting}.mac",
            None,
            "a MAC address (the service assigns a dynamic MAC before a start)",
        )
    args = _render_backend(setting, index, adapter.switch)
    device = opts(
        _MODELS[adapter.kind],
        netdev=None if adapter.switch is None else netdev_id(index),
        mac=adapter.mac,
        id=nic_id(index),
        bootindex=boot.get(nic_id(index)),
    )
    return [*args, "-device", device]


def _render_backend(setting: str, index: int, switch: str | None) -> list[str]:
    if switch is None:
        return []
    if switch != USER_SWITCH:
        raise NotFound(
            f"virtual switch {switch!r} does not exist ({setting}.switch); "
            f"allowed: null (not connected) or {USER_SWITCH!r} (user-mode NAT)",
            setting=f"{setting}.switch",
            value=switch,
        )
    return ["-netdev", opts("user", id=netdev_id(index))]

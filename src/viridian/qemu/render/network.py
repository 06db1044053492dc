"""Network adapters: synthetic = ``virtio-net-pci``, legacy = ``tulip`` (DEC 21143 family,
standing in for Hyper-V's emulated DEC 21140).

Adapter i is device ``nic<i>``; a connected adapter has netdev ``net<i>``. A switch of
None leaves the adapter unconnected (no netdev; QEMU warns "nic has no peer", which is
expected). The switch ``user`` is user-mode NAT (no root needed). Any other switch name
is a virtual switch of the service: the adapter's backend is the tap
:func:`viridian.network.names.tap_name` ``(vm_id, i)``, which the service creates
(persistent, already on the switch's bridge with its VLAN) before QEMU starts and
removes after QEMU ended;
``script=no,downscript=no``: QEMU runs no helper scripts. Whether the switch exists is
the service's check, not the renderer's. VLANs belong to the switch and are not
rendered. Legacy adapters take part in the boot order; synthetic ones do not. QEMU 7.2
ships no PXE option ROM for ``tulip``: viridian's own boot ROM and iPXE are added by
:mod:`viridian.qemu.render.netboot`.
"""

from __future__ import annotations

from collections.abc import Mapping

from viridian.errors import InvalidSetting
from viridian.model import USER_SWITCH, AdapterKind, NetworkAdapter, VMSettings
from viridian.network.names import tap_name
from viridian.qemu.render.naming import netdev_id, nic_id
from viridian.qemu.render.options import opts

_MODELS = {AdapterKind.SYNTHETIC: "virtio-net-pci", AdapterKind.LEGACY: "tulip"}


def render_network(settings: VMSettings, boot: Mapping[str, int], vm_id: str) -> list[str]:
    """Every adapter with its backend, in list order.

    Raises :class:`InvalidSetting` for an adapter without a MAC (the service assigns
    dynamic MACs before a start).
    """
    args: list[str] = []
    for index, adapter in enumerate(settings.network_adapters):
        args += _render_adapter(vm_id, index, adapter, boot)
    return args


def _render_adapter(
    vm_id: str, index: int, adapter: NetworkAdapter, boot: Mapping[str, int]
) -> list[str]:
    setting = f"network_adapters[{index}]"
    if adapter.mac is None:
        raise InvalidSetting(
            f"{setting}.mac",
            None,
            "a MAC address (the service assigns a dynamic MAC before a start)",
        )
    args = _render_backend(vm_id, index, adapter.switch)
    device = opts(
        _MODELS[adapter.kind],
        netdev=None if adapter.switch is None else netdev_id(index),
        mac=adapter.mac,
        id=nic_id(index),
        bootindex=boot.get(nic_id(index)),
    )
    return [*args, "-device", device]


def _render_backend(vm_id: str, index: int, switch: str | None) -> list[str]:
    if switch is None:
        return []
    if switch == USER_SWITCH:
        return ["-netdev", opts("user", id=netdev_id(index))]
    tap = opts("tap", id=netdev_id(index), ifname=tap_name(vm_id, index), script="no",
               downscript="no")
    return ["-netdev", tap]

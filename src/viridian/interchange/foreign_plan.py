"""The import plan of a foreign VM (VMware, Virtual Server/Virtual PC, Hyper-V 2008,
libvirt) and its mapping to viridian settings (pure).

Every reader produces the same plan as OVF — an :class:`~viridian.interchange.ovf.OvfSystem`
(memory, processors, drives on their buses, adapters, what it could not read) — plus the
adapters' MAC addresses, which OVF does not carry. The mapping is OVF's
(:func:`viridian.interchange.ovf_settings.map_system`: generation-1 rules, values brought
into viridian's limits, every decision listed in ``unmapped``); an adapter with a valid
MAC keeps it as a static MAC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from viridian.errors import InvalidSetting
from viridian.interchange.ovf import OvfSystem
from viridian.interchange.ovf_settings import Mapped, map_system
from viridian.model.choices import MacMode
from viridian.model.mac import normalise_mac

MAC = re.compile(r"^[0-9a-f]{2}([:-]?)[0-9a-f]{2}(\1[0-9a-f]{2}){4}$", re.IGNORECASE)
KINDS = ("vmware", "virtual-server", "hyper-v-2008", "libvirt")


@dataclass(frozen=True)
class ForeignVM:
    """``kind`` one of :data:`KINDS`; ``macs`` per adapter of ``system.nics`` (None: the
    source had none or let its host generate one)."""

    kind: str
    system: OvfSystem
    macs: tuple[str | None, ...]


def map_foreign(vm: ForeignVM, name: str) -> Mapped:
    """``vm`` as the settings of a new VM called ``name`` (drive paths as the source
    wrote them); adapters with a MAC get it as a static MAC."""
    mapped = map_system(vm.system, name)
    notes = list(mapped.unmapped)
    adapters = list(mapped.settings.network_adapters)
    for index, mac in enumerate(vm.macs[:len(adapters)]):
        normal = normal_mac(mac)
        if normal:
            adapters[index] = replace(adapters[index], mac_mode=MacMode.STATIC, mac=normal)
            notes.append(f"adapter {index + 1} keeps MAC address {normal} (static)")
        elif mac:
            notes.append(f"adapter {index + 1}: MAC address {mac!r} not understood, a new "
                         "one is assigned")
    settings = replace(mapped.settings, network_adapters=tuple(adapters))
    return Mapped(settings, tuple(notes), mapped.disks)


def normal_mac(mac: str | None) -> str | None:
    """``mac`` in viridian's canonical form (:func:`viridian.model.mac.normalise_mac`;
    also from bare hex ``0003FFA51F38`` as Virtual PC writes it), or None when it is no
    unicast MAC address."""
    if not mac or not MAC.match(mac.strip()):
        return None
    digits = re.sub(r"[:-]", "", mac.strip())
    try:
        return normalise_mac(":".join(digits[i:i + 2] for i in range(0, 12, 2)),
                             setting="mac")
    except InvalidSetting:
        return None

"""Virtual switches of the service (Hyper-V's Virtual Network ServiceCore) and the ports of
running VMs on them.

State: the switches are in the catalog (meta key ``switches``, a JSON list; ``network_tag``
names this data folder's interfaces, see :mod:`viridian.network.names`). The host is made
to match by *reconcile* — desired state (pure) → observe → plan (pure) → apply — at
service start (after the running VMs were re-adopted, so their taps are kept and their
traffic continues), after every switch change, and around every VM run:

- ``launching`` (before QEMU starts, also for a restore): the VM's taps are created on
  their switches with their VLANs; a missing switch or a VLAN mode the kernel lacks
  fails the start with the reason;
- ``adopted``: a QEMU launched without ``launching`` (or re-adopted) gets its taps
  attached;
- ``exited``: the VM's taps are removed.

Leftovers of crashed runs (interfaces with this data folder's alias, no longer desired;
dnsmasq of removed switches) are removed by the same reconcile. Without CAP_NET_ADMIN
only user-mode networking (``--switch user``) is possible; creating a switch says so.
"""

from __future__ import annotations

import json
import logging
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from viridian.errors import Conflict, InvalidSetting, NotFound, ViridianError
from viridian.model import USER_SWITCH, NetworkAdapter, settings_from_dict
from viridian.model.states import VMState
from viridian.network import (
    KernelFeatures,
    Port,
    Switch,
    SwitchType,
    check_port,
    desired_state,
    plan_changes,
    release_uplink,
    switch_from_dict,
    switch_to_dict,
)
from viridian.network.desired import RouteOn
from viridian.network.host import HostNetwork, has_net_admin
from viridian.network.names import alias_prefix, bridge_name, tap_name
from viridian.network.nat import nat_ruleset
from viridian.network.observed import ObservedState
from viridian.network.plan import Op
from viridian.network.probe import probe_features
from viridian.network.subnets import (
    first_free_subnet,
    gateway,
    host_interface_address,
    overlapping,
    parse_subnet,
)
from viridian.network.uplink import check_adapter, management_adapters, uplink_of
from viridian.service.capability import Capability, SettingsChange
from viridian.service.catalog import Catalog
from viridian.service.context import ServiceContext
from viridian.service.switches.routes import install_switch_routes
from viridian.service.vms.live import LiveVM

log = logging.getLogger(__name__)


META_SWITCHES = "switches"
META_TAG = "network_tag"
SWITCH_TYPES = ", ".join(t.value for t in SwitchType)


def is_virtual(switch: str | None) -> bool:
    """A switch of this service (not "not connected", not user-mode NAT)."""
    return switch is not None and switch != USER_SWITCH


Adapters = Sequence[NetworkAdapter]


def vm_ports(vm_id: str, vm_name: str, launched: Adapters, current: Adapters) -> list[Port]:
    """The ports of a VM: one per adapter QEMU was launched with on a virtual switch,
    connected as the current settings say (a disconnected adapter keeps its tap)."""
    ports = []
    for index, first in enumerate(launched):
        if not is_virtual(first.switch):
            continue
        now = current[index] if index < len(current) else NetworkAdapter()
        ports.append(
            Port(
                tap=tap_name(vm_id, index),
                vm=vm_name,
                vm_id=vm_id,
                nic=index + 1,
                switch=now.switch if is_virtual(now.switch) else None,
                mac=now.mac or "",
                access_vlan=now.vlan_id,
                trunk_vlans=now.trunk_vlans,
                native_vlan=now.native_vlan,
            )
        )
    return ports


def launched_adapters(live: LiveVM) -> tuple[NetworkAdapter, ...]:
    """The adapters QEMU runs with: its runtime record's (the dict boundary, parsed here),
    the current settings' when no QEMU runs. A record this version cannot read (written
    by an older one) counts as the current settings."""
    worker = live.worker
    if worker is None:
        return live.record.settings.network_adapters
    try:
        return settings_from_dict(worker.record.settings).network_adapters
    except ViridianError as err:
        log.warning("VM %s: runtime record settings unreadable (%s); using its settings",
                    live.record.name, err)
        return live.record.settings.network_adapters


def adapters_changeable_live(current: Adapters, new: Adapters) -> bool:
    """Hyper-V lets a running VM's adapter change switch and VLAN (not kind, MAC or
    count). Here: between virtual switches (or disconnecting one); user-mode NAT and
    unconnected adapters keep their backend until the next start."""
    if len(current) != len(new):
        return False
    for old, now in zip(current, new, strict=True):
        if (old.kind, old.mac_mode, old.mac) != (now.kind, now.mac_mode, now.mac):
            return False
        if old.switch == now.switch:
            continue
        if not (is_virtual(old.switch) or is_virtual(now.switch)):
            return False
        if USER_SWITCH in (old.switch, now.switch):
            return False
    return True


class SwitchStore:
    """The switches in the catalog, committed before any host change."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def load(self) -> list[Switch]:
        raw = self.catalog.get_meta(META_SWITCHES)
        return [switch_from_dict(item) for item in json.loads(raw)] if raw else []

    def save(self, switches: list[Switch]) -> None:
        self.catalog.set_meta(META_SWITCHES, json.dumps([switch_to_dict(s) for s in switches]))

    def find(self, name: str) -> Switch:
        for switch in self.load():
            if switch.name == name:
                return switch
        names = ", ".join(s.name for s in self.load()) or "none"
        raise NotFound(
            f"no virtual switch named '{name}' (switches: {names}; "
            f"'{USER_SWITCH}' is user-mode NAT)",
            switch=name,
        )

    def tag(self) -> str:
        tag = self.catalog.get_meta(META_TAG)
        if not tag:
            tag = secrets.token_hex(2)
            self.catalog.set_meta(META_TAG, tag)
        return str(tag)


class SwitchService(Capability):
    """Switches and ports of one service."""

    name = "switches"

    def __init__(self, context: ServiceContext, host: HostNetwork | None = None) -> None:
        self.context = context
        self.store = SwitchStore(context.catalog)
        self.host = host or HostNetwork()
        self.folder = Path(context.data_dir) / "switches"
        self.tag = self.store.tag()
        self.features: KernelFeatures | None = None
        self.last_error: str | None = None
        self.last_plan: list[str] = []
        self._started = False
        self._fresh: set[str] = set()  # VMs whose taps `launching` just made
        self._with_ports: set[str] = set()  # VMs whose QEMU has taps
        self._launching: dict[str, LiveVM] = {}  # VMs between `launching` and `adopted`
        self._nat_removed = False  # this process removed the NAT table (no NAT switch)

    def install_routes(self, app: FastAPI) -> None:
        install_switch_routes(app, self)

    # --- start-up -----------------------------------------------------------------------

    def start(self) -> None:
        """After the VMs were recovered: probe the kernel, re-create the switches and
        clean leftovers. A failure is logged and shown, never stops the service."""
        self._started = True
        if not has_net_admin():
            return
        self.features = probe_features()
        self._reconcile_logged("service start")

    def kernel(self) -> KernelFeatures:
        if self.features is None:
            self.features = probe_features()
        return self.features

    # --- VM events (viridian.service.capability) ------------------------------------------

    def launching(self, live: LiveVM) -> None:
        adapters = live.record.settings.network_adapters
        if not any(is_virtual(a.switch) for a in adapters):
            return
        self._require_privilege()
        known = {s.name: s for s in self.store.load()}
        for port in vm_ports(live.record.id, live.record.name, adapters, adapters):
            self._check_port(known, port)
        self._with_ports.add(live.record.id)
        self._launching[live.record.id] = live
        self.reconcile(launching=live)
        self._fresh.add(live.record.id)

    def adopted(self, live: LiveVM) -> None:
        self._launching.pop(live.record.id, None)
        if self._has_ports(live):
            self._with_ports.add(live.record.id)
        if live.record.id in self._fresh:
            self._fresh.discard(live.record.id)
        elif self._started and self._has_ports(live):
            self._reconcile_logged(f"VM '{live.record.name}' adopted")

    def exited(self, live: LiveVM) -> None:
        self._fresh.discard(live.record.id)
        self._launching.pop(live.record.id, None)
        if live.record.id in self._with_ports:
            self._with_ports.discard(live.record.id)
            if self._started:
                self._reconcile_logged(f"VM '{live.record.name}' exited")

    # --- settings checks (before a change is committed) ---------------------------------

    def check_settings(self, change: SettingsChange) -> None:
        """Refuse adapters on unknown switches, VLANs the kernel cannot give, a MAC equal
        to a host interface on the switch, and live changes QEMU's backend cannot follow.

        :raises NotFound: unknown switch. :raises Conflict: the other refusals.
        """
        adapters = change.new.network_adapters
        known = {s.name: s for s in self.store.load()}
        for index, adapter in enumerate(adapters):
            if is_virtual(adapter.switch):
                port = vm_ports(change.vm_id, change.vm_name, [adapter], [adapter])[0]
                self._check_port(known, replace(port, nic=index + 1))
        if change.vm is not None and change.vm.worker is not None:
            launched = launched_adapters(change.vm)
            for index, (first, now) in enumerate(zip(launched, adapters, strict=False)):
                if is_virtual(now.switch) and not is_virtual(first.switch):
                    raise Conflict(
                        f"network adapter {index + 1} of VM '{change.vm_name}' was started "
                        "without a virtual switch; connecting it needs a restart of the VM "
                        "(turn it off, connect, start); nothing was changed",
                        vm=change.vm_name,
                        adapter=index + 1,
                    )

    def settings_changed(self, live: LiveVM) -> None:
        """After a committed settings change: a running VM's ports follow at once."""
        if self._has_ports(live):
            self.reconcile()

    # --- switches -------------------------------------------------------------------------

    def list_switches(self) -> list[dict[str, Any]]:
        return [self._view(s) for s in self.store.load()]

    def show_switch(self, name: str) -> dict[str, Any]:
        return self._view(self.store.find(name), detail=True)

    def create_switch(
        self,
        name: str,
        kind: str,
        adapter: str | None,
        allow_management_os: bool,
        subnet: str | None,
        notes: str = "",
    ) -> dict[str, Any]:
        """Define the switch, then build it; a failure leaves neither.

        :raises InvalidSetting/BadRequest: bad name, type, subnet, options.
        :raises Conflict: name taken, no privilege, adapter refused.
        """
        switch_type = _switch_type(kind)
        _check_name(name)
        switches = self.store.load()
        if any(s.name == name for s in switches) or name == USER_SWITCH:
            raise Conflict(
                f"a virtual switch named '{name}' already exists; nothing was changed", switch=name
            )
        self._require_privilege()
        observed = self.host.observe()
        switch = Switch(
            name,
            switch_type,
            _free_number(switches),
            notes=notes,
            **self._type_options(
                switch_type, adapter, allow_management_os, subnet, observed, switches
            ),
        )
        self.store.save([*switches, switch])
        try:
            self.reconcile()
        except ViridianError:
            self._undo_create(switch)
            raise
        return self._view(switch, detail=True)

    def remove_switch(self, name: str) -> dict[str, Any]:
        """:raises Conflict: adapters of VMs still use the switch (named)."""
        switch = self.store.find(name)
        users = self._users(name)
        if users:
            raise Conflict(
                f"virtual switch '{name}' is in use by {', '.join(users)}; disconnect them "
                f"first ('viridian vm nic set VM --nic N --switch none') or connect them to "
                "another switch; nothing was changed",
                switch=name,
                used_by=users,
            )
        self._require_privilege()
        if switch.uplink is not None:
            self._release(switch)
        self.store.save([s for s in self.store.load() if s.name != name])
        self.reconcile()
        return {"removed": name}

    # --- reconcile ------------------------------------------------------------------------

    def reconcile(self, launching: LiveVM | None = None) -> list[Op]:
        """Make the host match the catalog and the running VMs; returns what was done.

        :raises Conflict: the launching VM needs what the kernel lacks.
        :raises HostError: a command failed (the error names it).
        """
        features = self.kernel()
        observed = self.host.observe()
        switches = [_without_missing_adapter(s, observed) for s in self.store.load()]
        ports = self._ports(launching, switches, features)
        desired = desired_state(self.tag, switches, ports, features)
        observed = replace(observed, sysctls=self.host.read_sysctls(k for k, _ in desired.sysctls))
        ops = plan_changes(desired, observed, self.tag)
        self.host.apply(ops)
        self._nat(switches)
        self.last_plan = [op.text() for op in ops]
        self.last_error = None
        return ops

    def _reconcile_logged(self, why: str) -> None:
        try:
            self.reconcile()
        except ViridianError as err:
            self.last_error = f"{why}: {err}"
            log.error("virtual switches: %s", self.last_error)

    def _ports(
        self, launching: LiveVM | None, switches: list[Switch], features: KernelFeatures
    ) -> list[Port]:
        known = {s.name: s for s in switches}
        ports: list[Port] = []
        for live in self.context.vms().values():
            if live is launching or self._still_launching(live):
                launched = live.record.settings.network_adapters
            elif live.worker is not None:
                launched = launched_adapters(live)
            else:
                continue
            current = live.record.settings.network_adapters
            for port in vm_ports(live.record.id, live.record.name, launched, current):
                ports.append(self._servable(port, known, features, live is launching))
        return ports

    def _still_launching(self, live: LiveVM) -> bool:
        """Its QEMU is being started (another VM's reconcile must keep its taps); a
        launch that failed left the VM Off or Saved, so it no longer counts."""
        if live.record.id not in self._launching:
            return False
        if live.worker is None and live.state is VMState.STARTING:
            return True
        self._launching.pop(live.record.id, None)
        return False

    def _servable(
        self, port: Port, known: dict[str, Switch], features: KernelFeatures, strict: bool
    ) -> Port:
        """``port``, or the same port unconnected when its switch is gone or it cannot be
        served (logged), so one bad port never blocks the others."""
        switch = known.get(port.switch) if port.switch else None
        try:
            if port.switch and switch is None:
                raise NotFound(
                    f"{port.describe()} is connected to virtual switch "
                    f"'{port.switch}', which does not exist",
                    switch=port.switch,
                )
            if switch is not None:
                check_port(switch, port, features)
            return port
        except ViridianError as err:
            if strict:
                raise
            log.warning("virtual switches: %s; its tap stays unconnected", err)
            return replace(port, switch=None)

    def _check_port(self, known: dict[str, Switch], port: Port) -> None:
        switch = known.get(port.switch or "")
        if switch is None:
            names = ", ".join(known) or "none"
            raise NotFound(
                f"{port.describe()}: virtual switch '{port.switch}' does not exist "
                f"(switches: {names}; '{USER_SWITCH}' = user-mode NAT, 'none' = not "
                "connected); nothing was changed",
                switch=port.switch,
            )
        check_port(switch, port, self.kernel())
        if switch.uplink and port.mac and port.mac.upper() == switch.uplink.mac.upper():
            raise Conflict(
                f"{port.describe()}: MAC {port.mac} is the MAC of adapter "
                f"{switch.adapter} of switch '{switch.name}'; nothing was changed"
            )

    def _has_ports(self, live: LiveVM) -> bool:
        return any(is_virtual(a.switch) for a in launched_adapters(live))

    def _users(self, name: str) -> list[str]:
        return [
            f"network adapter {i} of VM '{live.record.name}'"
            for live in self.context.vms().values()
            for i, a in enumerate(live.record.settings.network_adapters, 1)
            if a.switch == name
        ]

    def _require_privilege(self) -> None:
        if not has_net_admin():
            raise Conflict(
                "virtual switches need CAP_NET_ADMIN (run 'viridian serve' as root); "
                f"without it only user-mode networking works: connect adapters with "
                f"--switch {USER_SWITCH} (NAT, no inbound connections); nothing was changed"
            )

    # --- switch types ---------------------------------------------------------------------

    def _type_options(
        self,
        kind: SwitchType,
        adapter: str | None,
        allow_management_os: bool,
        subnet: str | None,
        observed: ObservedState,
        switches: list[Switch],
    ) -> dict[str, Any]:
        if kind is SwitchType.EXTERNAL:
            if not adapter:
                raise InvalidSetting(
                    "adapter",
                    adapter,
                    "the host adapter to bind (--adapter IFACE) for an external switch",
                )
            if subnet:
                raise InvalidSetting(
                    "subnet",
                    subnet,
                    "none for an external switch (the adapter's own addresses move to the switch)",
                )
            check_adapter(observed, adapter, allow_management_os, alias_prefix(self.tag))
            return {
                "adapter": adapter,
                # recorded only when the adapter really is the management one (BPA)
                "allow_management_os": allow_management_os
                and adapter in management_adapters(observed),
                "uplink": uplink_of(observed, adapter),
            }
        if adapter:
            raise InvalidSetting(
                "adapter", adapter, f"none for a {kind.value} switch (only external ones bind)"
            )
        if kind is SwitchType.PRIVATE and subnet:
            raise InvalidSetting(
                "subnet", subnet, "none for a private switch (the host has no address on it)"
            )
        if kind is SwitchType.NAT and not subnet:
            subnet = first_free_subnet(_networks_in_use(observed, switches))
        if subnet:
            parse_subnet(subnet)
            clash = overlapping(subnet, _networks_in_use(observed, switches))
            if clash:
                raise Conflict(
                    f"subnet {subnet} overlaps {clash}, already used on this "
                    "host; choose another --subnet; nothing was changed",
                    subnet=subnet,
                    overlaps=clash,
                )
        return {"subnet": subnet}

    def _release(self, switch: Switch) -> None:
        assert switch.uplink is not None
        observed = self.host.observe()
        if switch.uplink.adapter not in observed.links:
            return
        bridge = bridge_name(self.tag, switch.number)
        routes = tuple(RouteOn(bridge, r) for r in switch.uplink.routes)
        self.host.apply(release_uplink(switch.uplink.adapter, switch.uplink.addresses, routes))

    def _undo_create(self, switch: Switch) -> None:
        if switch.uplink is not None:
            try:
                self._release(switch)
            except ViridianError as err:
                log.error("virtual switches: undoing '%s': %s", switch.name, err)
        self.store.save([s for s in self.store.load() if s.name != switch.name])
        self._reconcile_logged(f"undoing switch '{switch.name}'")

    def _nat(self, switches: list[Switch]) -> None:
        nat = [
            (bridge_name(self.tag, s.number), s.subnet)
            for s in switches
            if s.type is SwitchType.NAT and s.subnet
        ]
        if nat or not self._nat_removed:  # NAT rules are asserted at every reconcile
            self.host.apply_ruleset(nat_ruleset(self.tag, nat), needed=bool(nat))
        self._nat_removed = not nat  # no NAT switch: the table is gone, once is enough
        wanted = {bridge_name(self.tag, s.number) for s in switches if s.type is SwitchType.NAT}
        for bridge, subnet in nat:
            self.host.ensure_dnsmasq(bridge, subnet, self.folder / bridge)
        for folder in self.folder.glob("*") if self.folder.exists() else ():
            if folder.name not in wanted:
                self.host.stop_dnsmasq(folder)
                shutil.rmtree(folder, ignore_errors=True)

    # --- views ----------------------------------------------------------------------------

    def _view(self, switch: Switch, detail: bool = False) -> dict[str, Any]:
        bridge = bridge_name(self.tag, switch.number)
        view = {
            **switch_to_dict(switch),
            "interface": bridge,
            "host_address": host_interface_address(switch.subnet)
            if switch.subnet and switch.type is not SwitchType.PRIVATE
            else None,
            "vlan_mode": self.kernel().vlan_mode.value,
            "ports": self._port_views(switch.name),
        }
        if switch.uplink is not None:
            view["host_address"] = ", ".join(switch.uplink.addresses) or None
        if detail:
            view["features"] = self.kernel().to_dict()
            view["dhcp"] = self._dhcp(switch, bridge)
            view["last_error"] = self.last_error
        return view

    def _port_views(self, name: str) -> list[dict[str, Any]]:
        views = []
        for live in self.context.vms().values():
            for i, a in enumerate(live.record.settings.network_adapters):
                if a.switch != name:
                    continue
                running = live.worker is not None
                views.append(
                    {
                        "vm": live.record.name,
                        "nic": i + 1,
                        "mac": a.mac,
                        "kind": a.kind.value,
                        "tap": tap_name(live.record.id, i) if running else None,
                        "mode": "trunk" if a.trunk_vlans else "access",
                        "vlan_id": a.vlan_id,
                        "trunk_vlans": list(a.trunk_vlans),
                        "native_vlan": a.native_vlan,
                        "connected": running,
                    }
                )
        return views

    def _dhcp(self, switch: Switch, bridge: str) -> dict[str, Any] | None:
        if switch.type is not SwitchType.NAT or not switch.subnet:
            return None
        folder = self.folder / bridge
        leases = []
        try:
            for line in (folder / "dnsmasq.leases").read_text().splitlines():
                expiry, mac, address, host, *_ = [*line.split(), "", "", "", ""]
                leases.append(
                    {
                        "mac": mac.upper(),
                        "address": address,
                        "hostname": host,
                        "expires": int(expiry) if expiry.isdigit() else None,
                    }
                )
        except OSError:
            pass
        return {
            "gateway": gateway(switch.subnet),
            "pid": self.host.dnsmasq_pid(folder),
            "leases": leases,
        }


def _switch_type(kind: str) -> SwitchType:
    try:
        return SwitchType(kind)
    except ValueError as err:
        raise InvalidSetting("type", kind, SWITCH_TYPES) from err


def _check_name(name: str) -> None:
    if (
        not 1 <= len(name) <= 100
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in name)
        or name.lower() in ("none", USER_SWITCH)
    ):
        raise InvalidSetting(
            "name",
            name,
            f"1..100 characters without control characters, not 'none' or '{USER_SWITCH}'",
        )


def _free_number(switches: list[Switch]) -> int:
    used = {s.number for s in switches}
    return next(n for n in range(1, 10_000) if n not in used)


def _networks_in_use(observed: ObservedState, switches: list[Switch]) -> list[str]:
    nets = [a.cidr for a in observed.addresses if not a.cidr.startswith("127.")]
    nets += [r.route.dst for r in observed.routes if r.route.dst != "default"]
    return nets + [s.subnet for s in switches if s.subnet]


def _without_missing_adapter(switch: Switch, observed: ObservedState) -> Switch:
    """An external switch whose adapter vanished runs without it (logged), until it is
    back: the VMs on it keep talking to each other."""
    if switch.adapter is None or switch.adapter in observed.links:
        return switch
    log.warning(
        "virtual switches: adapter %s of switch '%s' is missing", switch.adapter, switch.name
    )
    return replace(switch, adapter=None, uplink=None)


__all__ = ["SwitchService", "SwitchStore", "adapters_changeable_live", "is_virtual",
           "launched_adapters", "vm_ports"]

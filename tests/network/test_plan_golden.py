"""Golden plans: switches + ports → the exact iproute2/sysctl commands, for both VLAN
modes (one file per scenario and mode, one command per line; a refusal is golden too).

Regenerate after an intended change with::

    VIRIDIAN_REGEN_GOLDEN=1 .venv/bin/pytest tests/network/test_plan_golden.py

and review the diff.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from tests.network.scenarios import (
    ACCESS_PORTS,
    EXTERNAL_VLAN_PORTS,
    SWITCHES,
    TAG,
    TRUNK_PORTS,
    VM_A,
    port,
)
from viridian.errors import Conflict
from viridian.network import (
    FULL,
    MINIMAL,
    KernelFeatures,
    ObservedState,
    desired_state,
    plan_changes,
    plan_text,
    release_uplink,
)
from viridian.network.desired import Address, DesiredState, RouteOn
from viridian.network.nat import dnsmasq_argv, nat_ruleset
from viridian.network.observed import ObservedLink

GOLDEN = Path(__file__).parent / "golden"
REGEN = os.environ.get("VIRIDIAN_REGEN_GOLDEN") == "1"
MODES = {"vlan_filtering": FULL, "bridge_per_vlan": MINIMAL,
         "bridge_per_vlan_8021q": KernelFeatures(False, True)}
SCENARIOS = {
    "access_ports": ACCESS_PORTS,
    "trunk_port": TRUNK_PORTS,
    "external_vlan": EXTERNAL_VLAN_PORTS,
}


def check_golden(name: str, text: str) -> None:
    golden = GOLDEN / name
    if REGEN:
        golden.write_text(text)
    assert golden.exists(), f"{golden.name} missing: run with VIRIDIAN_REGEN_GOLDEN=1"
    assert text == golden.read_text()


def plan_or_refusal(ports: list, features: KernelFeatures) -> str:  # type: ignore[type-arg]
    try:
        desired = desired_state(TAG, SWITCHES, ports, features)
    except Conflict as err:
        return f"REFUSED: {err}\n"
    return plan_text(plan_changes(desired, ObservedState(), TAG))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_plan_from_an_empty_host(scenario: str, mode: str) -> None:
    check_golden(f"{scenario}-{mode}.plan", plan_or_refusal(SCENARIOS[scenario], MODES[mode]))


def test_golden_matrix_is_complete() -> None:
    expected = {f"{s}-{m}.plan" for s in SCENARIOS for m in MODES}
    expected |= {"vlan_change-vlan_filtering.plan", "vlan_change-bridge_per_vlan.plan",
                 "release_uplink.plan", "nat.nft"}
    assert {p.name for p in GOLDEN.iterdir()} == expected


def test_trunks_are_refused_without_vlan_filtering_naming_the_feature() -> None:
    text = plan_or_refusal(TRUNK_PORTS, MINIMAL)
    assert text.startswith("REFUSED: network adapter 1 of VM 'A': trunk mode")
    assert "bridge VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING)" in text


def test_tagged_uplink_is_refused_without_either_feature() -> None:
    text = plan_or_refusal(EXTERNAL_VLAN_PORTS, MINIMAL)
    assert "VLAN 42 on external switch 'Uplink' must be tagged on adapter ethlab0" in text
    assert "802.1Q VLAN links (CONFIG_VLAN_8021Q)" in text
    assert not plan_or_refusal(EXTERNAL_VLAN_PORTS, KernelFeatures(False, True)).startswith(
        "REFUSED")


# --- the observed side ----------------------------------------------------------------


def observed_as(desired: DesiredState, extra: dict[str, ObservedLink] | None = None,
                ) -> ObservedState:
    """What the host shows once ``desired`` is in place (as iproute2 would report it)."""
    links = {
        lk.name: ObservedLink(lk.name, "veth" if lk.kind == "physical" else lk.kind,
                              lk.alias, lk.master, lk.up,
                              lk.vlan_filtering and desired.vlan_filtering, lk.parent,
                              lk.vlan_id, lk.mac)
        for lk in desired.links}
    return ObservedState(
        links={**links, **(extra or {})}, vlans=desired.vlans,
        addresses=desired.addresses, routes=desired.routes, sysctls=dict(desired.sysctls))


@pytest.mark.parametrize("mode", ["vlan_filtering", "bridge_per_vlan"])
def test_a_converged_host_needs_no_change(mode: str) -> None:
    desired = desired_state(TAG, SWITCHES, ACCESS_PORTS, MODES[mode])
    assert plan_changes(desired, observed_as(desired), TAG) == []


def test_only_this_services_leftovers_are_removed() -> None:
    desired = desired_state(TAG, SWITCHES, [], MINIMAL)
    leftovers = {
        "vtdead000000n0": ObservedLink("vtdead000000n0", "tap", f"viridian:{TAG}:port:x:1",
                                       master="vsab121"),
        "vsab129": ObservedLink("vsab129", "bridge", f"viridian:{TAG}:switch:9"),
        "vscd011": ObservedLink("vscd011", "bridge", "viridian:cd01:switch:1"),  # another
        "vtother00000n0": ObservedLink("vtother00000n0", "tap", None),  # not ours
        "eth0": ObservedLink("eth0", "physical", None, up=True),
    }
    ops = plan_changes(desired, observed_as(desired, leftovers), TAG)
    assert [op.text() for op in ops] == [
        "ip link del dev vtdead000000n0", "ip link del dev vsab129"]


@pytest.mark.parametrize("mode", ["vlan_filtering", "bridge_per_vlan"])
def test_changing_a_running_ports_vlan(mode: str) -> None:
    """VLAN 10 → 20 on a running adapter: the tap is kept (never re-created)."""
    before = desired_state(TAG, SWITCHES, [port(VM_A, 1, "Lab", access_vlan=10)], MODES[mode])
    after = desired_state(TAG, SWITCHES, [port(VM_A, 1, "Lab", access_vlan=20)], MODES[mode])
    ops = plan_changes(after, observed_as(before), TAG)
    assert not any("tuntap" in op.text() or (op.args[:2] == ("link", "del") and "vt" in
                   op.args[-1]) for op in ops)
    check_golden(f"vlan_change-{mode}.plan", plan_text(ops))


def test_external_switch_moves_the_host_address_and_routes() -> None:
    desired = desired_state(TAG, SWITCHES, [], MINIMAL)
    adapter = ObservedLink("ethlab0", "veth", None, up=True, mac="02:00:00:00:00:E1")
    observed = ObservedState(
        links={"ethlab0": adapter}, addresses=frozenset({Address("ethlab0", "10.9.0.2/24")}),
        routes=(RouteOn("ethlab0", SWITCHES[3].uplink.routes[0]),))  # type: ignore[union-attr]
    texts = [op.text() for op in plan_changes(desired, observed, TAG)]
    assert "ip link set dev ethlab0 master vsab124" in texts
    assert texts.index("ip addr add 10.9.0.2/24 dev vsab124") < texts.index(
        "ip route replace default via 10.9.0.1 dev vsab124 metric 100")
    assert texts[-1] == "ip addr del 10.9.0.2/24 dev ethlab0"
    assert "ip link set dev ethlab0 up" not in texts  # already up; not ours to touch more


def test_release_uplink_gives_addresses_and_routes_back() -> None:
    uplink = SWITCHES[3].uplink
    assert uplink is not None
    routes = tuple(RouteOn("vsab124", r) for r in uplink.routes)
    check_golden("release_uplink.plan",
                 plan_text(release_uplink(uplink.adapter, uplink.addresses, routes)))


def test_nat_ruleset_and_dnsmasq() -> None:
    check_golden("nat.nft", nat_ruleset(TAG, [("vsab123", "172.30.0.0/24"),
                                              ("vsab125", "10.0.75.0/28")]))
    assert nat_ruleset(TAG, []) == (
        "table ip viridian_ab12 {}\ndelete table ip viridian_ab12\n")
    argv = dnsmasq_argv("vsab123", "172.30.0.0/24", Path("/d"))
    assert "--dhcp-range=172.30.0.2,172.30.0.254,255.255.255.0,1h" in argv
    assert "--listen-address=172.30.0.1" in argv and "--pid-file=/d/dnsmasq.pid" in argv


def test_a_disconnected_port_keeps_its_tap_down() -> None:
    desired = desired_state(TAG, SWITCHES, [replace(ACCESS_PORTS[0], switch=None)], FULL)
    tap = next(lk for lk in desired.links if lk.kind == "tap")
    assert (tap.master, tap.up) == (None, False)
    assert not [v for v in desired.vlans if v.dev == tap.name]

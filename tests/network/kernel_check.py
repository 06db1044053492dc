"""Runs inside a fresh network namespace (``unshare --net``; see test_kernel.py): applies
the golden scenarios' plans to the real kernel with the real shell, then checks that
the host converged (a second plan is empty), that a VLAN change keeps the taps, and
that removing everything leaves no interface of ours and gives the adapter back."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.network.scenarios import ACCESS_PORTS, SWITCHES, TAG, VM_A, port
from viridian.network import FULL, MINIMAL, desired_state, plan_changes, release_uplink
from viridian.network.desired import RouteOn
from viridian.network.host import HostNetwork
from viridian.network.names import bridge_name


def sh(command: str) -> None:
    subprocess.run(command, shell=True, check=True)


def converge(host: HostNetwork, switches: list, ports: list, features) -> list[str]:  # type: ignore[no-untyped-def, type-arg]
    desired = desired_state(TAG, switches, ports, features)
    host.apply(plan_changes(desired, host.observe(desired), TAG))
    return [op.text() for op in plan_changes(desired, host.observe(desired), TAG)]


def ifindex(name: str) -> int:
    out = subprocess.run(["ip", "-j", "link", "show", name], capture_output=True, text=True)
    return int(json.loads(out.stdout)[0]["ifindex"])


def main(mode: str) -> None:
    features = FULL if mode == "vlan_filtering" else MINIMAL
    sh("ip link set lo up; ip link add ethlab0 type veth peer name ethlab1; "
       "ip link set ethlab0 address 02:00:00:00:00:e1; ip addr add 10.9.0.2/24 dev ethlab0; "
       "ip link set ethlab0 up; ip link set ethlab1 up; "
       "ip route add default via 10.9.0.1 dev ethlab0 metric 100; "
       "ip route add 10.8.0.0/16 via 10.9.0.254 dev ethlab0")
    host = HostNetwork()
    result: dict[str, object] = {}
    result["again"] = converge(host, SWITCHES, ACCESS_PORTS, features)
    tap = ACCESS_PORTS[0].tap
    before = ifindex(tap)
    moved = [*ACCESS_PORTS[1:], port(VM_A, 1, "Lab", access_vlan=20)]
    result["again_after_vlan_change"] = converge(host, SWITCHES, moved, features)
    result["tap_kept"] = ifindex(tap) == before
    observed = host.observe()
    result["tap_master"] = observed.links[tap].master
    result["adapter_master"] = observed.links["ethlab0"].master
    result["bridge_addresses"] = sorted(a.cidr for a in observed.addresses
                                        if a.dev == bridge_name(TAG, 4))
    result["default_dev"] = [r.dev for r in observed.routes if r.route.dst == "default"]
    uplink = SWITCHES[3].uplink
    assert uplink is not None
    host.apply(release_uplink(uplink.adapter, uplink.addresses,
                              tuple(RouteOn(bridge_name(TAG, 4), r) for r in uplink.routes)))
    result["again_after_removal"] = converge(host, [], [], features)
    observed = host.observe()
    result["left"] = sorted(n for n, lk in observed.links.items()
                            if lk.alias and lk.alias.startswith("viridian:"))
    result["adapter_addresses"] = sorted(a.cidr for a in observed.addresses
                                         if a.dev == "ethlab0" and "." in a.cidr)
    result["routes_back"] = sorted((r.route.dst, r.dev) for r in observed.routes)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])

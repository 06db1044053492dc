"""A ``--count N`` batch spread over the candidate hosts (issue 18, placement), the pure
planner: each VM placed by the rating in turn on facts that lose the VMs already placed —
a batch stays on a clearly best host, spreads when that host fills up, keeps the batch's
names and positions, and is refused with the numbers when the hosts together have no
room. Also the positions a cluster host's share may name."""

from __future__ import annotations

import pytest

from viridian.errors import AdmissionRefused, InvalidSetting
from viridian.library.placement import HostFacts, VMNeeds
from viridian.library.spread import room, spread
from viridian.service.library.provisioning import Order, members
from viridian.service.library.routes import _positions

GB = 1 << 30


def host(name: str, total_mb: int, free_mb: int, cpu: float, switches: tuple[str, ...] = (
        "Lab",), storage_free: int = 60 * GB) -> HostFacts:
    return HostFacts(name, total_mb, free_mb, cpu, 100 * GB, storage_free,
                     frozenset(switches), frozenset())


def batch(count: int) -> list[str]:
    return [f"web-{i}" for i in range(1, count + 1)]


def needs(names: list[str], memory_mb: int = 512, disk: int = 0) -> VMNeeds:
    return VMNeeds(memory_mb, disk, frozenset({"Lab"}), frozenset(names))


def test_a_batch_stays_on_a_clearly_best_host() -> None:
    names = batch(3)
    placed = spread([host("busy", 16384, 2000, 95.0), host("idle", 16384, 12000, 2.0)],
                    needs(names), names)
    assert placed.counts() == {"idle": 3}
    assert placed.shares[0].names == ("web-1", "web-2", "web-3")
    assert [r.host for r in placed.ratings] == ["idle", "busy"]
    assert placed.ratings[0].reasons[0].startswith("memory: 512 MB needed")  # one VM's


def test_a_batch_spreads_when_the_best_host_fills_up() -> None:
    names = batch(5)
    small = host("small", 2048, 1024, 2.0)  # best for one VM, room for two
    big = host("big", 16384, 8192, 90.0)
    placed = spread([big, small], needs(names), names)
    assert placed.counts() == {"small": 2, "big": 3}
    first, second = placed.shares
    assert (first.host, first.positions, first.names) == ("small", (1, 2),
                                                           ("web-1", "web-2"))
    assert (second.host, second.positions) == ("big", (3, 4, 5))
    assert first.rating.stars > second.rating.stars >= 1
    assert placed.host_of("web-4") == "big"
    assert second.to_dict()["vms"] == ["web-3", "web-4", "web-5"]
    assert second.to_dict()["count"] == 3


def test_anti_affinity_spreads_the_group_over_equal_hosts() -> None:
    names = batch(4)
    twins = [host("h1", 16384, 12000, 5.0), host("h2", 16384, 12000, 5.0)]
    placed = spread(twins, needs(names), names)
    assert placed.counts() == {"h1": 2, "h2": 2}
    assert [placed.host_of(n) for n in names] == ["h1", "h2", "h1", "h2"]
    assert {s.host: s.positions for s in placed.shares} == {"h1": (1, 3), "h2": (2, 4)}


def test_the_hosts_without_room_refuse_with_the_numbers() -> None:
    names = batch(20)
    hosts = [host("h1", 8192, 4096, 1.0), host("h2", 8192, 2048, 1.0),
             host("h3", 8192, 1024, 1.0)]
    assert room(hosts, needs(names)) == 14
    with pytest.raises(AdmissionRefused) as refused:
        spread(hosts, needs(names), names)
    assert refused.value.message == (
        "the hosts have no room for 20 VMs: 20 VMs of 512 MB need 10240 MB of memory, the "
        "hosts have 4096 MB (h1) + 2048 MB (h2) + 1024 MB (h3) free (room for 14 of them); "
        "nothing was changed")
    assert len(refused.value.details["ratings"]) == 3
    fourteen = spread(hosts, needs(names[:14]), names[:14])  # what fits is placed
    assert fourteen.counts() == {"h1": 8, "h2": 4, "h3": 2}


def test_free_memory_split_over_hosts_is_not_room_for_a_vm() -> None:
    names = batch(2)
    crumbs = [host("h1", 4096, 300, 1.0), host("h2", 4096, 300, 1.0)]
    with pytest.raises(AdmissionRefused) as refused:
        spread(crumbs, needs(names), names)  # 600 MB free in all, 512 MB per VM
    assert "need 1024 MB of memory, the hosts have 300 MB (h1) + 300 MB (h2) free " \
        "(room for 0 of them)" in refused.value.message


def test_storage_and_switches_refuse_with_their_reasons() -> None:
    names = batch(5)
    disks = [host("h1", 8192, 8000, 1.0, storage_free=3 * GB),
             host("h2", 8192, 8000, 1.0, storage_free=GB),
             host("nolab", 8192, 8000, 1.0, switches=())]
    with pytest.raises(AdmissionRefused) as refused:
        spread(disks, needs(names, disk=GB), names)
    assert refused.value.message == (
        "the hosts have no room for 5 VMs: 5 VMs of 1024 MB of disk need 5120 MB of "
        "storage, the hosts with virtual switch Lab have 3072 MB (h1) + 1024 MB (h2) free "
        "(room for 4 of them); nothing was changed")
    with pytest.raises(AdmissionRefused) as nowhere:
        spread(disks[2:], needs(names), names)
    assert nowhere.value.message == "no host can take these VMs: missing virtual switch: Lab"


def test_a_share_keeps_the_batchs_names_and_positions() -> None:
    order = Order("base", None, "web", 5, False, None, None, None, True)  # type: ignore[arg-type]
    assert members(order) == [(i, f"web-{i}") for i in range(1, 6)]
    assert members(order.share((2, 5))) == [(2, "web-2"), (5, "web-5")]
    single = Order("base", None, "db", 1, False, None, None, None, True)  # type: ignore[arg-type]
    assert members(single) == [(1, "db")]  # one VM: its name alone, as on one host


@pytest.mark.parametrize("positions", [[], [0, 1], [2, 1], [1, 1], [6]])
def test_a_share_names_positions_of_the_batch(positions: list[int]) -> None:
    with pytest.raises(InvalidSetting) as bad:
        _positions(positions, 5)
    assert "ascending distinct positions 1..5 of the batch" in bad.value.message
    assert _positions([1, 3, 5], 5) == (1, 3, 5) and _positions(None, 5) is None

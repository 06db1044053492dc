from __future__ import annotations

import pytest

from viridian.counters import paths as P
from viridian.errors import BadRequest, NotFound

AVAILABLE = [
    r"\Hyper-V Hypervisor Virtual Processor(vm1:Hv VP 0)\% Total Run Time",
    r"\Hyper-V Hypervisor Virtual Processor(vm1:Hv VP 1)\% Total Run Time",
    r"\Hyper-V Hypervisor Virtual Processor(_Total)\% Total Run Time",
    r"\PhysicalDisk(vda)\% Idle Time",
    r"\PhysicalDisk(vda)\Avg. Disk Read Queue Length",
    r"\Memory\Available MBytes",
]


def test_paths_print_and_parse_like_perfmon() -> None:
    text = P.path(P.VP, "% Total Run Time", P.vp_instance("vm1", 0))
    assert text == AVAILABLE[0]
    assert P.parse(text) == P.CounterPath(P.VP, "vm1:Hv VP 0", "% Total Run Time")
    assert P.parse(r"\\host1\Memory\Available MBytes") == P.CounterPath(
        "Memory", None, "Available MBytes")


def test_wildcards_case_and_the_physical_disk_alias() -> None:
    assert P.select([r"\hyper-v hypervisor virtual processor(vm1:*)\% total run time"],
                    AVAILABLE) == AVAILABLE[:2]
    assert P.select([r"\Physical Disk(*)\*"], AVAILABLE) == AVAILABLE[3:5]
    assert P.select([r"\Memory\*"], AVAILABLE) == [AVAILABLE[5]]
    assert P.select([], AVAILABLE) == AVAILABLE


def test_bad_and_unknown_paths_are_named() -> None:
    with pytest.raises(BadRequest, match=r"not a counter path: 'Memory'.*\\Object\(Instance\)"):
        P.select(["Memory"], AVAILABLE)
    with pytest.raises(NotFound, match=r"no counter matches \\Memory\\Committed Bytes"):
        P.select([r"\Memory\Committed Bytes"], AVAILABLE)

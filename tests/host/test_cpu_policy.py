"""Reserve/limit/weight → cgroup values (pure) and the reserve admission rule."""

from __future__ import annotations

import pytest

from viridian.errors import AdmissionRefused
from viridian.host.admission import AdmissionPolicy, HostLoad, check_admission
from viridian.host.cgroups import memory_limit_bytes
from viridian.host.cpu_policy import VMCpuDemand, contention_fractions, cpu_controls, quota_us


def vm(name: str, processors: int = 1, reserve: int = 0, limit: int = 100,
       weight: int = 100) -> VMCpuDemand:
    return VMCpuDemand(name, processors, reserve, limit, weight)


def test_limit_is_a_share_of_the_vms_own_processors() -> None:
    assert quota_us(2, 25) == 50_000  # 25 % of 2 VPs = 0.5 processor per 100 ms
    assert quota_us(1, 25) == 25_000
    assert quota_us(4, 100) is None  # 100 % = no cap
    assert quota_us(1, 0) == 1_000  # the kernel's smallest quota


def test_without_reserves_shares_are_proportional_to_weights() -> None:
    controls = cpu_controls([vm("a", weight=100), vm("b", weight=300)], capacity=2)
    assert (controls["a"].shares_v1, controls["b"].shares_v1) == (1024, 3072)
    assert (controls["a"].weight_v2, controls["b"].weight_v2) == (100, 300)
    assert controls["b"].fraction == pytest.approx(0.75)


def test_a_reserve_comes_first_then_the_rest_is_split_by_weight() -> None:
    # capacity 2 processors; "a" reserves 50 % of 2 VPs = 1 processor = half the capacity
    fractions = contention_fractions([vm("a", 2, reserve=50, weight=1),
                                      vm("b", 2, weight=10_000)], capacity=2)
    assert fractions["a"] == pytest.approx(0.5 + 0.5 / 10_001)
    assert fractions["a"] + fractions["b"] == pytest.approx(1.0)


def test_the_reserve_holds_for_any_subset_of_busy_vms() -> None:
    demands = [vm("r", reserve=40, weight=1), vm("x", weight=5000), vm("y", weight=9000)]
    fractions = contention_fractions(demands, capacity=1)
    for busy in (["r", "x"], ["r", "y"], ["r", "x", "y"]):
        assert fractions["r"] / sum(fractions[n] for n in busy) >= 0.4


def test_extreme_weights_stay_in_the_kernels_ranges_and_keep_their_ratio() -> None:
    controls = cpu_controls([vm(str(i), weight=10_000) for i in range(40)] + [vm("low", weight=1)],
                            capacity=2)
    assert max(c.shares_v1 for c in controls.values()) <= 262_144
    assert controls["low"].shares_v1 >= 2 and controls["low"].weight_v2 >= 1
    assert controls["0"].weight_v2 == 10_000


def test_memory_bound_is_vm_memory_plus_qemu_allowance() -> None:
    assert memory_limit_bytes(512, "kvm") == (512 + 256 + 64) * 2**20
    assert memory_limit_bytes(512, "tcg") == (512 + 256 + 64 + 1024) * 2**20


def test_reserves_beyond_the_vm_processors_are_refused_with_the_numbers() -> None:
    load = HostLoad(memory_mb=24_000, logical_processors=2, assigned_memory_mb=0,
                    running_virtual_processors=2, reserved_processors=1.5,
                    vm_processor_capacity=2)
    check_admission("ok", 256, 1, load, AdmissionPolicy(), reserve_pct=50)
    with pytest.raises(AdmissionRefused) as refused:
        check_admission("big", 256, 2, load, AdmissionPolicy(), reserve_pct=50)
    assert str(refused.value) == (
        "cannot start VM 'big': its processor reserve of 50 % of 2 virtual processor(s) is "
        "1.00 logical processors; with the 1.50 reserved by running VMs that makes 2.50, more "
        "than the 2 logical processor(s) VMs run on (125 % > 100 %); nothing was changed")

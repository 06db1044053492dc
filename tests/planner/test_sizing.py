"""Hand-computed plans: N+1 hosts, memory reserve and overhead, VP:LP, CPU, drives, cost.

Per-VM overhead (Hyper-V's figure): 32 MB for the first GB + 8 MB per further GB, so a
1 GB VM costs 1056 MB and an 8 GB VM 8192 + 32 + 7 x 8 = 8280 MB.
"""

from __future__ import annotations

from tests.planner.builders import host, run_plan, workload
from viridian.planner import format_plan


def only(result):  # type: ignore[no-untyped-def]
    (candidate,) = result.candidates
    return candidate


def test_n_plus_one_memory_bound() -> None:
    # Host: 64 GB - 512 MB reserve = 65024 MB for VMs; 7 x 8280 = 57960 fits, 8 x 8280 =
    # 66240 does not. 10 VMs -> 2 hosts carry them, + 1 spare = 3 hosts.
    result = run_plan([workload("app", memory="8 GB", count=10)], [host(memory="64 GB")])
    plan = only(result)
    assert plan.fits and plan.hosts == 3 and plan.spares == 1
    assert plan.limited_by == "memory"
    # One host down: 5 VMs on each survivor = 512 + 5 x 8280 = 41912 MB.
    assert sorted(len(h.vms) for h in plan.failover) == [5, 5]
    assert [h.memory_used_mb for h in plan.failover] == [41912, 41912]
    assert sorted(len(h.vms) for h in plan.normal) == [3, 3, 4]


def test_no_failover_spare_when_spares_is_zero() -> None:
    result = run_plan([workload("app", memory="8 GB", count=10)], [host()], failover_spares=0)
    assert only(result).hosts == 2


def test_single_vm_still_needs_a_spare_host() -> None:
    assert only(run_plan([workload()], [host()])).hosts == 2


def test_host_reserve_decides_at_the_boundary() -> None:
    # Two 1 GB VMs need 2 x 1056 = 2112 MB + the 512 MB reserve = 2624 MB.
    two = [workload("small", memory="1 GB", count=2)]
    assert only(run_plan(two, [host(memory="2624 MB")])).hosts == 2  # both on one host + spare
    assert only(run_plan(two, [host(memory="2623 MB")])).hosts == 3  # one per host + spare
    assert only(run_plan(two, [host(memory="2623 MB")], host_reserve="511 MB")).hosts == 2


def test_vm_overhead_is_counted() -> None:
    usage = only(run_plan([workload("big", memory="8 GB")], [host()])).failover[0]
    assert (usage.vm_memory_mb, usage.overhead_mb, usage.reserve_mb) == (8192, 88, 512)
    custom = run_plan(
        [workload("big", memory="1.5 GB")],
        [host()],
        vm_overhead={"first_gb": "64 MB", "per_additional_gb": "16 MB"},
    )
    assert only(custom).failover[0].overhead_mb == 64 + 16


def test_vp_to_lp_ratio_limit() -> None:
    # 2 LPs x 8 = 16 VPs per host; 10 VMs x 2 VPs = 20 VPs -> 8 VMs per host -> 2 + 1 hosts.
    vms = [workload("vp", processors=2, count=10)]
    small = host(cores_per_socket=2)
    plan = only(run_plan(vms, [small]))
    assert plan.hosts == 3 and plan.limited_by == "VP:LP ratio"
    assert max(h.vp_ratio for h in plan.failover) <= 8
    assert [h.virtual_processors for h in plan.failover] == [10, 10]  # balanced 5 + 5 VMs
    # At 4:1 only 4 VMs fit a host -> 3 + 1 hosts.
    assert only(run_plan(vms, [small], max_vp_per_lp=4)).hosts == 4


def test_vm_with_more_vps_than_host_lps_does_not_fit() -> None:
    plan = only(run_plan([workload("wide", processors=4)], [host(cores_per_socket=2)]))
    assert not plan.fits and plan.hosts == 0
    assert plan.problems == (
        "workload 'wide' has 4 virtual processors; a VM cannot have more than the host's 2 "
        "logical processors",
    )


def test_cpu_ceiling() -> None:
    # 4 LPs at 80 % = 3.2 LPs; each VM uses 4 VPs x 50 % = 2 LPs -> one VM per host.
    plan = only(run_plan([workload("cpu", processors=4, cpu_percent=50, count=3)], [host()]))
    assert plan.hosts == 4 and plan.limited_by == "CPU"
    assert [round(h.cpu_percent) for h in plan.failover] == [50, 50, 50]
    # At a 100 % ceiling two fit a host (4 LPs) -> 2 + 1 hosts.
    result = run_plan(
        [workload("cpu", processors=4, cpu_percent=50, count=3)], [host()], max_cpu_percent=100
    )
    assert only(result).hosts == 3


def test_memory_larger_than_any_host_is_reported_with_numbers() -> None:
    plan = only(run_plan([workload("huge", memory="64 GB")], [host(memory="64 GB")]))
    assert not plan.fits
    assert plan.problems == (
        "workload 'huge' needs 64.5 GB (64.0 GB + 536 MB overhead) but a host offers 63.5 GB "
        "after the 512 MB reserve",
    )


SEED_HOST = host(
    "two-sata",
    memory="16 GB",
    storage={
        "drive": "7.2k",
        "drive_size": "1 TB",
        "raid": 1,
        "bays": 2,
        "drives": 2,
        "drive_cost": 100,
    },
)


def test_seed_two_sata_drives_host_is_flagged() -> None:
    # 400 IOPS at 60 % reads on RAID 1: 240 + 160 x 2 = 560 functional IOPS;
    # 560 / 75 = 7.47 -> 8 drives; two drives deliver 150. The host needs 6 more.
    sql = workload(
        "sql", memory="4 GB", processors=2, cpu_percent=20, iops=400, read_percent=60, disk="200 GB"
    )
    result = run_plan([sql], [SEED_HOST])
    plan = only(result)
    assert not plan.fits and result.recommended is None
    assert plan.drives_per_host == 8
    assert plan.problems == (
        "each host needs 8 drives (7.2k, RAID 1: 8 for 560 functional IOPS at 75 IOPS per drive, "
        "2 for 200 GB) but has 2 drives installed: 6 more drives needed; it has only 2 bays: "
        "6 more bays needed (workload 'sql' alone needs 8, so more hosts cannot help)",
    )
    busiest = plan.failover[0]
    assert (busiest.drives, busiest.iops_capacity) == (2, 150)
    assert round(busiest.iops_percent) == 373  # 560 / 150
    assert "DOES NOT FIT" in format_plan(result)


def test_seed_host_carries_a_light_load() -> None:
    # 100 IOPS at 50 % reads: 50 + 50 x 2 = 150 functional = exactly two 7.2k drives.
    light = workload("dc", iops=100, read_percent=50, disk="100 GB")
    plan = only(run_plan([light], [SEED_HOST]))
    assert plan.fits and plan.problems == () and plan.hosts == 2
    assert plan.drives_per_host == 2 and plan.failover[0].iops_percent == 100


def test_drive_limit_raises_the_host_count_and_says_so() -> None:
    # 4 VMs of 100 read IOPS: two drives carry 150, so one VM per host -> 4 + 1 hosts;
    # memory alone would allow 1 + 1 hosts with 400 / 75 = 5.3 -> 6 drives each.
    vms = [workload("io", iops=100, count=4)]
    plan = only(run_plan(vms, [SEED_HOST]))
    assert plan.fits and plan.hosts == 5 and plan.limited_by == "drives"
    assert plan.notes == (
        "drives set the host count: with at most 2 drives per host it takes 5 hosts; CPU and "
        "memory alone need 2 hosts with 6 drives each (more than the 2 bays)",
    )


def test_drives_sized_for_iops_and_capacity_within_bays() -> None:
    # RAID 5 on 15k: 1000 IOPS at 60/40 -> 2200 functional -> 13 drives; 2 TB -> 5 drives.
    db = workload(
        "db", memory="16 GB", processors=4, cpu_percent=25, iops=1000, read_percent=60, disk="2 TB"
    )
    shape = host(
        "raid5",
        memory="64 GB",
        storage={"drive": "15k", "drive_size": "600 GB", "raid": 5, "bays": 16},
    )
    plan = only(run_plan([db], [shape]))
    assert plan.fits
    assert (plan.drive_need.for_iops, plan.drive_need.for_capacity) == (13, 5)
    assert plan.drives_per_host == 13
    too_small = host(
        "raid5-8", storage={"drive": "15k", "drive_size": "600 GB", "raid": 5, "bays": 8}
    )
    flagged = only(run_plan([db], [too_small]))
    assert not flagged.fits
    assert "but has 8 drive bays: 5 more bays needed" in flagged.problems[0]


def test_growth_applies_to_disk_and_iops() -> None:
    # 10 %/year over 2 years: x 1.21 -> 100 GB -> 121 GB, 100 IOPS -> 121 IOPS.
    grow = workload("grow", iops=100, disk="100 GB", growth_percent=10)
    usage = only(run_plan([grow], [host()], horizon_years=2)).failover[0]
    assert round(usage.capacity_gb, 6) == 121 and round(usage.guest_iops, 6) == 121


def test_reference_ghz_scales_cpu_demand() -> None:
    # Measured at 2.0 GHz, run on 4.0 GHz: 4 VPs x 50 % x 2/4 = 1 LP = 25 % of 4 LPs.
    vm = workload("cpu", processors=4, cpu_percent=50)
    usage = only(run_plan([vm], [host(ghz=4.0)], reference_ghz=2.0)).failover[0]
    assert usage.cpu_percent == 25


def test_dual_socket_versus_quad_socket_cost() -> None:
    # 20 VMs x 8280 MB. Dual (2x8, 128 GB): 15 per host -> 2 + 1 = 3 hosts x (8000 + 2 x 100)
    # = 24600. Quad (4x8, 256 GB): 31 per host -> 1 + 1 = 2 hosts x (20000 + 200) = 40400.
    storage = {"drive": "ssd", "drive_size": "1 TB", "raid": 1, "bays": 8, "drive_cost": 100}
    dual = host("dual", sockets=2, cores_per_socket=8, memory="128 GB", cost=8000, storage=storage)
    quad = host("quad", sockets=4, cores_per_socket=8, memory="256 GB", cost=20000, storage=storage)
    result = run_plan([workload("vm", memory="8 GB", count=20)], [quad, dual])
    costs = {c.shape.name: (c.hosts, c.cost.total) for c in result.candidates}
    assert costs == {"dual": (3, 24600), "quad": (2, 40400)}
    assert result.recommended == "dual"
    assert "Recommendation: dual: 3 hosts (2 + 1 spare), cost 24,600" in format_plan(result)


def test_recommendation_skips_a_cheaper_candidate_that_does_not_fit() -> None:
    io = workload("io", iops=400, read_percent=60)
    cheap = {**SEED_HOST, "cost": 10}
    good = host("good", cost=5000)
    result = run_plan([io], [cheap, good])
    assert result.recommended == "good"

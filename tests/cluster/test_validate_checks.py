"""The judging half of ``cluster validate`` (pure): thresholds, what each check names."""

from __future__ import annotations

from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord
from viridian.cluster.validate import (
    HostAnswer,
    MemberProbe,
    Status,
    clock_skew,
    cpu_compatibility,
    etcd_domains,
    etcd_latency,
    etcd_quorum,
    memory_n_plus_1,
    report,
    shared_storage,
)
from viridian.cluster.validate import StorageProbe as Probe
from viridian.service.cluster.validate_probe import cpu_facts


def _member(url: str, site: str = "", trips: tuple[float, ...] = (0.01,),
            error: str = "") -> MemberProbe:
    return MemberProbe(url, site, trips, error)


def test_etcd_quorum_latency_and_failure_domains() -> None:
    members = [_member("m1", "east"), _member("m2", "west", (1.5, 1.2, 1.1)),
               _member("m3", "east", (), "ClusterUnavailable")]
    assert etcd_quorum(members).status is Status.WARN
    assert "unreachable: m3 (ClusterUnavailable)" in etcd_quorum(members).summary
    lost = etcd_quorum([*members[2:], _member("m4", error="x")])
    assert lost.status is Status.FAIL and "no quorum" in lost.summary
    slow = etcd_latency(members)
    assert slow.status is Status.WARN and slow.summary.endswith("interval: m2")
    two = etcd_domains(members)
    assert two.status is Status.WARN and "2 site(s) (east, west)" in two.summary
    assert "no site named for m1" in etcd_domains([_member("m1")]).summary
    assert etcd_domains([_member("a", "x"), _member("b", "y"),
                         _member("c", "z")]).status is Status.PASS


def test_clock_skew_bounds_and_silent_hosts() -> None:
    answers = {"a": HostAnswer("a", 0.01, 0.05), "b": HostAnswer("b", 1.3, 0.4),
               "c": HostAnswer("c", -45.0, 0.1)}
    assert clock_skew(["a", "b"], {k: answers[k] for k in "ab"}).status is Status.PASS
    assert clock_skew(["a"], {"a": HostAnswer("a", 1.6, 0.1)}).status is Status.WARN
    failed = clock_skew(["a", "b", "c"], answers)
    assert failed.status is Status.FAIL and failed.summary.endswith("beyond 30 s: c")
    silent = clock_skew(["a", "d"], {"a": answers["a"]})
    assert silent.status is Status.FAIL and "no answer from d" in silent.summary


def test_shared_storage_names_the_host_and_folder() -> None:
    ok = HostAnswer("a", storage=(Probe("/s", True),))
    bad = HostAnswer("b", storage=(Probe("/s", False, "PermissionError: denied"),))
    result = shared_storage(["/s"], ["a", "b", "c"], {"a": ok, "b": bad},
                            {"a": {"/s": True}, "b": {"/s": False}})
    assert result.status is Status.FAIL
    assert result.summary == "b: /s: PermissionError: denied; c: no answer"
    unseen = shared_storage(["/s"], ["a"], {"a": ok}, {"a": {"/s": False}})
    assert "not visible from this host" in unseen.summary
    assert shared_storage([], ["a"], {}, {}).status is Status.WARN


def test_cpu_differences_are_named() -> None:
    a = HostAnswer("a", qemu="7.2.0", accelerator="kvm", cpu_model="X",
                   cpu_flags=frozenset({"sse2", "avx2", "avx512f"}))
    b = HostAnswer("b", qemu="7.2.0", accelerator="tcg", cpu_model="X",
                   cpu_flags=frozenset({"sse2", "avx2"}))
    check = cpu_compatibility({"a": a, "b": b})
    assert check.status is Status.WARN
    assert "accelerator differs: a kvm, b tcg" in check.summary
    assert "flags only some hosts have, on a: avx512f" in check.summary
    assert cpu_compatibility({"a": a}).status is Status.PASS


def test_memory_n_plus_1_by_the_placement_rules() -> None:
    hosts = [HostRecord("big", memory_total_mb=8000, memory_free_mb=2000),
             HostRecord("small", memory_total_mb=4000, memory_free_mb=1000)]
    vms = [ClusterVM("v1", "v1", 3000, HAPolicy(ha=True), True, owner="big"),
           ClusterVM("v2", "v2", 800, HAPolicy(ha=True), True, owner="big")]
    check = memory_n_plus_1(vms, hosts)
    assert check.status is Status.WARN and check.summary.endswith("Pending: v1")
    assert memory_n_plus_1(vms[1:], hosts).status is Status.PASS
    assert memory_n_plus_1(vms, hosts[:1]).status is Status.WARN
    assert report([check, memory_n_plus_1(vms[1:], hosts)])["status"] == "warn"


def test_cpu_facts_read_the_first_processor() -> None:
    text = ("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: sse2 fpu avx\n\n"
            "processor\t: 1\nmodel name\t: Other\nflags\t\t: x\n")
    assert cpu_facts(text) == ("Some CPU", ["avx", "fpu", "sse2"])

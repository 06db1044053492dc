"""The service side's pure parts: the cluster config's checks, how hosts are shown
(Up / Paused / Down from members, host records and paused keys), the CLI's text and the
agent's ledger of VM exits (a start planned before a stop was written is stale)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from viridian.cli.cluster import format_cluster
from viridian.cluster.model import ClusterVM, HAPolicy, HostRecord
from viridian.cluster.ownership import ClusterView
from viridian.cluster.placement import place
from viridian.errors import InvalidSetting
from viridian.service.cluster.agent import ExitLedger, remembered
from viridian.service.cluster.config import ClusterConfig, ClusterFolder
from viridian.service.cluster.membership import hosts_of, vms_of


@pytest.mark.parametrize(("kwargs", "setting", "allowed"), [
    ({"etcd": "etcd:2379"}, "etcd", "http://HOST:PORT"),
    ({"etcd": ""}, "etcd", "http://HOST:PORT"),
    ({"lease_ttl": 4}, "lease_ttl", "5..300"),
    ({"host": "two words"}, "host", "letters, digits"),
    ({"name": "-x"}, "name", "starting with a letter or digit"),
])
def test_bad_config_names_the_setting_and_the_allowed_values(
        kwargs: dict[str, object], setting: str, allowed: str) -> None:
    base: dict[str, object] = {"name": "c", "etcd": "http://127.0.0.1:2379", "host": "h1"}
    with pytest.raises(InvalidSetting) as caught:
        ClusterConfig.parse(**{**base, **kwargs})  # type: ignore[arg-type]
    assert caught.value.details["setting"] == setting
    assert allowed in str(caught.value)


def test_config_round_trips_through_the_data_folder(tmp_path: Path) -> None:
    folder = ClusterFolder(tmp_path)
    assert folder.load() is None
    config = ClusterConfig.parse("c", "http://a:1,http://b:2", "h1", "west", 12)
    folder.save(config)
    assert folder.load() == config
    assert config.rule.margin == 4.0 and config.rule.deadline(100.0) == 108.0
    folder.save_lease(0x1234)
    assert folder.saved_lease() == 0x1234
    folder.mark("vm1", "drain")
    assert folder.take_mark("vm1") == "drain" and folder.take_mark("vm1") is None
    folder.forget()
    assert folder.load() is None and folder.saved_lease() == 0


def test_hosts_are_up_paused_or_down_and_vms_show_owner_and_pending() -> None:
    view = ClusterView(
        7, vms=[ClusterVM("i1", "web", 512, HAPolicy(ha=True), True, owner="a")],
        hosts=[HostRecord("a", memory_free_mb=900, running=("web",)), HostRecord("b")],
        members={"a": "{}", "b": "{}", "c": "{}"}, paused=frozenset({"b"}))
    rows = {h["name"]: h for h in hosts_of(view)}
    assert {n: h["state"] for n, h in rows.items()} == {"a": "Up", "b": "Paused", "c": "Down"}
    assert rows["c"]["memory_free_mb"] is None and rows["a"]["running_vms"] == ["web"]
    vms = vms_of(view, {"i1": "Pending: insufficient memory on every host"})
    assert vms[0]["owner"] == "a" and vms[0]["pending"].startswith("Pending")
    text = format_cluster({"name": "c", "host": "a", "lease_ttl": 10, "fence_margin_s": 3.3,
                           "agent": {"error": None}, "hosts": hosts_of(view), "vms": vms,
                           "etcd": {"healthy": 2, "members": [{}, {}, {}]}})
    assert "etcd: 2/3 members healthy" in text
    assert "c                Down" in text and "b                Paused" in text
    assert "web              a                running  Pending" in text


def test_cluster_show_says_why_the_failover_placed_a_vm_until_it_moves() -> None:
    vm = ClusterVM("i1", "web", 512, HAPolicy(ha=True), True)
    hosts = [HostRecord("a", memory_total_mb=4096, memory_free_mb=900),
             HostRecord("b", memory_total_mb=4096, memory_free_mb=3000)]
    kept = remembered({}, [vm], place([vm], hosts))
    assert kept["i1"][0] == "b"
    owned = replace(vm, owner="b", owner_lease=7)  # claimed: no longer in the decision
    assert remembered(kept, [owned], place([owned], hosts)) == kept
    view = ClusterView(8, vms=[owned], hosts=hosts, members={"a": "{}", "b": "{}"})
    text = format_cluster({"name": "c", "host": "a", "lease_ttl": 10, "fence_margin_s": 3.3,
                           "agent": {"error": None}, "hosts": hosts_of(view),
                           "vms": vms_of(view, {}, {"i1": kept["i1"][1]}),
                           "etcd": {"healthy": 2, "members": [{}, {}]}})
    assert "  placed on b, 4\u2605 (memory: 512 MB needed, 3000 MB free" in text
    moved = replace(vm, owner="a", owner_lease=9)  # drained or migrated since: stale
    assert remembered(kept, [moved], place([moved], hosts)) == {}
    assert remembered(kept, [], place([], hosts)) == {}  # the VM is gone


def test_a_start_planned_from_a_view_read_before_a_stop_was_written_is_stale() -> None:
    """The admin stops an HA VM while the agent's view (read before the stop reached etcd)
    still says "wanted running": the start planned from that view must not run, or the
    stop is undone; once the stop is written, a view read after it decides."""
    ledger = ExitLedger()
    before_stop = ledger.before_read()
    assert not ledger.stale("vm", before_stop)  # never ended here: starts go ahead
    count = ledger.ended("vm")  # QEMU ended (the admin's stop); etcd not written yet
    assert ledger.stale("vm", before_stop)
    assert ledger.stale("vm", ledger.before_read())  # read while the write is queued
    ledger.written("vm", count)
    after_write = ledger.before_read()
    assert not ledger.stale("vm", after_write) and not ledger.stale("other", before_stop)
    again = ledger.ended("vm")  # a second exit (a fence) after that view: stale again
    ledger.written("vm", count)  # an older write finishing late changes nothing
    assert ledger.stale("vm", ledger.before_read())
    ledger.written("vm", again)
    assert not ledger.stale("vm", ledger.before_read())

"""The one-copy checker's reading of the guest's tick counter (``tests/cluster/one_copy.py``),
on made-up samples: a failover's reboot is fine, two hosts counting at once are caught,
a move keeps its numbers apart; the checker's QEMU count; and the wait for the guest
counting on (across a restart on the same host)."""

from __future__ import annotations

from functools import partial

import pytest

from tests.cluster.one_copy import CountingOn, OneCopyChecker, Place, TickRuns


def _feed(samples: list[tuple[float, dict[str, list[int]]]]) -> TickRuns:
    runs = TickRuns()
    for at, logs in samples:
        for place, ticks in logs.items():
            runs.observe(place, ticks, at)
    return runs


def test_a_failover_reboot_on_another_host_is_one_copy() -> None:
    runs = _feed([(0, {"h1": [1, 2], "h2": []}), (1, {"h1": [1, 2, 3], "h2": []}),
                  (2, {"h1": [1, 2, 3], "h2": []}),  # h1 died
                  (9, {"h1": [1, 2, 3], "h2": [1]}), (10, {"h1": [], "h2": [1, 2]})])
    assert [(r.place, r.low, r.high, r.first, r.last) for r in runs.counted()] == \
        [("h1", 1, 3, 1, 1), ("h2", 1, 2, 9, 10)]
    assert runs.overlaps() == []


def test_two_hosts_counting_at_once_is_two_copies() -> None:
    runs = _feed([(0, {"h1": [1], "h2": []}), (1, {"h1": [1, 2], "h2": [1]}),
                  (2, {"h1": [1, 2, 3], "h2": [1, 2]})])
    [(a, b)] = runs.overlaps()
    assert (a.place, b.place) == ("h1", "h2")


def test_a_handover_seen_in_one_sample_is_not_an_overlap() -> None:
    runs = _feed([(0, {"h1": [7], "h2": []}), (1, {"h1": [7, 8], "h2": []}),
                  (2, {"h1": [7, 8, 9], "h2": [10]}), (3, {"h1": [], "h2": [10, 11]})])
    assert runs.overlaps() == [] and runs.interleaved() == []


def test_a_restart_in_an_appended_log_is_a_new_run_and_stale_logs_do_not_count() -> None:
    runs = _feed([(0, {"h1": [1, 2, 3, 4], "h3": [1, 2]}), (1, {"h1": [1, 2, 3, 4, 1]}),
                  (2, {"h1": [1, 2, 3, 4, 1, 2], "h3": [1, 2]})])
    assert [(r.place, r.low, r.high, r.first) for r in runs.runs] == \
        [("h1", 1, 4, None), ("h3", 1, 2, None), ("h1", 1, 2, 1)]
    assert [r.place for r in runs.counted()] == ["h1"]


def test_a_move_printing_a_tick_number_twice_is_interleaved() -> None:
    runs = _feed([(0, {"h1": [5], "h2": []}), (1, {"h1": [5, 6], "h2": [6]})])
    assert runs.interleaved()


def test_the_checker_counts_qemus_and_requires_ticks() -> None:
    pids: dict[str, list[int]] = {"h1": [10], "h2": []}
    logs: dict[str, list[int]] = {"h1": [1], "h2": []}
    checker = OneCopyChecker([Place(n, partial(pids.__getitem__, n),
                                    partial(logs.__getitem__, n)) for n in ("h1", "h2")])
    checker.sample()
    with pytest.raises(AssertionError, match="never seen counting"):
        checker.check()
    logs["h1"] = [1, 2]
    checker.sample()
    checker.check()
    pids["h2"] = [11]
    checker.sample()
    with pytest.raises(AssertionError, match="too many QEMUs"):
        checker.check()


def test_counting_on_follows_a_restart_on_the_same_host_and_needs_one_copy() -> None:
    pids: dict[str, list[int]] = {"h1": [10], "h2": []}
    logs: dict[str, list[int]] = {"h1": list(range(1, 301)), "h2": []}
    counting = CountingOn([Place(n, partial(pids.__getitem__, n),
                                 partial(logs.__getitem__, n)) for n in ("h1", "h2")])
    assert counting() is None  # first seen at tick 300: two more wanted
    logs["h1"] = []  # fenced: QEMU and its log gone, started again on h1 (lease held)
    assert counting() is None
    logs["h1"] = [1, 2]  # the new run's own ticks count, not the old log's length
    assert counting() == "h1"
    pids["h2"] = [11]
    logs["h1"].append(3)
    assert counting() is None  # two QEMUs: not "running once"

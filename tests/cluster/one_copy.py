"""The one-copy checker of the cluster tests (issue 15, "Tests that must exist";
docs/architecture.md, "Failover cluster", Tested): a thread samples, every 50 ms, every
host's QEMU processes of one VM *and* the guest's own counter — the guest kit's
``VIRIDIAN-GUEST TICK <n>`` lines in each host's COM1 log of the VM.

Two running copies show in two ways: two QEMU processes at once (a live move has two for a
while, the target's paused: ``most_copies=2`` there), and the guest counting on two hosts
at once. :class:`TickRuns` (pure, unit-tested) turns the samples into *runs*: a host's
counter that grows is one run; one that starts again from a lower number is a new run (a
reboot: a failover restarts the guest). A run lasts from the first to the last sample that
saw it count on; two runs on different hosts whose spans overlap are two copies of the
guest counting at the same time. A move keeps the counter (``continuous``): then every
tick number is printed on one host only, the target's after the source's.

:class:`CountingOn` is the tests' wait for the guest: it is met when one host runs the VM
and the guest there counts on, whichever copy that is (a restart is a new run).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Run:
    """One host's guest counting on: ticks ``low``..``high``, seen to grow from sample
    time ``first`` to ``last`` (``None`` while it has not grown since sampling began)."""

    place: str
    low: int
    high: int
    first: float | None = None
    last: float | None = None


def current_run(ticks: Sequence[int]) -> list[int]:
    """The ticks of the last run in one log (a log appended across QEMU starts holds the
    earlier runs before a lower number)."""
    start = 0
    for index in range(1, len(ticks)):
        if ticks[index] < ticks[index - 1]:
            start = index
    return list(ticks[start:])


@dataclass
class TickRuns:
    """The guest's runs per host, from samples of each host's tick numbers."""

    runs: list[Run] = field(default_factory=list)
    _current: dict[str, Run] = field(default_factory=dict)
    _sampled: set[str] = field(default_factory=set)

    def observe(self, place: str, ticks: Sequence[int], at: float) -> None:
        """What ``place``'s log holds at sample time ``at`` (all its tick numbers)."""
        baseline = place not in self._sampled
        self._sampled.add(place)
        tail = current_run(ticks)
        if not tail:
            self._current.pop(place, None)  # no log (the QEMU ended, its folder removed)
            return
        run = self._current.get(place)
        if run is not None and tail[0] == run.low and tail[-1] >= run.high:
            if tail[-1] > run.high:
                run.high = tail[-1]
                run.first = run.first if run.first is not None else at
                run.last = at
            return
        # a run first seen now: it counted since the last sample unless sampling just began
        run = Run(place, tail[0], tail[-1], None if baseline else at, None if baseline else at)
        self._current[place] = run
        self.runs.append(run)

    def counted(self) -> list[Run]:
        """The runs seen counting on."""
        return [r for r in self.runs if r.first is not None]

    def overlaps(self) -> list[tuple[Run, Run]]:
        """Pairs of runs on different hosts that counted on at the same time (their spans
        share more than one sample instant)."""
        found = []
        for a, b in itertools.combinations(self.counted(), 2):
            assert a.first is not None and a.last is not None
            assert b.first is not None and b.last is not None
            if a.place != b.place and max(a.first, b.first) < min(a.last, b.last):
                found.append((a, b))
        return found

    def interleaved(self) -> list[tuple[Run, Run]]:
        """For a guest that keeps its counter (moves): pairs of runs whose tick numbers
        are not one after the other."""
        spans = sorted(self.runs, key=lambda r: r.low)
        return [(a, b) for a, b in itertools.pairwise(spans) if a.high >= b.low]


@dataclass(frozen=True)
class Place:
    """One host as the checker sees it: its QEMU processes of the VM and the tick numbers
    the guest printed there (the VM's COM1 log on that host)."""

    name: str
    copies: Callable[[], Sequence[object]]
    ticks: Callable[[], Sequence[int]]


@dataclass
class OneCopyChecker:
    """Samples ``places`` every 50 ms from ``__enter__`` to ``__exit__``; :meth:`check`
    asserts at most ``most_copies`` QEMUs at once and the guest never counting on two
    hosts at once (``continuous``: nor any tick number on two hosts)."""

    places: Sequence[Place]
    most_copies: int = 1
    most: int = 0
    seen: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    ticks: TickRuns = field(default_factory=TickRuns)
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> None:
        where = tuple(p.name for p in self.places for _ in p.copies())
        self.most = max(self.most, len(where))
        now = time.monotonic()
        if not self.seen or self.seen[-1][1] != where:
            self.seen.append((now, where))
        for place in self.places:
            self.ticks.observe(place.name, place.ticks(), now)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            time.sleep(0.05)

    def __enter__(self) -> OneCopyChecker:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def check(self, continuous: bool = False) -> None:
        assert self.most <= self.most_copies, f"too many QEMUs of the VM at once: {self.seen}"
        # Not vacuous: the guest was seen counting (growing between samples, or a log whose
        # ticks grew when the move was short enough to fall between two samples).
        assert self.ticks.counted() or any(r.high > r.low for r in self.ticks.runs), \
            f"the guest's counter was never seen counting: {self.ticks.runs}"
        both = self.ticks.overlaps()
        assert not both, f"the guest counted on two hosts at once: {both}"
        if continuous:
            mixed = self.ticks.interleaved()
            assert not mixed, f"tick numbers printed on two hosts: {mixed}"


@dataclass
class CountingOn:
    """A condition for ``wait_for``: the VM's QEMU runs on exactly one of ``places`` and the
    guest there printed ``ticks`` more ticks since that copy was first seen; then the
    place's name, else None. A copy that ends, moves or restarts (its counter lower than
    last seen: a new run) is counted from where it is then: on a loaded machine a host
    that missed its fence deadline turns its VM off and, its lease still holding the owner
    key, starts it again — one copy, rebooted (the checker judges the copies)."""

    places: Sequence[Place]
    ticks: int = 2
    _place: str | None = None
    _since: int = 0
    _high: int = 0

    def __call__(self) -> str | None:
        running = [p for p in self.places if p.copies()]
        place = running[0] if len(running) == 1 else None
        run = current_run(place.ticks()) if place is not None else []
        high = run[-1] if run else 0
        name = place.name if place is not None else None
        if name != self._place or high < self._high:
            self._place, self._since, self._high = name, high, high
            return None
        self._high = high
        return name if name is not None and high >= self._since + self.ticks else None

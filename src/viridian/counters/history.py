"""The in-service history: a ring buffer of computed counter samples (for charts)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from viridian.counters import paths as P


@dataclass(frozen=True)
class CounterSample:
    """Counter values over the interval that ended at ``time`` (Unix seconds)."""

    time: float
    interval_s: float
    values: dict[str, float]

    def to_dict(self, selected: Iterable[str] | None = None) -> dict[str, object]:
        keys = self.values if selected is None else selected
        return {"time": round(self.time, 3), "interval_s": round(self.interval_s, 3),
                "values": {k: round(self.values[k], 4) for k in keys if k in self.values}}


class History:
    """The last ``capacity`` samples, oldest first; appending past capacity drops the oldest."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("history capacity must be at least 1")
        self._samples: deque[CounterSample] = deque(maxlen=capacity)

    @property
    def capacity(self) -> int:
        return self._samples.maxlen or 0

    def __len__(self) -> int:
        return len(self._samples)

    def append(self, sample: CounterSample) -> None:
        self._samples.append(sample)

    def latest(self) -> CounterSample | None:
        return self._samples[-1] if self._samples else None

    def since(self, time: float = 0.0) -> list[CounterSample]:
        """Samples that ended after ``time`` (Unix seconds), oldest first."""
        return [s for s in self._samples if s.time > time]

    def known_paths(self) -> list[str]:
        """Every path seen in any kept sample, sorted."""
        return sorted({k for s in self._samples for k in s.values})

    def average(self, counter_path: str, window_s: float, now: float) -> float | None:
        """Time-weighted average of one counter over the last ``window_s`` seconds, or None."""
        chosen = [s for s in self._samples if s.time > now - window_s and counter_path in s.values]
        weight = sum(s.interval_s for s in chosen)
        if not chosen or weight <= 0:
            return None
        return sum(s.values[counter_path] * s.interval_s for s in chosen) / weight

    def averages(self, query: str, window_s: float, now: float) -> dict[str, float]:
        """:meth:`average` of every kept path matching ``query`` (wildcards allowed)."""
        parsed = P.parse(query)
        found = {}
        for name in self.known_paths():
            if P.matches(parsed, P.parse(name)):
                value = self.average(name, window_s, now)
                if value is not None:
                    found[name] = value
        return found

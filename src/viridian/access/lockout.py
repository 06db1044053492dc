"""Login rate limiting: after :data:`MAX_FAILURES` failed logins of one user (any source)
or from one source address within :data:`WINDOW_S`, further logins of that user or from
that source are refused for :data:`LOCKOUT_S` — even with the right password. Pure, the
clock injected. Only password logins pass here: the bootstrap admin token is checked
elsewhere and can never be locked out."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["LoginLimiter"]

MAX_FAILURES, WINDOW_S, LOCKOUT_S = 5, 300.0, 300.0


class LoginLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 lockout_s: float = LOCKOUT_S) -> None:
        self._clock, self.max_failures = clock, max_failures
        self.window_s, self.lockout_s = window_s, lockout_s
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, user: str, source: str) -> float:
        """Seconds until ``user`` / ``source`` may try again (0: may try now)."""
        now = self._clock()
        until = max(self._locked_until.get(f"u:{user}", 0.0),
                    self._locked_until.get(f"s:{source}", 0.0))
        return max(0.0, until - now)

    def failed(self, user: str, source: str) -> None:
        now = self._clock()
        for key in (f"u:{user}", f"s:{source}"):
            times = self._failures.setdefault(key, deque())
            times.append(now)
            while times and now - times[0] > self.window_s:
                times.popleft()
            if len(times) >= self.max_failures:
                self._locked_until[key] = now + self.lockout_s
                times.clear()

    def succeeded(self, user: str) -> None:
        self._failures.pop(f"u:{user}", None)

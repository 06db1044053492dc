"""Console login sessions: what a browser holds after it proved it knows the admin token.

A session is an opaque random id (the HttpOnly, SameSite=Strict cookie) paired with its own
CSRF token (given to the page, sent back in the ``X-CSRF-Token`` header of every
state-changing request). Sessions live in memory: a restarted service asks for the token
again. A session ends after :data:`IDLE_S` without use, :data:`MAX_AGE_S` after login, or
at logout. The clock is injectable so the rules are testable without waiting.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

IDLE_S = 8 * 3600.0
MAX_AGE_S = 7 * 24 * 3600.0
MAX_SESSIONS = 256


@dataclass
class Session:
    """``bearer`` is the API credential the session's requests carry: a user's login
    session (``vss_…``) for a user login, None for the admin token."""

    id: str
    csrf: str
    created: float
    seen: float
    bearer: str | None = None
    user: str | None = None

    def csrf_matches(self, presented: str | None) -> bool:
        """True when ``presented`` is this session's CSRF token (constant time)."""
        return bool(presented) and hmac.compare_digest(str(presented).encode(), self.csrf.encode())


class SessionStore:
    """Live sessions by id; the oldest is dropped when more than ``limit`` exist."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 limit: int = MAX_SESSIONS) -> None:
        self._clock = clock
        self._limit = limit
        self._sessions: dict[str, Session] = {}

    def create(self, bearer: str | None = None, user: str | None = None) -> Session:
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32), now, now,
                          bearer, user)
        self._sessions[session.id] = session
        while len(self._sessions) > self._limit:
            oldest = min(self._sessions.values(), key=lambda s: s.seen)
            del self._sessions[oldest.id]
        return session

    def lookup(self, session_id: str | None) -> Session | None:
        """The live session named by the cookie value, refreshed; None if unknown/expired."""
        session = self._sessions.get(session_id or "")
        if session is None:
            return None
        now = self._clock()
        if now - session.seen > IDLE_S or now - session.created > MAX_AGE_S:
            del self._sessions[session.id]
            return None
        session.seen = now
        return session

    def end(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

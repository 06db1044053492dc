"""Redfish sessions end when unused past SessionService.SessionTimeout; a token names only
its own session."""

from __future__ import annotations

from viridian.redfish.privileges import Role
from viridian.service.redfish.auth import Account, Sessions

ACCOUNT = Account("a1", "ops", Role.OPERATOR, True)


def test_a_live_session_is_found_by_its_token_only() -> None:
    sessions = Sessions()
    session_id, token = sessions.create(ACCOUNT)
    found = sessions.lookup(token)
    assert found is not None and (found.user, found.session_id) == ("ops", session_id)
    assert sessions.lookup(token + "x") is None
    sessions.delete(session_id)
    assert sessions.lookup(token) is None


def test_a_session_past_its_timeout_is_gone() -> None:
    sessions = Sessions(timeout_s=-1)  # every session is already past it
    _, token = sessions.create(ACCOUNT)
    assert sessions.lookup(token) is None
    assert sessions.list() == []

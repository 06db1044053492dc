"""Who a Redfish request comes from, through viridian's access control (issue 17;
docs/architecture.md, "Redfish" → "Accounts and privileges").

Credentials (DSP0266 §13.3): an ``X-Auth-Token`` of a session made through
``SessionService``, HTTP Basic, or a bearer token viridian's API accepts. Redfish
sessions *are* access sessions (``vss_…`` tokens: they work on the JSON API too, are
listed and ended from either side). Basic is a login to access (its realms, lockout and
audit): its session is reused for the same credentials for :data:`BASIC_REUSE_S` and
hidden from the Sessions collection.

The bootstrap admin token (``<data>/token``) is no viridian user: Redfish shows it as the
account ``admin`` (Basic ``admin:<token>``); its Redfish sessions are the one thing kept
here, in memory (a restart ends them).

Reading the access store's sessions table (for the Sessions collection) is done here
with the store's own ``rows``; everything else uses :class:`AccessControl`'s methods.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from viridian.access import BOOTSTRAP, AccessControl, Principal
from viridian.access.control import SESSION_S
from viridian.errors import Unauthorized
from viridian.redfish.messages import RedfishError, not_found

ADMIN_USER = "admin"
BASIC_REUSE_S = 30.0


@dataclass(frozen=True)
class SessionInfo:
    id: str
    user: str


def redfish_user(principal: Principal) -> str:
    """The user name Redfish shows for ``principal`` (the admin token is ``admin``)."""
    return ADMIN_USER if principal.bootstrap else principal.user


class RedfishAuth:
    """Authentication and sessions of the Redfish tree on one :class:`AccessControl`."""

    def __init__(self, access: AccessControl) -> None:
        self.access = access
        self._admin: dict[str, tuple[str, float]] = {}  # token → (session id, expires)
        self._basic: dict[bytes, tuple[str, str, float]] = {}  # key → (token, user, made)
        self._basic_ids: set[str] = set()

    # --- credentials ----------------------------------------------------------------

    async def authenticate(self, headers: dict[str, str], source: str) -> Principal | None:
        """The principal the request's credentials name, or None (none, or wrong)."""
        token = headers.get("x-auth-token")
        if token:
            return self._token(token)
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return self.access.authenticate(value.strip())
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return await self._basic_login(user, password, source)

    def _token(self, token: str) -> Principal | None:
        found = next((v for t, v in self._admin.items()
                      if hmac.compare_digest(t.encode(), token.encode())), None)
        if found is not None:
            return BOOTSTRAP if found[1] > time.time() else None
        return self.access.authenticate(token)

    def _admin_password(self, user: str, password: str) -> bool:
        if user != ADMIN_USER:
            return False
        principal = self.access.authenticate(password)
        return principal is not None and principal.bootstrap

    async def _basic_login(self, user: str, password: str, source: str) -> Principal | None:
        if self._admin_password(user, password):
            return BOOTSTRAP
        key = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        cached = self._basic.pop(key, None)
        if cached is not None:
            principal = self.access.authenticate(cached[0])
            if principal is not None and time.monotonic() - cached[2] < BASIC_REUSE_S:
                self._basic[key] = cached
                return principal
            if principal is not None:
                self.access.logout(principal)
        try:
            made = await asyncio.to_thread(self.access.login, user, password, None, None,
                                           source)
        except Unauthorized:
            return None
        self._basic[key] = (made["token"], user, time.monotonic())
        self._basic_ids.add(made["token"][4:16])
        return self.access.authenticate(made["token"])

    def forget_basic(self, user: str) -> None:
        """End the Basic sessions of ``user`` (its password or role changed)."""
        for key, (token, name, _) in list(self._basic.items()):
            if name == user:
                del self._basic[key]
                principal = self.access.authenticate(token)
                if principal is not None:
                    self.access.logout(principal)

    def close(self) -> None:
        for user in {name for _, name, _ in self._basic.values()}:
            self.forget_basic(user)

    # --- sessions -------------------------------------------------------------------

    async def login(self, user: str, password: str, source: str) -> tuple[str, str]:
        """A new session (``POST SessionService/Sessions``): ``(session id, token)``.

        :raises RedfishError: 401 wrong user name or password (or locked out).
        """
        if self._admin_password(user, password):
            session_id, token = secrets.token_hex(6), secrets.token_urlsafe(32)
            self._admin[token] = (session_id, time.time() + SESSION_S)
            return session_id, token
        try:
            made = await asyncio.to_thread(self.access.login, user, password, None, None,
                                           source)
        except Unauthorized as err:
            raise RedfishError(401, "ResourceAtUriUnauthorized",
                               "/redfish/v1/SessionService/Sessions", "Unauthorized",
                               detail=err.message) from None
        token = str(made["token"])
        return token[4:16], token

    def sessions(self) -> list[SessionInfo]:
        """Open sessions: access sessions (but Basic's) and the admin token's."""
        now = time.time()
        self._admin = {t: v for t, v in self._admin.items() if v[1] > now}
        rows = self.access.store.rows("SELECT id, user FROM sessions WHERE expires > ? "
                                      "ORDER BY created", (now,))
        return [*(SessionInfo(v[0], ADMIN_USER) for v in self._admin.values()),
                *(SessionInfo(r[0], r[1]) for r in rows if r[0] not in self._basic_ids)]

    def session(self, session_id: str) -> SessionInfo:
        found = next((s for s in self.sessions() if s.id == session_id), None)
        if found is None:
            raise not_found("Session", session_id)
        return found

    def end(self, session_id: str) -> None:
        """End a session now (its token stops working)."""
        self.session(session_id)
        self._admin = {t: v for t, v in self._admin.items() if v[0] != session_id}
        self.access.expire_session(session_id)

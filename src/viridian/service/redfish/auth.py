"""Who a Redfish request comes from, and whether that role may do it — the one module to
change when viridian's access package (roles, issue 17) replaces these accounts.

Credentials (DSP0266 §13.3): HTTP Basic, an ``X-Auth-Token`` of a session made through
``SessionService``, or the admin bearer token. The built-in account ``admin`` has the
admin token as its password and the role Administrator; further accounts (Redfish's
``AccountService``) live in the catalog's ``redfish_accounts`` table with scrypt hashes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from viridian.redfish.messages import RedfishError
from viridian.redfish.privileges import Role, allows
from viridian.redfish.services import SESSION_TIMEOUT_S
from viridian.service.catalog import Catalog

ADMIN_USER = "admin"
ADMIN_ID = "admin"

_SCHEMA = """CREATE TABLE IF NOT EXISTS redfish_accounts (
    id TEXT PRIMARY KEY, user TEXT UNIQUE NOT NULL, role TEXT NOT NULL,
    salt BLOB NOT NULL, hash BLOB NOT NULL, enabled INTEGER NOT NULL)"""


@dataclass(frozen=True)
class Principal:
    user: str
    role: Role
    session_id: str | None = None


@dataclass(frozen=True)
class Account:
    id: str
    user: str
    role: Role
    enabled: bool


def _hash(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)


class Accounts:
    """The built-in admin and the accounts made through ``AccountService``."""

    def __init__(self, catalog: Catalog, admin_token: str) -> None:
        self._catalog, self._token = catalog, admin_token
        catalog.execute_script(_SCHEMA)

    def list(self) -> list[Account]:
        rows = self._catalog.read("SELECT id, user, role, enabled FROM redfish_accounts "
                                  "ORDER BY user")
        return [Account(ADMIN_ID, ADMIN_USER, Role.ADMINISTRATOR, True),
                *(Account(r[0], r[1], Role(r[2]), bool(r[3])) for r in rows)]

    def get(self, account_id: str) -> Account:
        for account in self.list():
            if account.id == account_id:
                return account
        raise RedfishError(404, "ResourceNotFound", "ManagerAccount", account_id)

    def create(self, user: str, password: str, role: Role) -> Account:
        if any(a.user == user for a in self.list()):
            raise RedfishError(409, "ResourceAlreadyExists", "ManagerAccount", "UserName", user)
        account = Account(secrets.token_hex(4), user, role, True)
        salt = secrets.token_bytes(16)
        with self._catalog.transaction() as db:
            db.execute("INSERT INTO redfish_accounts VALUES (?, ?, ?, ?, ?, 1)",
                       (account.id, user, role.value, salt, _hash(password, salt)))
        return account

    def update(self, account_id: str, password: str | None, role: Role | None,
               enabled: bool | None) -> None:
        if account_id == ADMIN_ID:
            raise RedfishError(400, "PropertyNotWritable", "Password",
                               detail="the built-in admin account's password is the "
                                      "service's admin token; nothing was changed")
        current = self.get(account_id)
        with self._catalog.transaction() as db:
            if password is not None:
                salt = secrets.token_bytes(16)
                db.execute("UPDATE redfish_accounts SET salt=?, hash=? WHERE id=?",
                           (salt, _hash(password, salt), current.id))
            if role is not None:
                db.execute("UPDATE redfish_accounts SET role=? WHERE id=?",
                           (role.value, current.id))
            if enabled is not None:
                db.execute("UPDATE redfish_accounts SET enabled=? WHERE id=?",
                           (int(enabled), current.id))

    def delete(self, account_id: str) -> None:
        if account_id == ADMIN_ID:
            raise RedfishError(409, "ResourceCannotBeDeleted")
        self.get(account_id)
        with self._catalog.transaction() as db:
            db.execute("DELETE FROM redfish_accounts WHERE id=?", (account_id,))

    def check(self, user: str, password: str) -> Account | None:
        """The enabled account ``user`` whose password is ``password`` (constant time)."""
        if user == ADMIN_USER:
            ok = hmac.compare_digest(password.encode(), self._token.encode())
            return Account(ADMIN_ID, ADMIN_USER, Role.ADMINISTRATOR, True) if ok else None
        rows = self._catalog.read("SELECT id, role, salt, hash, enabled FROM redfish_accounts "
                                  "WHERE user=?", (user,))
        if not rows or not rows[0][4]:
            return None
        id_, role, salt, hashed, _ = rows[0]
        if not hmac.compare_digest(_hash(password, salt), hashed):
            return None
        return Account(id_, user, Role(role), True)

    def bearer(self, token: str) -> bool:
        return hmac.compare_digest(token.encode(), self._token.encode())


class Sessions:
    """Redfish sessions (``X-Auth-Token``), kept in memory: a restart logs everyone out. A
    session unused for ``timeout_s`` (``SessionService.SessionTimeout``) ends."""

    def __init__(self, timeout_s: float = SESSION_TIMEOUT_S) -> None:
        self._by_token: dict[str, tuple[str, Principal]] = {}
        self._used: dict[str, float] = {}
        self.timeout_s = timeout_s

    def create(self, account: Account) -> tuple[str, str]:
        """A new session: ``(session id, token)``."""
        session_id, token = secrets.token_hex(8), secrets.token_urlsafe(32)
        self._by_token[token] = (session_id, Principal(account.user, account.role, session_id))
        self._used[token] = time.monotonic()
        return session_id, token

    def lookup(self, token: str) -> Principal | None:
        self._expire()
        for known, (_, principal) in self._by_token.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                self._used[known] = time.monotonic()
                return principal
        return None

    def _expire(self) -> None:
        limit = time.monotonic() - self.timeout_s
        for token in [t for t, used in self._used.items() if used < limit]:
            self._by_token.pop(token, None)
            del self._used[token]

    def list(self) -> list[Principal]:
        self._expire()
        return [p for _, p in self._by_token.values()]

    def get(self, session_id: str) -> Principal:
        for principal in self.list():
            if principal.session_id == session_id:
                return principal
        raise RedfishError(404, "ResourceNotFound", "Session", session_id)

    def delete(self, session_id: str) -> None:
        self.get(session_id)
        self._by_token = {t: v for t, v in self._by_token.items() if v[0] != session_id}

    def drop_user(self, user: str) -> None:
        self._by_token = {t: v for t, v in self._by_token.items() if v[1].user != user}


def authenticate(headers: dict[str, str], accounts: Accounts,
                 sessions: Sessions) -> Principal | None:
    """The principal the request's credentials name, or None (no or wrong credentials)."""
    token = headers.get("x-auth-token")
    if token:
        return sessions.lookup(token)
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return Principal(ADMIN_USER, Role.ADMINISTRATOR) if accounts.bearer(value.strip()) \
            else None
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    account = accounts.check(user, password)
    return Principal(account.user, account.role) if account else None


def authorize(principal: Principal, privilege: str) -> None:
    """Raise 403 ``InsufficientPrivilege`` unless ``principal``'s role has ``privilege``."""
    if not allows(principal.role, privilege):
        raise RedfishError(403, "InsufficientPrivilege",
                           detail=f"role {principal.role.value} lacks the privilege "
                                  f"{privilege}; nothing was changed")

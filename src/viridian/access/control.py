"""AccessControl: identities, credentials and the authorization decision behind one object
(docs/architecture.md, "Access"). The service holds one; Redfish and the console use the
same two calls: :meth:`AccessControl.authenticate` → :class:`Principal`, and
:meth:`AccessControl.authorize` (raises :class:`~viridian.errors.Forbidden`).

Credentials: the bootstrap admin token (``<data>/token``, never locked out), API tokens
``vtk_<id>.<secret>`` and login sessions ``vss_<id>.<secret>`` (the secret is shown once;
the store keeps its SHA-256). Realms: ``local`` (scrypt hashes), ``pam`` (the host's
accounts), and named ``ldap`` realms. A user must be added (``viridian user add``) before
it can log in, whatever its realm.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from viridian.access import pam
from viridian.access.audit import AuditLog
from viridian.access.ldap_realm import LdapRealm
from viridian.access.lockout import LoginLimiter
from viridian.access.operations import OPERATIONS, expand
from viridian.access.passwords import hash_password, verify_password
from viridian.access.policy import Grant, Policy
from viridian.access.principal import BOOTSTRAP, Principal
from viridian.access.roles import BUILTIN_ROLES, Role
from viridian.access.scopes import Target, parse_scope
from viridian.access.store import AccessStore
from viridian.access.totp import new_secret, otpauth_uri, verify_totp
from viridian.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized

__all__ = ["AccessControl"]

SESSION_S = 8 * 3600.0
REALM_KINDS = ("local", "pam", "ldap")
_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,63}$", re.IGNORECASE)
_TOKEN = re.compile(r"^(vtk|vss)_([0-9a-f]{12})\.([A-Za-z0-9_-]{20,})$")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_name(kind: str, name: str) -> str:
    if not _NAME.match(name):
        raise BadRequest(f"invalid {kind} name {name!r}: 1-64 letters, digits, '_', '.', '-' "
                         "starting with a letter or '_'; nothing was changed", **{kind: name})
    return name


class AccessControl:
    """Everything about who may do what; one per service (thread-safe)."""

    def __init__(self, data_dir: Path, admin_token: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = AccessStore(data_dir / "access.sqlite")
        self._admin_token = admin_token.encode()
        self._clock = clock
        self.limiter = LoginLimiter()
        self._policy: Policy | None = None
        self.audit = AuditLog(data_dir / "audit.log", lambda: self.store.get_meta("audit_head"),
                              lambda head: self.store.set_meta("audit_head", head), clock)

    def close(self) -> None:
        self.audit.close()
        self.store.close()

    # --- authentication ---------------------------------------------------------------

    def authenticate(self, bearer: str | None) -> Principal | None:
        """The principal a bearer credential names, or None (unknown, revoked, expired)."""
        if not bearer:
            return None
        if hmac.compare_digest(bearer.encode(), self._admin_token):
            return BOOTSTRAP
        found = _TOKEN.match(bearer)
        if found is None:
            return None
        kind, ident, secret = found.groups()
        return (self._token_principal if kind == "vtk" else self._session_principal)(
            ident, secret)

    def _token_principal(self, ident: str, secret: str) -> Principal | None:
        row = self.store.row("SELECT t.user, t.role, t.hash, u.realm, u.groups FROM tokens t "
                             "JOIN users u ON u.name = t.user WHERE t.id=? AND t.revoked IS "
                             "NULL", (ident,))
        if row is None or not hmac.compare_digest(row[2], _digest(secret)):
            return None
        user, role, _, realm, groups = row
        return Principal(user, realm, "token", self._groups_of(user, groups), token_id=ident,
                         token_role=role)

    def _session_principal(self, ident: str, secret: str) -> Principal | None:
        row = self.store.row("SELECT user, realm, groups, hash, expires FROM sessions "
                             "WHERE id=?", (ident,))
        if row is None or not hmac.compare_digest(row[3], _digest(secret)):
            return None
        if row[4] <= self._clock():
            self.store.write("DELETE FROM sessions WHERE id=?", (ident,))
            return None
        return Principal(row[0], row[1], "session", self._groups_of(row[0], row[2]),
                         session_id=ident)

    def principal_for(self, user: str, via: str, token_role: str | None = None) -> Principal:
        """The principal of user ``user`` as THIS host's access data knows it (realm,
        realm groups of its last login here, local groups), for a request another host
        made on the user's behalf (``via`` says how, e.g. ``peer:h1``); ``token_role``
        narrows it as an API token's role would.

        :raises Forbidden: no user of that name here (nothing is granted to a stranger).
        """
        row = self.store.row("SELECT realm, groups FROM users WHERE name=?", (user,))
        if row is None:
            raise Forbidden(f"user {user!r} has no account on this host (access data is "
                            "kept per host: add the user and its grants here); nothing was "
                            "changed", user=user)
        return Principal(user, row[0], via, self._groups_of(user, row[1]),
                         token_role=token_role)

    def _groups_of(self, user: str, realm_groups: str) -> frozenset[str]:
        local = {r[0] for r in self.store.rows("SELECT grp FROM members WHERE user=?", (user,))}
        return frozenset(json.loads(realm_groups)) | local

    def login(self, user: str, password: str, realm: str | None = None,
              totp: str | None = None, source: str = "") -> dict[str, Any]:
        """Check a password (and TOTP code when the user has one), open a session.

        :returns: ``{"token", "expires", "user", "realm", "groups"}``; the token is shown
            only here.
        :raises Unauthorized: wrong user/password/code, or locked out (``retry_after_s``).
        """
        wait = self.limiter.retry_after(user, source)
        if wait > 0:
            self.audit.append(who=user, realm=realm, source=source, operation="login",
                              result="locked")
            raise Unauthorized(f"too many failed logins for {user!r} or from {source}: "
                               f"locked for {wait:.0f} more seconds", retry_after_s=round(wait))
        groups = self._check_login(user, password, realm, totp)
        if groups is None:
            self.limiter.failed(user, source)
            self.audit.append(who=user, realm=realm, source=source, operation="login",
                              result="denied")
            raise Unauthorized("login failed: unknown user, wrong password or wrong "
                               "one-time code (or a realm other than the user's)")
        self.limiter.succeeded(user)
        row_realm = self._user_row(user)[1]
        return self._open_session(user, row_realm, groups, source)

    def _check_login(self, user: str, password: str, realm: str | None,
                     totp: str | None) -> frozenset[str] | None:
        row = self.store.row("SELECT name, realm, password_hash, totp_secret FROM users "
                             "WHERE name=?", (user,))
        if row is None or (realm and realm != row[1] and not
                           (row[1].startswith("ldap:") and realm == row[1][5:])):
            return None
        groups = self._realm_check(user, password, row[1], row[2])
        if groups is None or (row[3] and not verify_totp(row[3], totp or "", self._clock())):
            return None
        return groups

    def _realm_check(self, user: str, password: str, realm: str,
                     stored: str | None) -> frozenset[str] | None:
        if realm == "local":
            return frozenset() if stored and verify_password(password, stored) else None
        if realm == "pam":
            return pam.unix_groups(user) if pam.pam_authenticate(user, password) else None
        try:
            return self.ldap_realm(realm.removeprefix("ldap:")).authenticate(user, password)
        except ConnectionError as err:
            raise Unauthorized(f"login failed: {err}") from err

    def _open_session(self, user: str, realm: str, groups: frozenset[str],
                      source: str) -> dict[str, Any]:
        ident, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        now = self._clock()
        with self.store.transaction() as db:
            db.execute("INSERT INTO sessions VALUES (?,?,?,?,?,?,?)",
                       (ident, user, realm, json.dumps(sorted(groups)), _digest(secret), now,
                        now + SESSION_S))
            db.execute("UPDATE users SET groups=? WHERE name=?",
                       (json.dumps(sorted(groups)), user))
        self.audit.append(who=user, realm=realm, source=source, operation="login",
                          result="ok")
        return {"token": f"vss_{ident}.{secret}", "expires": now + SESSION_S, "user": user,
                "realm": realm, "groups": sorted(groups)}

    def logout(self, principal: Principal) -> None:
        if principal.session_id:
            self.store.write("DELETE FROM sessions WHERE id=?", (principal.session_id,))

    def end_session(self, bearer: str) -> None:
        """Log out the session ``bearer`` names (nothing when it names none)."""
        principal = self.authenticate(bearer)
        if principal is not None:
            self.logout(principal)

    def allowed_operations(self, principal: Principal, target: Target) -> list[str]:
        """Every operation ``principal`` may perform on ``target`` (what a console offers)."""
        return [op for op in OPERATIONS if self.policy.allows(principal, op, target)]

    def expire_session(self, ident: str) -> None:
        """End a session now (as if its time ran out)."""
        self.store.write("UPDATE sessions SET expires=? WHERE id=?", (self._clock(), ident))

    # --- authorization ----------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            grants = [Grant(*r) for r in self.store.rows(
                "SELECT id, role, subject, scope FROM grants ORDER BY id")]
            self._policy = Policy(self.roles(), grants)
        return self._policy

    def _changed(self) -> None:
        self._policy = None

    def authorize(self, principal: Principal, operation: str, target: Target) -> None:
        """Return when allowed; else raise :class:`Forbidden` naming the operation and target."""
        if not self.policy.allows(principal, operation, target):
            how = f" (token role {principal.token_role})" if principal.token_role else ""
            raise Forbidden(f"{principal.user}{how} may not {operation} on {target.label()}: "
                            "no grant gives it; nothing was changed",
                            operation=operation, target=target.label(), user=principal.user)

    def authorize_somewhere(self, principal: Principal, operation: str) -> None:
        """Return when ``principal`` has ``operation`` on some scope (the route then checks
        its own target, :data:`viridian.access.route_table.ROUTE_AUTHORIZED`); else raise
        :class:`Forbidden` naming the operation."""
        if not self.policy.allows_somewhere(principal, operation):
            raise Forbidden(f"{principal.user} may not {operation} anywhere: no grant gives "
                            "it; nothing was changed", operation=operation,
                            user=principal.user)

    # --- users and groups -------------------------------------------------------------

    def _user_row(self, name: str) -> tuple[Any, ...]:
        row = self.store.row("SELECT name, realm, totp_secret IS NOT NULL, groups, created "
                             "FROM users WHERE name=?", (name,))
        if row is None:
            raise NotFound(f"no user named {name!r} (see 'viridian user list')", user=name)
        return row

    def _realm_name(self, realm: str) -> str:
        if realm in ("local", "pam"):
            return realm
        name = realm.removeprefix("ldap:")
        self.ldap_realm(name)
        return f"ldap:{name}"

    def add_user(self, name: str, realm: str = "local", password: str | None = None) -> dict[
            str, Any]:
        """Add a user; a ``local`` one needs a password (8+ characters)."""
        _check_name("user", name)
        realm = self._realm_name(realm)
        if realm == "local" and not password:
            raise BadRequest("a local user needs a password (--password-stdin); nothing was "
                             "changed", user=name)
        try:
            hashed = hash_password(password) if realm == "local" and password else None
        except ValueError as err:
            raise BadRequest(f"{err}; nothing was changed", user=name) from err
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone():
                raise Conflict(f"user {name!r} exists already; nothing was changed", user=name)
            db.execute("INSERT INTO users VALUES (?,?,?,NULL,'[]',?)",
                       (name, realm, hashed, self._clock()))
        return self.show_user(name)

    def set_password(self, name: str, password: str) -> None:
        if self._user_row(name)[1] != "local":
            raise BadRequest(f"{name!r} is not a local user: its password is kept by its realm")
        try:
            hashed = hash_password(password)
        except ValueError as err:
            raise BadRequest(f"{err}; nothing was changed", user=name) from err
        self.store.write("UPDATE users SET password_hash=? WHERE name=?", (hashed, name))

    def show_user(self, name: str) -> dict[str, Any]:
        row = self._user_row(name)
        local = [r[0] for r in self.store.rows("SELECT grp FROM members WHERE user=?", (name,))]
        grants = [g.to_dict() for g in self.policy.grants if g.subject == name]
        return {"name": row[0], "realm": row[1], "totp": bool(row[2]),
                "realm_groups": json.loads(row[3]), "groups": sorted(local),
                "created": row[4], "grants": grants, "quota": self.quota(name)}

    def list_users(self) -> list[dict[str, Any]]:
        return [self.show_user(r[0]) for r in self.store.rows("SELECT name FROM users "
                                                              "ORDER BY name")]

    def remove_user(self, name: str) -> None:
        self._user_row(name)
        with self.store.transaction() as db:
            for sql in ("DELETE FROM users WHERE name=?", "DELETE FROM members WHERE user=?",
                        "DELETE FROM sessions WHERE user=?", "DELETE FROM grants WHERE subject=?",
                        "DELETE FROM quotas WHERE user=?",
                        "UPDATE tokens SET revoked=unixepoch() WHERE user=?"):
                db.execute(sql, (name,))
        self._changed()

    def enable_totp(self, name: str) -> dict[str, str]:
        """Give ``name`` a TOTP secret (shown once); logins then need its code."""
        self._user_row(name)
        secret = new_secret()
        self.store.write("UPDATE users SET totp_secret=? WHERE name=?", (secret, name))
        return {"secret": secret, "uri": otpauth_uri(secret, name)}

    def set_member(self, group: str, user: str, member: bool) -> None:
        _check_name("group", group)
        self._user_row(user)
        sql = ("INSERT OR IGNORE INTO members VALUES (?,?)" if member
               else "DELETE FROM members WHERE grp=? AND user=?")
        self.store.write(sql, (group, user))

    def groups(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for grp, user in self.store.rows("SELECT grp, user FROM members ORDER BY grp, user"):
            found.setdefault(grp, []).append(user)
        return found

    # --- realms -----------------------------------------------------------------------

    def add_ldap_realm(self, realm: LdapRealm) -> None:
        _check_name("realm", realm.name)
        if realm.name in REALM_KINDS:
            raise Conflict(f"{realm.name!r} is a built-in realm name; choose another")
        self.store.write("INSERT OR REPLACE INTO realms VALUES (?, 'ldap', ?)",
                         (realm.name, json.dumps(realm.to_dict(secrets=True))))

    def ldap_realm(self, name: str) -> LdapRealm:
        row = self.store.row("SELECT config FROM realms WHERE name=?", (name,))
        if row is None:
            known = ", ".join(["local", "pam", *self.realm_names()])
            raise NotFound(f"no realm named {name!r}; known: {known}", realm=name)
        return LdapRealm(**json.loads(row[0]))

    def remove_realm(self, name: str) -> None:
        """Remove LDAP realm ``name``; refused while users of it exist (they name it)."""
        self.ldap_realm(name)
        users = [r[0] for r in self.store.rows("SELECT name FROM users WHERE realm=?",
                                               (f"ldap:{name}",))]
        if users:
            raise Conflict(f"realm {name!r} still has users: {', '.join(users)}; remove them "
                           "first ('viridian user remove'); nothing was changed", realm=name,
                           users=users)
        self.store.write("DELETE FROM realms WHERE name=?", (name,))

    def realm_names(self) -> list[str]:
        return [r[0] for r in self.store.rows("SELECT name FROM realms ORDER BY name")]

    def realms(self) -> list[dict[str, Any]]:
        builtin: list[dict[str, Any]] = [{"name": "local", "kind": "local"},
                                         {"name": "pam", "kind": "pam"}]
        return builtin + [{"kind": "ldap", **self.ldap_realm(n).to_dict()}
                          for n in self.realm_names()]

    # --- roles and grants ---------------------------------------------------------------

    def roles(self) -> dict[str, Role]:
        found = dict(BUILTIN_ROLES)
        for name, ops, description in self.store.rows("SELECT * FROM roles"):
            found[name] = Role(name, frozenset(json.loads(ops)), False, description)
        return found

    def role(self, name: str) -> Role:
        role = self.roles().get(name)
        if role is None:
            raise NotFound(f"no role named {name!r}; known: {', '.join(sorted(self.roles()))}",
                           role=name)
        return role

    def new_role(self, name: str, operations: list[str], description: str = "") -> Role:
        if not name.strip() or len(name) > 64:
            raise BadRequest("a role name needs 1-64 characters")
        if name in self.roles():
            raise Conflict(f"role {name!r} exists already; nothing was changed", role=name)
        try:
            ops = expand(tuple(operations))
        except ValueError as err:
            raise BadRequest(f"{err}; nothing was changed") from err
        self.store.write("INSERT INTO roles VALUES (?,?,?)",
                         (name, json.dumps(sorted(ops)), description))
        self._changed()
        return self.role(name)

    def remove_role(self, name: str) -> None:
        if self.role(name).builtin:
            raise Conflict(f"{name!r} is a built-in role and cannot be removed")
        with self.store.transaction() as db:
            db.execute("DELETE FROM roles WHERE name=?", (name,))
            db.execute("DELETE FROM grants WHERE role=?", (name,))
        self._changed()

    def grant(self, role: str, subject: str, scope: str) -> Grant:
        """Grant ``role`` to a user or ``@group`` on ``scope`` (idempotent)."""
        self.role(role)
        scope = self._scope(scope)
        self._subject(subject)
        with self.store.transaction() as db:
            db.execute("INSERT OR IGNORE INTO grants (role, subject, scope) VALUES (?,?,?)",
                       (role, subject, scope))
            ident = db.execute("SELECT id FROM grants WHERE role=? AND subject=? AND scope=?",
                               (role, subject, scope)).fetchone()[0]
        self._changed()
        return Grant(int(ident), role, subject, scope)

    def revoke(self, role: str, subject: str, scope: str) -> None:
        count = self.store.write("DELETE FROM grants WHERE role=? AND subject=? AND scope=?",
                                 (role, subject, self._scope(scope)))
        if not count:
            raise NotFound(f"no grant of {role!r} to {subject!r} on {scope!r}")
        self._changed()

    @staticmethod
    def _scope(scope: str) -> str:
        try:
            return parse_scope(scope)
        except ValueError as err:
            raise BadRequest(f"{err}; nothing was changed", scope=scope) from err

    # --- API tokens -----------------------------------------------------------------------

    def new_token(self, user: str, name: str, role: str | None = None) -> dict[str, Any]:
        """A new API token for ``user``; ``secret`` appears only in this answer."""
        self._user_row(user)
        _check_name("token", name)
        if role is not None:
            self.role(role)
        ident, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
        with self.store.transaction() as db:
            if db.execute("SELECT 1 FROM tokens WHERE user=? AND name=? AND revoked IS NULL",
                          (user, name)).fetchone():
                raise Conflict(f"{user!r} has a token named {name!r} already; nothing was "
                               "changed", token=name)
            db.execute("DELETE FROM tokens WHERE user=? AND name=?", (user, name))
            db.execute("INSERT INTO tokens VALUES (?,?,?,?,?,?,NULL)",
                       (ident, user, name, role, _digest(secret), self._clock()))
        return {**self.token(ident), "secret": f"vtk_{ident}.{secret}"}

    def token(self, ident: str) -> dict[str, Any]:
        row = self.store.row("SELECT id, user, name, role, created, revoked FROM tokens "
                             "WHERE id=?", (ident,))
        if row is None:
            raise NotFound(f"no token with id {ident!r} (see 'viridian token list')")
        return dict(zip(("id", "user", "name", "role", "created", "revoked"), row, strict=True))

    def tokens(self, user: str | None = None) -> list[dict[str, Any]]:
        rows = self.store.rows("SELECT id FROM tokens WHERE (? IS NULL OR user=?) ORDER BY "
                               "user, name", (user, user))
        return [self.token(r[0]) for r in rows]

    def revoke_token(self, ident: str) -> dict[str, Any]:
        self.token(ident)
        self.store.write("UPDATE tokens SET revoked=? WHERE id=? AND revoked IS NULL",
                         (self._clock(), ident))
        return self.token(ident)

    # --- quotas, owners, tags, storage paths ------------------------------------------------

    def quota(self, user: str) -> dict[str, int | None]:
        row = self.store.row("SELECT vms, memory_mb, processors, disk_mb FROM quotas WHERE "
                             "user=?", (user,))
        keys = ("vms", "memory_mb", "processors", "disk_mb")
        return dict(zip(keys, row or (None,) * 4, strict=True))

    def set_quota(self, user: str, **limits: int | None) -> dict[str, int | None]:
        self._user_row(user)
        merged = {**self.quota(user), **{k: v for k, v in limits.items() if v is not None}}
        bad = [k for k, v in merged.items() if v is not None and v < 0]
        if bad:
            raise BadRequest(f"quota {', '.join(bad)} must be 0 or more; nothing was changed")
        self.store.write("INSERT OR REPLACE INTO quotas VALUES (?,?,?,?,?)",
                         (user, merged["vms"], merged["memory_mb"], merged["processors"],
                          merged["disk_mb"]))
        return self.quota(user)

    def owner_of(self, vm_id: str) -> str | None:
        row = self.store.row("SELECT user FROM vm_owners WHERE vm_id=?", (vm_id,))
        return str(row[0]) if row else None

    def set_owner(self, vm_id: str, user: str) -> None:
        self.store.write("INSERT OR REPLACE INTO vm_owners VALUES (?,?)", (vm_id, user))

    def owned(self, user: str) -> list[str]:
        return [r[0] for r in self.store.rows("SELECT vm_id FROM vm_owners WHERE user=?",
                                              (user,))]

    def tags_of(self, vm_id: str) -> frozenset[str]:
        return frozenset(r[0] for r in self.store.rows("SELECT tag FROM vm_tags WHERE vm_id=?",
                                                       (vm_id,)))

    def set_tags(self, vm_id: str, tags: list[str]) -> list[str]:
        clean = sorted({parse_scope(f"tag:{t}")[4:] for t in tags}) if tags else []
        with self.store.transaction() as db:
            db.execute("DELETE FROM vm_tags WHERE vm_id=?", (vm_id,))
            db.executemany("INSERT INTO vm_tags VALUES (?,?)", [(vm_id, t) for t in clean])
        return clean

    def storage_paths(self, subjects: tuple[str, ...] | None = None) -> list[dict[str, str]]:
        """Granted storage paths (``{"to", "path"}``), of ``subjects`` only when given."""
        rows = self.store.rows("SELECT user, path FROM storage_paths ORDER BY user, path")
        return [{"to": u, "path": p} for u, p in rows if subjects is None or u in subjects]

    def add_storage_path(self, subject: str, path: str) -> dict[str, str]:
        """Let ``subject`` (a user or ``@group``) use files under ``path`` (an existing
        folder; kept resolved, symlinks followed)."""
        self._subject(subject)
        real = os.path.realpath(path)
        if not os.path.isabs(path) or not os.path.isdir(real):
            raise BadRequest(f"invalid storage path {path!r}: an absolute path of an "
                             "existing folder; nothing was changed", path=path)
        self.store.write("INSERT OR IGNORE INTO storage_paths VALUES (?,?)", (subject, real))
        return {"to": subject, "path": real}

    def remove_storage_path(self, subject: str, path: str) -> None:
        count = self.store.write("DELETE FROM storage_paths WHERE user=? AND path IN (?,?)",
                                 (subject, path, os.path.realpath(path)))
        if not count:
            raise NotFound(f"{subject!r} has no storage path {path!r} (see 'viridian user "
                           "storage list')", path=path)

    def _subject(self, subject: str) -> None:
        if subject.startswith("@"):
            _check_name("group", subject[1:])
        else:
            self._user_row(subject)

    def confined(self, principal: Principal) -> bool:
        """Whether ``principal`` may name host files only inside its storage paths (it
        lacks ``host.manage`` on the host)."""
        return not self.policy.allows(principal, "host.manage", Target())

    def target(self, vm: str, vm_id: str | None) -> Target:
        """The target of a request on VM ``vm`` (id ``vm_id`` when it exists)."""
        if vm_id is None:
            return Target(vm=vm)
        return Target(vm=vm, vm_id=vm_id, tags=self.tags_of(vm_id), owner=self.owner_of(vm_id))

"""Redfish ``AccountService`` accounts are viridian's users (docs/architecture.md,
"Redfish" → "Accounts and privileges").

* every viridian user is one ``ManagerAccount`` (``Id`` = user name); local-realm users
  are writable here (password, role, removal), ``pam`` and ``ldap`` users are listed
  read-only (their realm keeps their password);
* an account's ``RoleId`` is the strongest host-wide grant of Administrator, Operator or
  Viewer (``ReadOnly``) the user holds directly or through a group
  (:mod:`viridian.redfish.privileges`); setting ``RoleId`` replaces the user's direct
  host-wide grant of those three roles;
* ``admin`` is the bootstrap admin token (password: the token), read-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from viridian.access import AccessControl
from viridian.access.scopes import HOST
from viridian.errors import NotFound
from viridian.redfish.messages import RedfishError, not_found
from viridian.redfish.privileges import VIRIDIAN_ROLE, Role, redfish_role
from viridian.service.redfish.auth import ADMIN_USER


@dataclass(frozen=True)
class Account:
    id: str
    user: str
    realm: str
    role: Role
    locked: bool = False

    @property
    def writable(self) -> bool:
        return self.realm == "local"


ADMIN = Account(ADMIN_USER, ADMIN_USER, "builtin", Role.ADMINISTRATOR)


class Accounts:
    """The Redfish view of viridian's users."""

    def __init__(self, access: AccessControl) -> None:
        self.access = access

    def list(self) -> list[Account]:
        users = [self._account(u["name"], u["realm"], u["realm_groups"] + u["groups"])
                 for u in self.access.list_users() if u["name"] != ADMIN_USER]
        return [ADMIN, *users]

    def get(self, account_id: str) -> Account:
        if account_id == ADMIN_USER:
            return ADMIN
        try:
            user = self.access.show_user(account_id)
        except NotFound:
            raise not_found("ManagerAccount", account_id) from None
        return self._account(user["name"], user["realm"], user["realm_groups"] + user["groups"])

    def _account(self, name: str, realm: str, groups: Sequence[str]) -> Account:
        subjects = {name, *(f"@{g}" for g in groups)}
        host_roles = {g.role for g in self.access.policy.grants
                      if g.subject in subjects and g.scope == HOST}
        locked = self.access.limiter.retry_after(name, "") > 0
        return Account(name, name, realm, redfish_role(host_roles), locked)

    def create(self, user: str, password: str, role: Role) -> Account:
        """A local user with ``role`` granted on the host (nothing is left when refused)."""
        if user == ADMIN_USER or any(a.user == user for a in self.list()):
            raise RedfishError(409, "ResourceAlreadyExists", "ManagerAccount", "UserName", user)
        self.access.add_user(user, "local", password)
        try:
            self.access.grant(VIRIDIAN_ROLE[role], user, HOST)
        except Exception:
            self.access.remove_user(user)
            raise
        return self.get(user)

    def update(self, account_id: str, password: str | None, role: Role | None) -> None:
        current = self._writable(account_id, "Password" if password is not None else "RoleId")
        if password is not None:
            self.access.set_password(current.user, password)
        if role is not None:
            self.access.grant(VIRIDIAN_ROLE[role], current.user, HOST)
            for other in VIRIDIAN_ROLE.values():
                if other != VIRIDIAN_ROLE[role] and any(
                        g.role == other and g.subject == current.user and g.scope == HOST
                        for g in self.access.policy.grants):
                    self.access.revoke(other, current.user, HOST)

    def delete(self, account_id: str) -> None:
        if account_id == ADMIN_USER:
            raise RedfishError(409, "ResourceCannotBeDeleted",
                               detail="admin is the service's bootstrap token and cannot be "
                                      "deleted; nothing was changed")
        self._writable(account_id, "UserName")
        self.access.remove_user(account_id)

    def _writable(self, account_id: str, prop: str) -> Account:
        current = self.get(account_id)
        if current is ADMIN:
            raise RedfishError(400, "PropertyNotWritable", prop,
                               detail="the built-in admin account is the service's admin "
                                      "token: it cannot be changed; nothing was changed")
        if not current.writable:
            raise RedfishError(400, "PropertyNotWritable", prop,
                               detail=f"{current.user} is a {current.realm} account: its "
                                      "realm keeps it, change it there (or with viridian "
                                      "grant); nothing was changed")
        return current

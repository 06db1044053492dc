"""HTTP routes of access (docs/api.md, "Access"): login, users, groups, realms, roles,
grants, tokens, quotas, VM tags and owners, the audit log. Thin: each calls one
:class:`~viridian.access.AccessControl` method; the access gate has already checked the
route's operation (:mod:`viridian.access.route_table`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Body as BodyParam
from fastapi import FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from viridian.access.audit import matches, read_records, verify_chain
from viridian.access.control import AccessControl
from viridian.access.ldap_realm import LdapRealm
from viridian.access.principal import BOOTSTRAP, Principal
from viridian.access.quotas import Resources, usage_of
from viridian.access.scopes import Target
from viridian.config import API_PREFIX
from viridian.errors import BadRequest, NotFound, Unauthorized

__all__ = ["PRINCIPAL_SCOPE_KEY", "install_access_routes"]

PRINCIPAL_SCOPE_KEY = "viridian.principal"
P = f"{API_PREFIX}/access"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Login(Body):
    user: str
    password: str
    realm: str | None = None
    totp: str | None = None


class NewUser(Body):
    name: str
    realm: str = "local"
    password: str | None = None


class Password(Body):
    password: str


class NewRealm(Body):
    name: str
    kind: str = "ldap"
    url: str
    base_dn: str
    bind_dn: str | None = None
    bind_password: str | None = None
    user_filter: str = "(uid={user})"
    group_filter: str = "(|(member={dn})(uniqueMember={dn})(memberUid={user}))"
    group_attr: str = "cn"
    starttls: bool = False
    ca_file: str | None = None


class NewRole(Body):
    name: str
    operations: list[str]
    description: str = ""


class GrantBody(Body):
    role: str
    to: str
    on: str = "host"


class NewToken(Body):
    user: str | None = None
    name: str = "default"
    role: str | None = None


class Quota(Body):
    vms: int | None = None
    memory_mb: int | None = None
    processors: int | None = None
    disk_mb: int | None = None


class StoragePath(Body):
    to: str
    path: str


class Tags(Body):
    tags: list[str] = Field(default_factory=list)


class Owner(Body):
    user: str


def principal_of(request: Request) -> Principal:
    found = request.scope.get(PRINCIPAL_SCOPE_KEY)
    return found if isinstance(found, Principal) else BOOTSTRAP


def install_access_routes(app: FastAPI, access: AccessControl,
                          resolve_vm: Callable[[str], tuple[str, str] | None],
                          resources: Callable[[str], Resources | None] = lambda _: None
                          ) -> None:
    """Add ``/api/v1/access/…`` and ``/api/v1/vms/{ref}/tags|owner``; ``resources`` says
    what a VM (by id) takes from its owner's quota (None: no such VM)."""
    _session_routes(app, access)
    _user_routes(app, access)
    _role_routes(app, access)
    _token_routes(app, access)
    _quota_routes(app, access, resources)
    _vm_routes(app, access, resolve_vm)
    _audit_routes(app, access)


def _session_routes(app: FastAPI, access: AccessControl) -> None:
    @app.post(f"{P}/login", tags=["access"])
    async def login(raw: Annotated[dict[str, Any], BodyParam()],
                    request: Request) -> dict[str, Any]:
        """Open a session (``Authorization: Bearer <token>`` afterwards); no credentials
        needed. Body: ``{"user", "password", "realm"?, "totp"?}``; a body without user and
        password is answered 401 like any failed login. Rate limited: 5 failures lock the
        user and the source out for 5 minutes."""
        try:
            body = Login(**raw)
        except ValidationError as err:
            raise Unauthorized("login needs a body {\"user\", \"password\"} (optional "
                               "\"realm\", \"totp\")") from err
        source = request.client.host if request.client else ""
        return access.login(body.user, body.password, body.realm, body.totp, source)

    @app.post(f"{P}/logout", tags=["access"])
    async def logout(request: Request) -> dict[str, Any]:
        access.logout(principal_of(request))
        return {"logged_out": True}



def _user_routes(app: FastAPI, access: AccessControl) -> None:
    @app.get(f"{P}/users", tags=["access"])
    async def user_list() -> dict[str, Any]:
        return {"users": access.list_users()}

    @app.post(f"{P}/users", status_code=201, tags=["access"])
    async def user_add(body: NewUser) -> dict[str, Any]:
        return access.add_user(body.name, body.realm, body.password)

    @app.get(f"{P}/users/{{user}}", tags=["access"])
    async def user_show(user: str) -> dict[str, Any]:
        return access.show_user(user)

    @app.delete(f"{P}/users/{{user}}", tags=["access"])
    async def user_remove(user: str) -> dict[str, Any]:
        access.remove_user(user)
        return {"removed": user}

    @app.put(f"{P}/users/{{user}}/password", tags=["access"])
    async def user_password(user: str, body: Password) -> dict[str, Any]:
        access.set_password(user, body.password)
        return {"user": user, "password": "changed"}

    @app.post(f"{P}/users/{{user}}/totp", tags=["access"])
    async def user_totp(user: str) -> dict[str, str]:
        """Turn on two-factor login; the secret is shown only in this answer."""
        return access.enable_totp(user)

    @app.get(f"{P}/groups", tags=["access"])
    async def group_list() -> dict[str, Any]:
        return {"groups": access.groups()}

    @app.put(f"{P}/groups/{{group}}/members/{{user}}", tags=["access"])
    async def group_join(group: str, user: str) -> dict[str, Any]:
        access.set_member(group, user, True)
        return {"groups": access.groups()}

    @app.delete(f"{P}/groups/{{group}}/members/{{user}}", tags=["access"])
    async def group_leave(group: str, user: str) -> dict[str, Any]:
        access.set_member(group, user, False)
        return {"groups": access.groups()}

    @app.get(f"{P}/storage-paths", tags=["access"])
    async def storage_list() -> dict[str, Any]:
        """Folders users (or @groups) without host.manage may name files in."""
        return {"storage_paths": access.storage_paths()}

    @app.post(f"{P}/storage-paths", status_code=201, tags=["access"])
    async def storage_add(body: StoragePath) -> dict[str, Any]:
        return access.add_storage_path(body.to, body.path)

    @app.delete(f"{P}/storage-paths", tags=["access"])
    async def storage_remove(to: str, path: str) -> dict[str, Any]:
        access.remove_storage_path(to, path)
        return {"removed": {"to": to, "path": path}}

    @app.get(f"{P}/realms", tags=["access"])
    async def realm_list() -> dict[str, Any]:
        return {"realms": access.realms()}

    @app.post(f"{P}/realms", status_code=201, tags=["access"])
    async def realm_add(body: NewRealm) -> dict[str, Any]:
        if body.kind != "ldap":
            raise BadRequest(f"invalid realm kind {body.kind!r}; allowed: ldap (local and "
                             "pam are built in)")
        try:
            realm = LdapRealm(**body.model_dump(exclude={"kind"}))
        except ValueError as err:
            raise BadRequest(f"{err}; nothing was changed") from err
        access.add_ldap_realm(realm)
        return {"kind": "ldap", **realm.to_dict()}

    @app.delete(f"{P}/realms/{{realm}}", tags=["access"])
    async def realm_remove(realm: str) -> dict[str, Any]:
        """Remove an LDAP realm (refused while it has users)."""
        access.remove_realm(realm)
        return {"removed": realm}


def _role_routes(app: FastAPI, access: AccessControl) -> None:
    @app.get(f"{P}/roles", tags=["access"])
    async def role_list() -> dict[str, Any]:
        return {"roles": [r.to_dict() for r in access.roles().values()]}

    @app.post(f"{P}/roles", status_code=201, tags=["access"])
    async def role_new(body: NewRole) -> dict[str, Any]:
        return access.new_role(body.name, body.operations, body.description).to_dict()

    @app.get(f"{P}/roles/{{role}}", tags=["access"])
    async def role_show(role: str) -> dict[str, Any]:
        return access.role(role).to_dict()

    @app.delete(f"{P}/roles/{{role}}", tags=["access"])
    async def role_remove(role: str) -> dict[str, Any]:
        access.remove_role(role)
        return {"removed": role}

    @app.get(f"{P}/grants", tags=["access"])
    async def grant_list() -> dict[str, Any]:
        return {"grants": [g.to_dict() for g in access.policy.grants]}

    @app.post(f"{P}/grants", status_code=201, tags=["access"])
    async def grant_add(body: GrantBody) -> dict[str, Any]:
        return access.grant(body.role, body.to, body.on).to_dict()

    @app.delete(f"{P}/grants", tags=["access"])
    async def grant_remove(role: str, to: str, on: str = "host") -> dict[str, Any]:
        access.revoke(role, to, on)
        return {"revoked": {"role": role, "to": to, "on": on}}


def _token_routes(app: FastAPI, access: AccessControl) -> None:
    def may_manage(principal: Principal, user: str) -> None:
        if user != principal.user:
            access.authorize(principal, "access.manage", Target())

    @app.get(f"{P}/tokens", tags=["access"])
    async def token_list(request: Request, user: str | None = None) -> dict[str, Any]:
        """Your own tokens; everyone's (or ``user``'s) with access.manage."""
        principal = principal_of(request)
        if user is None and not access.policy.allows(principal, "access.manage", Target()):
            user = principal.user
        may_manage(principal, user or "")
        return {"tokens": access.tokens(user)}

    @app.post(f"{P}/tokens", status_code=201, tags=["access"])
    async def token_new(body: NewToken, request: Request) -> dict[str, Any]:
        """A new API token; ``secret`` is shown only in this answer."""
        principal = principal_of(request)
        user = body.user or principal.user
        may_manage(principal, user)
        return access.new_token(user, body.name, body.role)

    @app.delete(f"{P}/tokens/{{token_id}}", tags=["access"])
    async def token_revoke(token_id: str, request: Request) -> dict[str, Any]:
        may_manage(principal_of(request), str(access.token(token_id)["user"]))
        return access.revoke_token(token_id)



def _quota_routes(app: FastAPI, access: AccessControl,
                  resources: Callable[[str], Resources | None]) -> None:
    def quota_of(user: str) -> dict[str, Any]:
        access.show_user(user)
        return {"user": user, "limits": access.quota(user),
                "used": usage_of(access.owned(user), resources).to_dict()}

    @app.put(f"{P}/quotas/{{user}}", tags=["access"])
    async def quota_set(user: str, body: Quota) -> dict[str, Any]:
        """Set limits (fields left out or null stay as they are); answers as GET."""
        access.set_quota(user, **body.model_dump())
        return quota_of(user)

    @app.get(f"{P}/quotas/{{user}}", tags=["access"])
    async def quota_show(user: str) -> dict[str, Any]:
        """``{"user", "limits", "used"}`` (your own is in ``GET /access/whoami``)."""
        return quota_of(user)

    @app.get(f"{P}/whoami", tags=["access"])
    async def whoami(request: Request) -> dict[str, Any]:
        """Who you are, whether you see every VM, your quota (``limits``, ``used``),
        whether you may deploy some template (the console's self-service link)."""
        principal = principal_of(request)
        quota = None if principal.bootstrap else quota_of(principal.user)
        return {**principal.to_dict(), "host_wide_read":
                access.policy.sees_every_vm(principal), "quota": quota,
                "operations": access.allowed_operations(principal, Target()),
                "deploys_templates": access.policy.allows_somewhere(principal,
                                                                    "template.deploy")}


def _vm_routes(app: FastAPI, access: AccessControl,
               resolve_vm: Callable[[str], tuple[str, str] | None]) -> None:
    def vm_id(ref: str) -> str:
        found = resolve_vm(ref)
        if found is None:
            raise NotFound(f"no VM named '{ref}' (see 'viridian vm list')", vm=ref)
        return found[1]

    @app.put(f"{API_PREFIX}/vms/{{ref}}/tags", tags=["access"])
    async def vm_tags(ref: str, body: Tags) -> dict[str, Any]:
        """Replace the VM's tags (grants on ``tag:TAG`` reach the VMs carrying it)."""
        try:
            return {"tags": access.set_tags(vm_id(ref), body.tags)}
        except ValueError as err:
            raise BadRequest(f"{err}; nothing was changed") from err

    @app.get(f"{P}/allowed", tags=["access"])
    async def allowed(request: Request, vm: str | None = None) -> dict[str, Any]:
        """The operations you may perform on the host, or on VM ``vm`` (name or id)."""
        target = Target()
        if vm is not None:
            found = resolve_vm(vm)
            target = access.target(*found) if found else Target(vm=vm)
        return {"target": target.label(),
                "operations": access.allowed_operations(principal_of(request), target)}

    @app.put(f"{API_PREFIX}/vms/{{ref}}/owner", tags=["access"])
    async def vm_owner(ref: str, body: Owner) -> dict[str, Any]:
        access.show_user(body.user)
        access.set_owner(vm_id(ref), body.user)
        return {"owner": body.user}


def _audit_routes(app: FastAPI, access: AccessControl) -> None:
    @app.get(f"{P}/audit", tags=["access"])
    async def audit_list(since: float | None = None, user: str | None = None,
                         vm: str | None = None,
                         limit: int = Query(1000, ge=1, le=100000)) -> dict[str, Any]:
        """Records oldest first (``since``: UNIX time), the last ``limit`` of them."""
        import json

        found = [r for _, line in read_records(access.audit.path)
                 if matches(r := json.loads(line), since, user, vm)]
        return {"records": found[-limit:], "now": time.time()}

    @app.get(f"{P}/audit/verify", tags=["access"])
    async def audit_verify() -> dict[str, Any]:
        """Check the hash chain of every record and the last one against the service's head."""
        return verify_chain(read_records(access.audit.path), access.audit.head).to_dict()

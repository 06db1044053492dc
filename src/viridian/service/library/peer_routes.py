"""The member's side of forwarded provisioning (docs/api.md, "Cluster peer routes";
the sender is :mod:`viridian.service.library.forwarding`).

``POST /api/v1/cluster/peer/provision``, ``GET .../provision/{job_id}``, ``POST
.../disk-users`` (which VMs here read these files: a template removed on another host)
and ``POST .../usage`` (what a user's VMs here add up to: host-group quotas) accept the
cluster peer token only (:func:`~viridian.service.migration.cluster_peer.peer_guard`:
no token, the admin token or a user's credentials → 401) and are outside the access gate.
The rule for the caller the body names: access data (users, groups, grants, quotas, host
groups, owners) is kept per host, so this host authorizes the user ITSELF — the user must
have an account here (else 403) and ``template.deploy`` on the template (or its host
group, or the host) in this host's grants, within this host's quotas — exactly as if the
user had asked here; the VMs are placed on this host only (never forwarded again), made
owned by the user and audited here (``source`` names the forwarding host). A caller
named ``admin`` (the forwarding host's admin token) acts as this host's admin.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI, Request

from viridian.access import AccessControl, Principal
from viridian.access.principal import BOOTSTRAP
from viridian.access.quotas import Resources, Usage, usage_of
from viridian.errors import BadRequest, NotFound, ViridianError
from viridian.service.access_hooks import settings_resources
from viridian.service.auth import CURRENT_PRINCIPAL
from viridian.service.http_boundary import RequestBody
from viridian.service.library.forwarding import PEER_DISK_USERS, PEER_PROVISION, PEER_USAGE
from viridian.service.library.routes import ProvisionRequest, order_for
from viridian.service.library.selfservice import Requester
from viridian.service.migration.cluster_peer import peer_guard

if TYPE_CHECKING:
    from viridian.service.library.capability import LibraryCapability

__all__ = ["PeerCaller", "PeerDiskUsers", "PeerProvision", "PeerUsage",
           "install_peer_provision_routes", "peer_principal"]


class PeerCaller(RequestBody):
    user: str
    admin: bool = False
    token_role: str | None = None


class PeerDiskUsers(RequestBody):
    paths: list[str]
    """Absolute paths of files (e.g. a template's disks)."""


class PeerUsage(RequestBody):
    user: str


class PeerProvision(RequestBody):
    request: ProvisionRequest
    caller: PeerCaller
    source: str
    positions: list[int] | None = None
    """The VMs of the batch this host makes (1-based, ascending): its share of a batch
    placement spread over hosts; None: the whole batch."""


def peer_principal(access: AccessControl | None, caller: PeerCaller, source: str
                   ) -> Principal | None:
    """Who a forwarded request acts as here (module docstring); None without the access
    gate (everything allowed, as for any request then).

    :raises Forbidden: the user has no account on this host."""
    if access is None:
        return None
    if caller.admin:
        return BOOTSTRAP
    return access.principal_for(caller.user, f"peer:{source}", caller.token_role)


def install_peer_provision_routes(app: FastAPI, lib: LibraryCapability) -> None:
    guard = [Depends(peer_guard(lib.provisioner.context.data_dir))]
    jobs = lib.provisioner.context.jobs

    @app.post(PEER_PROVISION, status_code=202, tags=["cluster"], dependencies=guard,
              include_in_schema=False)
    async def peer_provision(body: PeerProvision, request: Request) -> dict[str, Any]:
        """A member forwards a provisioning request placement sent here."""
        found = getattr(request.app.state, "access", None)
        access = found if isinstance(found, AccessControl) else None
        principal: Principal | None = None
        try:
            principal = peer_principal(access, body.caller, body.source)
            answer = _provision_here(lib, body, Requester(access, principal))
        except ViridianError as err:
            _audit(access, body, principal, err.http_status, None)
            raise
        _audit(access, body, principal, 202, answer["id"])
        return answer

    @app.post(PEER_DISK_USERS, tags=["cluster"], dependencies=guard, include_in_schema=False)
    async def peer_disk_users(body: PeerDiskUsers) -> dict[str, Any]:
        """The VMs of this host reading one of ``paths`` (a drive that is one of them, or
        a qcow2 overlay backed by one): a member removing a template asks every host."""
        bad = [p for p in body.paths if not p.startswith("/")]
        if bad:
            raise BadRequest(f"paths must be absolute (got {bad[0]!r}); nothing was read")
        return {"vms": lib.templates.users_of({Path(p) for p in body.paths})}

    @app.post(PEER_USAGE, tags=["cluster"], dependencies=guard, include_in_schema=False)
    async def peer_usage(body: PeerUsage, request: Request) -> dict[str, int]:
        """What the VMs ``user`` owns on this host add up to (its host-group quotas count
        every host of the group: a member provisioning for the user asks)."""
        found = getattr(request.app.state, "access", None)
        if not isinstance(found, AccessControl):
            return Usage().to_dict()  # no access gate: no owners, no quotas
        vms = lib.provisioner.context.vms()

        def resources(vm_id: str) -> Resources | None:
            live = vms.get(vm_id)
            return None if live is None else settings_resources(live.record.settings)
        return usage_of(found.owned(body.user), resources).to_dict()

    @app.get(f"{PEER_PROVISION}/{{job_id}}", tags=["cluster"], dependencies=guard,
             include_in_schema=False)
    async def peer_provision_job(job_id: str) -> dict[str, Any]:
        """A provision job of this host (what a forwarding member follows)."""
        job = jobs.get(job_id)
        if job["kind"] != "provision":
            raise NotFound(f"no provision job with id '{job_id}'", job=job_id)
        return job


def _provision_here(lib: LibraryCapability, body: PeerProvision, who: Requester
                    ) -> dict[str, Any]:
    """Provision ``body`` (its share, when it names positions) on this host only, as
    ``who`` (set as the request's principal while the job is made: its task inherits it
    for quotas and ownership)."""
    reset = CURRENT_PRINCIPAL.set(who.principal)
    try:
        here = lib.provisioner.host_names()[0]
        order = order_for(lib, body.request.model_copy(update={"dry_run": False}), who,
                          only=here, positions=body.positions)
        return lib.provisioner.submit(order, lib.provisioner.placed(order))
    finally:
        CURRENT_PRINCIPAL.reset(reset)


def _audit(access: AccessControl | None, body: PeerProvision, principal: Principal | None,
           status: int, job: str | None) -> None:
    """One audit record here, as the gate writes for a request made here."""
    if access is None:
        return
    result = "ok" if status < 400 else ("denied" if status in (401, 403) else "failed")
    access.audit.append(
        who=principal.user if principal else body.caller.user,
        realm=principal.realm if principal else None,
        source=f"cluster host {body.source}", operation="template.deploy",
        target=f"template:{body.request.template}", result=result, status=status, job=job,
        request=f"POST {PEER_PROVISION}")

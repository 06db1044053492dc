"""HTTP routes of the library (docs/api.md, "Library")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import FileResponse

from viridian.access.quotas import Resources, Usage
from viridian.config import API_PREFIX
from viridian.errors import BadRequest, InvalidSetting
from viridian.library.cloudinit import Customisation, StaticAddress, User
from viridian.service.access_hooks import settings_resources
from viridian.service.http_boundary import RequestBody
from viridian.service.jobs import Job
from viridian.service.library.forwarding import Caller, destination
from viridian.service.library.provisioning import Order
from viridian.service.library.selfservice import (
    Requester,
    needs_cluster_usage,
    placeable,
    requester,
    within_group_quotas,
)

if TYPE_CHECKING:
    from viridian.service.library.capability import LibraryCapability

PREFIX = f"{API_PREFIX}/library"


class NewLibrary(RequestBody):
    name: str
    path: str


class NewTemplate(RequestBody):
    name: str
    vm: str
    library: str | None = None


class ProvisionRequest(RequestBody):
    template: str
    version: int | None = None
    name: str
    count: int = 1
    full_copy: bool = False
    dry_run: bool = False
    start: bool = True
    memory_mb: int | None = None
    switch: str | None = None
    host_group: str | None = None
    hostname: str | None = None
    ip: str | None = None
    gateway: str | None = None
    dns: list[str] = []
    user: str | None = None
    ssh_keys: list[str] = []
    runcmd: list[str] = []
    packages: list[str] = []


class NewUpload(RequestBody):
    name: str
    size: int
    sha256: str


def install_library_routes(app: FastAPI, lib: LibraryCapability) -> None:
    index, uploads = lib.index, lib.uploads

    @app.get(PREFIX, tags=["library"])
    async def library_list() -> dict[str, Any]:
        return {"libraries": await index.listing()}

    @app.post(PREFIX, status_code=201, tags=["library"])
    async def library_add(body: NewLibrary) -> dict[str, Any]:
        return index.add(body.name, body.path)

    @app.get(f"{PREFIX}/uploads/{{upload_id}}", tags=["library"])
    async def upload_show(upload_id: str, response: Response) -> dict[str, Any]:
        upload = lib.store.upload(upload_id)
        response.headers["Upload-Offset"] = str(upload.offset)
        return upload.to_dict()

    @app.patch(f"{PREFIX}/uploads/{{upload_id}}", tags=["library"])
    async def upload_chunk(upload_id: str, request: Request,
                           upload_offset: str = Header(...)) -> dict[str, Any]:
        if not upload_offset.isdigit():
            raise BadRequest(f"Upload-Offset '{upload_offset}' is not a byte offset; "
                             "allowed: a whole number (GET the upload to learn it)")
        return await uploads.receive(upload_id, int(upload_offset), await request.body())

    @app.delete(f"{PREFIX}/uploads/{{upload_id}}", tags=["library"])
    async def upload_abort(upload_id: str) -> dict[str, Any]:
        return uploads.abort(upload_id)

    @app.get(f"{PREFIX}/{{name}}", tags=["library"])
    async def library_show(name: str) -> dict[str, Any]:
        return await index.show(name)

    @app.delete(f"{PREFIX}/{{name}}", tags=["library"])
    async def library_remove(name: str) -> dict[str, Any]:
        return index.remove(name, lambda _share: [])

    @app.post(f"{PREFIX}/{{name}}/uploads", status_code=201, tags=["library"])
    async def upload_begin(name: str, body: NewUpload) -> dict[str, Any]:
        return uploads.begin(name, body.name, body.size, body.sha256).to_dict()

    @app.get(f"{PREFIX}/{{name}}/items/{{item:path}}", tags=["library"])
    async def item_show(name: str, item: str) -> dict[str, Any]:
        return (await index.item(name, item)).to_dict()

    @app.get(f"{PREFIX}/{{name}}/content/{{item:path}}", tags=["library"])
    async def item_download(name: str, item: str) -> FileResponse:
        found = await index.item(name, item)  # ranged: Starlette answers Range requests
        return FileResponse(found.path, headers={"Digest": f"sha-256={found.sha256}"})


def install_template_routes(app: FastAPI, lib: LibraryCapability) -> None:
    templates = lib.templates
    context = lib.provisioner.context

    def vm_id(name: str) -> str | None:
        return next((i for i, vm in context.vms().items() if vm.record.name == name), None)

    @app.get(f"{API_PREFIX}/templates", tags=["library"])
    async def template_list(request: Request) -> dict[str, Any]:
        """The templates the caller may read or deploy (a self-service user: its granted
        ones)."""
        who = requester(request)
        return {"templates": [{**t, "used_by": who.visible_vms(t["used_by"], vm_id)}
                              for t in templates.listing() if who.may_see(t["name"])]}

    @app.post(f"{API_PREFIX}/templates", status_code=202, tags=["library"])
    async def template_new(body: NewTemplate) -> dict[str, Any]:
        return templates.create(body.name, body.vm, body.library)

    @app.get(f"{API_PREFIX}/templates/{{name}}", tags=["library"])
    async def template_show(name: str, request: Request) -> dict[str, Any]:
        who = requester(request)
        who.check_see(name)
        return {"name": name, "versions": [t.to_dict() for t in templates.versions(name)],
                "used_by": who.visible_vms(templates.users(name), vm_id)}

    @app.delete(f"{API_PREFIX}/templates/{{name}}", tags=["library"])
    async def template_remove(name: str, version: int | None = Query(None, ge=1)
                              ) -> dict[str, Any]:
        return await templates.remove(name, version)


def order_for(lib: LibraryCapability, body: ProvisionRequest, who: Requester,
              only: str | None = None, positions: list[int] | None = None,
              elsewhere: Mapping[str, Usage] | None = None) -> Order:
    """The :class:`Order` of ``body`` for ``who``: the candidate hosts it may place on
    (host group, grants, group quotas; ``only``: this one host), after its quota check
    (of the VMs at ``positions`` of the batch when given: a cluster host's share);
    ``elsewhere``: the caller's usage on the other cluster hosts (group quotas count it).

    :raises InvalidSetting: a count outside 1..100, positions not of the batch.
    :raises Forbidden: no grant or quota lets ``who`` deploy the template (403).
    :raises NotFound: no such template, version or host group.
    """
    if not 1 <= body.count <= 100:
        raise InvalidSetting("count", body.count, "1..100")
    share = _positions(positions, body.count)
    count = body.count if share is None else len(share)
    context = lib.provisioner.context

    def resources(vm_id: str) -> Resources | None:
        live = context.vms().get(vm_id)
        return None if live is None else settings_resources(live.record.settings)

    names = [only] if only is not None else lib.provisioner.host_names()
    hosts = placeable(who, lib.hostgroups, body.template, body.host_group, names)
    template = lib.templates.get(body.template, body.version)
    who.check_quota(template, count, body.memory_mb, resources)
    hosts = within_group_quotas(who, lib.hostgroups, hosts, names[0], template,
                                count, body.memory_mb, resources, elsewhere)
    static = StaticAddress(body.ip, body.gateway, tuple(body.dns)) if body.ip else None
    users = (User(body.user, tuple(body.ssh_keys)),) if body.user else ()
    custom = Customisation("", body.hostname or body.name, users, static,
                           tuple(body.packages), tuple(body.runcmd))
    return Order(body.template, body.version, body.name, body.count, body.full_copy,
                 custom, body.memory_mb, body.switch, body.start, hosts.__contains__, share)


def _positions(positions: list[int] | None, count: int) -> tuple[int, ...] | None:
    """``positions`` checked: ascending, distinct, each within 1..``count``.

    :raises InvalidSetting: otherwise."""
    if positions is None:
        return None
    if not positions or positions != sorted(set(positions)) or \
            not all(1 <= p <= count for p in positions):
        raise InvalidSetting("positions", positions, f"ascending distinct positions "
                             f"1..{count} of the batch (at least one)")
    return tuple(positions)


def install_provision_routes(app: FastAPI, lib: LibraryCapability) -> None:
    @app.post(f"{API_PREFIX}/provision", tags=["library"])
    async def provision(body: ProvisionRequest, request: Request, response: Response
                        ) -> dict[str, Any]:
        """Provision from a template the caller may deploy, within its quota (module
        ``selfservice``), on the host placement picks (another cluster member: forwarded,
        module ``forwarding``); the caller owns the VMs."""
        who = requester(request)
        elsewhere = None
        if needs_cluster_usage(who, lib.hostgroups) and who.principal is not None:
            elsewhere = await lib.forwarder.usage_of(who.principal.user)
        order = order_for(lib, body, who, elsewhere=elsewhere)
        if body.dry_run:
            return lib.provisioner.plan(order)
        planned = lib.provisioner.placed(order)
        response.status_code = 202
        host = destination(planned)
        if host is None and len(planned["split"]) == 1:
            return lib.provisioner.submit(order, planned)
        sent = body.model_dump(exclude={"dry_run"})
        sent["version"] = planned["version"]  # the version rated here, not the member's latest
        caller = Caller.of(who.principal)
        if len(planned["split"]) == 1 and host is not None:
            return await lib.forwarder.forward(host, sent, caller, planned)

        async def here(job: Job, positions: tuple[int, ...]) -> dict[str, Any]:
            return await lib.provisioner.make(job, order.share(positions), planned)
        return await lib.forwarder.spread(planned, sent, caller, here)

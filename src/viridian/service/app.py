"""HTTP JSON API (v1): the app, its access gate (service.auth), host and job routes.
Every error is translated once, by :mod:`viridian.service.errors_http`, into an HTTP status and the
error object of docs/api.md (``{"error": {"code", "message", "details"}}``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI, Query

from viridian import __version__
from viridian.access import AccessControl
from viridian.access.routes import install_access_routes
from viridian.config import API_PREFIX
from viridian.console import install_console_routes
from viridian.service.access_hooks import AccessHooks, console_viewer, vm_resources
from viridian.service.access_log import AccessLog
from viridian.service.auth import AccessGate, describe_operations
from viridian.service.core import ServiceCore
from viridian.service.errors_http import install_error_handlers
from viridian.service.http_boundary import BodyLimit
from viridian.service.integration_services.services import MAX_COPY_BYTES
from viridian.service.jobs import job_dict
from viridian.service.migration.cluster_peer import PEER_PREFIX  # its own token check
from viridian.service.vms.routes import install_vm_routes

# Routes whose bodies carry file contents (base64) get a cap to fit them; all others
# have http_boundary.DEFAULT_BODY_MAX_BYTES (docs/api.md, "The error object").
FILE_BODY_MAX_BYTES = (MAX_COPY_BYTES + 2) // 3 * 4 + 64 * 1024
FILE_BODY_ROUTES = (
    (f"{API_PREFIX}/vms/[^/]+/integration/(files|exec)", FILE_BODY_MAX_BYTES),
)


# Redfish (docs/architecture.md, "Redfish") authenticates its own requests (Basic,
# X-Auth-Token sessions) through the same AccessControl: the gate passes this prefix.
REDFISH_PREFIX = "/redfish"


def create_app(manager: ServiceCore, token: str) -> FastAPI:
    app = FastAPI(title="viridian", version=__version__,
                  description="Hyper-V-style virtualization host for Linux on QEMU",
                  docs_url=None, redoc_url=None)
    install_error_handlers(app)
    access = AccessControl(manager.data_dir, token)  # users, roles, grants, audit (issue 17)
    app.state.access = access  # capabilities that authenticate themselves use it (Redfish)
    resolve_vm = _vm_resolver(manager)
    resources = vm_resources(manager)
    install_access_routes(app, access, resolve_vm, resources)
    # quotas at create/settings changes; closes the access store with the service
    manager.capabilities = (*manager.capabilities, AccessHooks(access, resources))
    _host_routes(app, manager)
    manager.install_routes(app)  # before the VM routes' POST /vms/{ref}/{action}
    install_vm_routes(app, manager)
    _job_routes(app, manager)
    app.add_middleware(BodyLimit, larger=FILE_BODY_ROUTES)
    # Every request: who, which operation, allowed? (Redfish and the cluster's peer
    # routes authenticate themselves.)
    app.add_middleware(AccessGate, access=access, routes=lambda: app.routes,
                       resolve_vm=resolve_vm, exempt=(REDFISH_PREFIX, PEER_PREFIX),
                       job_submitter=manager.jobs.submitter)
    _describe_operations(app)
    install_console_routes(app, _ConsoleFeed(manager, console_viewer(access)), token,
                           access, access.realm_names)  # the console's login gate
    app.add_middleware(AccessLog)  # outermost: sees every request as it arrived
    return app


def _vm_resolver(manager: ServiceCore) -> Callable[[str], tuple[str, str] | None]:
    """``ref`` → (name, id) of the VM it names (a name before an id), or None."""
    def resolve(ref: str) -> tuple[str, str] | None:
        found = manager.catalog.ids_and_names(ref)
        for vm_id, name in sorted(found, key=lambda f: f[1] != ref):
            return name, vm_id
        return None
    return resolve


def _describe_operations(app: FastAPI) -> None:
    """The OpenAPI document names each route's operation (``x-viridian-operation``)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_operations(plain())
        return app.openapi_schema
    app.openapi = openapi  # type: ignore[method-assign]


class _ConsoleFeed:
    """What the console's event stream reads (:class:`viridian.console.ConsoleFeed`)."""

    def __init__(self, manager: ServiceCore,
                 viewer: Callable[[Mapping[str, Any]], Any] | None = None) -> None:
        self._manager = manager
        self.viewer = viewer  # who may see what of the stream (service.access_hooks)

    def vm_list(self) -> list[dict[str, Any]]:
        return self._manager.list_vms()

    def recent_jobs(self, limit: int) -> list[dict[str, Any]]:
        return [job_dict(j) for j in self._manager.catalog.list_jobs(limit)]

    def host_facts(self) -> dict[str, Any]:
        return self._manager.host_info()

    def latest_counters(self) -> dict[str, float]:
        latest = self._manager.counters.sampler.history.latest()
        return dict(latest.values) if latest else {}


def _host_routes(app: FastAPI, manager: ServiceCore) -> None:
    @app.get(f"{API_PREFIX}/host", tags=["host"])
    async def host_show() -> dict[str, Any]:
        return manager.host_info()

    @app.post(f"{API_PREFIX}/host/shutdown", status_code=202, tags=["host"])
    async def host_shutdown() -> dict[str, Any]:
        return manager.host_shutdown()


def _job_routes(app: FastAPI, manager: ServiceCore) -> None:
    @app.get(f"{API_PREFIX}/jobs", tags=["jobs"])
    async def job_list() -> dict[str, Any]:
        return {"jobs": manager.jobs.list()}

    @app.get(f"{API_PREFIX}/jobs/{{job_id}}", tags=["jobs"])
    async def job_show(job_id: str, wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        return await manager.jobs.wait(job_id, wait)

    @app.post(f"{API_PREFIX}/jobs/{{job_id}}/cancel", tags=["jobs"])
    async def job_cancel(job_id: str) -> dict[str, Any]:
        return manager.jobs.cancel(job_id)

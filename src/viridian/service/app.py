"""HTTP JSON API (v1): routes only. Every ``ViridianError`` is translated here, once, into
an HTTP status and a JSON body ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Body, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from viridian import __version__
from viridian.config import API_PREFIX
from viridian.console import install_console_routes
from viridian.errors import ViridianError
from viridian.service.auth import bearer_matches
from viridian.service.checkpoints.routes import install_checkpoint_routes
from viridian.service.core import ServiceCore
from viridian.service.counters.routes import install_counter_routes
from viridian.service.counters.sampler import counters_for
from viridian.service.devices.routes import install_device_routes
from viridian.service.devices.screen_routes import install_vnc_routes
from viridian.service.disk_wizard.routes import install_disk_routes
from viridian.service.integration_services.routes import install_integration_routes
from viridian.service.jobs import job_dict
from viridian.service.switches.routes import install_switch_routes

Action = Literal["start", "stop", "shutdown", "save", "pause", "resume", "reset"]


class NewVM(BaseModel):
    name: str
    settings: dict[str, Any] = Field(default_factory=dict)
    memory_mb: int | None = None
    processors: int | None = None
    dvd: str | None = None
    vhd: str | None = None


class ActionOptions(BaseModel):
    timeout_s: float | None = None


def error_response(err: ViridianError) -> JSONResponse:
    return JSONResponse({"error": err.to_dict()}, status_code=err.http_status)


class BearerAuth:
    """ASGI middleware: every HTTP request must carry the admin token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            header = dict(scope["headers"]).get(b"authorization", b"").decode("latin-1")
            if not bearer_matches(header, self.token):
                await send({"type": "websocket.close", "code": 1008})  # HTTP 403 to the client
                return
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            header = headers.get(b"authorization", b"").decode("latin-1")
            if not bearer_matches(header, self.token):
                body = {"error": {"code": "unauthorized", "details": {},
                                  "message": "missing or wrong token: send 'Authorization: "
                                             "Bearer <token>' (the token is in the service's "
                                             "data folder, file 'token')"}}
                response = JSONResponse(body, status_code=401,
                                        headers={"WWW-Authenticate": "Bearer"})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(manager: ServiceCore, token: str) -> FastAPI:
    app = FastAPI(title="viridian", version=__version__,
                  description="Hyper-V-style virtualization host for Linux on QEMU",
                  docs_url=None, redoc_url=None)
    _install_error_handlers(app)
    _host_routes(app, manager)
    install_device_routes(app, manager)
    install_checkpoint_routes(app, manager)  # before _vm_routes' POST /vms/{ref}/{action}
    _vm_routes(app, manager)
    _job_routes(app, manager)
    install_integration_routes(app, manager)
    install_counter_routes(app, manager)
    install_switch_routes(app, manager)
    install_vnc_routes(app, manager)
    install_disk_routes(app, manager)
    app.add_middleware(BearerAuth, token=token)
    install_console_routes(app, _ConsoleFeed(manager), token)  # outermost: the console's login gate
    return app


class _ConsoleFeed:
    """What the console's event stream reads (:class:`viridian.console.ConsoleFeed`)."""

    def __init__(self, manager: ServiceCore) -> None:
        self._manager = manager

    def vm_list(self) -> list[dict[str, Any]]:
        return self._manager.list_vms()

    def recent_jobs(self, limit: int) -> list[dict[str, Any]]:
        return [job_dict(j) for j in self._manager.catalog.list_jobs(limit)]

    def host_facts(self) -> dict[str, Any]:
        return self._manager.host_info()

    def latest_counters(self) -> dict[str, float]:
        latest = counters_for(self._manager).history.latest()
        return dict(latest.values) if latest else {}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ViridianError)
    async def viridian_error(_: Request, err: ViridianError) -> JSONResponse:
        return error_response(err)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, err: RequestValidationError) -> JSONResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body')}: {e['msg']}"
            for e in err.errors()
        )
        body = {"code": "bad_request", "message": f"malformed request: {problems}",
                "details": {"errors": [{"loc": list(e["loc"]), "msg": e["msg"]}
                                       for e in err.errors()]}}
        return JSONResponse({"error": body}, status_code=400)


def _host_routes(app: FastAPI, manager: ServiceCore) -> None:
    @app.get(f"{API_PREFIX}/host", tags=["host"])
    async def host_show() -> dict[str, Any]:
        return manager.host_info()

    @app.post(f"{API_PREFIX}/host/shutdown", status_code=202, tags=["host"])
    async def host_shutdown() -> dict[str, Any]:
        return manager.host_shutdown()


def _vm_routes(app: FastAPI, manager: ServiceCore) -> None:
    @app.get(f"{API_PREFIX}/vms", tags=["vms"])
    async def vm_list() -> dict[str, Any]:
        return {"vms": manager.list_vms()}

    @app.post(f"{API_PREFIX}/vms", status_code=201, tags=["vms"])
    async def vm_new(spec: NewVM) -> dict[str, Any]:
        return await manager.create_vm(spec.name, spec.settings, memory_mb=spec.memory_mb,
                                       processors=spec.processors, dvd=spec.dvd, vhd=spec.vhd)

    @app.get(f"{API_PREFIX}/vms/{{ref}}", tags=["vms"])
    async def vm_show(ref: str) -> dict[str, Any]:
        return manager.show_vm(ref)

    @app.patch(f"{API_PREFIX}/vms/{{ref}}", tags=["vms"])
    async def vm_set(ref: str, patch: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return await manager.update_vm(ref, patch)

    @app.delete(f"{API_PREFIX}/vms/{{ref}}", tags=["vms"])
    async def vm_remove(ref: str, delete_files: bool = False) -> dict[str, Any]:
        return await manager.remove_vm(ref, delete_files)

    @app.post(f"{API_PREFIX}/vms/{{ref}}/{{action}}", status_code=202, tags=["vms"])
    async def vm_action(ref: str, action: Action, options: ActionOptions | None = None,
                        wait: float = Query(0, ge=0, le=60)) -> dict[str, Any]:
        """Queue ``action``; with ``wait``, answer once the job ended (or the time passed)."""
        timeout = options.timeout_s if options else None
        job = manager.request(ref, action, timeout_s=timeout)
        return await manager.jobs.wait(job["id"], wait) if wait else job


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

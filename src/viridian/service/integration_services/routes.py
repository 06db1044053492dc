"""HTTP routes of the integration services (docs/api.md, "Integration services")."""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from pydantic import Field

from viridian.config import API_PREFIX
from viridian.errors import BadRequest
from viridian.model import IntegrationServices as ServiceSwitches
from viridian.service.context import ServiceContext
from viridian.service.http_boundary import RequestBody

if TYPE_CHECKING:
    from viridian.service.integration_services.services import IntegrationServices
    from viridian.service.vms.live import LiveVM

PREFIX = f"{API_PREFIX}/vms/{{ref}}/integration"
MAX_EXEC_TIMEOUT_S = 3600.0


class ExecRequest(RequestBody):
    argv: list[str]
    stdin_b64: str | None = None
    timeout_s: float = Field(60.0, gt=0, le=MAX_EXEC_TIMEOUT_S)


class CopyRequest(RequestBody):
    path: str
    content_b64: str
    overwrite: bool = False


class KvpRequest(RequestBody):
    items: dict[str, str | None]


SERVICES = tuple(ServiceSwitches.__dataclass_fields__)


def install_integration_routes(app: FastAPI, services: IntegrationServices,
                               context: ServiceContext) -> None:
    """Add the ``/vms/{ref}/integration`` routes."""

    def live(ref: str) -> LiveVM:
        return context.find_vm(ref)

    def view(ref: str) -> dict[str, Any]:
        vm = live(ref)
        return {"vm": vm.record.name, **services.describe(vm)["integration"]}

    @app.get(PREFIX, tags=["integration"])
    async def integration_show(ref: str) -> dict[str, Any]:
        return view(ref)

    @app.patch(PREFIX, tags=["integration"])
    async def integration_switch(ref: str, switches: dict[str, bool]) -> dict[str, Any]:
        unknown = sorted(set(switches) - set(SERVICES))
        if unknown:
            raise BadRequest(f"unknown integration service {unknown[0]!r}; allowed: "
                             f"{', '.join(SERVICES)}", service=unknown[0], allowed=SERVICES)
        await context.update_vm(ref, {"integration_services": switches})
        return view(ref)

    @app.post(f"{PREFIX}/exec", tags=["integration"])
    async def integration_exec(ref: str, request: ExecRequest) -> dict[str, Any]:
        """Run ``argv`` in the guest (docs/api.md, "Integration services"). A stream cut
        at the guest agent's cap ends with its marker and has ``*_truncated`` true."""
        stdin = _decoded(request.stdin_b64, "stdin_b64") if request.stdin_b64 else None
        result = await services.exec(live(ref), request.argv, stdin, request.timeout_s)
        return {"exit_code": result.exit_code,
                "stdout_b64": base64.b64encode(result.stdout).decode(),
                "stderr_b64": base64.b64encode(result.stderr).decode(),
                "stdout_truncated": result.stdout_truncated,
                "stderr_truncated": result.stderr_truncated}

    @app.post(f"{PREFIX}/files", tags=["integration"])
    async def integration_copy(ref: str, request: CopyRequest) -> dict[str, Any]:
        data = _decoded(request.content_b64, "content_b64")
        return await services.copy_file(live(ref), request.path, data, request.overwrite)

    @app.put(f"{PREFIX}/kvp", tags=["integration"])
    async def integration_kvp(ref: str, request: KvpRequest) -> dict[str, Any]:
        return {"host_kvp": await services.set_host_kvp(live(ref), request.items)}

    @app.get(f"{PREFIX}/backup", tags=["integration"])
    async def integration_backup(ref: str) -> dict[str, Any]:
        return {"status": await services.freeze_status(live(ref))}

    @app.post(f"{PREFIX}/backup/freeze", tags=["integration"])
    async def integration_freeze(ref: str) -> dict[str, Any]:
        return {"status": "frozen", "file_systems": await services.freeze(live(ref))}

    @app.post(f"{PREFIX}/backup/thaw", tags=["integration"])
    async def integration_thaw(ref: str) -> dict[str, Any]:
        return {"status": "thawed", "file_systems": await services.thaw(live(ref))}


def _decoded(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadRequest(f"{field} is not valid base64: {err}", field=field) from err

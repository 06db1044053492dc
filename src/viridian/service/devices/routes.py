"""API routes of a VM's devices (docs/api.md, "Devices"): disks, DVD and floppy media, network
adapters, COM ports, the screen, and the serial console (a WebSocket bridged to the
COM port's named pipe). Routes only translate: the work is in :mod:`.devices`.

Console protocol: after the WebSocket opens, binary frames carry the port's bytes both
ways. A refusal is one text frame ``{"error": {code, message, details}}`` followed by a
close with code 4000 + its HTTP status (:func:`viridian.service.errors_http.refuse_websocket`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Query, WebSocket
from fastapi.responses import Response

from viridian.config import API_PREFIX
from viridian.errors import HostError, ViridianError
from viridian.service.errors_http import refuse_websocket
from viridian.service.http_boundary import RequestBody
from viridian.service.websocket_bridge import bridge

if TYPE_CHECKING:
    from viridian.service.devices.operations import DeviceOps

VMS = f"{API_PREFIX}/vms/{{ref}}"
CONSOLE_CHUNK = 4096


class DiskSpec(RequestBody):
    controller: Literal["ide", "scsi"]
    location: str
    path: str | None = None
    dvd: bool = False


class MediaSpec(RequestBody):
    path: str | None = None
    location: str | None = None


class NicSpec(RequestBody):
    legacy: bool | None = None
    switch: str | None = None
    mac: str | None = None
    vlan: str | None = None
    trunk: str | None = None
    native: str | None = None


class ScsiSpec(RequestBody):
    controller: int | None = None


class ComSpec(RequestBody):
    pipe: str | None = None
    remote: str | None = None
    none: bool = False


def install_device_routes(app: FastAPI, ops: DeviceOps) -> None:
    """Add the device routes. Call before the generic ``POST /vms/{ref}/{action}`` route."""
    _storage_routes(app, ops)
    _scsi_routes(app, ops)
    _nic_routes(app, ops)
    _com_routes(app, ops)


def _storage_routes(app: FastAPI, ops: DeviceOps) -> None:
    @app.post(f"{VMS}/disks", tags=["devices"])
    async def disk_add(ref: str, spec: DiskSpec) -> dict[str, Any]:
        return await ops.add_disk(ref, spec.controller, spec.location, spec.path, spec.dvd)

    @app.delete(f"{VMS}/disks/{{controller}}/{{location}}", tags=["devices"])
    async def disk_remove(
        ref: str, controller: Literal["ide", "scsi"], location: str
    ) -> dict[str, Any]:
        return await ops.remove_disk(ref, controller, location)

    @app.put(f"{VMS}/dvd", tags=["devices"])
    async def dvd_media(ref: str, spec: MediaSpec) -> dict[str, Any]:
        return await ops.set_dvd(ref, spec.path, spec.location)

    @app.put(f"{VMS}/floppy", tags=["devices"])
    async def floppy_media(ref: str, spec: MediaSpec) -> dict[str, Any]:
        return await ops.set_floppy(ref, spec.path)

    @app.get(
        f"{VMS}/screenshot",
        tags=["devices"],
        response_class=Response,
        responses={200: {"content": {"image/png": {}}}},
    )
    async def screenshot(ref: str) -> Response:
        return Response(await ops.screenshot(ref), media_type="image/png")


def _scsi_routes(app: FastAPI, ops: DeviceOps) -> None:
    """``POST /vms/{ref}/scsi`` ``{"controller": N|null}`` adds a SCSI controller (the
    lowest free number by default); ``DELETE /vms/{ref}/scsi?controller=N`` removes one
    (the only one by default). Both need the VM Off; both answer the vm object plus
    ``scsi_controller``, the number added or removed."""

    @app.post(f"{VMS}/scsi", tags=["devices"])
    async def scsi_add(ref: str, spec: ScsiSpec | None = None) -> dict[str, Any]:
        return await ops.add_scsi_controller(ref, spec.controller if spec else None)

    @app.delete(f"{VMS}/scsi", tags=["devices"])
    async def scsi_remove(ref: str, controller: int | None = None) -> dict[str, Any]:
        return await ops.remove_scsi_controller(ref, controller)


def _nic_routes(app: FastAPI, ops: DeviceOps) -> None:
    @app.post(f"{VMS}/nics", tags=["devices"])
    async def nic_add(ref: str, spec: NicSpec) -> dict[str, Any]:
        return await ops.add_nic(
            ref, bool(spec.legacy), spec.switch, spec.mac, spec.vlan, spec.trunk, spec.native
        )

    @app.patch(f"{VMS}/nics/{{index}}", tags=["devices"])
    async def nic_set(ref: str, index: int, spec: NicSpec) -> dict[str, Any]:
        return await ops.set_nic(
            ref, index, spec.legacy, spec.switch, spec.mac, spec.vlan, spec.trunk, spec.native
        )

    @app.delete(f"{VMS}/nics/{{index}}", tags=["devices"])
    async def nic_remove(ref: str, index: int) -> dict[str, Any]:
        return await ops.remove_nic(ref, index)


def _com_routes(app: FastAPI, ops: DeviceOps) -> None:
    @app.put(f"{VMS}/com/{{port}}", tags=["devices"])
    async def com_set(ref: str, port: int, spec: ComSpec) -> dict[str, Any]:
        return await ops.set_com(ref, port, spec.pipe, spec.remote, spec.none)

    @app.websocket(f"{VMS}/console")
    async def console(websocket: WebSocket, ref: str, com: int = Query(1, ge=1, le=2)) -> None:
        await websocket.accept()
        try:
            path = ops.console_socket(ref, com)
            reader, writer = await asyncio.open_unix_connection(str(path))
        except (ViridianError, OSError) as err:
            error = (
                err
                if isinstance(err, ViridianError)
                else HostError(f"cannot connect to the named pipe of COM{com} ({err})")
            )
            await refuse_websocket(websocket, error)
            return
        await bridge(websocket, reader, writer, CONSOLE_CHUNK)

"""API routes of virtual switches (docs/api.md, "Virtual switches"). Routes only translate:
the work is in :mod:`.switches`. Switch changes are serialised with each other (one
lock) and run on the event loop like VM hooks (each takes milliseconds)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from viridian.config import API_PREFIX
from viridian.service.http_boundary import RequestBody

if TYPE_CHECKING:
    from viridian.service.switches.service import SwitchService

SWITCHES = f"{API_PREFIX}/switches"


class NewSwitch(RequestBody):
    name: str
    type: str
    adapter: str | None = None
    allow_management_os: bool = False
    subnet: str | None = None
    notes: str = ""


def install_switch_routes(app: FastAPI, switches: SwitchService) -> None:
    """Add ``/switches`` routes (list, create, show, remove, host features, reconcile)."""
    lock = asyncio.Lock()

    @app.get(SWITCHES, tags=["switches"])
    async def switch_list() -> dict[str, Any]:
        return {"switches": switches.list_switches()}

    @app.post(SWITCHES, status_code=201, tags=["switches"])
    async def switch_new(spec: NewSwitch) -> dict[str, Any]:
        async with lock:
            return dict(
                switches.create_switch(
                    spec.name,
                    spec.type,
                    spec.adapter,
                    spec.allow_management_os,
                    spec.subnet,
                    spec.notes,
                )
            )

    @app.get(f"{API_PREFIX}/network", tags=["switches"])
    async def network_info() -> dict[str, Any]:
        return {
            "features": switches.kernel().to_dict(),
            "tag": switches.tag,
            "last_error": switches.last_error,
            "last_plan": switches.last_plan,
        }

    @app.post(f"{API_PREFIX}/network/reconcile", tags=["switches"])
    async def network_reconcile() -> dict[str, Any]:
        async with lock:
            ops = switches.reconcile()
        return {"operations": [op.text() for op in ops]}

    @app.get(f"{SWITCHES}/{{name}}", tags=["switches"])
    async def switch_show(name: str) -> dict[str, Any]:
        return dict(switches.show_switch(name))

    @app.delete(f"{SWITCHES}/{{name}}", tags=["switches"])
    async def switch_remove(name: str) -> dict[str, Any]:
        async with lock:
            return dict(switches.remove_switch(name))

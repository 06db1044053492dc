"""VM Connect's screen: a WebSocket bridged to the VM's VNC socket (RFC 6143 over RFC 6455).

``GET /api/v1/vms/{ref}/vnc`` (WebSocket; bearer token or console session, checked by the
gates in front of every route). After the upgrade, binary frames carry the RFB stream both
ways, unchanged — noVNC speaks RFB itself. The VNC server is QEMU's, listening only on the
UNIX socket in the VM's runtime folder: no TCP port is ever opened. A refusal (the VM is
not Running or Paused, the socket cannot be reached) is one text frame
``{"error": {code, message, details}}`` followed by close code 4000 + its HTTP status
(:func:`viridian.service.errors_http.refuse_websocket`). The client may offer
the ``binary`` subprotocol (older noVNC); it is accepted when offered.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fastapi import FastAPI, WebSocket

from viridian.config import API_PREFIX
from viridian.errors import Conflict, HostError, ViridianError
from viridian.model.states import VMState
from viridian.service.context import ServiceContext
from viridian.service.errors_http import refuse_websocket
from viridian.service.websocket_bridge import bridge

SCREEN_STATES = (VMState.RUNNING, VMState.PAUSED)


def vnc_socket(context: ServiceContext, ref: str) -> Path:
    """The VNC socket of ``ref``'s running QEMU.

    :raises NotFound: no such VM.
    :raises Conflict: the VM has no screen now (not Running or Paused).
    """
    live = context.find_vm(ref)
    if live.state not in SCREEN_STATES or live.worker is None:
        raise Conflict(f"VM '{live.record.name}' is {live.state.value}: its screen exists "
                       "only while it is Running or Paused; start it first",
                       vm=live.record.name, state=live.state.value)
    return Path(live.paths.vnc_socket)


async def _open(context: ServiceContext,
                ref: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    path = vnc_socket(context, ref)
    try:
        return await asyncio.open_unix_connection(str(path))
    except OSError as err:
        raise HostError(f"cannot connect to the screen of VM '{ref}' ({err})",
                        vm=ref) from err


def install_vnc_routes(app: FastAPI, context: ServiceContext) -> None:
    """Add the VNC WebSocket route ``/vms/{ref}/vnc``."""
    @app.websocket(f"{API_PREFIX}/vms/{{ref}}/vnc")
    async def vnc(websocket: WebSocket, ref: str) -> None:
        offered = websocket.scope.get("subprotocols") or []
        await websocket.accept(subprotocol="binary" if "binary" in offered else None)
        try:
            reader, writer = await _open(context, ref)
        except ViridianError as err:
            await refuse_websocket(websocket, err)
            return
        await bridge(websocket, reader, writer)

"""A WebSocket joined to a UNIX stream socket (COM pipes, the VNC screen), both ways."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import WebSocket, WebSocketDisconnect

# WebSocket close codes: a normal end; a refusal (HTTP 409's meaning, in the 4000 range).
CLOSE_NORMAL, CLOSE_REFUSED = 1000, 4409


async def bridge(websocket: WebSocket, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, chunk_size: int = 65536) -> None:
    """Bytes both ways (binary frames to the client; binary or text frames from it)
    until either side closes; both sides are closed afterwards."""

    async def to_client() -> None:
        while chunk := await reader.read(chunk_size):
            await websocket.send_bytes(chunk)

    async def to_socket() -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return
                writer.write(message.get("bytes") or (message.get("text") or "").encode())
                await writer.drain()

    tasks = [asyncio.ensure_future(to_client()), asyncio.ensure_future(to_socket())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        writer.close()
        with contextlib.suppress(Exception):
            await websocket.close(CLOSE_NORMAL)

"""Redfish events of VM power-state changes: Server-Sent Events streams and subscriptions
(EventService; DSP0266 §13.5). Subscriptions are kept in the catalog
(:mod:`.subscriptions`): a restart keeps them.

The watcher compares each VM's state every half second — the service has no
state-change notification of its own — and, while someone listens, sends one ``Event``
per change of ``PowerState``. A QEMU exit is noted at once (``note_exit``), so an Off
between two ticks is still reported; a Paused shorter than a tick can be missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from viridian.model.states import VMState
from viridian.redfish.odata import Resource
from viridian.redfish.power import power_state
from viridian.redfish.services import event, power_record
from viridian.redfish.systems import SYSTEMS
from viridian.service.jobs import now_iso
from viridian.service.redfish.subscriptions import Subscription, SubscriptionStore

log = logging.getLogger(__name__)
POLL_S = 0.5


class EventHub:
    """Subscriptions, SSE listeners and the state watcher feeding both."""

    def __init__(self, states: Callable[[], Mapping[str, VMState]],
                 subscriptions: SubscriptionStore) -> None:
        self._states = states
        self.subscriptions = subscriptions
        self._streams: set[asyncio.Queue[Resource]] = set()
        self._seen: dict[str, VMState] = {}
        self._exited: set[str] = set()
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, destination: str, context: str) -> Subscription:
        return self.subscriptions.add(destination, context)

    async def stream(self) -> AsyncIterator[bytes]:
        """An SSE stream: one ``data:`` line per Event, a comment every 15 s of quiet."""
        queue: asyncio.Queue[Resource] = asyncio.Queue()
        self._streams.add(queue)
        try:
            yield b": viridian event stream\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), 15)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                yield f"id: {item['Id']}\ndata: {json.dumps(item)}\n\n".encode()
        finally:
            self._streams.discard(queue)

    async def publish(self, records: list[Resource]) -> None:
        """Send ``records`` as one Event to every stream and subscription."""
        body = event(str(next(self._ids)), records)
        for queue in self._streams:
            queue.put_nowait(body)
        for sub in self.subscriptions.all():
            await self._deliver(sub, {**body, "Context": sub.context})

    async def _deliver(self, sub: Subscription, body: Resource) -> None:
        import httpx  # on first delivery: the service need not carry it (architecture, "Scale")

        for _ in range(3):
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    await client.post(sub.destination, json=body)
                return
            except httpx.HTTPError as err:
                log.warning("event to %s not delivered: %s", sub.destination, err)
                await asyncio.sleep(1)

    async def _watch(self) -> None:
        """Snapshot every VM's state each tick (a VM created just before a subscription
        has a baseline too); publish the changes while someone listens."""
        self._seen = dict(self._states())
        while True:
            await asyncio.sleep(POLL_S)
            records = self._changes()
            if records and (self._streams or self.subscriptions.all()):
                await self.publish(records)

    def note_exit(self, vm_id: str) -> None:
        """The VM's QEMU ended: its next tick reports Off even if it runs again by then."""
        self._exited.add(vm_id)

    def _changes(self) -> list[dict[str, Any]]:
        now = dict(self._states())
        records = []
        for vm_id, state in now.items():
            before = self._seen.get(vm_id, VMState.OFF)  # new since the last tick: Off
            if vm_id in self._exited and power_state(before) != "Off" \
                    and power_state(state) != "Off":
                records.append(self._record(vm_id, "Off", VMState.OFF.value))
                before = VMState.OFF
            if power_state(before) != power_state(state):
                records.append(self._record(vm_id, power_state(state), state.value))
        self._seen, self._exited = now, set()
        return records

    def _record(self, vm_id: str, power: str, vm_state: str) -> Resource:
        return power_record(str(next(self._ids)), f"{SYSTEMS}/{vm_id}", power, vm_state,
                            now_iso())

"""The live event stream of the console (Server-Sent Events, ``GET /api/v1/events``).

The stream sends an event only when what it describes changed since the last one it sent
(the first of each kind is sent at once)::

    event: vms     data: {"vms": [row, ...]}      the VM list as Hyper-V Manager shows it
    event: jobs    data: {"jobs": [job, ...]}     the most recent jobs, newest first
    event: host    data: {host facts}             what the host pane shows

A row (:func:`vm_row`) carries ``actions``: exactly the requests valid in the VM's state
(the state table of :mod:`viridian.model.states`), plus ``checkpoint`` in every settled
state and ``connect`` always. CPU usage is the VM's average ``% Total Run Time`` over its
virtual processors in the latest background counter sample.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from viridian.config import API_PREFIX
from viridian.counters import paths as P
from viridian.errors import BadRequest
from viridian.model.states import VMState, allowed_requests

TICK_S = 0.5
KEEPALIVE_TICKS = 30
RECENT_JOBS = 30
RUN_TIME = "% Total Run Time"


class ConsoleFeed(Protocol):
    """What the stream reads from the service (passed in by the service's wiring)."""

    def vm_list(self) -> list[dict[str, Any]]:
        """The VM objects of the API (``GET /vms``), sorted by name."""

    def recent_jobs(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` job objects of the API, newest first."""

    def host_facts(self) -> dict[str, Any]:
        """The host object of the API (``GET /host``)."""

    def latest_counters(self) -> Mapping[str, float]:
        """The values of the latest background counter sample (empty before the first)."""


class Viewer(Protocol):
    """Who watches the stream (``feed.viewer(scope)``; None: the admin, sees everything):
    a viewer without ``sees_host`` gets only the VMs ``visible`` lets through, their jobs
    and the host's name."""

    sees_host: bool

    def visible(self, vm: dict[str, Any]) -> bool: ...


def vm_actions(state: str) -> list[str]:
    """The console's actions for a VM in ``state``: valid requests, checkpoint, connect."""
    vm_state = VMState(state)
    actions = [r.value for r in allowed_requests(vm_state)]
    if not vm_state.is_transitional:
        actions.append("checkpoint")
    return [*actions, "connect"]


def vm_row(vm: dict[str, Any], cpu_pct: float | None) -> dict[str, Any]:
    """What the VM list shows of ``vm`` (a service vm object)."""
    running = VMState(vm["state"]) not in (VMState.OFF, VMState.SAVED)
    return {
        "id": vm["id"], "name": vm["name"], "state": vm["state"],
        "cpu_pct": None if cpu_pct is None or not running else round(cpu_pct),
        "assigned_memory_mb": vm["memory_mb"] if running else 0,
        "memory_mb": vm["memory_mb"], "processors": vm["processors"],
        "uptime_s": int(vm["uptime_s"]), "heartbeat": vm.get("heartbeat"),
        "status": vm["status"], "actions": vm_actions(vm["state"]),
    }


def cpu_by_vm(values: Mapping[str, float]) -> dict[str, float]:
    """Average ``% Total Run Time`` per VM name from one counter sample's values."""
    per_vm: dict[str, list[float]] = {}
    for text, value in values.items():
        path = P.parse(text)
        if path.object != P.VP or path.counter != RUN_TIME or not path.instance:
            continue
        vm, _, vp = path.instance.rpartition(":")
        if vm and vp != P.TOTAL:
            per_vm.setdefault(vm, []).append(value)
    return {vm: sum(runs) / len(runs) for vm, runs in per_vm.items()}


HOST_KEYS = ("hostname", "version", "accelerator", "qemu_version", "logical_processors",
             "memory_mb", "memory_assigned_mb", "vms_total", "vms_running")


def snapshot(feed: ConsoleFeed, viewer: Viewer | None = None) -> dict[str, Any]:
    """Everything the stream describes, now (what ``viewer`` may see of it)."""
    cpu = cpu_by_vm(feed.latest_counters())
    host = feed.host_facts()
    vms, jobs = feed.vm_list(), feed.recent_jobs(RECENT_JOBS)
    if viewer is not None and not viewer.sees_host:
        vms = [vm for vm in vms if viewer.visible(vm)]
        names = {vm["name"] for vm in vms}
        jobs = [job for job in jobs if job.get("vm") in names]
        host = {k: (host[k] if k == "hostname" else None) for k in HOST_KEYS}
    return {
        "vms": {"vms": [vm_row(vm, cpu.get(vm["name"])) for vm in vms]},
        "jobs": {"jobs": jobs},
        "host": {k: host[k] for k in HOST_KEYS},
    }


def sse(event: str, data: Any) -> str:
    """One Server-Sent Event (WHATWG HTML §9.2): named, one JSON data line."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


async def event_stream(feed: ConsoleFeed, tick_s: float = TICK_S,
                       viewer: Viewer | None = None) -> AsyncIterator[str]:
    """Changes forever (the response ends when the client goes away)."""
    sent: dict[str, Any] = {}
    quiet = 0
    yield "retry: 2000\n\n"
    while True:
        for kind, value in snapshot(feed, viewer).items():
            if sent.get(kind) != value:
                sent[kind] = value
                quiet = 0
                yield sse(kind, value)
        quiet += 1
        if quiet >= KEEPALIVE_TICKS:
            quiet = 0
            yield ": keep-alive\n\n"
        await asyncio.sleep(tick_s)


def install_event_routes(app: FastAPI, feed: ConsoleFeed) -> None:
    """Add ``GET /api/v1/events`` (the stream of :func:`event_stream`)."""
    @app.get(f"{API_PREFIX}/events", tags=["console"], response_class=StreamingResponse)
    async def events(request: Request, tick_s: float = TICK_S) -> StreamingResponse:
        """Live VM list, jobs and host facts as Server-Sent Events (a user without
        host-wide read sees its own VMs, their jobs and the host's name)."""
        if not 0.1 <= tick_s <= 10:
            raise BadRequest(f"tick_s {tick_s} is out of range; allowed: 0.1 to 10 seconds")
        viewer_of = getattr(feed, "viewer", None)
        viewer = viewer_of(request.scope) if viewer_of else None
        return StreamingResponse(event_stream(feed, tick_s, viewer),
                                 media_type="text/event-stream",
                                 headers={"cache-control": "no-store",
                                          "x-accel-buffering": "no"})

"""Routes for counters, ``/metrics``, metering and the best-practices analyzer (docs/api.md).

Authentication is the app's bearer middleware, which covers every route, ``/metrics``
included (configure Prometheus with ``authorization: {credentials_file: <data>/token}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import Response
from pydantic import Field

from viridian.bpa import analyze
from viridian.config import API_PREFIX
from viridian.counters import paths as P
from viridian.counters.prometheus import CONTENT_TYPE, exposition
from viridian.service.counters.bpa_facts import gather_facts
from viridian.service.http_boundary import RequestBody

if TYPE_CHECKING:
    from viridian.service.counters.sampler import CountersCapability

METRICS_PATH = "/metrics"


class SampleRequest(RequestBody):
    paths: list[str] = Field(default_factory=list)
    vm: str | None = None
    interval_s: float = 1.0


def install_counter_routes(app: FastAPI, counters: CountersCapability) -> None:
    """Add the counter, metrics, metering and analyzer routes to ``app``."""
    _counter_routes(app, counters)
    _metering_routes(app, counters)

    @app.get(METRICS_PATH, tags=["counters"], response_class=Response)
    async def metrics() -> Response:
        snapshot = await counters.sampler.snapshot(every_vm=True)
        return Response(exposition(snapshot), media_type=CONTENT_TYPE)

    @app.get(f"{API_PREFIX}/bpa", tags=["bpa"])
    async def bpa() -> dict[str, Any]:
        findings = [f.to_dict() for f in analyze(await gather_facts(
            counters.context, counters.switches, counters.sampler))]
        summary = {status: sum(1 for f in findings if f["status"] == status)
                   for status in ("fired", "ok", "not_applicable", "no_data")}
        return {"findings": findings, "summary": summary}


def _counter_routes(app: FastAPI, counters: CountersCapability) -> None:
    @app.get(f"{API_PREFIX}/counters", tags=["counters"])
    async def counter_list(vm: str | None = None) -> dict[str, Any]:
        return {"paths": await counters.sampler.list_paths(vm)}

    @app.post(f"{API_PREFIX}/counters/sample", tags=["counters"])
    async def counter_sample(request: SampleRequest) -> dict[str, Any]:
        sample = await counters.sampler.sample(request.paths, request.vm,
                                                    request.interval_s)
        return sample.to_dict()

    @app.get(f"{API_PREFIX}/counters/history", tags=["counters"])
    async def counter_history(path: Annotated[list[str] | None, Query()] = None,
                              since: float = 0.0, vm: str | None = None) -> dict[str, Any]:
        service = counters.sampler
        samples = service.history.since(since)
        vm_name = service.vm_name(vm)
        known = sorted({k for s in samples for k in s.values})
        if vm_name is not None:
            known = [k for k in known if (P.parse(k).instance or "").split(":")[0] == vm_name]
        chosen = P.select(path or [], known) if known else []
        return {**service.stats(), "paths": chosen,
                "samples": [s.to_dict(chosen) for s in samples]}


def _metering_routes(app: FastAPI, counters: CountersCapability) -> None:
    @app.get(f"{API_PREFIX}/vms/{{ref}}/measure", tags=["vms"])
    async def vm_measure(ref: str) -> dict[str, Any]:
        return counters.sampler.measure(ref)

    @app.post(f"{API_PREFIX}/vms/{{ref}}/measure/reset", tags=["vms"])
    async def vm_measure_reset(ref: str) -> dict[str, Any]:
        return counters.sampler.reset_meter(ref)
